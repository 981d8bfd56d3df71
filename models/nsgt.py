"""Non-Stationary Gabor Transform (NSGT) in matrix form, for a fixed signal length, TorchScript-able.

The transform follows the definitions of the reference ``nsgt`` package (Holighaus, Dörfler, Velasco,
Grill; ``NSGT(scale, fs, Ls, real=True, matrixform=True, reducedform=0)``): one Hann window over
frequency per band, centred on the scale's frequencies, each as wide as the distance between its two
neighbours, plus a DC and a Nyquist band. Matrix form gives every band the same number of time frames
(the largest window length), so coefficients are a complex ``[B, F, M]`` tensor. The inverse uses the
canonical dual frame of the real-signal frame, so ``inverse(forward(x))`` equals ``x`` up to rounding.

All index bookkeeping is done once in the constructor; ``forward`` is one rfft, one gather, one batched
ifft, and ``inverse`` is one batched fft, one scatter-add, one irfft (no loop over bands).
"""

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn


class FrequencyScale(ABC):
    """Centre frequencies (Hz) and Q factors of the bands, as the reference package defines them."""

    def __len__(self) -> int:
        return len(self.frequencies())

    @abstractmethod
    def frequencies(self) -> list[float]: ...

    @abstractmethod
    def q_factors(self) -> list[float]: ...

    def __call__(self) -> tuple[Tensor, Tensor]:
        """Frequencies and Q factors as float64 tensors ``[bands]`` (the reference returns the same pair)."""
        return (
            torch.tensor(self.frequencies(), dtype=torch.float64),
            torch.tensor(self.q_factors(), dtype=torch.float64),
        )


class _GeometricScale(FrequencyScale):
    """Bands spaced by a constant ratio from ``fmin`` to ``fmax`` (both included)."""

    def __init__(self, fmin: float, fmax: float, bands: int) -> None:
        if not 0 < fmin < fmax:
            raise ValueError(f"frequency scale: need 0 < fmin < fmax, got fmin={fmin}, fmax={fmax}")
        if bands < 2:
            raise ValueError(f"frequency scale: need at least 2 bands, got {bands}")
        log_fmin = math.log2(fmin)
        self.fmin = 2.0**log_fmin
        self.fmax = float(fmax)
        self.bands = int(bands)
        self.ratio = 2.0 ** ((math.log2(fmax) - log_fmin) / (bands - 1))

    def frequencies(self) -> list[float]:
        return [self.fmin * self.ratio**b for b in range(self.bands)]

    def q_factors(self) -> list[float]:
        # centre over bandwidth for a band spanning [f / sqrt(r), f * sqrt(r)], halved as in the reference
        return [math.sqrt(self.ratio) / (self.ratio - 1.0) / 2.0] * self.bands


class OctaveScale(_GeometricScale):
    """Constant-Q scale: about ``bins_per_octave`` bands per octave from ``fmin`` to ``fmax``.

    As in the reference, the band count is ``ceil(octaves * bins_per_octave) + 1`` and the ratio is then
    adjusted so that the last band lands exactly on ``fmax``.
    """

    def __init__(self, fmin: float, fmax: float, bins_per_octave: int) -> None:
        if bins_per_octave < 1:
            raise ValueError(f"OctaveScale: bins_per_octave must be >= 1, got {bins_per_octave}")
        if not 0 < fmin < fmax:
            raise ValueError(f"OctaveScale: need 0 < fmin < fmax, got fmin={fmin}, fmax={fmax}")
        octaves = math.log2(fmax) - math.log2(fmin)
        super().__init__(fmin, fmax, math.ceil(octaves * bins_per_octave) + 1)
        self.bins_per_octave = int(bins_per_octave)


class LogScale(_GeometricScale):
    """``bins`` log-spaced bands from ``fmin`` to ``fmax``."""

    def __init__(self, fmin: float, fmax: float, bins: int) -> None:
        super().__init__(fmin, fmax, bins)


def hz_to_mel(f: float) -> float:
    """O'Shaughnessy mel (the reference package's formula)."""
    return 2595.0 * math.log10(1.0 + f / 700.0)


def mel_to_hz(m: float) -> float:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


class MelScale(FrequencyScale):
    """``bins`` bands equally spaced in mel from ``fmin`` to ``fmax``."""

    def __init__(self, fmin: float, fmax: float, bins: int) -> None:
        if not 0 < fmin < fmax:
            raise ValueError(f"MelScale: need 0 < fmin < fmax, got fmin={fmin}, fmax={fmax}")
        if bins < 2:
            raise ValueError(f"MelScale: need at least 2 bins, got {bins}")
        self.fmin = float(fmin)
        self.fmax = float(fmax)
        self.bands = int(bins)
        self.mel_min = hz_to_mel(fmin)
        self.mel_step = (hz_to_mel(fmax) - self.mel_min) / (bins - 1)

    def frequencies(self) -> list[float]:
        return [mel_to_hz(self.mel_min + b * self.mel_step) for b in range(self.bands)]

    def q_factors(self) -> list[float]:
        # the reference's central difference Q = f / (2 df/dband), step 1e-8 band, kept for identical values
        step = 1e-8

        def freq(band: float) -> float:
            return mel_to_hz(self.mel_min + band * self.mel_step)

        return [freq(b) * step / (freq(b + step) - freq(b - step)) for b in range(self.bands)]


def make_scale(kind: str, fmin: float, fmax: float, bins: int) -> FrequencyScale:
    """``kind`` is ``"octave"`` (``bins`` per octave), ``"log"`` or ``"mel"`` (``bins`` in all)."""
    if kind == "octave":
        return OctaveScale(fmin, fmax, bins)
    if kind == "log":
        return LogScale(fmin, fmax, bins)
    if kind == "mel":
        return MelScale(fmin, fmax, bins)
    raise ValueError(f"frequency scale {kind!r} is unknown; use 'octave', 'log' or 'mel'")


def _window_plan(
    frequencies: list[float], sample_rate: float, length: int, min_window: int
) -> tuple[list[float], list[int], list[int], int]:
    """Band centres (Hz), centre bins and window lengths (bins) of the positive bands, and the frame count.

    Mirrors the reference's non-sliced ``nsgfwin``: frequencies outside (0, Nyquist) are dropped, DC and
    Nyquist bands are added, a window spans its two neighbours' centres, the last band's centre moves to
    the middle of its neighbours, and matrix form uses the largest window length over the whole
    (two-sided) window set as the frame count.
    """
    nyquist = sample_rate / 2.0
    f = [fi for fi in frequencies if 0.0 < fi < nyquist]
    if not f:
        raise ValueError(f"NSGT: no band frequency lies between 0 and Nyquist ({nyquist} Hz)")
    if any(b <= a for a, b in zip(f[:-1], f[1:], strict=True)):
        raise ValueError("NSGT: band frequencies must be increasing")
    n_bands = len(f)
    centres_hz = [0.0] + f + [nyquist]
    two_sided = centres_hz + [sample_rate - v for v in centres_hz[-2:0:-1]]
    bins_per_hz = float(length) / sample_rate
    pos = [v * bins_per_hz for v in two_sided]

    widths = [round(2 * pos[1])]
    widths += [round(pos[k + 1] - pos[k - 1]) for k in range(1, 2 * n_bands + 1)]
    widths += [round(length - pos[-2])]
    widths = [max(w, min_window) for w in widths]
    frames = max(widths)

    pos[n_bands] = (pos[n_bands - 1] + pos[n_bands + 1]) / 2.0
    centres_hz[n_bands] = pos[n_bands] / bins_per_hz
    centre_bins = [round(v) for v in pos[: n_bands + 2]]
    return centres_hz, centre_bins, widths[: n_bands + 2], frames


def fast_length(n: int, multiple_of: int = 1) -> int:
    """Smallest ``m >= n`` that is a multiple of ``multiple_of`` and has no prime factor above 5 (fast FFTs)."""
    if multiple_of < 1 or _drop_factors_2_3_5(multiple_of) != 1:
        raise ValueError(f"fast_length: multiple_of must be a product of 2, 3 and 5, got {multiple_of}")
    m = max(int(n), 1)
    while True:
        if m % multiple_of == 0 and _drop_factors_2_3_5(m) == 1:
            return m
        m += 1


def _drop_factors_2_3_5(n: int) -> int:
    for p in (2, 3, 5):
        while n % p == 0:
            n //= p
    return n


class NSGT(nn.Module):
    """Matrix-form NSGT of real signals of a fixed length.

    ``forward``: ``[..., T] -> complex [..., F, M]`` with ``F = num_bins`` bands (DC, the scale's bands,
    Nyquist) and ``M = num_frames`` time frames (frame ``m`` sits at sample ``m * T / M``).
    ``inverse``: ``complex [..., F, M] -> [..., T]``, exact on coefficients from ``forward``.

    ``frames=None`` keeps the reference's frame count (the widest window); a larger count, e.g.
    ``fast_length(nsgt.min_frames, 16)``, samples the same transform more densely in time, makes the FFTs
    several times faster when the reference count has a large prime factor, and suits strided convolutions.
    ``min_window`` is the reference's smallest window length in bins.
    """

    def __init__(
        self,
        length: int,
        sample_rate: float,
        scale: FrequencyScale,
        frames: int | None = None,
        min_window: int = 4,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if length < 8:
            raise ValueError(f"NSGT: length must be at least 8 samples, got {length}")
        if sample_rate <= 0:
            raise ValueError(f"NSGT: sample_rate must be positive, got {sample_rate}")
        centres_hz, centre_bins, widths, reference_frames = _window_plan(
            scale.frequencies(), float(sample_rate), int(length), int(min_window)
        )
        # Any frame count at least as long as every window gives the same transform sampled more
        # densely in time (the dual does not depend on it); the reference's count is often a prime.
        self.min_frames = max(widths)
        if frames is None:
            frames = reference_frames
        elif frames < self.min_frames:
            raise ValueError(
                f"NSGT: frames={frames} is shorter than the widest window; use >= {self.min_frames}"
            )
        self.length = int(length)
        self.sample_rate = float(sample_rate)
        self.num_bins = len(centre_bins)
        self.num_frames = int(frames)
        self.hop = float(length) / frames
        half = length // 2 + 1

        # Per window entry: flat slot in the [F, M] buffer, two-sided spectrum bin, window value.
        slots, spectrum_bins, values = [], [], []
        for band, (centre, width) in enumerate(zip(centre_bins, widths, strict=True)):
            offsets = torch.arange(-(width // 2), (width + 1) // 2, dtype=torch.int64)
            window = 0.5 + 0.5 * torch.cos(offsets.to(torch.float64) * (2.0 * math.pi / width))
            slots.append(band * frames + offsets % frames)
            spectrum_bins.append((centre + offsets) % length)
            values.append(window)
        slot = torch.cat(slots)
        two_sided = torch.cat(spectrum_bins)
        window = torch.cat(values)

        # A real signal's spectrum is stored one-sided: bins above Nyquist read the conjugate mirror bin.
        mirrored = two_sided > length // 2
        one_sided = torch.where(mirrored, length - two_sided, two_sided)
        self_conjugate = (two_sided == 0) | (2 * two_sided == length)
        sign = torch.where(mirrored, -1.0, 1.0).to(torch.float64)

        # Canonical dual for real signals: the frame operator is diagonal over frequency with
        # w[n] + w[-n], w being the sum of squared windows; entries at DC and Nyquist count twice
        # (a value and its conjugate), so their real part doubles and their imaginary part cancels.
        power = torch.zeros(length, dtype=torch.float64).index_add_(0, two_sided, window**2)
        folded = power[:half] + power[(length - torch.arange(half)) % length]
        if float(folded.min()) <= 0.0:
            raise ValueError("NSGT: the windows leave a frequency uncovered; use more bands or a wider scale")
        # The ifft divides by the frame count; rescale so that coefficients do not depend on it
        # (with frames = k * reference count, every k-th frame equals the reference's frame).
        density = float(frames) / reference_frames
        dual = window / folded[one_sided] / density
        window = window * density
        dual_re = torch.where(self_conjugate, 2.0 * dual, dual)
        dual_im = torch.where(self_conjugate, torch.zeros_like(dual), dual * sign)

        self.register_buffer("slot", slot, persistent=False)
        self.register_buffer("spectrum_bin", one_sided, persistent=False)
        self.register_buffer("window_re", window.to(dtype), persistent=False)
        self.register_buffer("window_im", (window * sign).to(dtype), persistent=False)
        self.register_buffer("dual_re", dual_re.to(dtype), persistent=False)
        self.register_buffer("dual_im", dual_im.to(dtype), persistent=False)
        self.register_buffer("frequencies", torch.tensor(centres_hz, dtype=dtype), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """``x [..., T]`` real -> coefficients ``[..., F, M]`` complex."""
        if x.shape[-1] != self.length:
            raise ValueError(f"NSGT.forward: expected {self.length} samples, got {x.shape[-1]}")
        lead = list(x.shape[:-1])
        flat = x.reshape(-1, self.length)
        spectrum = torch.fft.rfft(flat, dim=-1).index_select(1, self.spectrum_bin)
        entries = torch.complex(spectrum.real * self.window_re, spectrum.imag * self.window_im)
        buffer = torch.zeros(
            flat.shape[0], self.num_bins * self.num_frames, dtype=entries.dtype, device=entries.device
        ).index_copy(1, self.slot, entries)
        coefficients = torch.fft.ifft(buffer.view(-1, self.num_bins, self.num_frames), dim=-1)
        return coefficients.reshape(lead + [self.num_bins, self.num_frames])

    @torch.jit.export
    def inverse(self, c: Tensor) -> Tensor:
        """Coefficients ``[..., F, M]`` complex -> signal ``[..., T]`` real (canonical dual frame)."""
        if c.shape[-2] != self.num_bins or c.shape[-1] != self.num_frames:
            raise ValueError(
                f"NSGT.inverse: expected [..., {self.num_bins}, {self.num_frames}] coefficients, "
                f"got {c.shape}"
            )
        lead = list(c.shape[:-2])
        spectra = torch.fft.fft(c.reshape(-1, self.num_bins, self.num_frames), dim=-1)
        entries = spectra.reshape(spectra.shape[0], -1).index_select(1, self.slot)
        entries = torch.complex(entries.real * self.dual_re, entries.imag * self.dual_im)
        half = torch.zeros(
            entries.shape[0], self.length // 2 + 1, dtype=entries.dtype, device=entries.device
        ).index_add(1, self.spectrum_bin, entries)
        signal = torch.fft.irfft(half, n=self.length, dim=-1)
        return signal.reshape(lead + [self.length])

    @torch.jit.export
    def magnitude(self, x: Tensor) -> Tensor:
        """``x [..., T]`` -> ``|NSGT(x)| [..., F, M]``."""
        return self.forward(x).abs()

    @torch.jit.export
    def log_magnitude(self, x: Tensor, eps: float = 1e-5) -> Tensor:
        """``x [..., T]`` -> ``log(max(|NSGT(x)|, eps)) [..., F, M]``."""
        return torch.log(self.forward(x).abs().clamp_min(eps))

    @torch.jit.export
    def griffin_lim(
        self, magnitude: Tensor, iterations: int = 32, momentum: float = 0.99, phase: Tensor | None = None
    ) -> Tensor:
        """Signal ``[..., T]`` whose NSGT magnitude approaches ``magnitude [..., F, M]``.

        Fast Griffin-Lim (Perraudin et al. 2013): alternate projections on consistent coefficients and on
        the given magnitude, with momentum on the consistent ones; the phase starts at zero, or at the unit
        complex ``phase [..., F, M]`` when given.
        """
        current, previous = self.griffin_lim_start(magnitude)
        if phase is not None:
            current = phase.expand_as(current)
        for _ in range(iterations):
            current, previous = self.griffin_lim_step(magnitude, current, previous, momentum)
        return self.inverse(magnitude * current)

    @torch.jit.export
    def griffin_lim_start(self, magnitude: Tensor) -> tuple[Tensor, Tensor]:
        """The state ``(phase, previous)`` of :meth:`griffin_lim` before its first iteration."""
        phase = torch.complex(torch.ones_like(magnitude), torch.zeros_like(magnitude))
        return phase, torch.zeros_like(phase)

    @torch.jit.export
    def griffin_lim_warm_start(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """A state ``(phase, previous)`` whose phase is that of the coefficients of the signal ``like [..., T]``
        (a sound close to the one sought), instead of zero; zero where they vanish or are not finite (so that
        a silent sound cannot leave every later one silent)."""
        coefficients = self.forward(like)
        magnitude = coefficients.abs()
        zero_phase = torch.complex(torch.ones_like(magnitude), torch.zeros_like(magnitude))
        phase = torch.where(magnitude > 1e-12, coefficients / magnitude.clamp_min(1e-12), zero_phase)
        return phase, torch.zeros_like(phase)

    @torch.jit.export
    def griffin_lim_step(
        self, magnitude: Tensor, phase: Tensor, previous: Tensor, momentum: float
    ) -> tuple[Tensor, Tensor]:
        """One iteration of :meth:`griffin_lim`: ``(phase, previous)`` -> the next ones.

        It is :meth:`inverse` of ``magnitude * phase`` then :meth:`griffin_lim_update`; callers that spread
        the work over several calls run the two halves apart.
        """
        return self.griffin_lim_update(self.inverse(magnitude * phase), previous, momentum)

    @torch.jit.export
    def griffin_lim_update(self, signal: Tensor, previous: Tensor, momentum: float) -> tuple[Tensor, Tensor]:
        """The second half of :meth:`griffin_lim_step`: the consistent coefficients of ``signal`` with momentum."""
        consistent = self.forward(signal)
        accelerated = consistent + momentum * (consistent - previous)
        return accelerated / accelerated.abs().clamp_min(1e-12), consistent

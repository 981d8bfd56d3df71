"""Granular synthesis from a grain decoder: a latent path in, audio out, at the model rate.

``GranularEngine`` streams: each call gets the latent path of the next ``n`` samples (frames every
``frame_hop`` samples), schedules grain onsets at ``density`` grains per second (evenly spaced, or with
``jitter`` randomising the intervals), decodes every grain of the call in one batch (with ``share_frames``,
once per path frame), shortens, transposes and re-windows the grains, and overlap-adds them into a buffer
whose tail (the part of the grains that rings past the end of the call) is carried into the next call.
A call costs a few dozen tensor operations besides the decoder, whatever its length; in a DAW, where other
devices run between two calls, each kind of operation also pays for its code's cold caches, so a call uses
few kinds (the onsets and frame indices of a call are Python lists, not tensors). Splitting a stream into
calls of any size gives the same audio as one call (without spray, whose draws differ).
The jitter draws from the engine's own generator, which ``reset`` restarts (``jitter_seed``), so a stream repeats
after a reset as the nn~ contract asks; spray draws from torch's global generator
(``torch.manual_seed`` makes it repeatable).
(Offline framing and overlap-add of whole sounds live in ``corpus.grains``: ``frame_sound``, ``overlap_add``.)
"""

import math

import torch
from torch import Tensor, nn

# Transposition range in semitones: the longest transposed grain (two octaves down) is 4 grains long,
# which sizes the tail buffer.
MAX_TRANSPOSE = 24.0
# Grain onsets per second are capped here (a grain every ~22 samples at 22.05 kHz): beyond it the
# level normalisation and the per-call grain count stop making musical sense.
MAX_DENSITY = 1000.0
# The default settings make a cloud, not a drone: 100 grains a second at random intervals (jitter 1: uniform in
# [0, 2 / density]). Evenly spaced grains (jitter 0) are heard as a pitch at the grain rate: 90-93 % of a prior
# texture's power lay on harmonics of 40 Hz at the old default (40, 0, 0); at these 4-5 %, as held-out grains
# played the same way (docs/grain.md).
# Spray stays 0: it lowered that share no further and costs a decode per grain instead of one per path frame.
DEFAULT_DENSITY, DEFAULT_JITTER, DEFAULT_SPRAY = 100.0, 1.0, 0.0
# Where the jitter's generator starts after a reset (any integer in 1 .. 2 ** 31 - 2).
JITTER_SEED = 20261205


class GranularEngine(nn.Module):
    """Streaming granular synthesis over a grain decoder (TorchScript-scriptable).

    Args:
        decoder: a module with an exported ``decode_mean(z [N, D]) -> [N, 1, G]`` (``GrainVAE`` has it).
        grain_size: ``G``, samples of a decoded grain.
        sample_rate: the model rate in Hz (``density`` is in grains per second of it).
        latent_size: ``D``, channels of the latent path.
        max_grains_per_call: at most this many grains start in one call; onsets past it are dropped (the
            schedule then restarts from the end of the call), so a call's cost is bounded.
        share_frames: decode once per path frame the grains that start in it (without spray they read the
            same latent, so the audio is the same): denser than a grain per frame, the decoder then runs at
            the frame rate. Off, the decoder gets one latent per grain (a stub decoder can count them).

    Settings, attributes to change between calls: ``density`` (grains per second), ``jitter`` (0 evenly
    spaced .. 1 intervals uniform in [0, 2 / density]), ``spray`` (std of Gaussian noise added to each
    grain's latent, in path units), ``grain_length`` (0.1 .. 1 of the grain, its centre kept),
    ``transpose`` (semitones, -24 .. 24, by resampling the grain with linear interpolation: up is shorter).

    The path is in knob units when ``latent_mean`` / ``latent_basis`` are set (``set_knob_axes``): a grain's
    latent is ``latent_mean + latent_basis @ (knobs + spray noise)``; by default they are 0 and the identity.

    The decoded grains are taken to be Hann-windowed like the training grains; each is cut to its centre
    ``grain_length``, resampled, and multiplied by a Hann window of its new length (no clicks when cut).

    Level: each grain is scaled by ``1 / sqrt(max(1, overlap))``, ``overlap`` being the expected number of
    grains sounding at once (the sum of a grain's envelope divided by the mean onset interval): sparse grains
    play at their decoded level, dense clouds keep a constant power instead of adding up in amplitude.
    """

    def __init__(
        self,
        decoder: nn.Module,
        grain_size: int,
        sample_rate: int,
        latent_size: int,
        max_grains_per_call: int = 512,
        share_frames: bool = False,
    ) -> None:
        super().__init__()
        self.decoder = decoder
        self.grain_size, self.sample_rate, self.latent_size = grain_size, sample_rate, latent_size
        self.max_grains_per_call = max_grains_per_call
        self.share_frames = share_frames
        # copies of the module constants: TorchScript reads no float globals
        self.max_density, self.max_transpose = MAX_DENSITY, MAX_TRANSPOSE
        self.density, self.jitter, self.spray = DEFAULT_DENSITY, DEFAULT_JITTER, DEFAULT_SPRAY
        self.grain_length, self.transpose = 1.0, 0.0
        self.max_grain_out = int(math.ceil(grain_size * 2.0 ** (MAX_TRANSPOSE / 12.0))) + 2
        self.next_onset = 0.0  # samples from the start of the next call to the next grain onset
        self.jitter_seed = JITTER_SEED
        self.jitter_state = JITTER_SEED
        self.register_buffer("tail", torch.zeros(1, self.max_grain_out), persistent=False)
        self.register_buffer("silence", torch.zeros(1, 0), persistent=False)  # zeros the calls append
        self.register_buffer("latent_mean", torch.zeros(latent_size))
        self.register_buffer("latent_basis", torch.eye(latent_size))
        self.map_knobs = False  # the identity until set_knob_axes: the path is the latents themselves
        self.register_buffer("analysis_window", torch.hann_window(grain_size))
        # `_grain_shape` and what follows from it, kept until grain_length, transpose or the dtype change
        self.shape_length, self.shape_transpose, self.shape_valid = 1.0, 0.0, False
        self.shape_density = DEFAULT_DENSITY  # the level of a grain (see above) is in `shape_envelope`
        self.shape_first = -1  # >= 0: the shape is the decoded samples from this one on, in order
        for name in ("shape_left", "shape_right", "shape_offsets"):
            self.register_buffer(name, torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("shape_frac", torch.zeros(0), persistent=False)
        self.register_buffer("shape_envelope", torch.zeros(0), persistent=False)

    @torch.jit.export
    def set_knob_axes(self, mean: Tensor, components: Tensor, std: Tensor) -> None:
        """Knob ``k`` moves the latent along axis ``components[k]`` (``[D, D]``, rows are axes) in units of
        ``std[k]``, from ``mean [D]``: ``z = mean + sum_k knob_k * std[k] * components[k]``."""
        self.latent_mean.copy_(mean)
        self.latent_basis.copy_((components * std[:, None]).t())
        self.map_knobs = True

    @torch.jit.export
    def reset(self) -> None:
        """Forget the stream: no ringing tail, the next grain starts at the next call's first sample."""
        self.tail = torch.zeros_like(self.tail)
        self.next_onset = 0.0
        self.jitter_state = self.jitter_seed  # the same intervals again: a reset stream repeats itself

    def _uniform(self) -> float:
        """The next uniform in [0, 1) of the jitter's own generator (Lehmer's MINSTD: Python integers, no tensor
        operation, the same scripted or not), which ``reset`` restarts."""
        self.jitter_state = self.jitter_state * 48271 % 2147483647
        return (self.jitter_state - 1) / 2147483646.0

    def _onsets(self, n: int) -> list[int]:
        """Onsets (whole samples from the start of this call, in order) of the grains starting in ``[0, n)``;
        advances the schedule, whose times stay float64."""
        density = min(max(self.density, 0.0), self.max_density)
        if density <= 0.0:
            self.next_onset = max(0.0, self.next_onset - n)
            return torch.jit.annotate(list[int], [])
        interval = self.sample_rate / density
        jitter = min(max(self.jitter, 0.0), 1.0)
        count = self.max_grains_per_call
        if jitter > 0.0:
            # the intervals are drawn one by one, in order (a Python loop over floats: no tensor operation,
            # whatever the density), so a stream's onsets do not depend on its split into calls
            onsets = torch.jit.annotate(list[int], [])
            time = self.next_onset
            while time < n and len(onsets) < count:
                onsets.append(int(time))  # onsets are >= 0: truncation is the floor
                time += interval * (1.0 + jitter * (2.0 * self._uniform() - 1.0))
            self.next_onset = time - n if len(onsets) < count else max(0.0, time - n)
            return onsets
        # Evenly spaced: onset k is next_onset + interval * k (products, not sums, so the sync grid is the
        # same whatever the split into calls). A call holds a few onsets: float64 scalars make them without
        # a tensor operation (each kind of operation costs a call its share of cold caches in a DAW).
        starting = min(max(int(math.ceil((n - self.next_onset) / interval)), 0), count)
        while starting > 0 and self.next_onset + interval * (starting - 1) >= n:
            starting -= 1
        while starting < count and self.next_onset + interval * starting < n:
            starting += 1
        onsets = [int(self.next_onset + interval * k) for k in range(starting)]
        if starting < count:
            self.next_onset = (self.next_onset + interval * starting) - n
        else:
            self.next_onset = max(0.0, (self.next_onset + interval * count) - n)
        return onsets

    def _grain_shape(self) -> tuple[Tensor, Tensor, Tensor]:
        """Where the output grain reads the decoded grain and how it is enveloped: ``(left [L_out] int64,
        frac [L_out], envelope [L_out])`` for the current ``grain_length`` and ``transpose``."""
        ratio = 2.0 ** (min(max(self.transpose, -self.max_transpose), self.max_transpose) / 12.0)
        span = min(max(self.grain_length, 0.1), 1.0) * self.grain_size  # decoded samples used, centred
        out_length = max(2, int(round(span / ratio)))
        start = 0.5 * (self.grain_size - span)
        position = start + ratio * torch.arange(out_length, dtype=torch.float32)
        position = position.clamp(0.0, self.grain_size - 1.0)
        left = position.floor().long().clamp(max=self.grain_size - 2)
        frac = position - left.float()
        envelope = torch.hann_window(out_length, periodic=False)
        return left, frac, envelope

    def _shape_for(self, dtype: torch.dtype, density: float) -> None:
        """Refresh the cached ``_grain_shape`` (as ``shape_left``, ``shape_right``, ``shape_frac``,
        ``shape_envelope`` in ``dtype`` with the level of ``density`` in it, ``shape_offsets``) if a setting
        changed. A shape that reads whole decoded samples in order keeps ``shape_first`` (else -1)."""
        if (
            self.shape_valid
            and self.grain_length == self.shape_length
            and self.transpose == self.shape_transpose
            and density == self.shape_density
            and self.shape_frac.dtype == dtype
        ):
            return
        left, frac, envelope = self._grain_shape()
        left = left.to(self.analysis_window.device)
        frac, envelope = frac.to(dtype), envelope.to(dtype)
        # expected overlap from the envelope the analysis window gives the (windowed) grains
        window = self.analysis_window.to(dtype)
        envelope_sum = float((torch.lerp(window[left], window[left + 1], frac) * envelope).sum())
        mean_interval = self.sample_rate / min(max(density, 1e-3), self.max_density)
        level = 1.0 / math.sqrt(max(1.0, envelope_sum / mean_interval))
        self.shape_left, self.shape_right, self.shape_frac = left, left + 1, frac
        self.shape_envelope = envelope * level
        self.shape_offsets = torch.arange(left.shape[0], device=left.device)
        # no transposition and whole-sample positions: the shape is a run of the decoded grain (lerp at
        # weight 0 or 1 gives its ends exactly), read with one narrow instead of two gathers and a lerp
        first = int(left[0])
        whole = bool((frac == 0.0).logical_or(frac == 1.0).all())
        in_order = bool((left + (frac > 0.5).long() - first == self.shape_offsets).all())
        self.shape_first = first if whole and in_order else -1
        self.shape_length, self.shape_transpose = self.grain_length, self.transpose
        self.shape_density, self.shape_valid = density, True

    def forward(self, path: Tensor, frame_hop: int, n: int) -> Tensor:
        """Latent path ``[B, D, n_frames]`` (frame ``i`` holds for samples ``[i * frame_hop, (i + 1) *
        frame_hop)`` of this call) -> audio ``[B, 1, n]``."""
        batch = path.shape[0]
        if self.tail.shape[0] != batch:
            self.tail = torch.zeros(batch, self.max_grain_out, dtype=path.dtype, device=path.device)
        elif self.tail.dtype != path.dtype:
            self.tail = self.tail.to(path.dtype)
        # the grains still ringing from earlier calls, then silence
        if self.silence.shape[1] < n or self.silence.dtype != path.dtype:
            self.silence = self.tail.new_zeros(1, n)
        out = torch.cat([self.tail, self.silence.narrow(1, 0, n).expand(batch, n)], 1)
        density = self.density  # the schedule may clamp it; the level uses the setting as it is
        onsets = self._onsets(n)
        count = len(onsets)
        shared = False
        inverse = torch.jit.annotate(list[int], [])
        if count > 0 and path.shape[2] > 0:
            hop = max(1, frame_hop)
            last = path.shape[2] - 1  # onsets lie in [0, n): past the last frame only when n > frames * hop
            frames = [min(onset // hop, last) for onset in onsets]
            # Grains that start in the same frame read the same latent: without spray, each frame is
            # decoded once (onsets are in order, so equal frames are neighbours). Evenly spaced onsets
            # further apart than a frame never share one.
            interval = self.sample_rate / max(min(density, self.max_density), 1e-3)
            shared = self.share_frames and self.spray <= 0.0 and (self.jitter > 0.0 or interval < hop)
            decode = frames
            if shared:
                decode = [frames[0]]
                for frame in frames:
                    if frame != decode[-1]:
                        decode.append(frame)
                    inverse.append(len(decode) - 1)
            decoded = len(decode)
            indices = torch.tensor(decode, dtype=torch.long, device=path.device)
            knobs = path.transpose(1, 2).index_select(1, indices)  # [B, U, D]
            if self.spray > 0.0:
                knobs = knobs + self.spray * torch.randn_like(knobs)
            z = knobs.view(batch * decoded, -1)
            if self.map_knobs:
                z = torch.addmm(self.latent_mean, z, self.latent_basis.t())
            grains = self.decoder.decode_mean(z)  # [B*U, 1, G]

            self._shape_for(path.dtype, density)
            length = self.shape_offsets.shape[0]
            if self.shape_first == 0 and length == grains.shape[2]:
                shaped = grains * self.shape_envelope
            elif self.shape_first >= 0:
                shaped = grains.narrow(2, self.shape_first, length) * self.shape_envelope
            else:
                shaped = (
                    torch.lerp(
                        grains.index_select(2, self.shape_left),
                        grains.index_select(2, self.shape_right),
                        self.shape_frac,
                    )
                    * self.shape_envelope
                )  # [B*U, 1, L_out]
            shaped = shaped.view(batch, decoded, length)
            if shared:
                grain_frames = torch.tensor(inverse, dtype=torch.long, device=path.device)
                shaped = shaped.index_select(1, grain_frames)  # [B, N, L_out]
            # Overlap-add: row t of the unfolded view is out[t : t + L_out], so grain i adds to row start[i].
            # The rows overlap; index_add_ adds one index after the other, so overlapping grains all count.
            start = torch.tensor(onsets, dtype=torch.long, device=path.device)
            out.unfold(1, length, 1).index_add_(1, start, shaped)
        # views of `out`, which nothing else holds and the next call only reads
        self.tail = out.narrow(1, n, self.max_grain_out)
        return out.narrow(1, 0, n).unsqueeze(1)

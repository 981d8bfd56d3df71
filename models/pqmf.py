"""PQMF: a pseudo-quadrature mirror filter bank (cosine-modulated, near-perfect reconstruction), streaming.

``PQMFAnalysis`` splits audio ``[B, 1, N T]`` into ``N`` critically sampled sub-bands ``[B, N, T]``;
``PQMFSynthesis`` rebuilds the audio from them. A model that works on the bands runs ``N`` times fewer steps
at the audio rate (RAVE's multiband decoder; the full-band techno model, ``WaveformVAE(bands=16)``).

The prototype is a Kaiser-windowed lowpass whose cutoff minimises the aliasing terms of ``h * h[::-1]`` (Lin
and Vaidyanathan's criterion, as RAVE designs it), designed here in torch at build time. Band ``k`` is
``h_k[n] = 2 h[n] cos((2k + 1) pi / (2N) n + (-1)^k pi / 4)`` around the prototype's centre; synthesis uses
the time-reversed filters. With "centred" padding (the default) analysis then synthesis rebuilds the input
with no delay (offline); ``causal`` pads on the past only, which delays the rebuilt audio instead.

Each stage is one copy of windows and one matrix product (the synthesis in polyphase form: every band
frame gives ``N`` output samples). Bands come channel-major ``[B, N, T]`` or, with ``frames``, as a stream
of time-major frames laid flat ``[B, 1, T * N]`` (the layout of ``models.waveform_vae``). Built with
``streaming=True`` each stage pads from a cache of the stream (cached_conv's ``CachedPadding1d``, allocated
when built, so a fresh module scripts without a warm-up call) instead of with zeros; the streamed output is
the offline output delayed by ``delay`` (analysis: band frames; synthesis: audio samples), with cached_conv's
rule for the strided analysis (it waits until its frames line up with the offline frames).
"""

import functools
import math
from typing import Final

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from latentlive.models.resample import kaiser_beta
from latentlive.models.stream_padding import TimePadding, output_delay


def kaiser_lowpass(cutoff: float, attenuation: float) -> Tensor:
    """Kaiser-windowed sinc of odd length, ``cutoff`` in radians per sample, a transition as wide as the
    cutoff (scipy's ``firwin(kaiserord(attenuation, cutoff / pi))``, unscaled) -> ``[taps]`` float64."""
    taps = math.ceil((attenuation - 7.95) / (2.285 * cutoff)) + 1
    length = 2 * (taps // 2) + 1
    n = torch.arange(length, dtype=torch.float64) - (length - 1) / 2
    window = torch.kaiser_window(length, periodic=False, beta=kaiser_beta(attenuation), dtype=torch.float64)
    return cutoff / math.pi * torch.sinc(cutoff / math.pi * n) * window


def _aliasing(h: Tensor, bands: int) -> float:
    """Largest term of ``h * h[::-1]`` at the nonzero multiples of ``2 bands`` from its centre."""
    g = F.conv1d(h.view(1, 1, -1), h.view(1, 1, -1), padding=h.shape[-1] - 1)[0, 0]
    return float(g[g.shape[-1] // 2 :: 2 * bands][1:].abs().max())


@functools.lru_cache(maxsize=8)
def _prototype(bands: int, attenuation: float) -> Tensor:
    cutoff = math.pi / (2 * bands)  # the ideal prototype's edge; the best one lies close
    span = 0.4 * cutoff
    for _ in range(3):  # grids over narrower and narrower spans (the tap count jumps: no derivative)
        grid = torch.linspace(cutoff - span, cutoff + span, 41, dtype=torch.float64).tolist()
        cutoff = min(grid, key=lambda c: _aliasing(kaiser_lowpass(c, attenuation), bands))
        span /= 10
    return kaiser_lowpass(cutoff, attenuation)


def pqmf_prototype(bands: int, attenuation: float = 100.0) -> Tensor:
    """The lowpass prototype ``[L]`` (float64, ``L`` odd) of a ``bands``-band PQMF with ``attenuation`` dB."""
    return _prototype(bands, float(attenuation)).clone()


def pqmf_filters(bands: int, attenuation: float = 100.0) -> Tensor:
    """The analysis filters ``[bands, L]`` (float64), tap ``M + n`` holding ``h_k[n]`` for ``n = -M..M``."""
    h = pqmf_prototype(bands, attenuation)
    k = torch.arange(bands, dtype=torch.float64).view(-1, 1)
    n = torch.arange(h.shape[-1], dtype=torch.float64) - (h.shape[-1] - 1) // 2
    phase = (1 - 2 * (k % 2)) * math.pi / 4  # +pi/4 for even bands, -pi/4 for odd ones
    return 2 * h * torch.cos((2 * k + 1) * math.pi / (2 * bands) * n + phase)


class PQMFAnalysis(nn.Module):
    """Audio ``[B, 1, N T]`` -> bands ``[B, N, T]`` (or frames ``[B, 1, T * N]`` when ``frames``).

    Args:
        bands: ``N``, the decimation factor too.
        attenuation: stopband attenuation of the prototype (dB); sets its length.
        causal: pad on the past only (no look-ahead; the bands then lag the audio by half the filter).
        delay: delay of the incoming stream (audio samples); ``self.delay`` is that of the bands (band
            frames) when streaming.
        frames: return time-major frames ``[B, 1, T * N]`` instead of channel-major bands.
        streaming: pad from a cache of the stream (export) instead of with zeros (training).
    """

    bands: Final[int]
    length: Final[int]
    frames: Final[bool]

    def __init__(
        self,
        bands: int = 16,
        attenuation: float = 100.0,
        causal: bool = False,
        delay: int = 0,
        frames: bool = False,
        streaming: bool = False,
    ) -> None:
        super().__init__()
        if bands < 2:
            raise ValueError(f"a PQMF needs 2 bands or more, got {bands}")
        filters = pqmf_filters(bands, attenuation)  # [N, L]
        self.bands, self.length, self.frames = bands, filters.shape[-1], frames
        half = (self.length - 1) // 2
        left, right = (2 * half, 0) if causal else (half, half)
        stride_delay, self.delay = output_delay(right, bands, delay)
        self.pad = TimePadding(1, left, right, stride_delay, streaming=streaming)
        # window tap j reads x[mN - left + j]: the convolution's filter reversed
        self.register_buffer("matrix", filters.flip(-1).float().contiguous(), persistent=False)

    def forward(self, audio: Tensor) -> Tensor:
        windows = self.pad(audio).unfold(-1, self.length, self.bands)  # [B, 1, T, L]
        bands = F.linear(windows[:, 0], self.matrix)  # [B, T, N]
        if self.frames:
            return bands.reshape(bands.shape[0], 1, -1)
        return bands.transpose(1, 2).contiguous()

    @torch.jit.export
    def reset(self) -> None:
        """Forget the stream (zeros, as at the start)."""
        self.pad.reset()


class PQMFSynthesis(nn.Module):
    """Bands ``[B, N, T]`` (or frames ``[B, 1, T * N]`` when ``frames``) -> audio ``[B, 1, N T]``.

    Polyphase: output sample ``N p + r`` sums ``N f_k[N s + r] u_k[p - s]`` over bands ``k`` and the
    frames ``s`` the filter reaches, so one product with the ``N`` phases as outputs gives ``N`` samples per
    band frame, in order. Arguments as :class:`PQMFAnalysis`; ``delay`` counts band frames of the incoming
    stream and ``self.delay`` audio samples of the output.
    """

    bands: Final[int]
    taps: Final[int]
    frames: Final[bool]

    def __init__(
        self,
        bands: int = 16,
        attenuation: float = 100.0,
        causal: bool = False,
        delay: int = 0,
        frames: bool = False,
        streaming: bool = False,
    ) -> None:
        super().__init__()
        if bands < 2:
            raise ValueError(f"a PQMF needs 2 bands or more, got {bands}")
        synthesis = pqmf_filters(bands, attenuation).flip(-1)  # f_k[n] = h_k[-n], tap M + n
        half = (synthesis.shape[-1] - 1) // 2
        ahead, behind = half // bands, (half + bands - 1) // bands  # frames s from -behind to ahead
        self.bands, self.taps, self.frames = bands, ahead + behind + 1, frames
        weight = torch.zeros(bands, self.taps, bands, dtype=torch.float64)  # [phase r, window tap j, band k]
        for j in range(self.taps):
            for r in range(bands):
                n = (ahead - j) * bands + r  # window tap j holds frame p - s with s = ahead - j
                if -half <= n <= half:
                    weight[r, j] = bands * synthesis[:, half + n]
        left, right = (self.taps - 1, 0) if causal else (ahead, behind)
        self.delay = (delay + right) * bands
        self.pad = TimePadding(bands, left, right, channels_first=not frames, streaming=streaming)
        order = weight if frames else weight.transpose(1, 2)  # windows of (tap, band) or (band, tap)
        self.register_buffer("matrix", order.reshape(bands, -1).float().contiguous(), persistent=False)

    def forward(self, bands: Tensor) -> Tensor:
        padded = self.pad(bands)
        if self.frames:  # [B, 1, L * N] -> windows [B, T, taps * N]
            windows = padded.unfold(-1, self.taps * self.bands, self.bands)[:, 0]
        else:  # [B, N, L] -> [B, N, T, taps] -> [B, T, N * taps]
            windows = padded.unfold(-1, self.taps, 1).transpose(1, 2)
            windows = windows.reshape(windows.shape[0], windows.shape[1], -1)
        phases = F.linear(windows, self.matrix)  # [B, T, N]: N consecutive samples per frame
        return phases.reshape(phases.shape[0], 1, -1)

    @torch.jit.export
    def reset(self) -> None:
        """Forget the stream (zeros, as at the start)."""
        self.pad.reset()

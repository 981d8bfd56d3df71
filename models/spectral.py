"""Spectral views of waveforms: the multi-scale spectral distance (the reconstruction loss of the
waveform VAE) and the frame descriptors the evaluation correlates with latents (loudness, centroid).

Audio is ``[B, T]`` or ``[B, 1, T]`` (mono); frame descriptors come back as ``[B, frames]``.
"""

import torch
from torch import Tensor

# Hann windows by (size, device, dtype): built once, not at every loss call of the training loop.
_WINDOWS: dict[tuple[int, str, torch.dtype], Tensor] = {}


def hann_window(size: int, device: torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
    """A periodic Hann window ``[size]`` on ``device``, cached."""
    key = (size, str(device), dtype)
    window = _WINDOWS.get(key)
    if window is None:
        window = torch.hann_window(size, device=device, dtype=dtype)
        _WINDOWS[key] = window
    return window


def _mono(x: Tensor) -> Tensor:
    """``[B, 1, T]`` or ``[B, T]`` -> ``[B, T]``."""
    if x.dim() == 3:
        if x.shape[1] != 1:
            raise ValueError(f"expected mono audio [B, 1, T], got {tuple(x.shape)}")
        return x[:, 0]
    if x.dim() != 2:
        raise ValueError(f"expected audio [B, T] or [B, 1, T], got {tuple(x.shape)}")
    return x


def _at_least(x: Tensor, length: int) -> Tensor:
    """Zero-pad ``[B, T]`` on the right to ``length`` samples when shorter."""
    if x.shape[-1] >= length:
        return x
    return torch.nn.functional.pad(x, (0, length - x.shape[-1]))


def stft_magnitude(x: Tensor, n_fft: int, hop: int, center: bool = True) -> Tensor:
    """Magnitude STFT with a Hann window: audio ``[B, T]`` / ``[B, 1, T]`` -> ``[B, n_fft // 2 + 1, frames]``.

    ``center`` pads ``n_fft // 2`` zeros on both sides (zeros, not reflection, so any length works);
    without it frame ``i`` covers samples ``[i * hop, i * hop + n_fft)`` and clips shorter than one frame
    are zero-padded to one frame.
    """
    x = _mono(x)
    if not center:
        x = _at_least(x, n_fft)
    spec = torch.stft(
        x,
        n_fft,
        hop_length=hop,
        window=hann_window(n_fft, x.device, x.dtype),
        center=center,
        pad_mode="constant",
        return_complex=True,
    )
    return spec.abs()


def multiscale_spectral_distance(
    x: Tensor,
    y: Tensor,
    scales: tuple[int, ...] = (2048, 1024, 512, 256, 128),
    overlap: float = 0.75,
    log_weight: float = 1.0,
    linear_weight: float = 1.0,
    eps: float = 1e-7,
) -> Tensor:
    """Distance between audio ``x`` (e.g. a reconstruction) and ``y`` (the target), a scalar.

    Per scale ``n`` (hop ``n * (1 - overlap)``), with magnitudes ``X`` and ``Y``:
    ``log_weight * mean|log(X + eps) - log(Y + eps)| + linear_weight * ||X - Y||_F / (||Y||_F + eps)``,
    per example; summed over scales, averaged over the batch. The log term weighs quiet detail, the
    relative linear term the loud partials; neither depends on phase.
    """
    x, y = _mono(x), _mono(y)
    if x.shape != y.shape:
        raise ValueError(f"spectral distance needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
    total = x.new_zeros(x.shape[0])
    for n_fft in scales:
        hop = max(1, int(round(n_fft * (1.0 - overlap))))
        mag_x, mag_y = stft_magnitude(x, n_fft, hop), stft_magnitude(y, n_fft, hop)
        log_distance = (torch.log(mag_x + eps) - torch.log(mag_y + eps)).abs().flatten(1).mean(1)
        linear_distance = (mag_x - mag_y).flatten(1).norm(dim=1) / (mag_y.flatten(1).norm(dim=1) + eps)
        total = total + log_weight * log_distance + linear_weight * linear_distance
    return total.mean()


def _frames(x: Tensor, frame: int, hop: int) -> Tensor:
    """``[B, T]`` -> ``[B, frames, frame]``; frame ``i`` covers ``[i * hop, i * hop + frame)``."""
    return _at_least(x, frame).unfold(-1, frame, hop)


def loudness(x: Tensor, frame: int = 512, hop: int = 128, floor_db: float = -100.0) -> Tensor:
    """RMS level in dB (full scale sine peak 1 -> -3.01 dB) per frame: ``[B, T]`` -> ``[B, frames]``,
    ``frames = 1 + (T - frame) // hop``; silence reads ``floor_db``."""
    rms = _frames(_mono(x), frame, hop).pow(2).mean(-1).sqrt()
    return 20.0 * torch.log10(rms.clamp_min(10.0 ** (floor_db / 20.0)))


def spectral_centroid(x: Tensor, sample_rate: int, n_fft: int = 1024, hop: int = 128) -> Tensor:
    """Magnitude-weighted mean frequency in Hz per frame: ``[B, T]`` -> ``[B, frames]``.

    Frames as in :func:`loudness` (frame ``i`` covers ``[i * hop, i * hop + n_fft)``, Hann window);
    a silent frame reads 0 Hz.
    """
    magnitude = stft_magnitude(x, n_fft, hop, center=False)  # [B, F, frames]
    freqs = torch.linspace(0.0, sample_rate / 2.0, magnitude.shape[1], device=x.device, dtype=magnitude.dtype)
    weight = magnitude.sum(1)
    centroid = (freqs[None, :, None] * magnitude).sum(1) / weight.clamp_min(1e-12)
    return torch.where(weight > 1e-9, centroid, torch.zeros_like(centroid))

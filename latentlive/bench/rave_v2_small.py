"""RAVE v2_small, untrained, streamed as RAVE's export streams it: the latency yardstick of
``latentlive bench techno`` (speed and latency do not depend on training). ``decode`` is its decoder alone
(what a knob on latents meets), ``forward`` the PQMF analysis, encoder (its mean) and decoder (what audio
played through it meets).

Built from the numbers of acids-rave 2.3.1's ``configs/v2_small.gin`` (over ``v1.gin``): 128 latents,
capacity 48, ratios (4, 2, 2, 2), dilations (1, 3, 9) x 3 and (1, 3), kernel 3, amplitude modulation, the
noise generator (hidden 64, ratios (2, 2, 2), 32 noise bands), 16 PQMF bands (100 dB: the suite's
``models.pqmf``, designed as RAVE designs its bank), 44.1 kHz, convolutions without bias, weight norm removed
as its export removes it. The encoder mirrors the decoder: a kernel-7
input convolution, then per ratio the dilated units and a strided convolution (kernel ``2 r``) that doubles
the channels, and a kernel-3 convolution to mean and scale. The layers are cached_conv's streaming classes
(``CachedConv1d``, ``CachedConvTranspose1d``, ``AlignBranches``), which is what ``cc.use_cached_conv(True)``
gives RAVE's export; the module is scripted after one call that allocates the caches. acids-rave itself is
not imported: it pins scipy 1.10 and pytorch-lightning 1.9, which needs ``pkg_resources`` (gone from the
setuptools of requirements.lock), so it cannot be installed beside the suite.
"""

import math
from typing import Final

import cached_conv as cc
import torch
from torch import Tensor, nn

from latentlive.models.pqmf import PQMFAnalysis, PQMFSynthesis

RAVE_RATE = 44100
LATENT_SIZE, CAPACITY, BANDS = 128, 48, 16
RATIOS = (4, 2, 2, 2)
DILATIONS = ((1, 3, 9), (1, 3, 9), (1, 3, 9), (1, 3))
KERNEL = 3
NOISE_HIDDEN, NOISE_RATIOS, NOISE_BANDS = 64, (2, 2, 2), 32
PQMF_ATTENUATION = 100.0
RATIO = math.prod(RATIOS) * BANDS  # audio samples per latent frame: 512


def _centered(kernel: int, dilation: int = 1) -> tuple[int, int]:
    return cc.get_padding(kernel, 1, dilation, mode="centered")


class _Residual(nn.Module):
    """``x + net(x)`` with the skip path delayed by the net's delay (RAVE's dilated unit)."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        conv = cc.CachedConv1d(
            channels, channels, KERNEL, dilation=dilation, padding=_centered(KERNEL, dilation), bias=False
        )
        net = nn.Sequential(
            nn.LeakyReLU(0.2), conv, nn.LeakyReLU(0.2), cc.CachedConv1d(channels, channels, 1, bias=False)
        )
        self.aligned = cc.AlignBranches(net, nn.Identity(), delays=[conv.cumulative_delay, 0])

    def forward(self, x: Tensor) -> Tensor:
        branches = self.aligned(x)
        return branches[0] + branches[1]


class _NoiseGenerator(nn.Module):
    """Filtered noise per band: a strided net predicts, every 8 samples of each band, the magnitude response
    of a short filter applied to uniform noise."""

    bands: Final[int]
    noise_bands: Final[int]
    frame: Final[int]

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bands, self.noise_bands = BANDS, NOISE_BANDS
        sizes = [channels, NOISE_HIDDEN, NOISE_HIDDEN, BANDS * NOISE_BANDS]
        layers: list[nn.Module] = []
        for i, r in enumerate(NOISE_RATIOS):
            layers.append(
                cc.CachedConv1d(sizes[i], sizes[i + 1], 2 * r, stride=r, padding=(r, 0), bias=False)
            )
            if i < len(NOISE_RATIOS) - 1:
                layers.append(nn.LeakyReLU(0.2))
        self.net = nn.Sequential(*layers)
        self.frame = math.prod(NOISE_RATIOS)
        self.register_buffer("window", torch.hann_window(2 * (NOISE_BANDS - 1)))

    def forward(self, x: Tensor) -> Tensor:
        amp = 2 * torch.sigmoid(self.net(x) - 5) ** 2.3 + 1e-7  # [B, bands * noise_bands, frames]
        amp = amp.transpose(1, 2).reshape(x.shape[0], -1, self.bands, self.noise_bands)
        response = torch.fft.irfft(amp.to(torch.complex64))  # zero phase, 2 (noise_bands - 1) taps
        response = torch.roll(response, response.shape[-1] // 2, -1) * self.window
        response = torch.roll(response[..., : self.frame], -(response.shape[-1] // 2), -1)
        noise = torch.rand_like(response) * 2 - 1
        n = noise.shape[-1]
        spectrum = torch.fft.rfft(nn.functional.pad(noise, (0, n)))
        spectrum = spectrum * torch.fft.rfft(nn.functional.pad(response, (n, 0)))
        filtered = torch.fft.irfft(spectrum)[..., n:]  # [B, frames, bands, frame]
        return filtered.permute(0, 2, 1, 3).reshape(x.shape[0], self.bands, -1)


class RaveV2SmallDecoder(nn.Module):
    """Latents ``[B, 128, N]`` -> audio ``[B, 1, N * 512]`` at 44.1 kHz, streaming (cached convolutions)."""

    bands: Final[int]

    def __init__(self) -> None:
        super().__init__()
        self.bands = BANDS
        channels = 2 ** len(RATIOS) * CAPACITY
        layers: list[nn.Module] = [
            cc.CachedConv1d(LATENT_SIZE, channels, KERNEL, padding=_centered(KERNEL), bias=False)
        ]
        for ratio, dilations in zip(RATIOS[::-1], DILATIONS[::-1], strict=True):
            layers.append(nn.LeakyReLU(0.2))
            layers.append(
                cc.CachedConvTranspose1d(
                    channels, channels // 2, 2 * ratio, stride=ratio, padding=ratio // 2, bias=False
                )
            )
            channels //= 2
            layers.extend(_Residual(channels, d) for d in dilations)
        layers.append(nn.LeakyReLU(0.2))
        self.net = nn.Sequential(*layers)
        self.waveform = cc.CachedConv1d(
            channels, 2 * BANDS, 2 * KERNEL + 1, padding=_centered(2 * KERNEL + 1), bias=False
        )
        self.noise = _NoiseGenerator(channels)
        self.pqmf = PQMFSynthesis(BANDS, PQMF_ATTENUATION, streaming=True)

    def forward(self, z: Tensor) -> Tensor:
        x = self.net(z)
        noise = self.noise(x)
        waveform, amplitude = self.waveform(x).split(self.bands, 1)
        return self.pqmf(torch.tanh(waveform * torch.sigmoid(amplitude) + noise))


class RaveV2SmallEncoder(nn.Module):
    """Audio ``[B, 1, N * 512]`` at 44.1 kHz -> latent means ``[B, 128, N]``, streaming."""

    latent_size: Final[int]

    def __init__(self) -> None:
        super().__init__()
        self.latent_size = LATENT_SIZE
        self.pqmf = PQMFAnalysis(BANDS, PQMF_ATTENUATION, streaming=True)
        channels = CAPACITY
        first = 2 * KERNEL + 1
        layers: list[nn.Module] = [
            cc.CachedConv1d(BANDS, channels, first, padding=_centered(first), bias=False)
        ]
        for ratio, dilations in zip(RATIOS, DILATIONS, strict=True):
            layers.extend(_Residual(channels, d) for d in dilations)
            layers.append(nn.LeakyReLU(0.2))
            layers.append(
                cc.CachedConv1d(
                    channels, 2 * channels, 2 * ratio, stride=ratio, padding=_centered(2 * ratio), bias=False
                )
            )
            channels *= 2
        layers.append(nn.LeakyReLU(0.2))
        layers.append(
            cc.CachedConv1d(channels, 2 * LATENT_SIZE, KERNEL, padding=_centered(KERNEL), bias=False)
        )
        self.net = nn.Sequential(*layers)

    def forward(self, audio: Tensor) -> Tensor:
        return self.net(self.pqmf(audio))[:, : self.latent_size]


class RaveV2Small(nn.Module):
    """``decode``: latents -> audio; ``forward``: audio -> the encoder's means -> audio (44.1 kHz)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = RaveV2SmallEncoder()
        self.decoder = RaveV2SmallDecoder()

    def forward(self, audio: Tensor) -> Tensor:
        return self.decoder(self.encoder(audio))

    @torch.jit.export
    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)


def reset_caches(module: nn.Module) -> None:
    """Every cached_conv cache back to zeros, as when the stream starts."""
    for name, buffer in module.named_buffers():
        if name.rsplit(".", 1)[-1] in ("pad", "cache"):
            buffer.zero_()


def scripted_rave_v2_small(seed: int = 0) -> torch.jit.ScriptModule:
    """RAVE v2_small with seeded random weights, its caches allocated by one call of each path, scripted
    and reset."""
    with torch.random.fork_rng(devices=[]), torch.inference_mode(False):
        torch.manual_seed(seed)
        model = RaveV2Small().eval().requires_grad_(False)
        model(torch.zeros(1, 1, 4 * RATIO))
        reset_caches(model)
        return torch.jit.script(model)

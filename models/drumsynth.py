"""The drum synth VAE: 2-D convolutions over NSGT log-magnitudes of one-shots, conditioned on the drum class.

The input is a log-magnitude image ``[B, 1, F, M]`` (``F`` frequency bands of the NSGT, ``M`` time frames,
``log(max(|c|, floor))`` in nats). The model normalises it inside with two constants of the training set,
``(logmag - logmag_mean) / logmag_std``, and returns its Gaussian output in the same log-magnitude units,
so callers never handle the normalisation. Every convolution block is conditioned on the class by FiLM
after a parameter-free group norm (conditional normalisation); class -1 means "no class" and uses the mean
class embedding.
"""

import math

import gin
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from latentlive.models.nsgt import NSGT
from latentlive.models.vae import GaussianPosterior, LabelConditioning, reparameterize


def full_rate_magnitude(logmag: Tensor, time_pool: int) -> Tensor:
    """Pooled log-magnitudes ``[B, 1, F, M]`` (nats) -> NSGT magnitudes ``[B, F, M * time_pool]`` for
    Griffin-Lim: exponentiated (capped at e^20, far above any full-scale coefficient, so no value can
    overflow) and linearly interpolated back to the transform's frame rate."""
    magnitude = logmag.squeeze(1).clamp(max=20.0).exp()
    return F.interpolate(magnitude, scale_factor=float(time_pool), mode="linear")


class NoiseFineStructure(nn.Module):
    """What time pooling takes out of noisy bands, put back before Griffin-Lim.

    A band wider than the model's frame rate (hats, snares, cymbals above a few kHz) fluctuates within a
    model frame; pooled and interpolated, its magnitude is smooth in time, and Griffin-Lim from phase zero
    turns a smooth band into a steady sinusoid at the band's centre: the semitone-spaced comb of metallic hats,
    and a line at the Nyquist frequency from the top band. Here each band above ``noise_from_hz`` gets the
    fine structure of a fixed white noise analysed by the same NSGT (its magnitude, normalised to unit RMS
    over every pooled frame so that the pooled level is kept, and its phase as Griffin-Lim's starting point),
    fully from ``noise_full_hz``, faded in between; lower bands keep the smooth magnitude and phase zero.
    The noise is drawn once from ``seed``: renders are deterministic.

    ``magnitude``: pooled log-magnitudes ``[B, 1, F, M]`` (nats) -> magnitudes ``[B, F, M * time_pool]``;
    ``start_phase``: ``[F, M * time_pool]`` unit complex.
    """

    def __init__(
        self,
        nsgt: NSGT,
        time_pool: int,
        noise_from_hz: float = 1500.0,
        noise_full_hz: float = 3000.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if nsgt.num_frames % time_pool != 0:
            raise ValueError(f"NoiseFineStructure: {nsgt.num_frames} NSGT frames do not pool by {time_pool}")
        if not 0.0 < noise_from_hz < noise_full_hz:
            raise ValueError(
                f"NoiseFineStructure: need 0 < noise_from_hz < noise_full_hz, got {noise_from_hz}, {noise_full_hz}"
            )
        self.time_pool = int(time_pool)
        noise = torch.randn(nsgt.length, generator=torch.Generator().manual_seed(seed))
        coefficients = nsgt(noise).to(torch.complex128)
        magnitude = coefficients.abs().clamp_min(1e-12)
        pooled_rms = F.avg_pool1d(magnitude.pow(2).unsqueeze(0), time_pool).sqrt()
        fine = magnitude / F.interpolate(pooled_rms, scale_factor=float(time_pool), mode="linear")[0]
        centres = nsgt.frequencies.to(torch.float64).unsqueeze(-1)  # [F, 1]
        weight = ((centres - noise_from_hz) / (noise_full_hz - noise_from_hz)).clamp(0.0, 1.0)
        noisy = weight > 0
        phase = torch.where(noisy, coefficients / magnitude, torch.ones_like(coefficients))
        self.register_buffer("fine", ((1.0 - weight) + weight * fine).float(), persistent=False)
        self.register_buffer("start_phase", phase.to(torch.complex64), persistent=False)

    def magnitude(self, logmag: Tensor) -> Tensor:
        """Pooled log-magnitudes ``[B, 1, F, M]`` (nats) -> NSGT magnitudes ``[B, F, M * time_pool]``."""
        return full_rate_magnitude(logmag, self.time_pool) * self.fine


def _halved(size: int, times: int) -> int:
    """Size after ``times`` convolutions of kernel 3, stride 2, padding 1 (``ceil(n / 2)`` each)."""
    for _ in range(times):
        size = (size - 1) // 2 + 1
    return size


class FiLMNorm(nn.Module):
    """Group norm without affine parameters, then a class-dependent scale and shift: ``[B, C, H, W]``."""

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(math.gcd(8, channels), channels, affine=False)
        self.film = nn.Linear(cond_dim, 2 * channels)
        # start as the identity so that the class only gradually shapes the features
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        scale, shift = self.film(cond).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        return self.norm(x) * (1.0 + scale) + shift


class ConditionedBlock(nn.Module):
    """A resampling convolution (down: stride 2; up: transposed, x2) and a residual 3x3 convolution,
    each followed by FiLM and a leaky ReLU. ``[B, C_in, H, W] -> [B, C_out, H', W']``."""

    def __init__(self, channels_in: int, channels_out: int, cond_dim: int, up: bool) -> None:
        super().__init__()
        if up:
            self.resample = nn.ConvTranspose2d(channels_in, channels_out, 4, stride=2, padding=1)
        else:
            self.resample = nn.Conv2d(channels_in, channels_out, 3, stride=2, padding=1)
        self.norm1 = FiLMNorm(channels_out, cond_dim)
        self.conv = nn.Conv2d(channels_out, channels_out, 3, padding=1)
        self.norm2 = FiLMNorm(channels_out, cond_dim)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        x = F.leaky_relu(self.norm1(self.resample(x), cond), 0.2)
        return x + F.leaky_relu(self.norm2(self.conv(x), cond), 0.2)


@gin.configurable
class DrumSynthVAE(nn.Module):
    """Class-conditional VAE over log-magnitude NSGT frames ``[B, 1, F, M]`` with a Gaussian output.

    Args:
        num_classes: number of drum classes (kick, snare, ...); 0 for an unconditioned model.
        bins: ``F``, frequency bands of the NSGT.
        frames: ``M``, time frames (after any pooling).
        latent_size: size of z (the knobs of the instrument).
        channels: widths of the encoder's scales; each halves F and M (the decoder mirrors them).
        cond_dim: size of the class embedding that drives FiLM.
        logmag_mean: mean of the training log-magnitudes (nats), subtracted inside.
        logmag_std: their standard deviation, divided inside.
        min_logscale: floor of the predicted log standard deviation, in normalised units (a soft floor,
            so that silent, constant regions cannot drive the likelihood to infinity).
    """

    def __init__(
        self,
        num_classes: int = 8,
        bins: int = 99,
        frames: int = 128,
        latent_size: int = 8,
        channels: tuple[int, ...] = (16, 32, 64, 128),
        cond_dim: int = 32,
        logmag_mean: float = 0.0,
        logmag_std: float = 1.0,
        min_logscale: float = -3.0,
    ) -> None:
        super().__init__()
        if len(channels) < 1:
            raise ValueError("DrumSynthVAE.channels needs at least one scale")
        if latent_size < 1 or min(channels) < 1:
            raise ValueError(
                f"DrumSynthVAE.latent_size and .channels must be at least 1, got {latent_size} and {channels}"
            )
        if logmag_std <= 0:
            raise ValueError(f"DrumSynthVAE.logmag_std must be positive, got {logmag_std}")
        self.num_classes, self.bins, self.frames = num_classes, bins, frames
        self.latent_size = latent_size
        self.logmag_mean, self.logmag_std = float(logmag_mean), float(logmag_std)
        self.min_logscale = float(min_logscale)
        self.log_std = math.log(self.logmag_std)
        scales = len(channels)
        self.bottom_bins, self.bottom_frames = _halved(bins, scales), _halved(frames, scales)
        bottom = channels[-1] * self.bottom_bins * self.bottom_frames

        self.classes = LabelConditioning(num_classes, cond_dim)
        widths = [1, *channels]
        self.encoder = nn.ModuleList(
            [ConditionedBlock(widths[i], widths[i + 1], cond_dim, up=False) for i in range(scales)]
        )
        self.posterior = GaussianPosterior(bottom, latent_size)

        self.expand = nn.Linear(latent_size + cond_dim, bottom)
        up_widths = [*reversed(channels), channels[0]]
        self.decoder = nn.ModuleList(
            [ConditionedBlock(up_widths[i], up_widths[i + 1], cond_dim, up=True) for i in range(scales)]
        )
        self.output = nn.Conv2d(channels[0], 2, 3, padding=1)

    @torch.jit.export
    def encode(self, logmag: Tensor, cls: Tensor) -> tuple[Tensor, Tensor]:
        """``logmag [B, 1, F, M]`` (nats), ``cls [B]`` (int; -1 = none) -> ``(mean, logvar)`` each ``[B, D]``."""
        cond = self.classes(cls)
        x = (logmag - self.logmag_mean) / self.logmag_std
        for block in self.encoder:
            x = block(x, cond)
        return self.posterior(x.flatten(1))

    @torch.jit.export
    def decode(self, z: Tensor, cls: Tensor) -> tuple[Tensor, Tensor]:
        """``z [B, D]``, ``cls [B]`` -> ``(mean, logscale)`` each ``[B, 1, F, M]``: the Gaussian over
        log-magnitudes (nats) and the log of its standard deviation."""
        cond = self.classes(cls)
        x = self.expand(torch.cat([z, cond], dim=1))
        x = x.view(z.shape[0], -1, self.bottom_bins, self.bottom_frames)
        for block in self.decoder:
            x = block(x, cond)
        x = self.output(x)[:, :, : self.bins, : self.frames]  # transposed convs overshoot odd sizes
        mean, raw_scale = x.chunk(2, dim=1)
        logscale = self.min_logscale + F.softplus(raw_scale - self.min_logscale)
        return mean * self.logmag_std + self.logmag_mean, logscale + self.log_std

    def forward(self, logmag: Tensor, cls: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Encode, sample, decode: ``(mean [B, 1, F, M], logscale [B, 1, F, M], z, mu, logvar)``."""
        mu, logvar = self.encode(logmag, cls)
        z = reparameterize(mu, logvar)
        mean, logscale = self.decode(z, cls)
        return mean, logscale, z, mu, logvar

    @torch.jit.export
    def sample(self, cls: Tensor, temperature: float = 1.0) -> Tensor:
        """One prior draw ``z ~ N(0, temperature^2)`` per entry of ``cls [B]`` -> mean log-magnitudes
        ``[B, 1, F, M]``."""
        z = temperature * torch.randn(cls.shape[0], self.latent_size, device=cls.device)
        return self.decode(z, cls)[0]

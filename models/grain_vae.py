"""The grain VAE: a Hann-windowed waveform grain ``[B, 1, G]`` (G = 1024 or 2048) <-> a latent ``[B, D]``.

The encoder is a stack of strided 1-D convolutions (each divides time by ``stride``) and the decoder its
mirror of transposed convolutions, from a few bottom frames up to the grain: the mean of a Gaussian over
the samples. Its log standard deviation is one value per grain, a linear function of z (detached: the scale
does not shape the code), softly floored so that near-silent grains cannot drive the likelihood to infinity.

Speed decides the layout. The instrument decodes 40-200 grains per second on one CPU thread inside nn~:

- no residual stacks and no normalisation: one linear layer and ``len(channels)`` transposed convolutions
  whose kernel spans two strides, about 0.8 M multiply-adds per grain at the default size;
- activations are time-major ``[B, T, C]`` inside, so each (transposed) convolution is one concatenation of
  neighbouring frames and one matrix product (``conv_transpose1d`` made the whole decoder 1.35x slower on
  one CPU thread); the weights stay in ordinary ``nn.Conv1d`` / ``nn.ConvTranspose1d`` modules.
"""

import math

import gin
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.vae import GaussianPosterior, reparameterize


def strided_conv(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int) -> Tensor:
    """``F.conv1d(x, weight, bias, stride, padding=(k - stride) // 2)`` on time-major activations:
    ``x [B, T, C_in]`` -> ``[B, T / stride, C_out]``, for ``weight [C_out, C_in, k]`` with ``k`` a multiple
    of ``stride`` and ``T`` a multiple of ``stride``."""
    batch, length, channels_in = x.shape
    channels_out, kernel = weight.shape[0], weight.shape[2]
    taps = kernel // stride
    pad = (kernel - stride) // 2
    blocks = F.pad(x, (0, 0, pad, pad)).reshape(batch, length // stride + taps - 1, stride * channels_in)
    frames = length // stride
    windows = torch.cat([blocks[:, i : i + frames] for i in range(taps)], -1)  # [B, T/s, k * C_in]
    matrix = weight.permute(2, 1, 0).reshape(kernel * channels_in, channels_out)
    y = (
        windows.reshape(batch * frames, -1) @ matrix
        if bias is None
        else torch.addmm(bias, windows.reshape(batch * frames, -1), matrix)
    )
    return y.view(batch, frames, channels_out)


def transposed_conv(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int) -> Tensor:
    """``F.conv_transpose1d(x, weight, bias, stride, padding=(k - stride) // 2)`` on time-major activations:
    ``x [B, L, C_in]`` -> ``[B, L * stride, C_out]``, for ``weight [C_in, C_out, k]`` with ``k`` a multiple
    of ``stride``.

    Output block ``j`` (``stride`` samples) is ``sum_i W_i x[j - i]`` over the ``k / stride`` kernel slices
    ``W_i``: neighbouring frames side by side, times one matrix (sub-pixel upsampling)."""
    batch, length, channels_in = x.shape
    channels_out, kernel = weight.shape[1], weight.shape[2]
    taps = kernel // stride
    blocks = length + taps - 1
    padded = F.pad(x, (0, 0, taps - 1, taps - 1))
    frames = torch.cat([padded[:, taps - 1 - i : taps - 1 - i + blocks] for i in range(taps)], -1)
    matrix = weight.view(channels_in, channels_out, taps, stride).permute(2, 0, 3, 1)
    matrix = matrix.reshape(taps * channels_in, stride * channels_out)
    inputs = frames.reshape(batch * blocks, -1)
    y = inputs @ matrix if bias is None else torch.addmm(bias.repeat(stride), inputs, matrix)
    crop = (kernel - stride) // 2
    return y.view(batch, blocks * stride, channels_out)[:, crop : crop + length * stride]


@gin.configurable
class GrainVAE(nn.Module):
    """VAE over waveform grains with a Gaussian output.

    Args:
        grain_size: ``G``, samples per grain; must be a multiple of ``stride ** len(channels)``.
        latent_size: ``D``, size of z (8-32).
        channels: widths of the encoder's scales, fine to coarse; the decoder mirrors them. Decoding cost
            grows with their square: (32, 64, 128, 256) is about 3x slower than the default.
        kernel_size: kernel of every (transposed) convolution, a multiple of ``stride`` with
            ``kernel_size - stride`` even; ``2 * stride`` lets neighbouring frames overlap.
        stride: time factor of each scale.
        min_logscale: soft floor of the predicted log standard deviation of a grain's samples (full scale
            is 1).
    """

    def __init__(
        self,
        grain_size: int = 1024,
        latent_size: int = 16,
        channels: tuple[int, ...] = (16, 32, 64, 128),
        kernel_size: int = 8,
        stride: int = 4,
        min_logscale: float = -5.0,
    ) -> None:
        super().__init__()
        scales = len(channels)
        if scales < 1:
            raise ValueError("GrainVAE.channels needs at least one scale")
        if stride < 1 or kernel_size % stride or (kernel_size - stride) % 2:
            raise ValueError(
                f"GrainVAE.kernel_size {kernel_size} must be a multiple of stride {stride} with an even "
                "difference (e.g. 2 * stride)"
            )
        if grain_size % stride**scales:
            raise ValueError(
                f"GrainVAE.grain_size {grain_size} must be a multiple of stride ** len(channels) = "
                f"{stride**scales}"
            )
        self.grain_size, self.latent_size, self.stride = grain_size, latent_size, stride
        self.min_logscale = float(min_logscale)
        self.bottom_channels = channels[-1]
        self.bottom_frames = grain_size // stride**scales
        padding = (kernel_size - stride) // 2
        bottom = channels[-1] * self.bottom_frames

        widths = [1, *channels]
        self.encoder = nn.ModuleList(
            [nn.Conv1d(widths[i], widths[i + 1], kernel_size, stride, padding) for i in range(scales)]
        )
        self.posterior = GaussianPosterior(bottom, latent_size)

        self.expand = nn.Linear(latent_size, bottom)
        # one log-scale per grain, from a detached z: the trunk and the encoder then learn only the mean (a
        # scale sharing them soaks up the error and stalls the mean's training; measured on sine grains)
        self.scale = nn.Linear(latent_size, 1)
        # start where grains are (about -20 dB): Adam moves a bias ~1e-3 a step, so a scale starting at 1 would
        # take thousands of steps to reach the data while the likelihood barely asks the mean for detail
        nn.init.zeros_(self.scale.weight)
        nn.init.constant_(self.scale.bias, math.log(0.1))
        up_widths = [*reversed(channels), 1]
        self.decoder = nn.ModuleList(
            [
                nn.ConvTranspose1d(up_widths[i], up_widths[i + 1], kernel_size, stride, padding)
                for i in range(scales)
            ]
        )

    @torch.jit.export
    def encode(self, grain: Tensor) -> tuple[Tensor, Tensor]:
        """``grain [B, 1, G]`` -> ``(mean, logvar)`` each ``[B, D]``."""
        x = grain.transpose(1, 2)  # [B, G, 1]
        for conv in self.encoder:
            x = F.leaky_relu(strided_conv(x, conv.weight, conv.bias, self.stride), 0.2)
        # flatten channel-major, as the [B, C, T] layout of the posterior's weights expects
        return self.posterior(x.transpose(1, 2).flatten(1))

    @torch.jit.export
    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``z [B, D]`` -> ``(mean, logscale)`` each ``[B, 1, G]``: the Gaussian over the grain's samples
        (the log-scale is one value per grain, broadcast over its samples)."""
        raw_scale = self.scale(z.detach())[:, :, None].expand(-1, 1, self.grain_size)
        logscale = self.min_logscale + F.softplus(raw_scale - self.min_logscale)
        return self.decode_mean(z), logscale

    @torch.jit.export
    def decode_mean(self, z: Tensor) -> Tensor:
        """``z [B, D]`` -> the mean grain ``[B, 1, G]`` alone, as the instrument plays it.

        The mean goes through ``tanh``: grains are audio in [-1, 1], and any latent (knobs at +-10, spray)
        then decodes to bounded audio."""
        x = F.leaky_relu(self.expand(z), 0.2).view(z.shape[0], self.bottom_channels, self.bottom_frames)
        x = x.transpose(1, 2)  # [B, frames, C]
        last = len(self.decoder) - 1
        for i, conv in enumerate(self.decoder):
            x = transposed_conv(x, conv.weight, conv.bias, self.stride)
            if i < last:
                x = F.leaky_relu(x, 0.2)
        return torch.tanh(x.transpose(1, 2))

    def forward(self, grain: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Encode, sample, decode: ``(mean [B, 1, G], logscale [B, 1, G], z [B, D], mu [B, D], logvar [B, D])``."""
        mu, logvar = self.encode(grain)
        z = reparameterize(mu, logvar)
        mean, logscale = self.decode(z)
        return mean, logscale, z, mu, logvar

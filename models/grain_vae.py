"""The grain VAE: a Hann-windowed waveform grain ``[B, 1, G]`` (G = 1024 or 2048) <-> a latent ``[B, D]``.

The encoder is a stack of strided 1-D convolutions (each divides time by ``stride``) and the decoder its
mirror of transposed convolutions, from a few bottom frames up to the grain: the mean of a Gaussian over
the samples. Its log standard deviation is one value per grain, a linear function of z (detached: the scale
does not shape the code), softly floored so that near-silent grains cannot drive the likelihood to infinity.

Speed decides the layout. The instrument decodes 40-200 grains per second on one CPU thread inside nn~:

- no residual stacks and no normalisation: one linear layer and ``len(channels)`` transposed convolutions
  whose kernel spans two strides, about 0.8 M multiply-adds per grain with the mirror of the default
  ``channels``, 0.2 M with the half-width decoder of gin/grain.gin (``decoder_channels``);
- activations are time-major ``[B, T, C]`` inside, so each (transposed) convolution is one concatenation of
  neighbouring frames and one matrix product (``conv_transpose1d`` made the whole decoder 1.35x slower on
  one CPU thread); the weights stay in ordinary ``nn.Conv1d`` / ``nn.ConvTranspose1d`` modules.

``GrainDecoder`` is ``decode_mean`` frozen for playing (the export builds it): the same grains with the
weights laid out once as the matrices of the products, so a call does no weight copies and few operations.
"""

import math

import gin
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from latentlive.models.vae import GaussianPosterior, reparameterize


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
        channels: widths of the encoder's scales, fine to coarse; the decoder mirrors them unless
            ``decoder_channels`` is given.
        decoder_channels: widths of the decoder's scales, fine to coarse, one per scale of ``channels``
            (default: ``channels``). The instrument decodes up to a grain per path frame, so these set its
            cost, which grows with their square; the encoder runs only in training and in ``encode``.
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
        decoder_channels: tuple[int, ...] | None = None,
        kernel_size: int = 8,
        stride: int = 4,
        min_logscale: float = -5.0,
    ) -> None:
        super().__init__()
        scales = len(channels)
        if scales < 1:
            raise ValueError("GrainVAE.channels needs at least one scale")
        if latent_size < 1:
            raise ValueError(
                f"GrainVAE.latent_size must be at least 1 (LatentGrains has 8 to 32 knobs), got {latent_size}"
            )
        decoder_channels = tuple(channels if decoder_channels is None else decoder_channels)
        if min(channels) < 1 or min(decoder_channels, default=1) < 1:
            raise ValueError(
                f"GrainVAE.channels and .decoder_channels need widths of at least 1, got {channels} and "
                f"{decoder_channels}"
            )
        if len(decoder_channels) != scales:
            raise ValueError(
                f"GrainVAE.decoder_channels {decoder_channels} needs one width per scale of channels {channels}"
            )
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
        self.bottom_channels = decoder_channels[-1]  # of the decoder's first frames
        self.bottom_frames = grain_size // stride**scales
        padding = (kernel_size - stride) // 2
        bottom = channels[-1] * self.bottom_frames

        widths = [1, *channels]
        self.encoder = nn.ModuleList(
            [nn.Conv1d(widths[i], widths[i + 1], kernel_size, stride, padding) for i in range(scales)]
        )
        self.posterior = GaussianPosterior(bottom, latent_size)

        self.expand = nn.Linear(latent_size, self.bottom_channels * self.bottom_frames)
        # one log-scale per grain, from a detached z: the trunk and the encoder then learn only the mean (a
        # scale sharing them soaks up the error and stalls the mean's training; measured on sine grains)
        self.scale = nn.Linear(latent_size, 1)
        # start where grains are (about -20 dB): Adam moves a bias ~1e-3 a step, so a scale starting at 1 would
        # take thousands of steps to reach the data while the likelihood barely asks the mean for detail
        nn.init.zeros_(self.scale.weight)
        nn.init.constant_(self.scale.bias, math.log(0.1))
        up_widths = [*reversed(decoder_channels), 1]
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


class _PlayingUpsample(nn.Module):
    """One transposed convolution of ``GrainDecoder`` on time-major frames ``[N, F, C_in]`` in which frames
    ``[offset, offset + length + 2 * pad)`` hold ``pad = taps - 1`` zero frames, ``length`` input frames and
    ``pad`` zero frames. A hidden layer returns its raw output ``[N, (length + pad) * stride, C_out]`` in the
    same form (``offset`` and ``length`` of the next layer, its zero frames written over the cropped
    samples); the last one returns the output samples ``[N, length * stride]`` (one output channel)."""

    def __init__(self, conv: nn.ConvTranspose1d, stride: int, length: int, offset: int, last: bool) -> None:
        super().__init__()
        weight = conv.weight.detach()  # [C_in, C_out, k]
        channels_in, channels_out, kernel = weight.shape
        taps = kernel // stride
        self.taps, self.stride, self.last = taps, stride, last
        self.channels_in, self.channels_out = channels_in, channels_out
        self.length, self.offset, self.pad = length, offset, taps - 1
        self.crop = (kernel - stride) // 2
        bias = conv.bias.detach() if conv.bias is not None else weight.new_zeros(channels_out)
        if last:
            # Output block J (stride samples) is sum_i W_i x[J - i]: all frames times every slice at once,
            # [taps * stride, C_in] @ [C_in, N * F] (a product this narrow runs fastest transposed), then
            # the slices added with their shifts. The bias rides on slice 0.
            self.register_buffer("matrix", weight[:, 0].t().contiguous())  # rows (slice i, sample r)
            column = torch.zeros(taps * stride, 1)
            column[:stride, 0] = bias[0]
            self.register_buffer("bias", column)
        else:
            # A window holds frames J - taps + 1 .. J in order, so its rows take the kernel slices reversed
            slices = weight.view(channels_in, channels_out, taps, stride).permute(2, 0, 3, 1).flip(0)
            self.register_buffer(
                "matrix", slices.reshape(taps * channels_in, stride * channels_out).contiguous()
            )
            self.register_buffer("bias", bias.repeat(stride).contiguous())
        # the zero frames of the next layer's input, written over the edge of the raw output (or, when the
        # crop is narrower than them, a cropped copy is padded instead)
        self.next_length, self.next_offset = length * stride, self.crop - self.pad
        frames = torch.arange(self.pad)
        edges = torch.cat([self.crop - self.pad + frames, self.crop + length * stride + frames])
        # 0 on those frames and 1 elsewhere, applied by a product (a kind of operation the call needs anyway)
        keep = torch.ones((length + self.pad) * stride, 1)
        if self.next_offset >= 0:
            keep[edges] = 0.0
        self.register_buffer("keep_frames", keep)

    def forward(self, x: Tensor) -> Tensor:
        count, frames = x.shape[0], x.shape[1]
        blocks = self.length + self.pad
        if self.last:
            rows = x.reshape(count * frames, self.channels_in)
            products = torch.mm(self.matrix, rows.t()).add_(self.bias)  # [taps * stride, N * F]
            # block J sums slice i of frame J - i: a view that reads slice i i frames earlier, and one sum
            shifted = products.as_strided(
                [self.taps, self.stride, count, blocks],
                [self.stride * count * frames - 1, count * frames, frames, 1],
                products.storage_offset() + self.offset + self.pad,
            )
            y = shifted[0]
            for i in range(1, self.taps):  # additions rather than a sum: one kind of operation fewer a call
                y = y + shifted[i]
            y = y.tanh_()  # [stride, N, blocks]
            y = y.permute(1, 2, 0).reshape(count, blocks * self.stride)
            return y.narrow(1, self.crop, self.length * self.stride)
        # windows of taps neighbouring frames, each a contiguous run of taps * C_in values
        windows = x.as_strided(
            [count, blocks, self.taps * self.channels_in],
            [frames * self.channels_in, self.channels_in, 1],
            x.storage_offset() + self.offset * self.channels_in,
        ).reshape(count * blocks, self.taps * self.channels_in)
        # (in place: TorchScript would split addmm into a product and an out-of-place addition anyway)
        y = F.leaky_relu(torch.mm(windows, self.matrix).add_(self.bias), 0.2, True)
        y = y.view(count, blocks * self.stride, self.channels_out)
        if self.next_offset >= 0:
            return y.mul_(self.keep_frames) if self.pad > 0 else y
        cropped = y.narrow(1, self.crop, self.length * self.stride)
        return F.pad(cropped, [0, 0, self.pad, self.pad])


class GrainDecoder(nn.Module):
    """``GrainVAE.decode_mean`` for playing: the same grains ``z [N, D] -> [N, 1, G]`` (to float rounding),
    from weights copied out of ``model`` once (later training does not reach it) and laid out for the
    products, so a call costs the products and a handful of cheap operations per layer."""

    def __init__(self, model: GrainVAE) -> None:
        super().__init__()
        convs = list(model.decoder)
        if convs[-1].out_channels != 1:
            raise ValueError("GrainDecoder expects a decoder that ends with one channel")
        self.grain_size, self.latent_size = model.grain_size, model.latent_size
        frames, channels = model.bottom_frames, model.bottom_channels
        pad = convs[0].kernel_size[0] // model.stride - 1
        # the expansion writes the bottom frames time-major, with the first layer's zero frames around them
        weight = model.expand.weight.detach().view(channels, frames, -1).transpose(0, 1)
        bias = model.expand.bias.detach().view(channels, frames).t()
        padded_weight = weight.new_zeros(frames + 2 * pad, channels, weight.shape[-1])
        padded_bias = bias.new_zeros(frames + 2 * pad, channels)
        padded_weight[pad : pad + frames], padded_bias[pad : pad + frames] = weight, bias
        self.register_buffer("expand_matrix", padded_weight.flatten(0, 1).t().contiguous())  # [D, F * C]
        self.register_buffer("expand_bias", padded_bias.flatten())
        self.expand_frames, self.expand_channels = frames + 2 * pad, channels
        layers, length, offset = [], frames, 0
        for i, conv in enumerate(convs):
            layer = _PlayingUpsample(conv, model.stride, length, offset, i == len(convs) - 1)
            layers.append(layer)
            length, offset = layer.next_length, max(layer.next_offset, 0)
        self.layers = nn.ModuleList(layers)

    def fold_knob_axes(self, mean: Tensor, components: Tensor, std: Tensor) -> None:
        """Take knob units instead of latents from now on (``GranularEngine.set_knob_axes`` folded into the
        first product, which saves the instrument a product and an addition per call): ``decode_mean(k)`` is
        then the grain of ``z = mean + sum_i k_i * std[i] * components[i]`` (``mean [D]``, ``components
        [D, D]`` rows are axes, ``std [D]``)."""
        axes = components * std[:, None]  # [knobs, D]
        self.expand_bias = torch.addmv(self.expand_bias, self.expand_matrix.t(), mean)
        self.expand_matrix = (axes @ self.expand_matrix).contiguous()

    @torch.jit.export
    def decode_mean(self, z: Tensor) -> Tensor:
        """``z [N, D]`` -> the mean grain ``[N, 1, G]``, as ``GrainVAE.decode_mean`` (knobs ``[N, D]`` after
        ``fold_knob_axes``)."""
        x = F.leaky_relu(torch.mm(z, self.expand_matrix).add_(self.expand_bias), 0.2, True)
        x = x.view(z.shape[0], self.expand_frames, self.expand_channels)
        for layer in self.layers:
            x = layer(x)
        return x.unsqueeze(1)


def playing_decoder(model: GrainVAE) -> nn.Module:
    """What the instrument decodes with: a ``GrainDecoder`` of ``model``, or ``model`` itself when its class
    decodes its own way (a subclass that overrides ``decode_mean``)."""
    if type(model).decode_mean is GrainVAE.decode_mean:
        return GrainDecoder(model)
    return model

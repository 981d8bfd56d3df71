"""The stage-1 techno model: a streaming waveform VAE, 16 kHz audio <-> a 125 Hz latent trajectory.

Fully convolutional. Built under ``cc.use_cached_conv(False)`` every convolution pads with zeros ("same"
padding: the offline model, for training); built under ``cc.use_cached_conv(True)`` every convolution
pads with the tail of the previous buffer instead, held in cached_conv's own ``cc.CachedPadding1d``,
so the model streams buffer by buffer. The streamed output equals the offline output delayed by
``encode_delay``, ``decode_delay`` or ``roundtrip_delay`` samples, computed layer by layer with
cached_conv's rule (strided layers wait until their frames line up with the offline frames).

Speed decides the layout. nn~ runs the model on one CPU thread for a few hundred samples at a time, where
the cost is the number of tensor operations more than their size, so:

- nothing runs at the audio rate: the first stride (16) reads waveform patches with one strided
  convolution, and the decoder's last layer writes patches of samples (a convolution to 16 channels and
  a reshape: sub-pixel upsampling); residual units work at 1 kHz and 125 Hz (default strides);
- activations are time-major ``[B, T, C]`` inside, so each convolution is one unfold and one matrix
  product (``conv1d``'s CPU kernels loop over small pieces, dilated ones worst) and sub-pixel
  upsampling is a free reshape; the caches (channel-major, as cached_conv keeps them) are allocated
  when the layer is built, so a fresh streaming model scripts without a warm-up call.
"""

import math

import cached_conv as cc
import gin
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.vae import GaussianPosterior, reparameterize


def _output_delay(right_pad: int, stride: int, delay: int) -> tuple[int, int]:
    """``(extra input delay, output delay)`` of a streamed convolution fed a stream ``delay`` samples late.

    Like ``cc.CachedConv1d``: the input is delayed further, to the next multiple of the stride, so that
    the streamed frames fall where the offline frames fall. The output delay counts output samples.
    """
    stride_delay = (stride - (right_pad + delay) % stride) % stride
    return stride_delay, (right_pad + stride_delay + delay) // stride


class TimePadding(nn.Module):
    """Pads time-major ``[B, T, C]`` to ``[B, left + T + right - crop, C]``.

    Offline: ``left`` and ``right`` zeros (``crop`` is 0). Streaming: the last ``left + right + crop``
    samples of the stream so far, then the buffer without its last ``crop`` samples; this delays the
    stream by ``right + crop`` samples. The cache is cached_conv's own ``cc.CachedPadding1d``
    (channel-major, ``cc.MAX_BATCH_SIZE`` entries), applied to the transposed buffer; its ``crop`` would
    drop the whole padding, so the last ``crop`` samples are dropped here instead.
    """

    def __init__(self, channels: int, left: int, right: int, crop: int = 0) -> None:
        super().__init__()
        self.streaming = bool(cc.USE_BUFFER_CONV)
        self.left, self.right = left, right
        self.crop = crop if self.streaming else 0
        self.size = left + right + self.crop
        self.cache: cc.CachedPadding1d | None = None  # None: TorchScript compiles the offline branch only
        if self.streaming and self.size > 0:
            self.cache = cc.CachedPadding1d(self.size)
            # cc allocates its cache on the first forward (unscriptable); do it now, on an empty buffer,
            # and keep it out of the state dict so offline checkpoints load into the streaming model
            self.cache.init_cache(torch.zeros(1, channels, 0))
            self.cache.register_buffer("pad", self.cache.pad, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        cache = self.cache
        if cache is None:
            return F.pad(x, (0, 0, self.left, self.right)) if self.size > 0 else x
        padded = cache(x.transpose(1, 2)).transpose(1, 2)
        if self.crop > 0:
            padded = padded[:, : -self.crop]
        return padded

    def reset(self) -> None:
        """Forget the stream (zeros, as at the start)."""
        cache = self.cache
        if cache is not None:
            cache.pad.zero_()


def _valid_conv(x: Tensor, weight: Tensor, bias: Tensor, stride: int, dilation: int) -> Tensor:
    """Unpadded convolution of time-major ``[B, T, C_in]`` -> ``[B, T_out, C_out]``; ``weight [C_out, C_in, k]``."""
    channels_out, channels_in, kernel = weight.shape
    if not x.is_cpu:  # cuDNN and friends beat an explicit unfold on accelerators
        return F.conv1d(x.transpose(1, 2), weight, bias, stride, 0, dilation).transpose(1, 2)
    if kernel == 1 and stride == 1:
        return F.linear(x, weight.reshape(channels_out, channels_in), bias)
    columns = x.unfold(1, (kernel - 1) * dilation + 1, stride)  # [B, T_out, C_in, span]
    if dilation > 1:
        columns = columns[..., ::dilation]
    columns = columns.reshape(x.shape[0], columns.shape[1], channels_in * kernel)
    return F.linear(columns, weight.reshape(channels_out, channels_in * kernel), bias)


class StreamingConv1d(nn.Conv1d):
    """A "same" convolution on time-major ``[B, T, C_in] -> [B, T / stride, C_out]`` (weights as ``nn.Conv1d``).

    Args:
        delay: delay of the incoming stream in input samples; ``self.delay`` is the delay of the output
            stream in output samples (see :func:`_output_delay`).
        activation: apply a leaky ReLU to the padded input first (it maps 0 to 0, so the padding is
            unchanged).
    """

    def __init__(
        self,
        channels_in: int,
        channels_out: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        causal: bool = False,
        delay: int = 0,
        activation: bool = False,
    ) -> None:
        super().__init__(channels_in, channels_out, kernel_size, stride=stride, dilation=dilation)
        left, right = cc.get_padding(kernel_size, stride, dilation, mode="causal" if causal else "centered")
        stride_delay, self.delay = _output_delay(right, stride, delay)
        self.activation = activation
        self.pad = TimePadding(channels_in, left, right, crop=stride_delay)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pad(x)
        if self.activation:
            x = F.leaky_relu(x, 0.2)
        bias = self.bias
        assert bias is not None
        return _valid_conv(x, self.weight, bias, self.stride[0], self.dilation[0])

    def reset(self) -> None:
        self.pad.reset()


class ResidualUnit(nn.Module):
    """``x + dilated_conv(act(x))`` on time-major ``[B, T, C]`` (one convolution per unit, as in HiFi-GAN's
    small residual blocks: at real-time buffer sizes a second, 1x1 convolution costs as much as the first).

    One padding serves both paths: the skip path reads the padded input where the dilated kernel is
    centred, which in streaming mode is the input delayed by the unit's delay (its right padding).
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int, causal: bool) -> None:
        super().__init__()
        self.left, self.delay = cc.get_padding(
            kernel_size, 1, dilation, mode="causal" if causal else "centered"
        )
        self.dilation = dilation
        self.pad = TimePadding(channels, self.left, self.delay)
        self.conv = nn.Conv1d(channels, channels, kernel_size, dilation=dilation)

    def forward(self, x: Tensor) -> Tensor:
        padded = self.pad(x)
        bias = self.conv.bias
        assert bias is not None
        h = _valid_conv(F.leaky_relu(padded, 0.2), self.conv.weight, bias, 1, self.dilation)
        return padded[:, self.left : self.left + x.shape[1]] + h

    def reset(self) -> None:
        self.pad.reset()


class SubPixelUpsample(nn.Module):
    """Upsampling by ``factor`` on time-major ``[B, T, C_in] -> [B, T * factor, C_out]``: a convolution to
    ``factor * C_out`` channels read as ``factor`` consecutive samples of ``C_out`` channels."""

    def __init__(
        self, channels_in: int, channels_out: int, factor: int, kernel_size: int, delay: int, causal: bool
    ) -> None:
        super().__init__()
        self.channels_out, self.factor = channels_out, factor
        self.conv = StreamingConv1d(
            channels_in, factor * channels_out, kernel_size, causal=causal, delay=delay, activation=True
        )
        self.delay = self.conv.delay * factor

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        return y.reshape(y.shape[0], y.shape[1] * self.factor, self.channels_out)

    def reset(self) -> None:
        self.conv.reset()


@gin.configurable
class WaveformVAE(nn.Module):
    """VAE from mono audio ``[B, 1, T]`` to latent trajectories ``[B, latent_size, T / ratio]``.

    Args:
        latent_size: channels of z.
        capacity: channels after the first stride; each further stride doubles them (up to ``max_channels``).
        strides: downsampling factors, first to last; ``ratio = prod(strides)`` (128: 16 kHz -> 125 Hz).
            The first is the patch size read and written at the audio rate.
        kernel_size: kernel of the dilated convolutions of the residual units.
        dilations: dilations of the residual units after every stride (and before every upsampling).
        max_channels: cap of the channel count.
        causal: causal padding everywhere: no delay at all (0 samples), for some quality.
    """

    def __init__(
        self,
        latent_size: int = 16,
        capacity: int = 48,
        strides: tuple[int, ...] = (16, 8),
        kernel_size: int = 3,
        dilations: tuple[int, ...] = (1, 3, 9),
        max_channels: int = 512,
        causal: bool = False,
    ) -> None:
        super().__init__()
        if not strides or min(strides) < 2:
            raise ValueError(f"strides must be integers >= 2, got {strides}")
        self.latent_size = latent_size
        self.ratio = math.prod(strides)
        self.streaming = bool(cc.USE_BUFFER_CONV)  # how the layers were built, for the record
        widths = [min(capacity * 2**i, max_channels) for i in range(len(strides))]

        # Encoder: ``delay`` counts samples of the stream at the current rate.
        layers: list[nn.Module] = []
        delay, channels = 0, 1
        for stride, width in zip(strides, widths, strict=True):
            down = StreamingConv1d(
                channels, width, 2 * stride, stride, 1, causal, delay, activation=channels > 1
            )
            layers.append(down)
            delay = down.delay
            for dilation in dilations:
                layers.append(ResidualUnit(width, kernel_size, dilation, causal))
                delay += layers[-1].delay
            channels = width
        self.encoder = nn.Sequential(*layers)
        self.posterior = GaussianPosterior(channels, latent_size, temporal=True)  # 1x1: no delay
        self.encode_delay = delay * self.ratio

        # Decoder: the mirror image, ending in sub-pixel upsampling to one channel.
        layers = [StreamingConv1d(latent_size, channels, 3, causal=causal)]
        delay = layers[0].delay
        for index in reversed(range(len(strides))):
            for dilation in dilations:
                layers.append(ResidualUnit(widths[index], kernel_size, dilation, causal))
                delay += layers[-1].delay
            width_out = widths[index - 1] if index > 0 else 1
            layers.append(SubPixelUpsample(widths[index], width_out, strides[index], 3, delay, causal))
            delay = layers[-1].delay
        self.decoder = nn.Sequential(*layers)
        self.decode_delay = delay
        self.roundtrip_delay = self.encode_delay + self.decode_delay

    @torch.jit.export
    def encode(self, audio: Tensor) -> tuple[Tensor, Tensor]:
        """``audio [B, 1, T]`` (``T`` a multiple of ``ratio``) -> ``(mean, logvar)``, each
        ``[B, latent_size, T / ratio]``."""
        features = F.leaky_relu(self.encoder(audio.transpose(1, 2)), 0.2)
        return self.posterior(features.transpose(1, 2))

    @torch.jit.export
    def decode(self, z: Tensor) -> Tensor:
        """``z [B, latent_size, N]`` -> audio ``[B, 1, N * ratio]`` in [-1, 1] (tanh: bounded for any z)."""
        return torch.tanh(self.decoder(z.transpose(1, 2)).transpose(1, 2))

    def forward(self, audio: Tensor, sample: bool = True) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Encode, draw z (or take the mean when ``sample`` is False), decode: ``audio [B, 1, T]`` ->
        ``(reconstruction [B, 1, T], mean, logvar, z)`` with latents ``[B, latent_size, T / ratio]``."""
        mean, logvar = self.encode(audio)
        z = reparameterize(mean, logvar) if sample else mean
        return self.decode(z), mean, logvar, z

    @torch.jit.export
    def reset(self) -> None:
        """Forget the stream: every cache back to zeros, as when built (scripted too, for nn~ wrappers)."""
        for layer in self.encoder:
            layer.reset()
        for layer in self.decoder:
            layer.reset()

"""The stage-1 techno model: a streaming waveform VAE, 16 kHz audio <-> a 125 Hz latent trajectory.

Fully convolutional. Built with ``streaming=False`` (the default) every convolution pads with zeros
("same" padding: the offline model, for training); built with ``streaming=True`` (for export) every
convolution pads with the tail of the previous buffer instead, held in cached_conv's own
``cc.CachedPadding1d``, so the model streams buffer by buffer. Only cached_conv's explicit classes and
helpers are used, never its global ``use_cached_conv`` switch. The streamed output equals the offline
output delayed by ``encode_delay``, ``decode_delay`` or ``roundtrip_delay`` samples, computed layer by
layer with cached_conv's rule (strided layers wait until their frames line up with the offline frames).

Speed decides the layout. nn~ runs the model on one CPU thread for a few hundred samples at a time, where
the cost is the number of tensor operations more than their size, so:

- nothing runs at the audio rate: the first stride (16) reads waveform patches with one strided
  convolution, and the decoder's last layer writes patches of samples (a convolution to 16 channels:
  sub-pixel upsampling); residual units work at 1 kHz and 125 Hz (default strides);
- activations are streams of frames: time-major ``[B, T, C]`` laid flat as ``[B, 1, T * C]``. Audio is
  such a stream (``C = 1``); cached_conv's ``CachedPadding1d`` caches the last frames of a stream as its
  last values; each convolution is one copy of its windows (strided views of the padded stream) and one
  matrix product (``conv1d``'s CPU kernels loop over small pieces, dilated ones worst) whose output is
  the next stream, so sub-pixel upsampling costs nothing (``factor * C_out`` channels are ``factor``
  frames of ``C_out``); the decoder reads the latents channel-major, as they come. The caches are
  allocated when the layer is built, so a fresh streaming model scripts without a warm-up call.
"""

import math
from typing import Any, Final

import cached_conv as cc
import gin
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from latentlive.models.pqmf import PQMFAnalysis, PQMFSynthesis
from latentlive.models.stream_padding import TimePadding, output_delay
from latentlive.models.vae import GaussianPosterior, reparameterize


def _valid_conv(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, dilation: int) -> Tensor:
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


def _windows(
    padded: Tensor, channels: int, kernel: int, stride: int, dilation: int, channels_first: bool
) -> Tensor:
    """The windows of a convolution over ``padded`` (new and contiguous, as from :class:`TimePadding`: read
    from its storage) -> ``[B * T_out, kernel * C]``: one every ``stride`` frames, of ``kernel`` frames
    ``dilation`` apart, end to end (of ``C`` channels of ``kernel`` taps when ``channels_first``)."""
    batch, length = padded.shape[0], padded.shape[-1]
    if channels_first:  # [B, C, L]
        count = max(0, (length - (kernel - 1) * dilation - 1) // stride + 1)
        windows = padded.as_strided(
            [batch, count, channels, kernel], [channels * length, stride, length, dilation]
        )
    else:  # [B, 1, L * C]
        count = max(0, (length // channels - (kernel - 1) * dilation - 1) // stride + 1)
        windows = padded.as_strided(
            [batch, count, kernel, channels], [length, stride * channels, dilation * channels, 1]
        )
    return windows.reshape(batch * count, kernel * channels)


class FrameConv1d(nn.Conv1d):
    """An unpadded convolution of a padded stream of frames ``[B, 1, L * C_in] -> [B, 1, T_out * C_out]``
    (or of channel-major ``[B, C_in, L]`` when ``channels_first``), weights as ``nn.Conv1d``.

    Offline (training) it unfolds the frames (:func:`_valid_conv`). Streaming (built with
    ``streaming=True``, for export) it is one copy of strided windows and one matrix product,
    with the weights kept once more in the order of the windows and the layout of the faster product
    (``matrix [C_out, kernel * C_in]``, the transpose of a contiguous matrix; rebuilt on every
    ``load_state_dict``): reordering them on every call would cost two operations more. A streaming layer
    is not for training: an optimizer would update ``weight`` only.
    """

    channels_first: Final[bool]

    def __init__(
        self,
        channels_in: int,
        channels_out: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        channels_first: bool = False,
        streaming: bool = False,
    ) -> None:
        super().__init__(channels_in, channels_out, kernel_size, stride=stride, dilation=dilation)
        self.channels_first = channels_first
        self.register_buffer("matrix", self._matrix() if streaming else None, persistent=False)

    def _matrix(self) -> Tensor:
        """``[C_out, kernel * C_in]`` in the order of the windows, stored transposed."""
        weight = self.weight.detach()
        order = (1, 2, 0) if self.channels_first else (2, 1, 0)  # (channel, tap) or (tap, channel) rows
        columns = weight.permute(order).reshape(-1, self.out_channels)
        return columns.clone(memory_format=torch.contiguous_format).t()

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        if self.matrix is not None:
            self.matrix = self._matrix()

    def forward(self, padded: Tensor) -> Tensor:
        return self.product(padded)

    def product(self, padded: Tensor) -> Tensor:
        """``padded [B, 1, L * C_in]`` (or ``[B, C_in, L]``) -> ``[B, 1, T_out * C_out]``."""
        batch = padded.shape[0]
        matrix = self.matrix
        if matrix is None:  # offline (training): unfold, whose backward is cheaper than that of strided views
            if self.channels_first:
                frames = padded.transpose(1, 2)
            else:
                frames = padded.view(batch, padded.shape[-1] // self.in_channels, self.in_channels)
            y = _valid_conv(frames, self.weight, self.bias, self.stride[0], self.dilation[0])
            return y.reshape(batch, 1, y.shape[1] * y.shape[2])
        windows = _windows(
            padded,
            self.in_channels,
            self.kernel_size[0],
            self.stride[0],
            self.dilation[0],
            self.channels_first,
        )
        # linear, not addmm: TorchScript splits an addmm into a product and a sum, one operation more
        y = F.linear(windows, matrix, self.bias)
        return y.view(batch, 1, y.shape[0] // batch * self.out_channels)


class StreamingConv1d(FrameConv1d):
    """A "same" convolution of a stream of frames ``[B, 1, T * C_in] -> [B, 1, T / stride * C_out]``
    (weights as ``nn.Conv1d``).

    Args:
        delay: delay of the incoming stream in input samples; ``self.delay`` is the delay of the output
            stream in output samples (see :func:`output_delay`).
        activation: apply a leaky ReLU to the padded input first (it maps 0 to 0, so the padding is
            unchanged).
        channels_first: read channel-major ``[B, C_in, T]`` (latents as they come) instead of frames.
        streaming: pad from a cache of the stream (export) instead of with zeros (training).
    """

    activation: Final[bool]

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
        channels_first: bool = False,
        streaming: bool = False,
    ) -> None:
        super().__init__(channels_in, channels_out, kernel_size, stride, dilation, channels_first, streaming)
        left, right = cc.get_padding(kernel_size, stride, dilation, mode="causal" if causal else "centered")
        stride_delay, self.delay = output_delay(right, stride, delay)
        self.activation = activation
        self.pad = TimePadding(channels_in, left, right, stride_delay, channels_first, streaming)

    def forward(self, x: Tensor) -> Tensor:
        padded = self.pad(x)
        if self.activation:
            padded = F.leaky_relu(padded, 0.2)
        return self.product(padded)

    def reset(self) -> None:
        self.pad.reset()


class ResidualUnit(nn.Module):
    """``x + dilated_conv(act(x))`` on a stream of frames ``[B, 1, T * C]`` (one convolution per unit, as in
    HiFi-GAN's small residual blocks: at real-time buffer sizes a second, 1x1 convolution costs as much as
    the first).

    One padding serves both paths: the skip path reads the padded input where the dilated kernel is
    centred, which in streaming mode is the input delayed by the unit's delay (its right padding).
    """

    left: Final[int]
    channels: Final[int]

    def __init__(
        self, channels: int, kernel_size: int, dilation: int, causal: bool, streaming: bool = False
    ) -> None:
        super().__init__()
        self.left, self.delay = cc.get_padding(
            kernel_size, 1, dilation, mode="causal" if causal else "centered"
        )
        self.channels = channels
        self.pad = TimePadding(channels, self.left, self.delay, streaming=streaming)
        self.conv = FrameConv1d(channels, channels, kernel_size, dilation=dilation, streaming=streaming)

    def forward(self, x: Tensor) -> Tensor:
        padded = self.pad(x)
        start = self.left * self.channels  # x itself from there on, delayed in streaming mode
        return padded[..., start : start + x.shape[-1]] + self.conv(F.leaky_relu(padded, 0.2))

    def reset(self) -> None:
        self.pad.reset()


class SubPixelUpsample(nn.Module):
    """Upsampling by ``factor``, ``[B, 1, T * C_in] -> [B, 1, T * factor * C_out]``: a convolution to
    ``factor * C_out`` channels is read as ``factor`` consecutive frames of ``C_out`` channels, as it is."""

    def __init__(
        self,
        channels_in: int,
        channels_out: int,
        factor: int,
        kernel_size: int,
        delay: int,
        causal: bool,
        streaming: bool = False,
    ) -> None:
        super().__init__()
        self.channels_out, self.factor = channels_out, factor
        self.conv = StreamingConv1d(
            channels_in,
            factor * channels_out,
            kernel_size,
            causal=causal,
            delay=delay,
            activation=True,
            streaming=streaming,
        )
        self.delay = self.conv.delay * factor

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)

    def reset(self) -> None:
        self.conv.reset()


class OneBand(nn.Module):
    """What stands for the PQMFs of a model of one band: the audio as it is."""

    def forward(self, x: Tensor) -> Tensor:
        return x

    def reset(self) -> None:
        pass


@gin.configurable
class WaveformVAE(nn.Module):
    """VAE from mono audio ``[B, 1, T]`` to latent trajectories ``[B, latent_size, T / ratio]``.

    Args:
        latent_size: channels of z.
        capacity: channels after the first stride; each further stride doubles them (up to ``max_channels``).
        strides: downsampling factors, first to last; ``ratio = prod(strides)`` (128: 16 kHz -> 125 Hz).
            The first is the patch size read and written at the audio rate.
        kernel_size: kernel of the dilated convolutions of the residual units.
        dilations: dilations of the residual units after every stride of the encoder.
        decoder_dilations: those before every upsampling of the decoder (default: ``dilations``); the
            decoder's units cost most of its time in nn~.
        max_channels: cap of the channel count.
        causal: causal padding everywhere: no delay at all (0 samples), for some quality; the decoder's
            first layer then reads one latent frame (a kernel of 3 would hold two past frames: a knob change
            would take 16 ms longer to be half heard).
        bands: 1, or the bands of a PQMF (``models.pqmf``, 100 dB) around the model: the encoder reads
            ``bands`` sub-bands at ``1 / bands`` of the audio rate, the decoder writes as many and the
            PQMF rebuilds the audio (a multiband model: 44.1 kHz at the cost of a 2.76 kHz one with 16
            bands). ``ratio`` then counts audio samples: ``bands * prod(strides)``.
        streaming: build the streaming layers (caches of the stream, for export) instead of the offline
            ones (zero padding, for training); the weights are the same, so either loads the other's
            state dict. Not a trait of what was learnt: checkpoints leave it out.
    """

    features: Final[int]
    bands: Final[int]

    def __init__(
        self,
        latent_size: int = 16,
        capacity: int = 48,
        strides: tuple[int, ...] = (16, 8),
        kernel_size: int = 3,
        dilations: tuple[int, ...] = (1, 3, 9),
        decoder_dilations: tuple[int, ...] | None = None,
        max_channels: int = 512,
        causal: bool = False,
        bands: int = 1,
        streaming: bool = False,
    ) -> None:
        super().__init__()
        if not strides or min(strides) < 2:
            raise ValueError(f"strides must be integers >= 2, got {strides}")
        if bands < 1:
            raise ValueError(f"bands must be 1 (no PQMF) or more, got {bands}")
        sizes = {"latent_size": latent_size, "capacity": capacity, "kernel_size": kernel_size}
        for name, value in {**sizes, "max_channels": max_channels}.items():
            if value < 1:
                raise ValueError(f"WaveformVAE.{name} must be at least 1, got {value}")
        self.latent_size = latent_size
        self.bands = bands
        self.ratio = math.prod(strides) * bands
        self.streaming = streaming  # how the layers were built, for the record
        widths = [min(capacity * 2**i, max_channels) for i in range(len(strides))]

        # Encoder: ``delay`` counts samples of the stream at the current rate (the bands' with a PQMF).
        self.analysis: PQMFAnalysis | OneBand = OneBand()
        self.synthesis: PQMFSynthesis | OneBand = OneBand()
        layers: list[nn.Module] = []
        delay, channels = 0, 1
        if bands > 1:
            self.analysis = PQMFAnalysis(bands, causal=causal, frames=True, streaming=streaming)
            delay, channels = self.analysis.delay, bands
        for index, (stride, width) in enumerate(zip(strides, widths, strict=True)):
            down = StreamingConv1d(
                channels, width, 2 * stride, stride, 1, causal, delay, index > 0, streaming=streaming
            )
            layers.append(down)
            delay = down.delay
            for dilation in dilations:
                layers.append(ResidualUnit(width, kernel_size, dilation, causal, streaming))
                delay += layers[-1].delay
            channels = width
        self.encoder = nn.Sequential(*layers)
        self.posterior = GaussianPosterior(channels, latent_size, temporal=True)  # 1x1: no delay
        self.features = channels
        self.encode_delay = delay * self.ratio

        # Decoder: the mirror image, ending in sub-pixel upsampling to one channel.
        first_kernel = 1 if causal else 3
        layers = [
            StreamingConv1d(
                latent_size, channels, first_kernel, causal=causal, channels_first=True, streaming=streaming
            )
        ]
        delay = layers[0].delay
        for index in reversed(range(len(strides))):
            for dilation in dilations if decoder_dilations is None else decoder_dilations:
                layers.append(ResidualUnit(widths[index], kernel_size, dilation, causal, streaming))
                delay += layers[-1].delay
            width_out = widths[index - 1] if index > 0 else bands
            layers.append(
                SubPixelUpsample(widths[index], width_out, strides[index], 3, delay, causal, streaming)
            )
            delay = layers[-1].delay
        self.decoder = nn.Sequential(*layers)
        if bands > 1:
            self.synthesis = PQMFSynthesis(
                bands, causal=causal, delay=delay, frames=True, streaming=streaming
            )
            delay = self.synthesis.delay
        self.decode_delay = delay
        self.roundtrip_delay = self.encode_delay + self.decode_delay

    @torch.jit.export
    def encode(self, audio: Tensor) -> tuple[Tensor, Tensor]:
        """``audio [B, 1, T]`` (``T`` a multiple of ``ratio``) -> ``(mean, logvar)``, each
        ``[B, latent_size, T / ratio]``."""
        features = F.leaky_relu(self.encoder(self.analysis(audio)), 0.2)  # [B, 1, T / ratio * C]
        frames = features.view(features.shape[0], features.shape[-1] // self.features, self.features)
        frames = frames.transpose(1, 2)
        return self.posterior(frames)

    @torch.jit.export
    def decode(self, z: Tensor) -> Tensor:
        """``z [B, latent_size, N]`` -> audio ``[B, 1, N * ratio]`` in [-1, 1] (tanh: bounded for any z)."""
        # one channel (or the bands' frames, which the synthesis makes one): the stream of frames is the audio
        return torch.tanh(self.synthesis(self.decoder(z)))

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
        self.analysis.reset()
        self.synthesis.reset()

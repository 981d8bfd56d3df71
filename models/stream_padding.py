"""Padding of streamed layers: zeros offline, the tail of the stream so far (cached_conv's cache) when
streaming, and cached_conv's rule for the delay a strided layer adds. Shared by the stage-1 model's
convolutions and the PQMF banks."""

from typing import Final

import cached_conv as cc
import torch
from torch import Tensor, nn
from torch.nn import functional as F


def output_delay(right_pad: int, stride: int, delay: int) -> tuple[int, int]:
    """``(extra input delay, output delay)`` of a streamed convolution fed a stream ``delay`` samples late.

    Like ``cc.CachedConv1d``: the input is delayed further, to the next multiple of the stride, so that
    the streamed frames fall where the offline frames fall. The output delay counts output samples.
    """
    stride_delay = (stride - (right_pad + delay) % stride) % stride
    return stride_delay, (right_pad + stride_delay + delay) // stride


class TimePadding(nn.Module):
    """Pads a stream of ``C``-channel frames ``[B, 1, T * C]`` to ``[B, 1, (left + T + right - crop) * C]``
    (or channel-major ``[B, C, T]`` to ``[B, C, left + T + right - crop]`` when ``channels_first``).

    Offline: ``left`` and ``right`` zero frames (``crop`` is 0). Streaming: the last ``left + right + crop``
    frames of the stream so far, then the buffer without its last ``crop`` frames; this delays the stream
    by ``right + crop`` frames. The cache is cached_conv's own ``cc.CachedPadding1d`` (over the one-channel
    stream of values, or over the ``C`` channels; ``cc.MAX_BATCH_SIZE`` entries); its ``crop`` would drop
    the whole padding, so the last ``crop`` frames are dropped here instead. The result is a new
    contiguous tensor (the stage-1 model's convolutions read its storage as strided windows).
    """

    # sizes fixed when built are constants (Final) for TorchScript, which then folds them into the code
    unit: Final[int]
    left: Final[int]
    right: Final[int]
    crop: Final[int]
    size: Final[int]

    def __init__(
        self,
        channels: int,
        left: int,
        right: int,
        crop: int = 0,
        channels_first: bool = False,
        streaming: bool = False,
    ) -> None:
        super().__init__()
        self.streaming = streaming
        self.unit = 1 if channels_first else channels  # values per frame along the last dimension
        self.left, self.right = left, right
        self.crop = crop if self.streaming else 0
        self.size = left + right + self.crop
        self.cache: cc.CachedPadding1d | None = None  # None: TorchScript compiles the offline branch only
        if self.streaming and self.size > 0:
            self.cache = cc.CachedPadding1d(self.size * self.unit)
            # cc allocates its cache on the first forward (unscriptable); do it now, on an empty buffer,
            # and keep it out of the state dict so offline checkpoints load into the streaming model
            self.cache.init_cache(torch.zeros(1, channels // self.unit, 0))
            self.cache.register_buffer("pad", self.cache.pad, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        cache = self.cache
        if cache is None:
            if self.size == 0:
                return x.clone(memory_format=torch.contiguous_format)
            return F.pad(x, (self.left * self.unit, self.right * self.unit))
        padded = cache(x)
        if self.crop > 0:
            padded = padded[..., : -self.crop * self.unit]
        return padded

    def reset(self) -> None:
        """Forget the stream (zeros, as at the start)."""
        cache = self.cache
        if cache is not None:
            cache.pad.zero_()

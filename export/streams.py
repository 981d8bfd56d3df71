"""Streaming stages shared by the exports of models that run at their own rate inside nn~ (techno, grain).

Each wraps ``models.resample`` pieces for one host rate: host audio in to whole model blocks, model audio
out to exactly one host buffer, model frames out to exactly one buffer of host frames. Latent (or knob)
frames are exchanged with nn~ at ``LATENT_RATIO`` host samples per frame.
"""

from typing import Final

import torch
from torch import Tensor, nn

from latentlive.models.resample import LatentRateConverter, SampleFifo, StreamingResampler

LATENT_RATIO = 256  # host samples per exchanged latent frame


def finite(x: Tensor, limit: float) -> Tensor:
    """``x`` with NaN and infinities set to 0 and everything clamped to ``[-limit, limit]``."""
    return torch.nan_to_num(x, 0.0, 0.0, 0.0).clamp(-limit, limit)


def guarded(x: Tensor, limit: float, guard: bool) -> Tensor:
    """A method's output as nn~ gets it: ``finite(x, limit)`` while ``guard`` (the wrapper's ``output_guard``),
    else ``x`` as the model gave it, which the contract checks (``guard_output(False)``): a guard that hid a
    NaN or a silent model would make every check of the guarded output pass."""
    return finite(x, limit) if guard else x


class AudioIn(nn.Module):
    """Host audio ``[B, 1, n]`` -> the whole model blocks that are ready ``[B, 1, k * block]``."""

    block: Final[int]

    def __init__(self, host_rate: int, model_rate: int, block: int) -> None:
        super().__init__()
        self.resampler = StreamingResampler(host_rate, model_rate)
        self.fifo = SampleFifo(0)
        self.block = block

    def forward(self, x: Tensor) -> Tensor:
        self.fifo.push(self.resampler(x))
        return self.fifo.pop_blocks(self.block)

    @torch.jit.export
    def reset(self) -> None:
        self.resampler.reset()
        self.fifo.reset()


class AudioOut(nn.Module):
    """Model audio ``[B, 1, m]`` -> exactly ``n`` host samples, ``prime`` zeros late."""

    def __init__(self, model_rate: int, host_rate: int, prime: int) -> None:
        super().__init__()
        self.resampler = StreamingResampler(model_rate, host_rate)
        self.fifo = SampleFifo(prime)

    def forward(self, y: Tensor, n: int) -> Tensor:
        self.fifo.push(self.resampler(y))
        return self.fifo.pop(n)

    @torch.jit.export
    def reset(self) -> None:
        self.resampler.reset()
        self.fifo.reset()


class LatentOut(nn.Module):
    """Model latent frames ``[B, L, k]`` -> exactly ``n`` host latent frames, ``prime`` frames late."""

    def __init__(self, model_frame_rate: float, host_rate: int, prime: int) -> None:
        super().__init__()
        self.converter = LatentRateConverter(model_frame_rate, host_rate / LATENT_RATIO)
        self.fifo = SampleFifo(prime)

    def forward(self, z: Tensor, n: int) -> Tensor:
        self.fifo.push(self.converter(z))
        return self.fifo.pop(n)

    @torch.jit.export
    def reset(self) -> None:
        self.converter.reset()
        self.fifo.reset()

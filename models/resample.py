"""Streaming sample-rate conversion for exported models: audio, latent frames and the FIFO between them.

nn~ runs a module at the host rate (44.1 or 48 kHz) in power-of-two buffers, while the models run at
16 kHz (techno) or 22.05 kHz (grain, drum synth) in whole blocks. An exported module chains

    host in -> StreamingResampler -> SampleFifo -> model, in whole blocks -> StreamingResampler
            -> SampleFifo (primed with zeros) -> exactly N host samples out

Every stage here returns, on each call, every output whose inputs have arrived, so its output count
varies from call to call; the last FIFO, primed with ``fifo_prime(...)`` zeros, turns that back into
exactly N samples per call. The total latency is constant: the prime plus the signal delays of the stages
(``delay`` attributes) plus the model's own.

Latency of that audio chain (defaults: rolloff 0.9, 70 dB; model blocks of 128 samples; one prime for every
host buffer from 64 to 16384), in host samples, as ``fifo_prime`` + down delay + up delay:

    model 16 kHz,    host 44.1 kHz: 349 + 120 + 120 = 589 (13.4 ms); 48 kHz: 320 + 132 + 132 = 584 (12.2 ms)
    model 22.05 kHz, host 44.1 kHz: 192 +  88 +  88 = 368 (8.3 ms);  48 kHz: 276 +  95 +  95 = 466 (9.7 ms)

The prime is mostly the wait for a whole block (up to 127 model samples); the filters span 44 samples of
the lower rate on each side (2.75 ms at 16 kHz).

Conventions shared by both converters: sample (or frame) ``k`` of a stream stands for time ``k / rate``;
the stream is silent (zero) before its first sample; ``resample(x)`` (a fresh pass over a whole signal)
equals the concatenation of the streaming outputs for any split of ``x`` into chunks. Everything here is
``torch.jit.script``-able; the integer bookkeeping keeps positions relative to the current chunk, so no
counter grows with time.
"""

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import NamedTuple

import torch
from torch import Tensor, nn


class CountStage(NamedTuple):
    """How many outputs a streaming stage has returned after ``total_in`` inputs since its reset:
    ``mult * max(0, (num * total_in + offset) // den)``. Used to plan FIFO primes (see ``fifo_prime``)."""

    num: int
    offset: int
    den: int
    mult: int = 1

    def __call__(self, total_in: int) -> int:
        return self.mult * max(0, (self.num * total_in + self.offset) // self.den)

    def period(self) -> tuple[int, int]:
        """``(inputs, outputs)``: ``count(T + inputs) == count(T) + outputs`` once the count is positive."""
        return self.den, self.num * self.mult


def block_stage(block: int, outputs_per_block: int | None = None) -> CountStage:
    """The count of a model that consumes whole blocks of ``block`` inputs and returns ``outputs_per_block``
    outputs per block (default: as many as it consumes; 1 for an encoder that returns a frame per block)."""
    return CountStage(1, 0, block, block if outputs_per_block is None else outputs_per_block)


def _reduced_ratio(rate_in: float, rate_out: float) -> tuple[int, int]:
    """``(up, down)`` coprime with ``rate_out / rate_in == up / down`` (rates are exact binary fractions
    such as 44100 / 256; anything else is rounded to the nearest 1e-6 of a hertz first)."""
    if not (rate_in > 0 and rate_out > 0):
        raise ValueError(f"rates must be positive, got {rate_in} -> {rate_out}")
    ratio = Fraction(rate_out).limit_denominator(10**6) / Fraction(rate_in).limit_denominator(10**6)
    return ratio.numerator, ratio.denominator


def kaiser_beta(stopband_db: float) -> float:
    """Kaiser's window parameter for a stopband attenuation in dB."""
    if stopband_db > 50.0:
        return 0.1102 * (stopband_db - 8.7)
    if stopband_db >= 21.0:
        return 0.5842 * (stopband_db - 21.0) ** 0.4 + 0.07886 * (stopband_db - 21.0)
    return 0.0


def lowpass_prototype(up: int, down: int, rolloff: float, stopband_db: float) -> tuple[Tensor, int]:
    """The Kaiser-windowed sinc of a rational ``up / down`` resampler, on the grid of rate
    ``up * rate_in == down * rate_out``.

    Passband up to ``rolloff`` of the lower Nyquist frequency, stopband from that Nyquist frequency on (no
    aliasing or imaging at all), gain ``up`` (zero stuffing divides by ``up``). The filter is symmetric
    about ``center``, a multiple of ``min(up, down)`` (of ``up * down`` for integer ratios), so that the
    delay is a whole number of samples at the higher rate (at both rates for integer ratios).

    Returns ``(taps [2 * center + 1] float64, center)``.
    """
    if not 0.0 < rolloff < 1.0:
        raise ValueError(f"rolloff must lie in (0, 1), got {rolloff}")
    coarse = max(up, down)  # grid points per sample of the lower rate
    transition = math.pi * (1.0 - rolloff)  # radians per sample of the lower rate
    half_width = (stopband_db - 7.95) / (2.285 * transition) / 2.0  # Kaiser's length estimate, halved
    step = up * down if min(up, down) == 1 else min(up, down)
    center = step * math.ceil(half_width * coarse / step)
    k = torch.arange(2 * center + 1, dtype=torch.float64) - center
    cutoff = 0.5 * (1.0 + rolloff) / 2.0 / coarse  # cycles per grid sample, mid-transition
    beta = torch.tensor(kaiser_beta(stopband_db), dtype=torch.float64)
    window = torch.i0(beta * torch.sqrt((1.0 - (k / center) ** 2).clamp(min=0.0))) / torch.i0(beta)
    taps = up * 2.0 * cutoff * torch.sinc(2.0 * cutoff * k) * window
    return taps, center


class StreamingResampler(nn.Module):
    """Rational polyphase resampler ``rate_in -> rate_out`` with a Kaiser-windowed sinc, for streams.

    Output ``m`` is ``y[m] = sum_n x[n] h[m * down - n * up]``; it is returned as soon as its newest input
    ``x[(m * down) // up]`` has arrived. ``y[m]`` approximates the input at time ``(m - delay) / rate_out``.

    Args:
        rate_in, rate_out: sample rates in Hz (e.g. 16000 -> 44100, reduced to 441 / 160 inside).
        rolloff: passband edge as a fraction of the lower rate's Nyquist frequency (0.9 at 16 kHz: 7.2 kHz).
        stopband_db: stopband attenuation from the lower Nyquist frequency on; sets the filter length.

    Attributes:
        delay: group delay in output samples (a whole number when the output is the higher rate or the
            ratio is an integer). ``delay_in``: the same in input samples.
        up, down: the reduced ratio ``rate_out / rate_in``. ``taps``: inputs per output.
    """

    def __init__(
        self, rate_in: float, rate_out: float, rolloff: float = 0.9, stopband_db: float = 70.0
    ) -> None:
        super().__init__()
        up, down = _reduced_ratio(rate_in, rate_out)
        taps, center = lowpass_prototype(up, down, rolloff, stopband_db)
        per_phase = 2 * center // up + 1
        padded = torch.zeros(up * per_phase, dtype=torch.float64)
        padded[: taps.numel()] = taps
        bank = padded.view(per_phase, up).t()  # bank[p, j] = h[p + j * up]
        # each phase sums to 1, so a constant input gives exactly that constant (no ripple at rate_in)
        bank = (bank / bank.sum(1, keepdim=True)).flip(1)  # reversed: a dot product with x[q - taps + 1 .. q]
        # Outputs come in cycles of `up`: output r of a cycle uses phase (r * down) % up and the window that
        # starts (r * down) // up inputs after the cycle's first. Shifting each phase by that offset in a
        # longer kernel makes a whole cycle one strided convolution with `up` output channels.
        kernel = torch.zeros(up, per_phase + down - 1, dtype=torch.float64)
        for r in range(up):
            shift = r * down // up
            kernel[r, shift : shift + per_phase] = bank[r * down % up]
        self.register_buffer("kernel", kernel.to(torch.float32), persistent=False)
        # a cycle may start up to `down - 1` inputs before the window of the next output
        self.register_buffer("history", torch.zeros(1, 1, per_phase - 1 + down), persistent=False)
        self.up = up
        self.down = down
        self.taps = per_phase
        self.delay = center / down
        self.delay_in = center / up
        # the next output: its grid position relative to that of the next input, and its index mod `up`
        self.next_position = 0
        self.next_residue = 0

    def count_stage(self) -> CountStage:
        """Outputs returned after ``T`` inputs since a reset: ``ceil(T * up / down)``."""
        return CountStage(self.up, self.down - 1, self.down)

    def _run(self, full: Tensor, n: int, position: int, residue: int) -> tuple[Tensor, int, int]:
        """Resample the last ``n`` samples of ``full [B, C, taps - 1 + down + n]`` (the rest is history);
        returns ``(y [B, C, m], position, residue)``, the last two for the next output."""
        batch, channels = full.shape[0], full.shape[1]
        last = self.up * n - 1 - position  # outputs are due while their grid position is <= last
        count = last // self.down + 1 if last >= 0 else 0
        if count == 0:
            return full.new_zeros(batch, channels, 0), position - self.up * n, residue
        cycles = (residue + count + self.up - 1) // self.up
        width = self.kernel.shape[-1]
        # the first input of the first cycle (an index into `full`), and the inputs the cycles span
        first = (position - residue * self.down) // self.up + self.down
        length = (cycles - 1) * self.down + width
        span = full[..., first : first + length]
        # outputs past `count` would read beyond the input: zeros, and they are dropped
        span = nn.functional.pad(span, [0, length - span.shape[-1]])
        # [B * C, cycles, width] @ [width, up]: a strided convolution, as one matrix product
        windows = span.reshape(batch * channels, length).unfold(-1, width, self.down)
        y = windows @ self.kernel.to(full.dtype).t()
        y = y.reshape(batch, channels, cycles * self.up)[..., residue : residue + count]
        return y, position + self.down * count - self.up * n, (residue + count) % self.up

    def forward(self, x: Tensor) -> Tensor:
        """Stream ``x [B, C, n]`` (any ``n``, 0 included) -> ``[B, C, m]``; a new batch shape resets."""
        if self.history.shape[0] != x.shape[0] or self.history.shape[1] != x.shape[1]:
            self.history = x.new_zeros(x.shape[0], x.shape[1], self.history.shape[-1])
            self.next_position = 0
            self.next_residue = 0
        full = torch.cat([self.history.to(x.dtype), x], dim=-1)
        y, self.next_position, self.next_residue = self._run(
            full, x.shape[-1], self.next_position, self.next_residue
        )
        self.history = full[..., x.shape[-1] :]
        return y

    @torch.jit.export
    def resample(self, x: Tensor) -> Tensor:
        """A fresh pass over a whole signal ``x [B, C, n]`` (the stream's state is left untouched)."""
        full = torch.cat([x.new_zeros(x.shape[0], x.shape[1], self.history.shape[-1]), x], dim=-1)
        return self._run(full, x.shape[-1], 0, 0)[0]

    @torch.jit.export
    def reset(self) -> None:
        """Forget the stream: silence before the next input, position 0."""
        self.history = torch.zeros_like(self.history)
        self.next_position = 0
        self.next_residue = 0


class LatentRateConverter(nn.Module):
    """Streaming linear interpolation of frames ``[B, C, n]`` from ``rate_in`` to ``rate_out`` frames a second
    (e.g. host latents at 48000 / 256 = 187.5 Hz <-> model latents at 125 Hz).

    Output frame ``j`` is the input interpolated at input position ``j * rate_in / rate_out``, with no delay
    (``delay = 0.0``); it is returned once both frames around that position have arrived, so it may wait up
    to one input frame (``fifo_prime`` accounts for that through ``count_stage``).
    """

    def __init__(self, rate_in: float, rate_out: float) -> None:
        super().__init__()
        # output j sits at input position j * step / scale
        scale, step = _reduced_ratio(rate_in, rate_out)
        self.step = step
        self.scale = scale
        self.delay = 0.0
        self.register_buffer("history", torch.zeros(1, 1, 1), persistent=False)
        # position of the next output in 1 / scale input frames, relative to the next input frame
        self.next_position = 0

    def count_stage(self) -> CountStage:
        """Outputs returned after ``T >= 1`` inputs since a reset: ``(T - 1) * scale // step + 1``."""
        return CountStage(self.scale, self.step - self.scale, self.step)

    def _run(self, history: Tensor, x: Tensor, position: int) -> tuple[Tensor, int]:
        """Convert ``x [B, C, n]`` that follows ``history [B, C, 1]``: ``(y [B, C, m], position)``."""
        n = x.shape[-1]
        last = (n - 1) * self.scale - position  # due while both frames around the position have arrived
        count = last // self.step + 1 if last >= 0 else 0
        if count == 0:
            return x.new_zeros(x.shape[0], x.shape[1], 0), position - self.scale * n
        full = torch.cat([history.to(x.dtype), x], dim=-1)  # full[i + 1] is x[i], full[0] the frame before
        grid = position + self.step * torch.arange(count, device=x.device)
        left = torch.div(grid, self.scale, rounding_mode="floor")
        remainder = grid - left * self.scale
        right = left + (remainder > 0).long()  # a frame that falls on an input needs nothing after it
        fraction = (remainder.to(x.dtype) / self.scale).view(1, 1, -1)
        y = full.index_select(2, left + 1) * (1.0 - fraction) + full.index_select(2, right + 1) * fraction
        return y, position + self.step * count - self.scale * n

    def forward(self, x: Tensor) -> Tensor:
        """Stream ``x [B, C, n]`` -> ``[B, C, m]``; a new batch shape resets the state."""
        if self.history.shape[0] != x.shape[0] or self.history.shape[1] != x.shape[1]:
            self.history = x.new_zeros(x.shape[0], x.shape[1], 1)
            self.next_position = 0
        y, position = self._run(self.history, x, self.next_position)
        if x.shape[-1] > 0:
            self.history = x[..., -1:].clone()
        self.next_position = position
        return y

    @torch.jit.export
    def resample(self, x: Tensor) -> Tensor:
        """A fresh pass over whole frames ``x [B, C, n]`` (the stream's state is left untouched)."""
        return self._run(x.new_zeros(x.shape[0], x.shape[1], 1), x, 0)[0]

    @torch.jit.export
    def reset(self) -> None:
        """Forget the stream."""
        self.history = torch.zeros_like(self.history)
        self.next_position = 0


class SampleFifo(nn.Module):
    """A first-in first-out queue of samples ``[B, C, n]`` that starts with ``primed`` zeros.

    The zeros are the constant latency that lets a consumer pop a fixed count per call while a producer
    pushes a varying count (see ``fifo_prime``). A push with a new batch shape restarts the queue (primed).
    Popping more than is queued returns zeros for the missing part and counts an underrun.
    """

    def __init__(self, primed: int = 0) -> None:
        super().__init__()
        self.primed = primed
        self.underruns = 0
        self.register_buffer("queue", torch.zeros(1, 1, primed), persistent=False)

    @torch.jit.export
    def push(self, x: Tensor) -> None:
        """Append ``x [B, C, n]``."""
        if self.queue.shape[0] != x.shape[0] or self.queue.shape[1] != x.shape[1]:
            self.queue = x.new_zeros(x.shape[0], x.shape[1], self.primed)
        self.queue = torch.cat([self.queue.to(x.dtype), x], dim=-1)

    @torch.jit.export
    def available(self) -> int:
        """Samples queued."""
        return self.queue.shape[-1]

    @torch.jit.export
    def pop(self, n: int) -> Tensor:
        """Remove and return the oldest ``n`` samples ``[B, C, n]`` (zero-padded at the end on underrun)."""
        head = self.queue[..., :n]
        self.queue = self.queue[..., head.shape[-1] :]
        missing = n - head.shape[-1]
        if missing > 0:
            self.underruns += 1
            head = torch.cat([head, head.new_zeros(head.shape[0], head.shape[1], missing)], dim=-1)
        return head

    @torch.jit.export
    def pop_blocks(self, block: int) -> Tensor:
        """Remove and return every whole block queued: ``[B, C, k * block]``, ``k`` possibly 0."""
        return self.pop(self.available() // block * block)

    @torch.jit.export
    def reset(self) -> None:
        """Back to ``primed`` zeros (same batch shape), underrun count cleared."""
        self.queue = self.queue.new_zeros(self.queue.shape[0], self.queue.shape[1], self.primed)
        self.underruns = 0

    def forward(self, x: Tensor) -> Tensor:
        """Push ``x [B, C, n]`` and pop as many samples: a delay line of ``primed`` samples."""
        self.push(x)
        return self.pop(x.shape[-1])


def _chain_period(stages: Sequence[CountStage]) -> tuple[int, int]:
    """``(inputs, outputs)`` after which the composed counts repeat, shifted by ``outputs``."""
    inputs, outputs = 1, 1
    for stage in stages:
        stage_in, stage_out = stage.period()
        times = stage_in // math.gcd(outputs, stage_in)
        inputs, outputs = inputs * times, outputs * times // stage_in * stage_out
    return inputs, outputs


def fifo_prime(
    stages: Sequence[CountStage], host_buffers: Sequence[int], in_ratio: int = 1, out_ratio: int = 1
) -> int:
    """The fewest zeros to prime the last FIFO of a chain with so that it never underruns.

    Each call pushes ``buffer // in_ratio`` frames through ``stages`` (each returning all it can, as the
    converters here do) into the FIFO and pops ``buffer // out_ratio``; the answer covers every buffer size
    in ``host_buffers``, so the chain's latency is the same for all of them. Example, host audio in and out
    around a 16 kHz model that runs in blocks of 128:
    ``fifo_prime([down.count_stage(), block_stage(128), up.count_stage()], [2**k for k in range(6, 15)])``.
    """
    period_in, period_out = _chain_period(stages)
    prime = 0
    for buffer in host_buffers:
        pushed, popped = buffer // in_ratio, buffer // out_ratio
        if pushed * period_out != popped * period_in:
            raise ValueError(
                f"chain turns {period_in} frames into {period_out}, but a buffer of {buffer} pushes {pushed} "
                f"and pops {popped}: the FIFO would grow or empty forever"
            )
        # the deficit repeats with the period; two periods cover the start, where counts are still 0
        calls = 2 * (period_in // math.gcd(period_in, pushed)) + 2
        for call in range(1, calls + 1):
            produced = call * pushed
            for stage in stages:
                produced = stage(produced)
            prime = max(prime, call * popped - produced)
    return prime

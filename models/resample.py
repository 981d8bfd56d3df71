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
from typing import Final, NamedTuple

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

    # fixed when built: constants (Final) for TorchScript, which folds them into the code
    up: Final[int]
    down: Final[int]
    taps: Final[int]
    cycles_per_group: Final[int]
    window: Final[int]
    delay: Final[float]
    delay_in: Final[float]

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
        # longer kernel makes a whole cycle one strided convolution with `up` output channels. A group of
        # cycles side by side (each `down` inputs after the one before) makes the product over a call a
        # well-shaped matrix product: a small ratio such as 16 -> 48 kHz would otherwise be a product with
        # 3 columns over a window copied for every cycle, several times slower. Groups that span a quarter
        # of the filter measured fastest (16 <-> 48 kHz, one thread).
        width = per_phase + down - 1
        cycles = max(1, width // (4 * down))
        kernel = torch.zeros(cycles * up, (cycles - 1) * down + width, dtype=torch.float64)
        for g in range(cycles):
            for r in range(up):
                shift = g * down + r * down // up
                kernel[g * up + r, shift : shift + per_phase] = bank[r * down % up]
        # stored as [inputs of a group, outputs of a group], the right operand of the product
        self.register_buffer("kernel", kernel.t().contiguous().to(torch.float32), persistent=False)
        # a cycle may start up to `down - 1` inputs before the window of the next output
        self.register_buffer("history", torch.zeros(1, 1, per_phase - 1 + down), persistent=False)
        # zeros that pad the last group of cycles of a call (outputs past the inputs, dropped)
        self.register_buffer("padding", torch.zeros(1, 1, kernel.shape[-1]), persistent=False)
        self.up = up
        self.down = down
        self.taps = per_phase
        self.cycles_per_group = cycles
        self.window = kernel.shape[-1]  # inputs a group of cycles reads
        self.delay = center / down
        self.delay_in = center / up
        # the next output: its grid position relative to that of the next input, and its index mod `up`
        self.next_position = 0
        self.next_residue = 0

    def count_stage(self) -> CountStage:
        """Outputs returned after ``T`` inputs since a reset: ``ceil(T * up / down)``."""
        return CountStage(self.up, self.down - 1, self.down)

    def _run(
        self, history: Tensor, x: Tensor, position: int, residue: int
    ) -> tuple[Tensor, Tensor, int, int]:
        """Resample ``x [B, C, n]`` that follows ``history [B, C, taps - 1 + down]``; returns ``(y [B, C, m],
        the history of the next call, position, residue)``, the last two for the next output."""
        batch, channels, n = x.shape[0], x.shape[1], x.shape[-1]
        last = self.up * n - 1 - position  # outputs are due while their grid position is <= last
        count = last // self.down + 1 if last >= 0 else 0
        stored = history.shape[-1]
        if count == 0:
            # no output: the history still moves on by n inputs
            kept = torch.cat([history, x], dim=-1)[..., n:] if n > 0 else history
            return x.new_zeros(batch, channels, 0), kept, position - self.up * n, residue
        cycles = (residue + count + self.up - 1) // self.up
        groups = (cycles + self.cycles_per_group - 1) // self.cycles_per_group
        width, hop = self.window, self.cycles_per_group * self.down
        # the first input of the first cycle (an index into history + x), and the inputs the groups span
        first = (position - residue * self.down) // self.up + self.down
        length = (groups - 1) * hop + width
        # outputs past `count` read the zeros appended to the input (and are dropped); appending them every
        # time costs a few copied samples, a conditional slice would cost an operation
        short = first + length - stored - n
        padding = self.padding
        if (
            short > padding.shape[-1]
            or padding.shape[0] != batch
            or padding.shape[1] != channels
            or padding.dtype != x.dtype
        ):
            padding = x.new_zeros(batch, channels, max(short, padding.shape[-1]))
            self.padding = padding
        full = torch.cat([history, x, padding], dim=-1)  # new, contiguous: the views below read its storage
        total = full.shape[-1]
        # [B * C * groups, width] @ [width, cycles * up]: a strided convolution, as one matrix product
        windows = full.as_strided([batch * channels, groups, width], [total, hop, 1], first)
        kernel = self.kernel if self.kernel.dtype == x.dtype else self.kernel.to(x.dtype)
        y = torch.mm(windows.reshape(batch * channels * groups, width), kernel)
        per_channel = groups * self.cycles_per_group * self.up  # outputs computed, `residue` first dropped
        y = y.as_strided([batch, channels, count], [channels * per_channel, per_channel, 1], residue)
        kept = full[..., n : n + stored]
        return y, kept, position + self.down * count - self.up * n, (residue + count) % self.up

    def forward(self, x: Tensor) -> Tensor:
        """Stream ``x [B, C, n]`` (any ``n``, 0 included) -> ``[B, C, m]``; a new batch shape or dtype resets."""
        history = self.history
        if history.shape[0] != x.shape[0] or history.shape[1] != x.shape[1] or history.dtype != x.dtype:
            self.history = x.new_zeros(x.shape[0], x.shape[1], self.history.shape[-1])
            self.next_position = 0
            self.next_residue = 0
        y, self.history, self.next_position, self.next_residue = self._run(
            self.history, x, self.next_position, self.next_residue
        )
        return y

    @torch.jit.export
    def resample(self, x: Tensor) -> Tensor:
        """A fresh pass over a whole signal ``x [B, C, n]`` (the stream's state is left untouched)."""
        history = x.new_zeros(x.shape[0], x.shape[1], self.history.shape[-1])
        return self._run(history, x, 0, 0)[0]

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

    A call is one matrix product with a window of a table of weights (see ``_table``), whose size grows
    with the square of the frames per call: made for host buffers (up to 64 frames), and for whole signals
    of a few thousand frames at most.
    """

    step: Final[int]
    scale: Final[int]
    margin: Final[int]
    delay: Final[float]

    def __init__(self, rate_in: float, rate_out: float) -> None:
        super().__init__()
        # output j sits at input position j * step / scale
        scale, step = _reduced_ratio(rate_in, rate_out)
        self.step = step
        self.scale = scale
        self.delay = 0.0
        self.register_buffer("history", torch.zeros(1, 1, 1), persistent=False)
        # position of the next output in 1 / scale input frames, relative to the next input frame, and its
        # index mod scale (the interpolation pattern repeats every `scale` outputs)
        self.next_position = 0
        self.next_phase = 0
        # The weights of the input frames (rows; frame f at row f + margin) that make each output of a stream
        # from its start (columns). One call is one product with a window of the table: the interpolation
        # repeats every `scale` outputs, and the margin covers the offset of a call's frames (see _run).
        self.margin = 1 + max(0, step - scale) // scale
        self.register_buffer("table", torch.zeros(0, 0), persistent=False)
        self._table(scale + 64, 64, torch.float32)

    def _table(self, outputs: int, frames: int, dtype: torch.dtype) -> None:
        """Fill ``table [rows, outputs]`` for the outputs ``m < outputs`` of a stream from frame 0, with rows
        enough for calls of up to ``frames`` input frames."""
        grid = self.step * torch.arange(outputs, device=self.history.device)
        left = torch.div(grid, self.scale, rounding_mode="floor")
        remainder = grid - left * self.scale
        right = left + (remainder > 0).long()  # a frame that falls on an input needs nothing after it
        fraction = remainder.to(dtype) / self.scale
        rows = max(int(right[-1]) + 1, self.step + frames) + self.margin
        table = torch.zeros(rows, outputs, dtype=dtype, device=self.history.device)
        columns = torch.arange(outputs, device=self.history.device)
        table.index_put_([left + self.margin, columns], 1.0 - fraction, accumulate=True)
        table.index_put_([right + self.margin, columns], fraction, accumulate=True)
        self.table = table

    def count_stage(self) -> CountStage:
        """Outputs returned after ``T >= 1`` inputs since a reset: ``(T - 1) * scale // step + 1``."""
        return CountStage(self.scale, self.step - self.scale, self.step)

    def _run(self, history: Tensor, x: Tensor, position: int, phase: int) -> tuple[Tensor, Tensor, int, int]:
        """Convert ``x [B, C, n]`` that follows ``history [B, C, 1]``: ``(y [B, C, m], the history of the
        next call, position, phase)``."""
        batch, channels, n = x.shape[0], x.shape[1], x.shape[-1]
        last = (n - 1) * self.scale - position  # due while both frames around the position have arrived
        count = last // self.step + 1 if last >= 0 else 0
        if count == 0:
            kept = x[..., -1:].clone() if n > 0 else history
            return x.new_zeros(batch, channels, 0), kept, position - self.scale * n, phase
        end = phase + count
        table = self.table
        if end > table.shape[1] or self.margin + self.step + n > table.shape[0] or table.dtype != x.dtype:
            self._table(end + self.scale, n, x.dtype)
            table = self.table
        full = torch.cat([history, x], dim=-1)  # full[i + 1] is x[i], full[0] the frame before
        # The table counts frames from the stream's start; position // scale + 1 is where this call's
        # first output would read had the stream started at its phase. The offset lies in
        # [1 - step, margin], so the window's first row, margin - offset, in [0, margin + step - 1].
        offset = position // self.scale + 1 - self.step * phase // self.scale
        start = (self.margin - offset) * table.shape[1] + phase
        y = torch.matmul(full, table.as_strided([n + 1, count], [table.shape[1], 1], start))
        return y, full[..., -1:], position + self.step * count - self.scale * n, end % self.scale

    def forward(self, x: Tensor) -> Tensor:
        """Stream ``x [B, C, n]`` -> ``[B, C, m]``; a new batch shape or dtype resets the state."""
        history = self.history
        if history.shape[0] != x.shape[0] or history.shape[1] != x.shape[1] or history.dtype != x.dtype:
            self.history = x.new_zeros(x.shape[0], x.shape[1], 1)
            self.next_position = 0
            self.next_phase = 0
        y, self.history, self.next_position, self.next_phase = self._run(
            self.history, x, self.next_position, self.next_phase
        )
        return y

    @torch.jit.export
    def resample(self, x: Tensor) -> Tensor:
        """A fresh pass over whole frames ``x [B, C, n]`` (the stream's state is left untouched, and so is
        the table: a whole signal's would be kept, and saved with the module, for nothing)."""
        table = self.table
        y = self._run(x.new_zeros(x.shape[0], x.shape[1], 1), x, 0, 0)[0]
        self.table = table
        return y

    @torch.jit.export
    def reset(self) -> None:
        """Forget the stream."""
        self.history = torch.zeros_like(self.history)
        self.next_position = 0
        self.next_phase = 0


class SampleFifo(nn.Module):
    """A first-in first-out queue of samples ``[B, C, n]`` that starts with ``primed`` zeros.

    The zeros are the constant latency that lets a consumer pop a fixed count per call while a producer
    pushes a varying count (see ``fifo_prime``). A push with a new batch shape or dtype restarts the queue (primed).
    Popping more than is queued returns zeros for the missing part and counts an underrun.
    """

    primed: Final[int]

    def __init__(self, primed: int = 0) -> None:
        super().__init__()
        self.primed = primed
        self.underruns = 0
        self.register_buffer("queue", torch.zeros(1, 1, primed), persistent=False)

    @torch.jit.export
    def push(self, x: Tensor) -> None:
        """Append ``x [B, C, n]``."""
        queue = self.queue
        if queue.shape[0] != x.shape[0] or queue.shape[1] != x.shape[1] or queue.dtype != x.dtype:
            queue = x.new_zeros(x.shape[0], x.shape[1], self.primed)
        self.queue = torch.cat([queue, x], dim=-1)

    @torch.jit.export
    def available(self) -> int:
        """Samples queued."""
        return self.queue.shape[-1]

    @torch.jit.export
    def pop(self, n: int) -> Tensor:
        """Remove and return the oldest ``n`` samples ``[B, C, n]`` (zero-padded at the end on underrun)."""
        queue = self.queue
        available = queue.shape[-1]
        if n <= available:
            parts = queue.split([n, available - n], dim=-1)  # one operation for both parts
            self.queue = parts[1]
            return parts[0]
        self.underruns += 1
        self.queue = queue[..., available:]
        return torch.cat([queue, queue.new_zeros(queue.shape[0], queue.shape[1], n - available)], dim=-1)

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

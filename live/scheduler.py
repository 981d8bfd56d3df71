"""Timing for the players: a tempo clock on absolute deadlines and a follower of incoming MIDI clock.

Both count in 16th steps. The tempo clock computes the time of every step from one origin and the tempo,
so late wake-ups never accumulate into drift (a loop of relative sleeps would add every oversleep to all
later steps). The clock follower turns 24 ppqn MIDI clock, start / stop / continue and song position
pointer messages into "step N begins now" events and a tempo estimate.
"""

import threading
import time
from collections import deque
from dataclasses import dataclass

import mido

STEPS_PER_BEAT = 4
CLOCKS_PER_BEAT = 24  # MIDI clock: 24 pulses per quarter note
CLOCKS_PER_STEP = CLOCKS_PER_BEAT // STEPS_PER_BEAT

BPM_RANGE = (20.0, 999.0)  # the tempos the players and renders take

# Sleep until this long before a deadline, then spin: OS sleeps overshoot by up to ~1 ms.
SPIN_S = 0.0015


def sleep_until(deadline: float, stop: threading.Event | None = None) -> bool:
    """Wait until ``time.perf_counter() >= deadline``; return False as soon as ``stop`` is set instead."""
    stop = stop or threading.Event()
    while True:
        remaining = deadline - time.perf_counter()
        if stop.is_set():
            return False
        if remaining <= 0:
            return True
        if remaining > SPIN_S:
            # Event.wait returns early when the player is stopped, and lets signal handlers run.
            stop.wait(remaining - SPIN_S)


class TempoClock:
    """Absolute times of 16th steps at a tempo: step ``k`` begins at ``origin + k * step_duration``.

    A tempo change re-anchors the origin at the current position, so the step count stays continuous.
    """

    def __init__(self, bpm: float, start: float | None = None) -> None:
        if not bpm > 0:
            raise ValueError(f"bpm must be positive, got {bpm}")
        self._bpm = float(bpm)
        self._origin = time.perf_counter() if start is None else float(start)
        self._origin_step = 0.0

    @property
    def bpm(self) -> float:
        return self._bpm

    @property
    def step_duration(self) -> float:
        """Seconds per 16th step."""
        return 60.0 / (self._bpm * STEPS_PER_BEAT)

    def time_of(self, step: float) -> float:
        """The ``perf_counter`` time at which ``step`` begins."""
        return self._origin + (step - self._origin_step) * self.step_duration

    def step_at(self, t: float) -> float:
        """The (fractional) step position at ``perf_counter`` time ``t``."""
        return self._origin_step + (t - self._origin) / self.step_duration

    def set_bpm(self, bpm: float, at: float | None = None) -> None:
        """Change the tempo from time ``at`` (now by default) on, keeping the step position continuous."""
        if not bpm > 0:
            raise ValueError(f"bpm must be positive, got {bpm}")
        at = time.perf_counter() if at is None else at
        self._origin_step = self.step_at(at)
        self._origin = at
        self._bpm = float(bpm)

    def wait_for_step(self, step: float, stop: threading.Event | None = None) -> bool:
        """Wait until ``step`` begins; False if ``stop`` was set first."""
        return sleep_until(self.time_of(step), stop)


@dataclass(frozen=True)
class ClockEvent:
    """What the follower reports: ``kind`` "step" (step ``step`` begins at ``time``) or "stop"."""

    kind: str
    step: int
    time: float


class ClockFollower:
    """Follows incoming MIDI clock; feed it every message with :meth:`handle` (from the input's callback).

    Position is counted in clock ticks since the song start. After Start (or a song position pointer) the
    next clock tick is the one at the new position, as MIDI specifies; every 6th tick begins a 16th step
    and queues a "step" event. Stop queues a "stop" event; Continue resumes where Stop (or the last song
    position pointer) left the position.
    """

    def __init__(self, tempo_window: int = CLOCKS_PER_BEAT) -> None:
        self._cond = threading.Condition()
        self._events: deque[ClockEvent] = deque()
        self._tick = -1  # the last tick played; the next clock plays tick + 1
        self._running = False
        self._tick_times: deque[float] = deque(maxlen=tempo_window + 1)

    @property
    def running(self) -> bool:
        return self._running

    @property
    def position_steps(self) -> float:
        """The position of the next clock tick, in 16th steps."""
        with self._cond:
            return (self._tick + 1) / CLOCKS_PER_STEP

    @property
    def bpm(self) -> float | None:
        """Tempo estimated from the intervals of the last clock ticks (None before two ticks)."""
        with self._cond:
            times = list(self._tick_times)
        if len(times) < 2 or times[-1] <= times[0]:
            return None
        tick_seconds = (times[-1] - times[0]) / (len(times) - 1)
        return 60.0 / (tick_seconds * CLOCKS_PER_BEAT)

    def position_at(self, t: float) -> float:
        """The song position in 16th steps at ``perf_counter`` time ``t``: the last clock tick's, plus the
        time since it at the estimated tempo (at most one tick; none before the tempo is known)."""
        bpm = self.bpm
        with self._cond:
            tick, last = self._tick, (self._tick_times[-1] if self._tick_times else None)
        fraction = 0.0
        if bpm is not None and last is not None and self._running:
            fraction = min(1.0, max(0.0, (t - last) * bpm * CLOCKS_PER_BEAT / 60.0))
        return (tick + fraction) / CLOCKS_PER_STEP

    def handle(self, msg: mido.Message, t: float | None = None) -> None:
        """Update the position from one MIDI message received at ``perf_counter`` time ``t`` (now)."""
        t = time.perf_counter() if t is None else t
        with self._cond:
            if msg.type == "clock":
                if not self._running:
                    return
                self._tick += 1
                self._tick_times.append(t)
                if self._tick % CLOCKS_PER_STEP == 0:
                    self._push(ClockEvent("step", self._tick // CLOCKS_PER_STEP, t))
            elif msg.type == "start":
                self._tick = -1
                self._running = True
                self._tick_times.clear()
            elif msg.type == "continue":
                self._running = True
                self._tick_times.clear()  # the pause is not a clock interval
            elif msg.type == "stop":
                if self._running:
                    self._running = False
                    self._push(ClockEvent("stop", (self._tick + 1) // CLOCKS_PER_STEP, t))
            elif msg.type == "songpos":
                # Song position is counted in "MIDI beats" of 6 ticks, i.e. 16th steps.
                self._tick = msg.pos * CLOCKS_PER_STEP - 1

    def _push(self, event: ClockEvent) -> None:
        self._events.append(event)
        self._cond.notify_all()

    def next_event(self, timeout: float | None) -> ClockEvent | None:
        """The oldest event not yet taken, waiting up to ``timeout`` seconds (None: forever) for one."""
        with self._cond:
            if not self._events:
                self._cond.wait(timeout)
            return self._events.popleft() if self._events else None

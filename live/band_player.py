"""The standalone band player: you play one part on MIDI in, it plays the other parts of the band, one or
two measures ahead, in time with its own tempo or with incoming MIDI clock.

Listening: the notes of any channel of the input are the played part (``--part``). A note on or off counts
for the nearest 16th step (a note lasts at least one step). Half a step before a measure ends, the measure
is closed: the played part as recorded enters the history (the player's own parts are not read back: fed
back, they would reinforce its own silences; they only carry held notes over), and ``band.ts`` predicts the
measure ``ahead`` after the one about to begin (ahead 1: that one; 2: the one after it) from the last
``context`` measures.

Playing: at each step every lane of the other parts (docs/band_encoding.md: a pitch starts a note, -2 holds
it, -1 is silence) becomes note offs, then note ons, on the part's own channel (part i on channel i + 1,
skipping 10), velocity 90. A measure without a prediction (the first ``ahead`` ones) is silent.

Clock: free running at ``bpm``, or (``clock=True``) following 24 ppqn MIDI clock, Start (a new song: the
history is forgotten), Stop (all notes released), Continue and Song Position Pointer on the input.

Every note on gets its note off; Ctrl-C, SIGTERM, a MIDI Stop, the end of ``bars`` or a port error release all
sounding notes (note offs, then All Notes Off, CC 123, on each part's channel).
"""

import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

import mido
import numpy as np

from latentlive.core.errors import UserError, check_range
from latentlive.corpus.band_rolls import BandPiece, measure_rolls, sort_notes
from latentlive.live.band_model import BandModel
from latentlive.live.playback import (
    LEAD_IN_S,
    POLL_S,
    NoteOutput,
    PortLost,
    play_until_stopped,
    port_lost_error,
    signals_held,
)
from latentlive.live.scheduler import BPM_RANGE, ClockEvent, ClockFollower, TempoClock, sleep_until
from latentlive.live.session import player_session

VELOCITY = 90
CLOSE_BEFORE_END = 0.5  # steps: a measure is closed when every note that rounds into it has come
CLOCK_MESSAGES = ("clock", "start", "stop", "continue", "songpos")
DEFAULT_PORT_NAME = "latentlive band"


class FreeSteps:
    """Step events of a free-running tempo clock, with the interface of :class:`ClockFollower`."""

    def __init__(self, bpm: float, start: float, stop: threading.Event) -> None:
        self.clock = TempoClock(bpm, start=start)
        self.stop = stop
        self.next_step = 0

    def position_at(self, t: float) -> float:
        return self.clock.step_at(t)

    def next_event(self, timeout: float) -> ClockEvent | None:
        """The next step when it begins within ``timeout`` seconds, else None after waiting that long."""
        due = self.clock.time_of(self.next_step)
        if due - time.perf_counter() > timeout:
            self.stop.wait(timeout)
            return None
        if not sleep_until(due, self.stop):
            return None
        self.next_step += 1
        return ClockEvent("step", self.next_step - 1, due)


class BandPlayer:
    """Plays the parts of a :class:`BandModel` other than ``part`` on an open output port.

    Feed incoming MIDI (the played notes, and clock when following) to :meth:`handle_message`; call :meth:`play`.
    """

    def __init__(
        self,
        model: BandModel,
        output: mido.ports.BaseOutput,
        *,
        part: str | int = 0,
        bpm: float = 120.0,
        ahead: int = 1,
        temperature: float = 1.0,
        seed: int = 0,
        follower: ClockFollower | None = None,
    ) -> None:
        check_range("--bpm", bpm, BPM_RANGE[0], BPM_RANGE[1], "beats per minute")
        if ahead not in (1, 2):
            raise UserError(f"--ahead {ahead}: the player predicts 1 or 2 measures ahead")
        self.model = model
        self.part = model.part_index(part)
        self.temperature = model.check_temperature(temperature)
        self.bpm, self.ahead, self.seed = float(bpm), int(ahead), int(seed)
        self.steps = model.steps
        self.out = NoteOutput(
            output, channels=[model.channels[p] for p in range(model.parts) if p != self.part]
        )
        self.follower = follower
        self.stop_event = threading.Event()
        self.free: FreeSteps | None = None
        self.steps_played = 0
        self.draws = 0
        self.history = model.history()  # the last `context` closed measures, encoded
        self.predictions: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # measure -> (roll, lanes)
        self._lane_pitch: dict[int, int] = {}  # lane -> the pitch it sounds
        self._lock = threading.Lock()  # guards what the input thread writes: the played notes
        self._held: dict[int, int] = {}  # pitch -> start step
        self._ended: list[tuple[int, int, int]] = []  # (start, end, pitch)
        self._new_song = False

    # -- listening (the MIDI input thread) --

    def handle_message(self, msg: mido.Message) -> None:
        """Take one incoming message: clock to the follower, notes into the recording."""
        now = time.perf_counter()
        if msg.type in CLOCK_MESSAGES:
            if self.follower is not None:
                self.follower.handle(msg, now)
                if msg.type == "start":
                    with self._lock:
                        self._held.clear()
                        self._ended.clear()
                        self._new_song = True
        elif msg.type == "note_on" and msg.velocity > 0:
            self._press(msg.note, now)
        elif msg.type in ("note_on", "note_off"):
            self._release(msg.note, now)

    def _step_at(self, t: float) -> int | None:
        """The nearest step to time ``t``, None while nothing runs (before play, or stopped)."""
        if self.follower is not None:
            return round(self.follower.position_at(t)) if self.follower.running else None
        return None if self.free is None else round(self.free.position_at(t))

    def _press(self, pitch: int, t: float) -> None:
        step = self._step_at(t)
        if step is None:
            return
        with self._lock:
            if pitch in self._held:  # pressed again without a note off
                start = self._held.pop(pitch)
                self._ended.append((start, max(start + 1, step), pitch))
            self._held[pitch] = step

    def _release(self, pitch: int, t: float) -> None:
        step = self._step_at(t)
        with self._lock:
            start = self._held.pop(pitch, None)
            if start is not None:
                self._ended.append((start, max(start + 1, step if step is not None else start + 1), pitch))

    def recorded(self, measure: int) -> np.ndarray:
        """The played part's notes in ``measure`` as a roll ``[P, 3, 128, S]`` (other parts empty); notes
        still held last to the measure's end."""
        begin, end = measure * self.steps, (measure + 1) * self.steps
        with self._lock:
            rows = [(s, e, p) for s, e, p in self._ended if e > begin and s < end]
            rows += [(s, max(s + 1, end), p) for p, s in self._held.items() if s < end]
            self._ended = [n for n in self._ended if n[1] > begin - 2 * self.steps]  # the rest is history
        notes = np.array([[self.part, s, e - s, p] for s, e, p in rows], np.int64).reshape(-1, 4)
        piece = BandPiece("played", "", sort_notes(notes), measure + 1)
        return measure_rolls(piece, measure, 1, self.model.parts)[0].astype(np.float32)

    # -- predicting and playing (the player's thread) --

    def _close(self, measure: int) -> None:
        """``measure`` ends: it enters the history and the measure ``ahead`` after the next is predicted."""
        closed = (
            self.predictions[measure][0].copy() if measure in self.predictions else self.model.empty_roll()
        )
        closed[self.part] = self.recorded(measure)[self.part]
        self.history.push(closed, present=[p == self.part for p in range(self.model.parts)])
        seed = self.seed + self.draws
        self.draws += 1
        roll = self.history.next_measure(self.temperature, seed, ahead=self.ahead)
        self.predictions[measure + self.ahead] = (roll, self.model.lanes(roll))
        for old in [m for m in self.predictions if m <= measure]:
            del self.predictions[old]

    def _emit_step(self, step: int) -> None:
        """Play the lanes of the other parts at ``step``: note offs first, so a pitch that moves between
        voices is not cut by its old voice."""
        measure, column = divmod(step, self.steps)
        lanes = self.predictions[measure][1][:, column] if measure in self.predictions else None
        starts = []
        for lane, part in enumerate(self.model.lane_parts):
            if part == self.part:
                continue
            token = -1 if lanes is None else int(lanes[lane])
            if token == -2:
                continue
            pitch = self._lane_pitch.pop(lane, None)
            if pitch is not None:
                self.out.note_off(pitch, self.model.channels[part])
            if token >= 0:
                starts.append((lane, part, token))
        for lane, part, pitch in starts:
            self._lane_pitch[lane] = pitch
            self.out.note_on(pitch, VELOCITY, channel=self.model.channels[part])
        self.steps_played += 1

    def _release_all(self, best_effort: bool = False) -> None:
        self._lane_pitch.clear()
        self.out.release_all(best_effort=best_effort)

    def _step_seconds(self) -> float:
        bpm = (self.follower.bpm if self.follower is not None else None) or self.bpm
        return 60.0 / (bpm * 4)

    def stop(self) -> None:
        """Ask :meth:`play` to stop (from another thread); it releases the notes and returns."""
        self.stop_event.set()

    def play(self, bars: int | None = None) -> int:
        """Play ``bars`` bars (None: until stopped) and return the number of steps played.

        Raises UserError when the output port fails (after releasing what it can).
        """
        total = None if bars is None else int(bars) * self.steps
        self.model.warm_up()  # here, in the thread that predicts: first calls in a thread are slow
        if self.follower is None:
            self.free = FreeSteps(self.bpm, time.perf_counter() + LEAD_IN_S, self.stop_event)
        try:
            self._run(total)
            if self.out.lost is not None:  # stopped by a server watch
                raise PortLost(self.out.lost)
        except PortLost as err:
            raise port_lost_error(err) from None
        finally:
            with signals_held():
                self._release_all(best_effort=True)
        return self.steps_played

    def _run(self, total: int | None) -> None:
        source = self.follower if self.follower is not None else self.free
        closing, close_at = None, 0.0  # the measure to close, and when
        while total is None or self.steps_played < total:
            if self.stop_event.is_set():
                return
            now = time.perf_counter()
            if closing is not None and now >= close_at:
                self._close(closing)
                closing = None
                continue
            timeout = POLL_S if closing is None else min(POLL_S, close_at - now)
            event = source.next_event(timeout)
            if event is None:
                continue
            if event.kind == "stop":
                self._release_all()
                continue
            with self._lock:
                new_song, self._new_song = self._new_song, False
            if new_song:
                self._release_all()
                self.history, self.predictions, closing = self.model.history(), {}, None
            measure = event.step // self.steps
            if closing is not None and measure > closing:  # the clock ran ahead: close before playing on
                self._close(closing)
                closing = None
            self._emit_step(event.step)
            if event.step % self.steps == self.steps - 1:
                closing, close_at = measure, event.time + CLOSE_BEFORE_END * self._step_seconds()
        self.stop_event.wait(self._step_seconds())  # the last step lasts its length


def _status_line(model: BandModel, player: BandPlayer, out_name: str, in_name: str, api: str) -> str:
    tempo = f"following MIDI clock on {in_name!r}" if player.follower else f"{player.bpm:g} bpm"
    others = ", ".join(
        f"{name} ch {model.channels[p] + 1}" for p, name in enumerate(model.part_names) if p != player.part
    )
    ahead = "one measure" if player.ahead == 1 else "two measures"
    return (
        f"latentlive band: {model.path.name}: play {model.part_names[player.part]} on {in_name!r}; "
        f"{others} -> {out_name!r} [{api}], {ahead} ahead, {tempo}; Ctrl-C stops"
    )


def play_band(
    model: str | Path | BandModel,
    out_port: str | None = None,
    in_port: str | None = None,
    *,
    part: str | int = 0,
    bpm: float = 120.0,
    clock: bool = False,
    ahead: int = 1,
    temperature: float = 1.0,
    seed: int = 0,
    bars: int | None = None,
    api: str | None = None,
    stream: TextIO | None = None,
    exiting: bool = False,
) -> int:
    """Play a band model as MIDI until stopped (or for ``bars`` bars); return the number of steps played.

    ``out_port`` / ``in_port``: existing MIDI ports of those names if present, else virtual ports of those
    names (default "latentlive band" and "latentlive band in"). It stops as :func:`session.player_session`
    says (``exiting``: the process ends with it).
    """
    band = model if isinstance(model, BandModel) else BandModel(model)
    base = out_port or DEFAULT_PORT_NAME
    with player_session(base, out_port, api, bars, exiting) as session:
        player = BandPlayer(
            band,
            session.output,
            part=part,
            bpm=bpm,
            ahead=ahead,
            temperature=temperature,
            seed=seed,
            follower=ClockFollower() if clock else None,
        )
        in_name = session.listen(player, in_port or f"{base} in", in_port).name
        status = _status_line(band, player, session.output.name, in_name, session.api)
        print(status, file=stream or sys.stdout, flush=True)
        return play_until_stopped(player, bars)


# `latentlive play band`: the options it reads besides the command's common ones, and their ranges
OPTIONS = frozenset({"part", "ahead", "seed"})
RANGES = {"temperature": (0.0, 10.0, "0 is the most likely; 1 is as trained")}


def play_command(args: Any) -> None:
    """``latentlive play band``: the command line's options to :func:`play_band`."""
    play_band(
        args.model,
        out_port=args.port,
        in_port=args.in_port,
        part=0 if args.part is None else args.part,
        bpm=120.0 if args.bpm is None else args.bpm,
        clock=args.clock,
        ahead=1 if args.ahead is None else args.ahead,
        temperature=1.0 if args.temperature is None else args.temperature,
        seed=0 if args.seed is None else args.seed,
        bars=args.bars,
        api=args.api,
        exiting=True,
    )

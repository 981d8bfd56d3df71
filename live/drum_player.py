"""The standalone drum player: decodes a pattern from ``drums.ts`` and plays it as MIDI in time.

Notes go out on channel 10 (GM drums, the notes of the metadata's ``gm_notes``), one 16th step at a time,
with the model's feel: velocity ``round(127 * level)``, the note on shifted from the step's start by the
model's offset (-0.5..0.5 of a step, so it follows the tempo) plus the swing (every second 16th delayed by
``swing / 2`` of a step), note off a 32nd later (or just before the next hit of the same note). ``quantise``
plays the grid only (no offset, no swing). A step is read half a step before it begins, so that an early note
(an advance) can still be played on time. The tempo is either the ``bpm`` argument (free running) or
incoming MIDI clock (the offsets then follow its estimated tempo).

Incoming control changes (any channel) move the model; the pattern is re-decoded before the next step:

| CC | controls | value 0 .. 64 .. 127 |
| --- | --- | --- |
| 20 .. 27 | z1 .. z8 (those beyond the model's D are ignored) | -3 .. 0 .. +3 |
| 102 .. 109 | z9 .. z16 (undefined controllers in the MIDI specification) | -3 .. 0 .. +3 |
| 28 | style | the styles spread evenly over 0..127 |
| 29 | temperature | 0.25 .. 1.0 .. 2.0 |
| 30 | threshold | 0.0 .. 1.0 (linear; 0.5 plays the run's per-class thresholds) |
| 31 | swing | 0.0 .. 1.0 (linear) |
| 32 | quantise | off below 64, on from 64 |

Every note on gets its note off; Ctrl-C, SIGTERM, a MIDI Stop, the end of ``bars`` or a port error release all
sounding notes (note offs, then All Notes Off, CC 123, on channel 10).
"""

import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import mido
import numpy as np

from latentlive.core.errors import UserError, check_range
from latentlive.live.drum_model import NO_STYLE, SWING_RANGE, DrumModel, pattern_notes
from latentlive.live.playback import (
    ALL_NOTES_OFF,  # noqa: F401 - part of this module's interface (the tests take it from here)
    LEAD_IN_S,
    POLL_S,
    NoteOutput,
    PortLost,
    play_until_stopped,
    port_lost_error,
    signals_held,
)
from latentlive.live.scheduler import BPM_RANGE, STEPS_PER_BEAT, ClockFollower, TempoClock
from latentlive.live.session import player_session

DRUM_CHANNEL = 9  # MIDI channel 10, zero-based as mido counts
CC_Z_FIRST = 20  # CC 20 + i moves z_{i+1}
CC_Z_COUNT = 8
CC_Z_MORE_FIRST = 102  # CC 102 + i moves z_{9+i}
CC_STYLE = 28
CC_TEMPERATURE = 29
CC_THRESHOLD = 30
CC_SWING = 31
CC_QUANTISE = 32
LATENT_SPAN = 3.0  # CC 0..127 covers z in [-3, 3], the span of the device's pad
GATE_STEPS = 0.5  # note length: a 32nd
STEPS_PER_BAR = 4 * STEPS_PER_BEAT  # 4/4
LOOKAHEAD_STEPS = 0.5  # a step is read this early: its earliest note (offset -0.5) is not late

DEFAULT_PORT_NAME = "latentlive drums"


def latent_axis(control: int) -> int:
    """The latent (0-based) a control change number moves, or -1: CC 20-27 move z1-z8, CC 102-109 z9-z16."""
    if CC_Z_FIRST <= control < CC_Z_FIRST + CC_Z_COUNT:
        return control - CC_Z_FIRST
    if CC_Z_MORE_FIRST <= control < CC_Z_MORE_FIRST + CC_Z_COUNT:
        return CC_Z_COUNT + control - CC_Z_MORE_FIRST
    return -1


def cc_to_latent(value: int) -> float:
    """CC value 0..127 -> z in [-3, 3], with 64 exactly 0."""
    if value <= 64:
        return -LATENT_SPAN + LATENT_SPAN * value / 64.0
    return LATENT_SPAN * (value - 64) / 63.0


def cc_to_temperature(value: int) -> float:
    """CC value 0..127 -> temperature 0.25 .. 1.0 (at 64) .. 2.0."""
    if value <= 64:
        return 0.25 + 0.75 * value / 64.0
    return 1.0 + (value - 64) / 63.0


def cc_to_threshold(value: int) -> float:
    """CC value 0..127 -> threshold 0..1."""
    return value / 127.0


def cc_to_style(value: int, n_styles: int) -> int:
    """CC value 0..127 -> a style index, the styles spread evenly over the range."""
    return min(n_styles - 1, value * n_styles // 128) if n_styles > 0 else NO_STYLE


class DrumPlayer:
    """Plays the pattern of a :class:`DrumModel` on an open output port.

    Feed incoming MIDI (CCs, and clock when following) to :meth:`handle_message`; call :meth:`play`.
    """

    def __init__(
        self,
        model: DrumModel,
        output: mido.ports.BaseOutput,
        *,
        bpm: float = 124.0,
        style: int = 0,
        z: Sequence[float] | None = None,
        temperature: float | None = None,
        threshold: float | None = None,
        follower: ClockFollower | None = None,
        swing: float = 0.0,
        quantise: bool = False,
    ) -> None:
        check_range("--bpm", bpm, BPM_RANGE[0], BPM_RANGE[1], "beats per minute")
        check_range(
            "--swing", swing, SWING_RANGE[0], SWING_RANGE[1], "1 delays every second 16th by half a step"
        )
        if not (0 <= style < len(model.style_names) or style == NO_STYLE):
            names = ", ".join(f"{i}={n}" for i, n in enumerate(model.style_names))
            raise UserError(f"--style {style}: no such style; use one of {names} (or -1 for no style)")
        self.model = model
        self.out = NoteOutput(output, channels=[DRUM_CHANNEL])
        self.bpm = float(bpm)
        self.follower = follower
        self.stop_event = threading.Event()
        self.steps_played = 0
        self._lock = threading.Lock()
        self._z = model.check_latent(z)
        self._style = style
        self._temperature = temperature
        self._threshold = threshold
        self._swing = float(swing)
        self._quantise = bool(quantise)
        self._dirty = False
        self._early_step: int | None = None  # the step whose early notes are queued already (clock)
        self._decode()

    # -- controls (called from the MIDI input thread) --

    @property
    def controls(self) -> dict:
        """The current ``z``, ``style``, ``temperature``, ``threshold`` (None: the model's own value),
        ``swing`` and ``quantise``."""
        with self._lock:
            return {
                "z": list(self._z),
                "style": self._style,
                "temperature": self._temperature,
                "threshold": self._threshold,
                "swing": self._swing,
                "quantise": self._quantise,
            }

    @property
    def pattern(self) -> np.ndarray:
        """The pattern being played, hit levels [9, S]."""
        return self._pattern.copy()

    @property
    def offsets(self) -> np.ndarray:
        """The timing offsets of the pattern being played [9, S] (fractions of a step)."""
        return self._offsets.copy()

    @property
    def notes(self) -> list[list[tuple[int, int, float]]]:
        """What each step plays: ``[(note, velocity, shift in steps), ...]`` (``pattern_notes``)."""
        return [list(step) for step in self._notes]

    def handle_message(self, msg: mido.Message) -> None:
        """Apply one incoming message: clock messages go to the follower, CCs move the controls."""
        if self.follower is not None and msg.type in ("clock", "start", "stop", "continue", "songpos"):
            self.follower.handle(msg)
        elif msg.type == "control_change":
            self._apply_cc(msg.control, msg.value)

    def _apply_cc(self, control: int, value: int) -> None:
        with self._lock:
            axis = latent_axis(control)
            if 0 <= axis < self.model.latent_size:
                self._z[axis] = cc_to_latent(value)
            elif control == CC_STYLE:
                self._style = cc_to_style(value, len(self.model.style_names))
            elif control == CC_TEMPERATURE:
                self._temperature = cc_to_temperature(value)
            elif control == CC_THRESHOLD:
                self._threshold = cc_to_threshold(value)
            elif control == CC_SWING:
                self._swing = value / 127.0
            elif control == CC_QUANTISE:
                self._quantise = value >= 64
            else:
                return
            self._dirty = True

    def _decode(self) -> None:
        with self._lock:
            z, style, temperature, threshold = self._z[:], self._style, self._temperature, self._threshold
            swing, quantise = self._swing, self._quantise
            self._dirty = False
        self._pattern, self._offsets = self.model.groove(z, style, temperature, threshold)
        self._notes = pattern_notes(self._pattern, self._offsets, self.model.gm_notes, swing, quantise)

    def stop(self) -> None:
        """Ask :meth:`play` to stop (from another thread); it releases the notes and returns."""
        self.stop_event.set()

    # -- playing --

    def play(self, bars: int | None = None) -> int:
        """Play ``bars`` bars of 16 steps (None: until stopped; a two-bar pattern plays half a pattern a bar)
        and return the number of steps played.

        Raises UserError when the output port fails (after releasing what it can).
        """
        total = None if bars is None else int(bars) * STEPS_PER_BAR
        try:
            if self.follower is None:
                self._play_free(total)
            else:
                self._play_following(total)
            if self.out.lost is not None:  # stopped by a server watch
                raise PortLost(self.out.lost)
        except PortLost as err:
            # The finally clause below releases what it still can before this error propagates.
            raise port_lost_error(err) from None
        finally:
            with signals_held():
                self.out.release_all(best_effort=True)
        return self.steps_played

    def _wait_sending_offs(self, deadline: float) -> bool:
        """Wait until ``deadline``, sending note offs and queued note ons as they fall due; False when stopped
        first."""
        return self.out.wait_until(deadline, self.stop_event)

    def _queue_notes(self, step: int, start: float, step_s: float, early: bool | None = None) -> None:
        """Queue the notes of ``step``, which begins at ``start``, each at its shift (``step_s`` seconds per
        step); ``early``: only those shifted before the start (True) or only the others (False)."""
        for note, velocity, shift in self._notes[step % self.model.steps]:
            if early is None or early == (shift < 0.0):
                self.out.note_on_at(start + shift * step_s, note, velocity, GATE_STEPS * step_s)

    def _step_queued(self) -> None:
        self.steps_played += 1
        if self._dirty:
            self._decode()  # right after a step is queued: the most time before the next one

    def _play_free(self, total: int | None) -> None:
        start = time.perf_counter() + LEAD_IN_S
        clock = TempoClock(self.bpm, start=start + LOOKAHEAD_STEPS * 60.0 / (self.bpm * 4))
        step = 0
        while total is None or step < total:
            if not self._wait_sending_offs(clock.time_of(step - LOOKAHEAD_STEPS)):
                return
            self._queue_notes(step, clock.time_of(step), clock.step_duration)
            self._step_queued()
            step += 1
        self._finish()

    def _finish(self) -> None:
        """Play what is still queued and wait for the last note off."""
        while (due := self.out.next_due_time()) is not None:
            if not self._wait_sending_offs(due):
                return

    def _play_following(self, total: int | None) -> None:
        """Each clock step event queues the step's notes shifted late or not at all, and the next step's early
        notes (the next step begins one step later at the estimated tempo)."""
        follower = self.follower
        while total is None or self.steps_played < total:
            if self.stop_event.is_set():
                return
            self.out.send_due(time.perf_counter())
            due = self.out.next_due_time()
            timeout = POLL_S if due is None else min(POLL_S, max(0.0, due - time.perf_counter()))
            event = follower.next_event(timeout)
            if event is None:
                continue
            if event.kind == "stop":
                self.out.release_all()
                self._early_step = None
                continue
            bpm = follower.bpm or self.bpm
            step_s = 60.0 / (bpm * 4)
            now = time.perf_counter()
            if self._early_step != event.step:  # after a start or a jump: the early notes play now
                self._queue_notes(event.step, now, step_s, early=True)
            self._queue_notes(event.step, now, step_s, early=False)
            if total is None or self.steps_played + 1 < total:
                self._queue_notes(event.step + 1, now + step_s, step_s, early=True)
                self._early_step = event.step + 1
            self.out.send_due(time.perf_counter())
            self._step_queued()
        self._finish()


def _status_line(model: DrumModel, out_name: str, in_name: str | None, api: str, player: DrumPlayer) -> str:
    d = model.latent_size
    tempo = f"following MIDI clock on {in_name!r}" if player.follower else f"{player.bpm:g} bpm"
    latents = f"CC {CC_Z_FIRST}-{CC_Z_FIRST + min(d, CC_Z_COUNT) - 1} z1-z{min(d, CC_Z_COUNT)}, "
    if d > CC_Z_COUNT:
        more = min(d, 2 * CC_Z_COUNT) - CC_Z_COUNT
        latents += f"{CC_Z_MORE_FIRST}-{CC_Z_MORE_FIRST + more - 1} z{CC_Z_COUNT + 1}-z{CC_Z_COUNT + more}, "
    controls = latents + (
        f"{CC_STYLE} style, {CC_TEMPERATURE} temperature, {CC_THRESHOLD} threshold, {CC_SWING} swing, "
        f"{CC_QUANTISE} quantise"
    )
    cc_port = f" on {in_name!r}" if in_name else " (no input port)"
    return (
        f"latentlive drums: {model.path.name} (D={d}) -> {out_name!r} [{api}], {tempo}, "
        f"style {player.controls['style']} ({model.style_label(player.controls['style'])}); "
        f"{controls}{cc_port}; Ctrl-C stops"
    )


def play_drums(
    model: str | Path | DrumModel,
    port: str | None = None,
    bpm: float = 124.0,
    clock: bool = False,
    style: int = 0,
    z: Sequence[float] | None = None,
    bars: int | None = None,
    api: str | None = None,
    *,
    in_port: str | None = None,
    temperature: float | None = None,
    threshold: float | None = None,
    swing: float = 0.0,
    quantise: bool = False,
    stream: TextIO | None = None,
    exiting: bool = False,
) -> int:
    """Play a drum model as MIDI until stopped (or for ``bars`` bars); return the number of steps played.

    ``port``: the output: an existing MIDI destination of that name if there is one, else a virtual port of
    that name (default "latentlive drums"). The input for CCs (and clock with ``clock=True``) is a virtual
    port "<name> in" ("<name> clock in" when following clock), or the existing source ``in_port``. It stops
    as :func:`session.player_session` says (``exiting``: the process ends with it).
    """
    drum_model = model if isinstance(model, DrumModel) else DrumModel(model)
    base = port or DEFAULT_PORT_NAME
    with player_session(base, port, api, bars, exiting) as session:
        player = DrumPlayer(
            drum_model,
            session.output,
            bpm=bpm,
            style=style,
            z=z,
            temperature=temperature,
            threshold=threshold,
            follower=ClockFollower() if clock else None,
            swing=swing,
            quantise=quantise,
        )
        in_name = in_port or (f"{base} clock in" if clock else f"{base} in")
        if session.listen(player, in_name, in_port, required=bool(clock or in_port)) is None:
            in_name = None  # no virtual input (Windows): play without CC control
        status = _status_line(drum_model, session.output.name, in_name, session.api, player)
        print(status, file=stream or sys.stdout, flush=True)
        return play_until_stopped(player, bars)


# `latentlive play drums`: the options it reads besides the command's common ones, and their ranges
OPTIONS = frozenset({"style", "z", "threshold", "swing", "quantise"})
RANGES = {
    "temperature": (0.01, 10.0, "the hits' temperature; 1 is as trained"),
    "threshold": (0.0, 1.0, "0.5 plays the run's per-class thresholds, 0 every cell, 1 none"),
    "swing": (*SWING_RANGE, "1 delays every second 16th by half a step"),
}


def play_command(args: Any) -> None:
    """``latentlive play drums``: the command line's options to :func:`play_drums`."""
    play_drums(
        args.model,
        port=args.port,
        bpm=124.0 if args.bpm is None else args.bpm,
        clock=args.clock,
        style=0 if args.style is None else args.style,
        z=args.z,
        bars=args.bars,
        api=args.api,
        in_port=args.in_port,
        temperature=args.temperature,
        threshold=args.threshold,
        # --swing / --quantise: read when the command line has them
        swing=args.swing or 0.0,
        quantise=args.quantise,
        exiting=True,
    )

"""The standalone drum player: decodes a pattern from ``drums.ts`` and plays it as MIDI in time.

Notes go out on channel 10 (GM drums, the notes of the metadata's ``gm_notes``), one 16th step at a time:
note on when the step begins, velocity ``round(40 + 87 * level)``, note off a 32nd later (or just before the
next hit of the same note). The tempo is either the ``bpm`` argument (free running) or incoming MIDI clock.

Incoming control changes (any channel) move the model; the pattern is re-decoded before the next step:

| CC | controls | value 0 .. 64 .. 127 |
| --- | --- | --- |
| 20 .. 27 | z1 .. z8 (those beyond the model's D are ignored) | -3 .. 0 .. +3 |
| 28 | style | the styles spread evenly over 0..127 |
| 29 | temperature | 0.25 .. 1.0 .. 2.0 |
| 30 | threshold | 0.0 .. 1.0 (linear) |

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
from latentlive.live.drum_model import NO_STYLE, DrumModel, pattern_hits
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
from latentlive.live.scheduler import BPM_RANGE, ClockFollower, TempoClock
from latentlive.live.session import player_session

DRUM_CHANNEL = 9  # MIDI channel 10, zero-based as mido counts
CC_Z_FIRST = 20  # CC 20 + i moves z_{i+1}
CC_Z_COUNT = 8
CC_STYLE = 28
CC_TEMPERATURE = 29
CC_THRESHOLD = 30
LATENT_SPAN = 3.0  # CC 0..127 covers z in [-3, 3], the span of the device's pad
GATE_STEPS = 0.5  # note length: a 32nd

DEFAULT_PORT_NAME = "latentlive drums"


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
    ) -> None:
        check_range("--bpm", bpm, BPM_RANGE[0], BPM_RANGE[1], "beats per minute")
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
        self._dirty = False
        self._decode()

    # -- controls (called from the MIDI input thread) --

    @property
    def controls(self) -> dict:
        """The current ``z``, ``style``, ``temperature`` and ``threshold`` (None: the model's own value)."""
        with self._lock:
            return {
                "z": list(self._z),
                "style": self._style,
                "temperature": self._temperature,
                "threshold": self._threshold,
            }

    @property
    def pattern(self) -> np.ndarray:
        """The pattern being played, hit levels [9, S]."""
        return self._pattern.copy()

    def handle_message(self, msg: mido.Message) -> None:
        """Apply one incoming message: clock messages go to the follower, CCs move the controls."""
        if self.follower is not None and msg.type in ("clock", "start", "stop", "continue", "songpos"):
            self.follower.handle(msg)
        elif msg.type == "control_change":
            self._apply_cc(msg.control, msg.value)

    def _apply_cc(self, control: int, value: int) -> None:
        with self._lock:
            axis = control - CC_Z_FIRST
            if 0 <= axis < min(CC_Z_COUNT, self.model.latent_size):
                self._z[axis] = cc_to_latent(value)
            elif control == CC_STYLE:
                self._style = cc_to_style(value, len(self.model.style_names))
            elif control == CC_TEMPERATURE:
                self._temperature = cc_to_temperature(value)
            elif control == CC_THRESHOLD:
                self._threshold = cc_to_threshold(value)
            else:
                return
            self._dirty = True

    def _decode(self) -> None:
        with self._lock:
            z, style, temperature, threshold = self._z[:], self._style, self._temperature, self._threshold
            self._dirty = False
        self._pattern = self.model.pattern(z, style, temperature, threshold)
        self._hits = pattern_hits(self._pattern, self.model.gm_notes)

    def stop(self) -> None:
        """Ask :meth:`play` to stop (from another thread); it releases the notes and returns."""
        self.stop_event.set()

    # -- playing --

    def play(self, bars: int | None = None) -> int:
        """Play ``bars`` bars (None: until stopped) and return the number of steps played.

        Raises UserError when the output port fails (after releasing what it can).
        """
        total = None if bars is None else int(bars) * self.model.steps
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
        """Wait until ``deadline``, sending note offs as they fall due; False when stopped first."""
        return self.out.wait_until(deadline, self.stop_event)

    def _emit_step(self, step: int, gate_s: float) -> None:
        now = time.perf_counter()
        for note, velocity in self._hits[step % self.model.steps]:
            self.out.note_on(note, velocity, now + gate_s)
        self.steps_played += 1
        if self._dirty:
            self._decode()  # right after a step: the most time before the next one

    def _play_free(self, total: int | None) -> None:
        clock = TempoClock(self.bpm, start=time.perf_counter() + LEAD_IN_S)
        step = 0
        while total is None or step < total:
            if not self._wait_sending_offs(clock.time_of(step)):
                return
            self._emit_step(step, GATE_STEPS * clock.step_duration)
            step += 1
        last_off = self.out.next_off_time()
        if last_off is not None:
            self._wait_sending_offs(last_off)

    def _play_following(self, total: int | None) -> None:
        follower = self.follower
        while total is None or self.steps_played < total:
            if self.stop_event.is_set():
                return
            self.out.send_due_offs(time.perf_counter())
            due = self.out.next_off_time()
            timeout = POLL_S if due is None else min(POLL_S, max(0.0, due - time.perf_counter()))
            event = follower.next_event(timeout)
            if event is None:
                continue
            if event.kind == "stop":
                self.out.release_all()
                continue
            bpm = follower.bpm or self.bpm
            self._emit_step(event.step, GATE_STEPS * 60.0 / (bpm * 4))
        last_off = self.out.next_off_time()
        if last_off is not None:
            self._wait_sending_offs(last_off)


def _status_line(model: DrumModel, out_name: str, in_name: str | None, api: str, player: DrumPlayer) -> str:
    d = model.latent_size
    tempo = f"following MIDI clock on {in_name!r}" if player.follower else f"{player.bpm:g} bpm"
    controls = (
        f"CC {CC_Z_FIRST}-{CC_Z_FIRST + min(d, CC_Z_COUNT) - 1} z1-z{min(d, CC_Z_COUNT)}, "
        f"{CC_STYLE} style, {CC_TEMPERATURE} temperature, {CC_THRESHOLD} threshold"
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
        )
        in_name = in_port or (f"{base} clock in" if clock else f"{base} in")
        if session.listen(player, in_name, in_port, required=bool(clock or in_port)) is None:
            in_name = None  # no virtual input (Windows): play without CC control
        status = _status_line(drum_model, session.output.name, in_name, session.api, player)
        print(status, file=stream or sys.stdout, flush=True)
        return play_until_stopped(player, bars)


# `latentlive play drums`: the options it reads besides the command's common ones, and their ranges
OPTIONS = frozenset({"style", "z", "threshold"})
RANGES = {
    "temperature": (0.01, 10.0, "the hits' temperature; 1 is as trained"),
    "threshold": (0.0, 1.0, "the lowest hit level played"),
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
        exiting=True,
    )

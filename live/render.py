"""Render a decoded drum pattern to a standard MIDI file loop (channel 10, GM notes of the metadata)."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mido

from latentlive.core.errors import UserError, check_range
from latentlive.core.files import atomic_write, check_output_file
from latentlive.live.drum_model import DrumModel, pattern_hits
from latentlive.live.drum_player import DRUM_CHANNEL
from latentlive.live.scheduler import BPM_RANGE

TICKS_PER_BEAT = 480
TICKS_PER_STEP = TICKS_PER_BEAT // 4
GATE_TICKS = TICKS_PER_STEP // 2  # a 32nd, as the player plays it
MAX_BARS = 1000  # a loop, not a song: 1000 bars already take a few MB (a million grew to 11.6 GB)


def drum_loop_track(hits: list[list[tuple[int, int]]], bars: int, bpm: float, name: str) -> mido.MidiTrack:
    """A track of ``bars`` repeats of a pattern's hits (``pattern_hits``), with tempo and 4/4 meta messages."""
    events: list[tuple[int, int, mido.Message]] = []  # (tick, order, message); note offs sort before note ons
    steps = len(hits)
    for bar in range(bars):
        for step, step_hits in enumerate(hits):
            tick = (bar * steps + step) * TICKS_PER_STEP
            for note, velocity in step_hits:
                events.append(
                    (tick, 1, mido.Message("note_on", channel=DRUM_CHANNEL, note=note, velocity=velocity))
                )
                events.append(
                    (tick + GATE_TICKS, 0, mido.Message("note_off", channel=DRUM_CHANNEL, note=note))
                )
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack(
        [
            mido.MetaMessage("track_name", name=name, time=0),
            mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0),
            mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0),
        ]
    )
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    # The loop ends at the bar line, not at the last note off, so clips loop at the right length.
    track.append(mido.MetaMessage("end_of_track", time=bars * steps * TICKS_PER_STEP - now))
    return track


def render_drums_midi(
    model_path: str | Path | DrumModel,
    z: Sequence[float] | None,
    style: int,
    bars: int,
    bpm: float,
    out_path: str | Path,
    temperature: float | None = None,
    threshold: float | None = None,
    force: bool = False,
) -> Path:
    """Decode the pattern at ``z`` / ``style`` and write it as a ``bars``-bar loop to ``out_path`` (atomically).

    Returns the path written. An existing file at ``out_path`` is replaced only with ``force``, a folder never.
    """
    model = model_path if isinstance(model_path, DrumModel) else DrumModel(model_path)
    check_range("--bars", bars, 1, MAX_BARS, "bars of the loop")
    check_range("--bpm", bpm, BPM_RANGE[0], BPM_RANGE[1], "beats per minute")
    if not (0 <= style < len(model.style_names) or style == -1):
        names = ", ".join(f"{i}={n}" for i, n in enumerate(model.style_names))
        raise UserError(f"--style {style}: no such style; use one of {names} (or -1 for no style)")
    out = Path(out_path)
    if not out.parent.is_dir():
        raise UserError(f"{out}: the folder {out.parent} does not exist; create it or pick another --out")
    check_output_file(out, force, example="loop.mid")
    pattern = model.pattern(model.check_latent(z), style, temperature, threshold)
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(
        drum_loop_track(
            pattern_hits(pattern, model.gm_notes), bars, bpm, f"latentlive drums ({model.style_label(style)})"
        )
    )
    return atomic_write(out, lambda tmp: midi.save(str(tmp)))


# `latentlive render drums`: the options it reads besides --out and --force, and their ranges beyond the
# command's own (latentlive.cli)
OPTIONS = frozenset({"model", "z", "style", "bars", "bpm", "temperature", "threshold"})
RANGES = {"temperature": (0.01, 10.0, "the hits' temperature; 1 is as trained")}


def render_command(args: Any) -> list[Path]:
    """``latentlive render drums``: the command line's options to :func:`render_drums_midi`."""
    if args.model is None:
        raise UserError("render drums needs --model DRUMS.ts")
    return [
        render_drums_midi(
            args.model,
            z=args.z,
            style=args.style,
            bars=args.bars,
            bpm=args.bpm,
            out_path=args.out,
            temperature=args.temperature,
            threshold=args.threshold,
            force=args.force,
        )
    ]

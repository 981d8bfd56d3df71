"""Render a decoded drum pattern to a standard MIDI file loop (channel 10, GM notes of the metadata), with the
model's feel: velocity ``round(127 * level)``, each note on shifted from its step by the model's offset plus
the swing (``pattern_notes``; none with ``quantise``), in ticks of the file's tempo."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mido

from latentlive.core.errors import UserError, check_range
from latentlive.core.files import atomic_write, check_output_file
from latentlive.live.drum_model import SWING_RANGE, DrumModel, pattern_notes
from latentlive.live.drum_player import DRUM_CHANNEL
from latentlive.live.scheduler import BPM_RANGE

TICKS_PER_BEAT = 480
TICKS_PER_STEP = TICKS_PER_BEAT // 4
GATE_TICKS = TICKS_PER_STEP // 2  # a 32nd, as the player plays it
MAX_BARS = 1000  # a loop, not a song: 1000 bars already take a few MB (a million grew to 11.6 GB)


def pattern_repeats(bars: int, steps: int) -> int:
    """How many times a pattern of ``steps`` 16ths plays in a loop of ``bars`` bars: a two-bar model's pattern is
    two bars, so it repeats ``bars / 2`` times (rounded up)."""
    return -(-bars * 16 // steps)


def loop_note_ons(notes: list[list[tuple[int, int, float]]], bars: int) -> list[tuple[int, int, int]]:
    """``(tick, note, velocity)`` of every note on of ``bars`` repeats of a pattern's notes (``pattern_notes``),
    in time order (at one tick, in the order of the pattern's instruments). A note shifted past either end of
    the loop wraps around (the clip loops); of two hits of one note that land on the same tick, the louder one
    plays."""
    steps = len(notes)
    total = bars * steps * TICKS_PER_STEP
    loudest: dict[tuple[int, int], tuple[int, int]] = {}  # (tick, note) -> (velocity, order of appearance)
    for bar in range(bars):
        for step, step_notes in enumerate(notes):
            for note, velocity, shift in step_notes:
                tick = round((bar * steps + step + shift) * TICKS_PER_STEP) % total
                before = loudest.get((tick, note), (0, len(loudest)))
                loudest[(tick, note)] = (max(velocity, before[0]), before[1])
    ordered = sorted(loudest.items(), key=lambda item: (item[0][0], item[1][1]))
    return [(tick, note, velocity) for (tick, note), (velocity, _) in ordered]


def drum_loop_track(
    notes: list[list[tuple[int, int, float]]], bars: int, bpm: float, name: str
) -> mido.MidiTrack:
    """A track of ``bars`` repeats of a pattern's notes (``pattern_notes``), with tempo and 4/4 meta messages.

    Each note off comes a 32nd after its note on, or at the next hit of the same note, or at the loop's end.
    """
    total = bars * len(notes) * TICKS_PER_STEP
    ons = loop_note_ons(notes, bars)
    events: list[tuple[int, int, mido.Message]] = []  # (tick, order, message); note offs sort before note ons
    offs, next_hit = [0] * len(ons), {}  # next_hit: note -> tick of its next note on, filled from the end
    for index in range(len(ons) - 1, -1, -1):
        tick, note, _ = ons[index]
        offs[index] = min(tick + GATE_TICKS, total, next_hit.get(note, total))
        next_hit[note] = tick
    for (tick, note, velocity), off in zip(ons, offs, strict=True):
        events.append((tick, 1, mido.Message("note_on", channel=DRUM_CHANNEL, note=note, velocity=velocity)))
        events.append((off, 0, mido.Message("note_off", channel=DRUM_CHANNEL, note=note)))
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
    track.append(mido.MetaMessage("end_of_track", time=total - now))
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
    swing: float = 0.0,
    quantise: bool = False,
) -> Path:
    """Decode the pattern at ``z`` / ``style`` and write it as a ``bars``-bar loop to ``out_path`` (atomically),
    with the model's velocities and offsets plus ``swing`` (0..1), or on the grid with ``quantise``.

    Returns the path written. An existing file at ``out_path`` is replaced only with ``force``, a folder never.
    """
    model = model_path if isinstance(model_path, DrumModel) else DrumModel(model_path)
    check_range("--bars", bars, 1, MAX_BARS, "bars of the loop")
    check_range("--bpm", bpm, BPM_RANGE[0], BPM_RANGE[1], "beats per minute")
    check_range("--swing", swing, SWING_RANGE[0], SWING_RANGE[1], "1 delays every second 16th by half a step")
    if not (0 <= style < len(model.style_names) or style == -1):
        names = ", ".join(f"{i}={n}" for i, n in enumerate(model.style_names))
        raise UserError(f"--style {style}: no such style; use one of {names} (or -1 for no style)")
    out = Path(out_path)
    if not out.parent.is_dir():
        raise UserError(f"{out}: the folder {out.parent} does not exist; create it or pick another --out")
    check_output_file(out, force, example="loop.mid")
    levels, offsets = model.groove(model.check_latent(z), style, temperature, threshold)
    notes = pattern_notes(levels, offsets, model.gm_notes, swing, quantise)
    repeats = pattern_repeats(bars, model.steps)
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(drum_loop_track(notes, repeats, bpm, f"latentlive drums ({model.style_label(style)})"))
    return atomic_write(out, lambda tmp: midi.save(str(tmp)))


# `latentlive render drums`: the options it reads besides --out and --force, and their ranges beyond the
# command's own (latentlive.cli)
OPTIONS = frozenset({"model", "z", "style", "bars", "bpm", "temperature", "threshold", "swing", "quantise"})
RANGES = {
    "temperature": (0.01, 10.0, "the hits' temperature; 1 is as trained"),
    "swing": (*SWING_RANGE, "1 delays every second 16th by half a step"),
}


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
            swing=args.swing or 0.0,
            quantise=args.quantise,
        )
    ]

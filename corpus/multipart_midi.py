"""Multi-part MIDI files <-> parts of quantised notes, for the band corpus.

Reading: a part is the notes of one channel of one track (type 0 files: the channels of the single
track; type 1: the tracks, a track on several channels giving one part per channel). Channel 10 holds
drums and is left out. A part answers to its track name (when its track uses one channel), the GM name
of its first program change, and ``channel N`` (1..16). Note starts and ends go to the nearest
sixteenth in beats (ticks / ticks_per_beat), so tempo changes do not move the grid; durations are at
least one step. Only 4/4 pieces are read (2/2, the same bar, too; no time signature counts as 4/4); a
leading pickup bar in another meter shorter than a bar is allowed and padded to a full first measure.
Type 2 files (independent songs) are skipped.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

from latentlive.core.errors import UserError
from latentlive.core.files import atomic_write
from latentlive.corpus.band_rolls import STEPS
from latentlive.corpus.midi_length import too_long_message

DRUM_CHANNEL = 9  # MIDI channel 10, counted from 0
OUTPUT_CHANNELS = (*range(9), *range(10, 16))  # one channel per part, never the drum channel
TICKS_PER_BEAT = 480
_WHOLE_NOTE_BARS = {(4, 4), (2, 2)}


class SkippedFile(UserError):
    """A file the corpus leaves out; ``reason`` is the key it is counted under. The message is one line
    naming the file, so a caller that cannot skip it (a seed file) can show it as it is."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class RawPart:
    """The notes of one part: int32 [n, 3] (start_step, duration, pitch), and the names it answers to."""

    names: tuple[str, ...]
    notes: np.ndarray


@dataclass
class RawPiece:
    """Every part of one piece, before parts are chosen. ``drum_parts`` counts the drum channels left out."""

    name: str
    source_path: str
    parts: list[RawPart]
    drum_parts: int = 0


def gm_program_name(program: int) -> str:
    from pretty_midi import program_to_instrument_name  # its import takes a while; only when needed

    return program_to_instrument_name(program)


def read_multipart_midi(path: Path, name: str) -> RawPiece:
    """The parts of MIDI file ``path``; raises SkippedFile (unreadable_files, too_long_files, type_2_files,
    not_4_4, no_notes). The file's length is bounded (:mod:`corpus.midi_length`) before notes are read."""
    try:
        midi = mido.MidiFile(path, clip=True)
    except Exception as error:  # mido raises OSError, EOFError, ValueError, KeyError ... on bad bytes
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SkippedFile("unreadable_files", f"{path}: cannot read MIDI file ({reason})") from None
    if midi.ticks_per_beat <= 0:
        raise SkippedFile("unreadable_files", f"{path}: SMPTE time division, no beats to quantise to")
    if midi.type == 2:
        raise SkippedFile("type_2_files", f"{path}: type 2 MIDI file (independent songs)")
    too_long = too_long_message(path, midi)
    if too_long is not None:
        raise SkippedFile("too_long_files", too_long)
    notes: dict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
    programs: dict[tuple[int, int], int] = {}
    track_names: dict[int, str] = {}
    signatures: list[tuple[int, int, int]] = []
    for track_index, track in enumerate(midi.tracks):
        tick = 0
        sounding: dict[tuple[int, int], list[int]] = defaultdict(list)  # (channel, pitch) -> note-on ticks
        for msg in track:
            tick += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                sounding[msg.channel, msg.note].append(tick)
            elif msg.type in ("note_off", "note_on"):
                if sounding[msg.channel, msg.note]:  # the earliest sounding note of this key ends
                    begin = sounding[msg.channel, msg.note].pop(0)
                    notes[track_index, msg.channel].append((begin, tick, msg.note))
            elif msg.type == "program_change":
                programs.setdefault((track_index, msg.channel), msg.program)
            elif msg.type == "track_name" and msg.name.strip():
                track_names.setdefault(track_index, " ".join(msg.name.split()))
            elif msg.type == "time_signature":
                signatures.append((tick, msg.numerator, msg.denominator))
        for (channel, pitch), begins in sounding.items():  # notes never released end with the track
            if begins:  # a note-off without its note-on leaves an empty entry: no part of its own
                notes[track_index, channel].extend((begin, tick, pitch) for begin in begins)
    pickup = _pickup_steps(signatures, midi.ticks_per_beat)
    if pickup is None:
        meters = sorted({f"{n}/{d}" for _, n, d in signatures})
        raise SkippedFile("not_4_4", f"{path}: not in 4/4 ({', '.join(meters)})")
    channels_of_track: dict[int, set[int]] = defaultdict(set)
    for track_index, channel in notes:
        channels_of_track[track_index].add(channel)
    sixteenth = midi.ticks_per_beat / 4
    parts = []
    for track_index, channel in sorted(notes):
        if channel == DRUM_CHANNEL:
            continue
        names = []
        if len(channels_of_track[track_index]) == 1 and track_index in track_names:
            names.append(track_names[track_index])
        program = programs.get((track_index, channel))
        if program is None:  # a type 1 file may set the program on another track of the channel
            program = next((p for (_, c), p in sorted(programs.items()) if c == channel), None)
        if program is not None:
            names.append(gm_program_name(program))
        names.append(f"channel {channel + 1}")
        table = np.array(notes[track_index, channel], dtype=np.float64)
        begin = np.floor(table[:, 0] / sixteenth + 0.5).astype(np.int64)
        end = np.floor(table[:, 1] / sixteenth + 0.5).astype(np.int64)
        steps = np.stack([begin + pickup, np.maximum(end - begin, 1), table[:, 2].astype(np.int64)], axis=1)
        parts.append(RawPart(tuple(names), steps.astype(np.int32)))
    drums = sum(channel == DRUM_CHANNEL for _, channel in notes)
    if not parts:
        raise SkippedFile("no_notes", f"{path}: no notes outside the drum channel")
    return RawPiece(name, str(path), parts, drums)


def _pickup_steps(signatures: list[tuple[int, int, int]], ticks_per_beat: int) -> int | None:
    """Steps to add so that barlines fall on multiples of 16; None when the piece is not in 4/4."""
    merged: dict[int, tuple[int, int]] = {}
    for tick, numerator, denominator in sorted(signatures, key=lambda s: s[0]):
        merged[tick] = (numerator, denominator)  # the last event at a tick wins
    events = sorted(merged.items())
    if all(meter in _WHOLE_NOTE_BARS for _, meter in events):
        return 0
    rest = events[1:]
    if events[0][0] == 0 and rest and all(meter in _WHOLE_NOTE_BARS for _, meter in rest):
        pickup = round(rest[0][0] / (ticks_per_beat / 4))
        if 0 < pickup < STEPS:
            return STEPS - pickup
    return None


def write_band_midi(
    notes: np.ndarray,
    part_names: Sequence[str],
    path: Path,
    bpm: float = 100.0,
    programs: Sequence[int] | None = None,
) -> Path:
    """Write ``notes`` [n, 4] (part, start_step, duration, pitch) as a type 1 MIDI file: a tempo track,
    then one track per part named after it, each on its own channel (1..9, 11..16), atomically."""
    if len(part_names) > len(OUTPUT_CHANNELS):
        raise ValueError(f"{len(part_names)} parts: at most {len(OUTPUT_CHANNELS)} fit on separate channels")
    programs = [0] * len(part_names) if programs is None else list(programs)
    notes = np.asarray(notes, dtype=np.int64).reshape(-1, 4)
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    sixteenth = TICKS_PER_BEAT // 4
    midi.tracks.append(
        mido.MidiTrack(
            [
                mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0),
                mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0),
            ]
        )
    )
    for part, name in enumerate(part_names):
        channel = OUTPUT_CHANNELS[part]
        events = []  # (tick, 0 = off before 1 = on at the same tick, pitch)
        for _, begin, duration, pitch in notes[notes[:, 0] == part]:
            events += [(begin * sixteenth, 1, pitch), ((begin + duration) * sixteenth, 0, pitch)]
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
        track.append(mido.Message("program_change", channel=channel, program=int(programs[part]), time=0))
        now = 0
        for tick, on, pitch in sorted(events):
            kind = "note_on" if on else "note_off"
            velocity = 80 if on else 0
            track.append(
                mido.Message(kind, channel=channel, note=int(pitch), velocity=velocity, time=int(tick - now))
            )
            now = tick
        midi.tracks.append(track)
    return atomic_write(path, lambda tmp: midi.save(str(tmp)))

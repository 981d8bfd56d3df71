"""Read drum MIDI files into grids of 16th-note steps, bar by bar.

Which notes are drums (checked in this order, the first rule that finds notes wins):

1. GM drum notes (see :mod:`corpus.drum_map`) on MIDI channel 10 (mido channel 9); every other
   channel is ignored.
2. No channel-10 notes: the mapped notes of the tracks whose name (track or instrument name) says
   drums ("drum", "perc", "kick", "snare", "hi-hat", "cymbal", "kit", "hat", "tom").
3. Neither: a file that uses a single channel, whose notes all fall in the drum map, at least 80 %
   of them on plain kit notes, with a kick or snare and a hat or ride among them, and at least 20 %
   of them struck together with another key (within a 32nd): a drum loop saved on channel 1.
   A bass line or a melody on one channel fails this test.

Quantisation lives in beats (ticks / ticks_per_beat): a 16th is ticks_per_beat / 4 ticks in every
bar, so tempo changes do not move the grid; the tempo map only gives each example its bpm. The time
signature map cuts the music into bars (4/4 until the first time-signature event); a bar that is not
a full 4/4 bar (other meters, a bar cut short by a time-signature change) is skipped and counted.
Each note-on goes to the nearest 16th; one less than half a 16th before a bar line is step 0 of the
next bar. The microtiming is kept: a cell's offset is where the note was played relative to its step, in
16ths (-0.5 .. 0.5, + late, - early). Notes of one class that land in one cell (a flam, a doubled hit,
two keys of one class struck together) become one hit with the velocity and offset of the loudest (the
earliest of equally loud ones); each note beyond the first is counted in ``merged_notes`` (over the bars of
the examples). Bars up to the last hit are considered; 4/4 bars without hits are skipped and counted.
Consecutive usable bars are cut into non-overlapping examples of ``bars_per_example`` bars; the bars
left over at the end of a run (an empty or non-4/4 bar ends a run) are counted too.

Type 0 and type 1 files are read as one song (tracks share one time line); each track of a type 2
file is its own song. Running status and the rest of the byte-level format are mido's job.
"""

import bisect
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import mido
import numpy as np

from latentlive.core.errors import UserError
from latentlive.corpus.drum_map import (
    CLOSED_HAT,
    KICK,
    KIT_NOTES,
    NUM_INSTRUMENTS,
    OPEN_HAT,
    RIDE,
    SNARE,
    note_to_class,
)
from latentlive.corpus.midi_length import MIN_BAR_BEATS, too_long_message

STEPS_PER_BAR = 16
DRUM_CHANNEL = 9  # MIDI channel 10, counted from 0 as mido does
_DEFAULT_TEMPO = 500_000  # microseconds per quarter note (120 bpm), the MIDI default
_DRUM_TRACK_NAME = re.compile(
    r"drum|perc|kick|snare|hi-?hat|cymbal|\bkit\b|\bhats?\b|\btoms?\b", re.IGNORECASE
)
_KIT_FRACTION = 0.8
_TOGETHER_FRACTION = 0.2

COUNT_KEYS = ("bars_used", "non_4_4_bars", "empty_bars", "leftover_bars", "merged_notes")


class UnreadableMidiError(UserError):
    """A file that mido cannot parse (or that uses SMPTE time, which has no beats)."""


@dataclass
class DrumFileExamples:
    """The examples of one MIDI file; E examples of S = 16 * bars_per_example steps.

    grids: uint8 [E, 9, S], 1 = hit. velocities: float32 [E, 9, S], note-on velocity / 127
    (0 where no hit; the loudest note when several land in a cell). offsets: float32 [E, 9, S] in
    -0.5 .. 0.5, the fraction of a 16th the note was played late (+) or early (-) of its step (0 where no
    hit; the loudest note's). bpms: float32 [E], the tempo at the first bar of each example. has_drums:
    whether any note passed the drum rules. counts: bars_used, non_4_4_bars, empty_bars, leftover_bars,
    merged_notes (notes of the used bars that fell on a cell already hit).
    """

    grids: np.ndarray
    velocities: np.ndarray
    offsets: np.ndarray
    bpms: np.ndarray
    has_drums: bool
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))


class _Note(NamedTuple):
    tick: int
    channel: int
    note: int
    velocity: int
    track: int


class _Bar(NamedTuple):
    start: float
    usable: bool  # a full 4/4 bar
    count: int = 1  # bars in this stretch: a stretch in another meter is one entry, however many bars


def read_drum_midi(path: str | Path, bars_per_example: int = 1) -> DrumFileExamples:
    """Read one MIDI file into drum examples; raises UnreadableMidiError if mido cannot parse it or it lasts
    longer than :data:`corpus.midi_length.MAX_MIDI_BEATS` (checked before any grid is made)."""
    path = Path(path)
    try:
        midi = mido.MidiFile(path, clip=True)
    except Exception as error:  # mido raises OSError, EOFError, ValueError, KeyError ... on bad bytes
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UnreadableMidiError(
            f"{path}: cannot read MIDI file ({reason}); re-export it as a standard MIDI file or remove it"
        ) from None
    if midi.ticks_per_beat <= 0:
        raise UnreadableMidiError(
            f"{path}: SMPTE time division is not supported (no beats to quantise to); "
            "re-export it with a ticks-per-beat division"
        )
    too_long = too_long_message(path, midi)
    if too_long is not None:
        raise UnreadableMidiError(too_long)
    return drum_examples_from_midi(midi, bars_per_example)


def drum_examples_from_midi(midi: mido.MidiFile, bars_per_example: int = 1) -> DrumFileExamples:
    """Drum examples of an in-memory mido file (see the module docstring for the rules)."""
    if bars_per_example < 1:
        raise ValueError(f"bars_per_example must be >= 1, got {bars_per_example}")
    songs = [[t] for t in midi.tracks] if midi.type == 2 else [list(midi.tracks)]
    grids, velocities, offsets, bpms = [], [], [], []
    counts = dict.fromkeys(COUNT_KEYS, 0)
    has_drums = False
    for tracks in songs:
        song = _song_examples(tracks, midi.ticks_per_beat, bars_per_example, counts)
        if song is None:
            continue
        has_drums = True
        grids.extend(song.grids)
        velocities.extend(song.velocities)
        offsets.extend(song.offsets)
        bpms.extend(song.bpms)
    steps = STEPS_PER_BAR * bars_per_example
    return DrumFileExamples(
        grids=np.array(grids, dtype=np.uint8).reshape(-1, NUM_INSTRUMENTS, steps),
        velocities=np.array(velocities, dtype=np.float32).reshape(-1, NUM_INSTRUMENTS, steps),
        offsets=np.array(offsets, dtype=np.float32).reshape(-1, NUM_INSTRUMENTS, steps),
        bpms=np.array(bpms, dtype=np.float32),
        has_drums=has_drums,
        counts=counts,
    )


class _SongExamples(NamedTuple):
    grids: list[np.ndarray]
    velocities: list[np.ndarray]
    offsets: list[np.ndarray]
    bpms: list[float]


def _song_examples(
    tracks: list[mido.MidiTrack], ticks_per_beat: int, bars_per_example: int, counts: dict[str, int]
) -> _SongExamples | None:
    """Examples of one time line of tracks; None when it holds no drum notes. Adds to counts."""
    notes, time_signatures, tempos, track_names = _collect_events(tracks)
    hits = _select_drum_hits(notes, track_names, ticks_per_beat / 8)
    if not hits:
        return None
    hits.sort(key=lambda hit: hit[0])  # in time, so that of equally loud notes in a cell the earliest wins
    sixteenth = ticks_per_beat / 4
    last_tick = max(tick for tick, _, _ in hits)
    bars = _bars_until(time_signatures, ticks_per_beat, last_tick + sixteenth / 2)
    bar_starts = [bar.start for bar in bars]

    grid = np.zeros((len(bars), NUM_INSTRUMENTS, STEPS_PER_BAR), dtype=np.uint8)
    velocity = np.zeros((len(bars), NUM_INSTRUMENTS, STEPS_PER_BAR), dtype=np.float32)
    offset = np.zeros((len(bars), NUM_INSTRUMENTS, STEPS_PER_BAR), dtype=np.float32)
    merged = np.zeros(len(bars), dtype=np.int64)
    for tick, cls, vel in hits:
        # Half a 16th early still belongs to the next bar line: look the bar up half a 16th later.
        index = bisect.bisect_right(bar_starts, tick + sixteenth / 2) - 1
        if not bars[index].usable:
            continue
        position = (tick - bars[index].start) / sixteenth
        step = min(max(0, math.floor(position + 0.5)), STEPS_PER_BAR - 1)
        level = np.float32(vel / 127)
        if grid[index, cls, step]:
            merged[index] += 1
            if level <= velocity[index, cls, step]:
                continue
        grid[index, cls, step] = 1
        velocity[index, cls, step] = level
        offset[index, cls, step] = min(max(position - step, -0.5), 0.5)

    keep = []
    for index, bar in enumerate(bars):
        if not bar.usable:
            counts["non_4_4_bars"] += bar.count
        elif not grid[index].any():
            counts["empty_bars"] += 1
        else:
            keep.append(index)

    song = _SongExamples([], [], [], [])
    tempo_ticks = [tick for tick, _ in tempos]
    for run in _consecutive_runs(keep):
        usable = len(run) - len(run) % bars_per_example
        counts["leftover_bars"] += len(run) - usable
        counts["bars_used"] += usable
        for first in range(0, usable, bars_per_example):
            chunk = run[first : first + bars_per_example]
            counts["merged_notes"] += int(merged[chunk].sum())
            song.grids.append(np.concatenate(grid[chunk], axis=-1))
            song.velocities.append(np.concatenate(velocity[chunk], axis=-1))
            song.offsets.append(np.concatenate(offset[chunk], axis=-1))
            tempo = tempos[bisect.bisect_right(tempo_ticks, bars[chunk[0]].start) - 1][1]
            song.bpms.append(60_000_000 / tempo)
    return song


def _collect_events(
    tracks: list[mido.MidiTrack],
) -> tuple[list[_Note], list[tuple[int, int, int]], list[tuple[int, int]], dict[int, str]]:
    """Note-ons, time signatures (tick, num, den), tempos (tick, us/beat) and names of tracks."""
    notes: list[_Note] = []
    time_signatures: list[tuple[int, int, int]] = []
    tempos: list[tuple[int, int]] = []
    names: dict[int, str] = {}
    for track_index, track in enumerate(tracks):
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                notes.append(_Note(tick, msg.channel, msg.note, msg.velocity, track_index))
            elif msg.type == "time_signature":
                time_signatures.append((tick, msg.numerator, msg.denominator))
            elif msg.type == "set_tempo" and msg.tempo > 0:
                tempos.append((tick, msg.tempo))
            elif msg.type in ("track_name", "instrument_name"):
                names[track_index] = f"{names.get(track_index, '')} {msg.name}".strip()
    # Stable sorts keep the file order of events at the same tick: the last one wins.
    time_signatures.sort(key=lambda event: event[0])
    tempos.sort(key=lambda event: event[0])
    if not tempos or tempos[0][0] > 0:
        tempos.insert(0, (0, _DEFAULT_TEMPO))
    return notes, time_signatures, tempos, names


def _select_drum_hits(
    notes: list[_Note], track_names: dict[int, str], together_ticks: float
) -> list[tuple[int, int, int]]:
    """(tick, class, velocity) of the notes that are drums, by the three rules of the module docstring."""

    def mapped(selection: list[_Note]) -> list[tuple[int, int, int]]:
        hits = [(n.tick, note_to_class(n.note), n.velocity) for n in selection]
        return [(tick, cls, vel) for tick, cls, vel in hits if cls is not None]

    channel_10 = mapped([n for n in notes if n.channel == DRUM_CHANNEL])
    if channel_10:
        return channel_10
    named = mapped([n for n in notes if _DRUM_TRACK_NAME.search(track_names.get(n.track, ""))])
    if named:
        return named
    if len({n.channel for n in notes}) != 1:
        return []
    hits = mapped(notes)
    if len(hits) != len(notes):
        return []
    classes = {cls for _, cls, _ in hits}
    on_kit = sum(n.note in KIT_NOTES for n in notes) / len(notes)
    keeps_time = bool(classes & {CLOSED_HAT, OPEN_HAT, RIDE})
    if on_kit >= _KIT_FRACTION and classes & {KICK, SNARE} and keeps_time:
        if _struck_together(notes, together_ticks) >= _TOGETHER_FRACTION:
            return hits
    return []


def _struck_together(notes: list[_Note], window: float) -> float:
    """Fraction of note-ons with a note-on of another key within `window` ticks (drums hit in layers)."""
    ordered = sorted(notes, key=lambda n: n.tick)
    together = 0
    for index, note in enumerate(ordered):
        neighbours = ordered[max(0, index - 8) : index] + ordered[index + 1 : index + 9]
        together += any(abs(n.tick - note.tick) <= window and n.note != note.note for n in neighbours)
    return together / len(ordered)


def _bars_until(time_signatures: list[tuple[int, int, int]], ticks_per_beat: int, end: float) -> list[_Bar]:
    """Bars from tick 0 until the bar that holds tick `end`, following the time-signature map.

    4/4 bars come one by one; the bars of a stretch in any other meter come as one unusable entry with
    their count, so a meter of tiny bars (1/64, or a corrupt denominator) costs one entry, not millions.
    """
    segments: list[tuple[int, int, int]] = [(0, 4, 4)]
    for tick, numerator, denominator in time_signatures:
        if tick == segments[-1][0]:
            segments[-1] = (tick, numerator, denominator)
        else:
            segments.append((tick, numerator, denominator))
    bars: list[_Bar] = []
    for index, (start, numerator, denominator) in enumerate(segments):
        if start > end:
            break
        segment_end = segments[index + 1][0] if index + 1 < len(segments) else math.inf
        bar_ticks = ticks_per_beat * 4 * numerator / denominator
        if numerator == 4 and denominator == 4:
            bars.extend(_four_four_bars(float(start), bar_ticks, segment_end, end))
        elif bar_ticks < MIN_BAR_BEATS * ticks_per_beat:  # a broken time signature: one unusable bar
            bars.append(_Bar(float(start), False))
        else:
            # as many bars as 4/4 would be enumerated: those starting before the next change and by `end`
            before_change = (
                math.ceil((segment_end - start) / bar_ticks) if segment_end < math.inf else math.inf
            )
            count = min(before_change, math.floor((end - start) / bar_ticks) + 1)
            bars.append(_Bar(float(start), False, int(count)))
    return bars


def _four_four_bars(start: float, bar_ticks: float, segment_end: float, end: float) -> list[_Bar]:
    """The 4/4 bars of a stretch from `start` until the next change or the bar holding `end`."""
    bars = []
    bar_start = start
    while bar_start < segment_end and bar_start <= end:
        # A bar cut short by the next time signature is not a full 4/4 bar.
        bars.append(_Bar(bar_start, bar_start + bar_ticks <= segment_end + 1e-6))
        bar_start += bar_ticks
    return bars


def _consecutive_runs(indices: list[int]) -> list[list[int]]:
    """Split sorted bar indices into runs of consecutive bars."""
    runs: list[list[int]] = []
    for index in indices:
        if runs and runs[-1][-1] == index - 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs

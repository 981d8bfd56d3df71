"""Band pieces as notes tables, and their measure rolls (the encoding shared with ``models/band.py``).

A notes table is ``int32 [n, 4]``: (part, start_step, duration_steps, pitch), steps being sixteenths
from the piece's first downbeat, 16 to a 4/4 measure. A measure roll is ``uint8 [P, 3, 128, 16]``:
``ONSET`` (1 where a note starts), ``SOUNDING`` (1 while a note sounds, its onset step included, also
for a note begun in an earlier measure) and ``DURATION`` (the note's whole length in steps, capped at
``MAX_DURATION``, at its onset cell only). ``models/band.py`` defines the same numbers (models never
import corpus); a test checks that they agree.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

STEPS = 16
PITCHES = 128
ONSET, SOUNDING, DURATION = 0, 1, 2
CHANNELS = 3
MAX_DURATION = 32
KEY_SPAN = (-6, 5)  # the shifts that reach every key once


@dataclass
class BandPiece:
    """One piece: ``notes`` int32 [n, 4] (part, start_step, duration, pitch), sorted by (start, part, pitch);
    ``measures`` of 16 steps hold every note. ``shift`` is the transposition applied when it was read (in
    semitones; the renderer undoes it) and ``key`` the key estimated before that ("E major"; "" if none)."""

    name: str
    source_path: str
    notes: np.ndarray
    measures: int
    shift: int = 0
    key: str = ""

    @property
    def min_pitch(self) -> int:
        return int(self.notes[:, 3].min()) if len(self.notes) else 60

    @property
    def max_pitch(self) -> int:
        return int(self.notes[:, 3].max()) if len(self.notes) else 60

    def shift_range(self, span: tuple[int, int] = KEY_SPAN) -> tuple[int, int]:
        """The transpositions within ``span`` (inclusive) that keep every pitch in 0..127."""
        return max(span[0], -self.min_pitch), min(span[1], PITCHES - 1 - self.max_pitch)


def sort_notes(notes: np.ndarray) -> np.ndarray:
    """``notes`` [n, 4] as int32, ordered by (start, part, pitch)."""
    notes = np.asarray(notes, dtype=np.int32).reshape(-1, 4)
    return notes[np.lexsort((notes[:, 3], notes[:, 0], notes[:, 1]))]


def measure_rolls(piece: BandPiece, start: int, count: int, parts: int, shift: int = 0) -> np.ndarray:
    """Measures ``start .. start + count - 1`` of ``piece`` as uint8 [count, P, 3, 128, 16], transposed by
    ``shift`` semitones; measures before 0 or after the piece are empty."""
    return window_rolls([piece], [start], count, parts, [shift])[0]


def window_rolls(
    pieces: Sequence[BandPiece],
    starts: Sequence[int] | np.ndarray,
    count: int,
    parts: int,
    shifts: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """A batch of windows: ``pieces[b]`` from measure ``starts[b]``, ``count`` measures, transposed by
    ``shifts[b]`` -> uint8 [B, count, P, 3, 128, 16]. Raises ValueError when a shift leaves 0..127."""
    batch = len(pieces)
    starts = np.asarray(starts, dtype=np.int64).reshape(batch)
    shifts = np.zeros(batch, np.int64) if shifts is None else np.asarray(shifts, np.int64).reshape(batch)
    length = count * STEPS
    rolls = np.zeros((batch, count, parts, CHANNELS, PITCHES, STEPS), np.uint8)
    if batch == 0:
        return rolls
    # One table of every note of every window, then only the notes that sound inside their window.
    every = np.concatenate([piece.notes for piece in pieces]).astype(np.int64)
    owner = np.repeat(np.arange(batch), [len(piece.notes) for piece in pieces])
    every[:, 1] -= starts[owner] * STEPS
    every[:, 3] += shifts[owner]
    keep = (every[:, 1] + every[:, 2] > 0) & (every[:, 1] < length)
    b = owner[keep]
    part, begin, duration, pitch = every[keep].T
    if len(pitch) and (pitch.min() < 0 or pitch.max() >= PITCHES):
        raise ValueError(f"a shift moves pitches out of 0..127 (range {pitch.min()}..{pitch.max()})")
    if len(part) and part.max() >= parts:
        raise ValueError(f"a note of part {part.max()} does not fit in {parts} parts")

    def cells(time: np.ndarray, channel: int, rows: np.ndarray) -> np.ndarray:
        measure, step = np.divmod(time, STEPS)
        index = ((b[rows] * count + measure) * parts + part[rows]) * CHANNELS + channel
        return (index * PITCHES + pitch[rows]) * STEPS + step

    flat = rolls.reshape(-1)
    onsets = np.flatnonzero(begin >= 0)
    flat[cells(begin[onsets], ONSET, onsets)] = 1
    flat[cells(begin[onsets], DURATION, onsets)] = np.minimum(duration[onsets], MAX_DURATION)
    # Every sounding cell of every note, without a Python loop: note index repeated per cell.
    low = np.maximum(begin, 0)
    spans = np.minimum(begin + duration, length) - low
    rows = np.repeat(np.arange(len(spans)), spans)
    within = np.arange(len(rows)) - np.repeat(np.cumsum(spans) - spans, spans)
    flat[cells(low[rows] + within, SOUNDING, rows)] = 1
    return rolls


def rolls_to_notes(rolls: np.ndarray) -> np.ndarray:
    """Measure rolls [M, P, 3, 128, 16] (uint8, or float thresholded at 0.5) -> notes int32 [n, 4].

    A note starts at an ONSET cell, or where SOUNDING begins without one (a note begun before the first
    measure); it lasts while SOUNDING continues without a new onset of its pitch, across barlines. An
    onset without SOUNDING lasts its DURATION (at least one step)."""
    rolls = np.asarray(rolls)
    measures, parts = rolls.shape[:2]
    length = measures * STEPS

    def lanes(channel: int) -> np.ndarray:  # [M, P, 128, S] -> [P * 128, M * S]
        return rolls[:, :, channel].transpose(1, 2, 0, 3).reshape(parts * PITCHES, length)

    onset = lanes(ONSET) > 0.5
    sounding = lanes(SOUNDING) > 0.5
    before = np.zeros_like(sounding)
    before[:, 1:] = sounding[:, :-1]
    starts = onset | (sounding & ~before)
    # For each cell, the first later step where the note there ends (silence or a new onset).
    boundary = np.where(~sounding | onset, np.arange(length), length)
    later = np.full_like(boundary, length)
    later[:, :-1] = boundary[:, 1:]
    ends = np.minimum.accumulate(later[:, ::-1], axis=1)[:, ::-1]
    lane, time = np.nonzero(starts)
    written = np.rint(lanes(DURATION)[lane, time].astype(np.float64)).astype(np.int64)
    duration = np.where(sounding[lane, time], ends[lane, time] - time, np.maximum(written, 1))
    notes = np.stack([lane // PITCHES, time, duration, lane % PITCHES], axis=1)
    return sort_notes(notes)

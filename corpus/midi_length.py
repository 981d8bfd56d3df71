"""The one bound on a MIDI file's length in time, checked before its notes are rendered to a grid.

Delta times are variable-length numbers of up to 28 bits: a 36-byte file can put a note 268 million ticks
after the previous one, and a grid of 16 steps per bar up to that note would need gigabytes. Every MIDI
reader of the corpora (drum grids, multi-part pieces) measures each track in beats first and refuses a
file longer than :data:`MAX_MIDI_BEATS`: 10,000 bars of 4/4, five and a half hours at 120 bpm, far beyond
any song, so only a broken file (or a time gap written by mistake) is refused.
"""

import math
from pathlib import Path

import mido

MAX_MIDI_BEATS = 40_000
# A bar shorter than a 64th note (a meter such as 1/256, or a corrupt denominator up to 2**255) cannot be
# quantised to sixteenths: such a meter is read as one unusable stretch, never bar by bar.
MIN_BAR_BEATS = 1 / 16


def midi_length_beats(midi: mido.MidiFile) -> float:
    """Beats from the start to the last event of the longest track (ticks / ticks_per_beat)."""
    longest = max((sum(message.time for message in track) for track in midi.tracks), default=0)
    return longest / max(1, midi.ticks_per_beat)


def too_long_message(path: str | Path, midi: mido.MidiFile) -> str | None:
    """One line naming ``path`` when it lasts more than :data:`MAX_MIDI_BEATS` beats, else None."""
    beats = midi_length_beats(midi)
    if beats <= MAX_MIDI_BEATS:
        return None
    return (
        f"{path}: its last event comes after {math.floor(beats):,} beats ({math.floor(beats / 4):,} bars of 4/4), "
        f"more than the {MAX_MIDI_BEATS:,} beats read; a time gap this long is a broken file: "
        "cut it in a MIDI editor or remove it"
    )

"""Groups of band pieces that must stay on one side of a split: versions of one tune.

Chorales reuse hymn tunes: ``bwv112.5`` and ``bwv112.5-sc`` are two settings of one melody, and a dozen
cantatas harmonise the Passion chorale. Held-out pieces that share their tune with a training piece test
memory, not generalisation, and a user's folder can hold near-duplicate files the same way. Two pieces are
one group when, read from the top part (the melody) in a transposition-invariant way:

- they share at least ``SHARED_MEASURES`` of the measures of the shorter one (a measure is the onset steps
  of its notes and each note's interval from the note before; measures of one note or one pitch are not
  counted, and at least ``LEAST_SHARED`` must match), or
- they open with the same phrase: the intervals between the first ``OPENING_NOTES`` notes (with at least
  ``OPENING_PITCHES`` distinct pitches, so that a drone or a repeated note is no phrase), or
- their names are variants of one chorale number (``bwv18.5-lz`` and ``bwv18.5-w``).

Groups are the connected components of these pairs (union-find) and are named after their first piece
name in sorted order.
"""

import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from latentlive.corpus.band_rolls import STEPS, BandPiece

SHARED_MEASURES = 0.5
LEAST_SHARED = 2
OPENING_NOTES = 9
OPENING_PITCHES = 4
_CHORALE_VARIANT = re.compile(r"^(bwv\d+(?:\.\d+)?)-[\w.-]+$", re.IGNORECASE)


def melody(piece: BandPiece, part: int = 0) -> np.ndarray:
    """The notes ``[n, 4]`` of ``part`` in order of onset (the highest first at one onset)."""
    notes = piece.notes[piece.notes[:, 0] == part]
    return notes[np.lexsort((-notes[:, 3], notes[:, 1]))]


def measure_signatures(piece: BandPiece, part: int = 0) -> Counter:
    """The transposition-invariant measures of ``part``: ``((onset step, interval from the previous note),
    ...)`` per measure of two notes and two pitches or more, counted."""
    notes = melody(piece, part)
    intervals = np.diff(notes[:, 3], prepend=notes[:1, 3]) if len(notes) else notes[:, 3]
    measures: dict[int, list[tuple[int, int]]] = defaultdict(list)
    pitches: dict[int, set[int]] = defaultdict(set)
    for (_, start, _, pitch), interval in zip(notes, intervals, strict=True):
        measures[int(start) // STEPS].append((int(start) % STEPS, int(interval)))
        pitches[int(start) // STEPS].add(int(pitch))
    return Counter(tuple(row) for m, row in measures.items() if len(row) >= 2 and len(pitches[m]) >= 2)


def opening_phrase(piece: BandPiece, part: int = 0) -> tuple[int, ...] | None:
    """The intervals between the first ``OPENING_NOTES`` notes of ``part``, or None when there are fewer notes
    or fewer than ``OPENING_PITCHES`` distinct pitches among them."""
    pitches = melody(piece, part)[:OPENING_NOTES, 3]
    if len(pitches) < OPENING_NOTES or len(set(pitches.tolist())) < OPENING_PITCHES:
        return None
    return tuple(np.diff(pitches).tolist())


def shared_measures(pieces: Sequence[BandPiece], part: int = 0) -> dict[tuple[int, int], float]:
    """For each pair ``(i, j)``, i < j, that shares a measure signature: the share of the shorter piece's
    counted measures also in the other (0 when fewer than ``LEAST_SHARED`` match)."""
    signatures = [measure_signatures(piece, part) for piece in pieces]
    holders: dict[tuple, list[tuple[int, int]]] = defaultdict(list)
    for index, counts in enumerate(signatures):
        for signature, count in counts.items():
            holders[signature].append((index, count))
    shared: Counter = Counter()
    for held in holders.values():
        for (a, count_a), (b, count_b) in itertools.combinations(held, 2):
            shared[a, b] += min(count_a, count_b)
    totals = [sum(counts.values()) for counts in signatures]
    return {
        pair: (count / min(totals[pair[0]], totals[pair[1]]) if count >= LEAST_SHARED else 0.0)
        for pair, count in shared.items()
    }


def piece_groups(pieces: Sequence[BandPiece], part: int = 0) -> list[str]:
    """The group name of each piece (see the module docstring); a piece alone is its own group."""
    parent = list(range(len(pieces)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(members: Sequence[int]) -> None:
        for other in members[1:]:
            parent[root(other)] = root(members[0])

    for pair, share in shared_measures(pieces, part).items():
        if share >= SHARED_MEASURES:
            join(pair)
    same: dict[object, list[int]] = defaultdict(list)
    for index, piece in enumerate(pieces):
        opening = opening_phrase(piece, part)
        if opening is not None:
            same["opening", opening].append(index)
        variant = _CHORALE_VARIANT.match(piece.name)
        same["name", (variant.group(1) if variant else piece.name).lower()].append(index)
    for members in same.values():
        join(members)
    names: dict[int, str] = {}
    for index in sorted(range(len(pieces)), key=lambda i: pieces[i].name):
        names.setdefault(root(index), pieces[index].name)
    return [names[root(index)] for index in range(len(pieces))]

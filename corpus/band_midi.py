"""The band corpus of the RMVAE band player: multi-part pieces in 4/4 measures of 16 sixteenths.

Sources: a folder of ``.mid`` / ``.midi`` files (searched recursively; names starting with ``.`` are
skipped; how files become parts is in :mod:`corpus.multipart_midi`), or, when ``db`` is None, the Bach
chorales of the music21 wheel (:mod:`corpus.chorales`). Parsed pieces are cached as ``.npz`` in
``cache_dir``, keyed by the source (for a folder: its files, sizes and mtimes) and ``max_pieces``; the
options below are applied on every load, which takes milliseconds.

- Parts: ``parts`` names them (case-insensitive: a track name, a GM program name or ``channel N``; an
  exact name first, else a part whose name holds all the words, the busiest if several); a piece that
  lacks one is skipped (``missing_parts``). Without names the ``busiest`` N parts of each piece (by note
  count) are taken, ordered by mean pitch from high to low; pieces with fewer are ``too_few_parts``.
- Kinds: ``"auto"`` makes a part mono when at most one of its notes sounds at >= 95 % of the steps where
  it sounds, over the corpus; else poly. In a mono part a later onset cuts the note before it (of notes
  starting together the highest stays); in a poly part the same holds per pitch.
- Leading empty measures are dropped. ``transpose``: ``"normalise"`` moves each piece into C major or A
  minor (Krumhansl-Schmuckler key estimate over duration-weighted pitch classes, shift in -6..+5);
  ``"all"`` keeps pieces as they are, and :meth:`BandCorpus.shift_ranges` gives the shifts in -6..+5
  that keep each piece in 0..127, for augmentation into all keys; ``"none"`` keeps them as they are.
- Groups: versions of one tune (pieces sharing most measures or the opening phrase of their top part, or
  chorale variants such as ``bwv112.5-sc``) are one group (:mod:`corpus.band_groups`); every other piece
  is its own. Groups are dealt to train / validation / test by ``corpus.splits.split_examples`` (an order
  drawn from a hash of seed and group name: adding a file moves no other group between sides).
"""

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latentlive.core.errors import UserError
from latentlive.corpus.band_groups import piece_groups
from latentlive.corpus.band_rolls import (
    CHANNELS,
    DURATION,
    KEY_SPAN,
    MAX_DURATION,
    ONSET,
    PITCHES,
    SOUNDING,
    STEPS,
    BandPiece,
    measure_rolls,
    rolls_to_notes,
    sort_notes,
    window_rolls,
)
from latentlive.corpus.band_sources import read_raw_corpus
from latentlive.corpus.multipart_midi import (
    RawPart,
    RawPiece,
    SkippedFile,
    read_multipart_midi,
    write_band_midi,
)
from latentlive.corpus.splits import DEFAULT_FRACTIONS, SIDES, Split, split_examples

__all__ = [
    "CHANNELS", "DURATION", "KEY_SPAN", "MAX_DURATION", "ONSET", "PITCHES", "SOUNDING", "STEPS",
    "BandCorpus", "BandPiece", "estimate_key", "load_band_corpus", "measure_rolls", "read_held_out_pieces",
    "read_seed_midi", "rolls_to_notes", "window_rolls", "write_band_midi",
]  # fmt: skip

TRANSPOSE_MODES = ("normalise", "all", "none")
KINDS = ("mono", "poly")
MONO_FRACTION = 0.95
PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
# Krumhansl & Kessler's probe-tone ratings of the 12 pitch classes above a major / minor tonic.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclass
class BandCorpus:
    """Pieces of ``len(part_names)`` parts. ``split`` maps train / validation / test to piece indices, and
    ``split_record`` is the :class:`Split` of the pieces' ``groups`` (a name per piece) that dealt them.
    ``skipped`` counts the files or pieces left out by reason, and ``drum_parts`` the drum channels left
    out of folder pieces. ``source`` is "chorales" or the folder; ``transpose`` the mode applied."""

    part_names: list[str]
    part_kinds: list[str]
    pieces: list[BandPiece]
    split: dict[str, list[int]]
    skipped: dict[str, int]
    source: str = "chorales"
    transpose: str = "normalise"
    groups: list[str] = field(default_factory=list)
    split_record: Split | None = None

    @property
    def parts(self) -> int:
        return len(self.part_names)

    def piece_groups(self) -> list[str]:
        """The group of each piece (each piece its own when ``groups`` was not given)."""
        return list(self.groups) or [piece.name for piece in self.pieces]

    def shift_ranges(self) -> np.ndarray:
        """int64 [N, 2]: the lowest and highest shift of each piece for augmentation; (0, 0) unless
        ``transpose == "all"``."""
        if self.transpose != "all":
            return np.zeros((len(self.pieces), 2), np.int64)
        return np.array([piece.shift_range() for piece in self.pieces], np.int64).reshape(-1, 2)


def load_band_corpus(
    db: Path | None,
    *,
    parts: Sequence[str] | None = None,
    busiest: int = 4,
    kinds: str | Sequence[str] = "auto",
    transpose: str = "normalise",
    max_pieces: int | None = None,
    cache_dir: Path | None = None,
    seed: int = 0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    log: Callable[[str], None] = print,
) -> BandCorpus:
    """The band corpus of folder ``db`` (the chorales when None); see the module docstring."""
    if transpose not in TRANSPOSE_MODES:
        raise UserError(f"transpose = {transpose!r}: use one of {', '.join(TRANSPOSE_MODES)}")
    if not parts and busiest < 1:
        raise UserError(f"busiest = {busiest}: must be 1 or more; set it, or name the parts")
    if max_pieces is not None and max_pieces < 1:
        raise UserError(f"max_pieces = {max_pieces}: must be 1 or more, or None for all pieces")
    raw, skipped, source = read_raw_corpus(db, max_pieces, cache_dir, log)
    if parts:
        chosen, part_names = _choose_named(raw, [str(name) for name in parts], source, skipped)
    else:
        chosen, part_names = _choose_busiest(raw, busiest, source, skipped)
    part_kinds = _part_kinds(kinds, [c[1] for c in chosen], part_names)
    pieces = [_band_piece(piece, tracks, part_kinds, transpose, trim=True) for piece, tracks in chosen]
    groups = piece_groups(pieces)
    record, sides = split_examples(groups, fractions=fractions, seed=seed)
    split = {side: sides[side].tolist() for side in SIDES}
    corpus = BandCorpus(part_names, part_kinds, pieces, split, skipped, source, transpose, groups, record)
    _log_summary(corpus, log)
    return corpus


def read_seed_midi(
    path: Path, part_names: Sequence[str], part_kinds: Sequence[str], *, transpose: str = "none"
) -> BandPiece:
    """A user's MIDI file with the model's parts: the parts named ``part_names``, else its busiest
    ``len(part_names)`` parts; ``transpose`` "normalise" moves it to C major / A minor (``shift`` says by
    how much). Nothing is trimmed, so measure numbers are the file's. Raises UserError."""
    if transpose not in TRANSPOSE_MODES:
        raise UserError(f"transpose = {transpose!r}: use one of {', '.join(TRANSPOSE_MODES)}")
    path = Path(path)
    wanted = ", ".join(part_names)
    if not path.is_file():
        raise UserError(f"{path}: seed MIDI file not found; pass a MIDI file with the parts {wanted}")
    try:
        raw = read_multipart_midi(path, path.stem)
    except SkippedFile as error:
        raise UserError(f"{error}; pass a 4/4 MIDI file with the parts {wanted}") from None
    tracks = _match_parts(raw.parts, list(part_names))
    if tracks is None:
        if len(raw.parts) < len(part_names):
            raise UserError(
                f"{path}: {len(raw.parts)} part(s) besides drums, the model plays {len(part_names)} ({wanted}); "
                "add tracks named after the model's parts"
            )
        tracks = _busiest(raw.parts, len(part_names))
    return _band_piece(raw, tracks, list(part_kinds), transpose, trim=False)


def read_held_out_pieces(
    db: Path,
    part_names: Sequence[str],
    part_kinds: Sequence[str],
    *,
    transpose: str = "none",
    cache_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> list[BandPiece]:
    """Every piece of folder ``db`` with a model's parts, held out from its training: the parts named
    ``part_names`` (as :func:`load_band_corpus` matches names), else the busiest ``len(part_names)`` parts;
    pieces with fewer parts are left out (logged). ``transpose`` as the model was trained ("normalise" or
    not). Raises UserError when no piece has the parts."""
    raw, _, source = read_raw_corpus(Path(db), None, cache_dir, log)
    pieces, too_few = [], 0
    for piece in raw:
        tracks = _match_parts(piece.parts, list(part_names))
        if tracks is None and len(piece.parts) >= len(part_names):
            tracks = _busiest(piece.parts, len(part_names))
        if tracks is None:
            too_few += 1
            continue
        pieces.append(_band_piece(piece, tracks, list(part_kinds), transpose, trim=True))
    if not pieces:
        raise UserError(
            f"{source}: no piece has the model's {len(part_names)} parts ({', '.join(part_names)}) or as many "
            "parts besides drums; hold out MIDI files with these parts"
        )
    if too_few:
        log(f"band held out {source}: left out {too_few} piece(s) with fewer than {len(part_names)} parts")
    return pieces


def estimate_key(notes: np.ndarray) -> tuple[int, str]:
    """(tonic pitch class, "major" | "minor") of notes [n, 4] whose profile correlates best with the
    duration-weighted pitch classes; (0, "major") for no notes."""
    weights = np.bincount(notes[:, 3] % 12, weights=notes[:, 2], minlength=12)
    if not weights.any():
        return 0, "major"
    profiles = np.stack([np.roll(p, t) for p in (MAJOR_PROFILE, MINOR_PROFILE) for t in range(12)])
    profiles = (profiles - profiles.mean(1, keepdims=True)) / profiles.std(1, keepdims=True)
    centred = weights - weights.mean()
    best = int(np.argmax(profiles @ centred))  # the same denominator for every key: no need to divide
    return best % 12, ("major", "minor")[best // 12]


def _normalising_shift(notes: np.ndarray) -> tuple[str, int]:
    tonic, mode = estimate_key(notes)
    target = 0 if mode == "major" else 9  # C major, A minor
    shift = (target - tonic + 6) % 12 - 6
    if len(notes):
        for candidate in (shift, shift + 12, shift - 12):
            if notes[:, 3].min() + candidate >= 0 and notes[:, 3].max() + candidate < PITCHES:
                shift = candidate
                break
    return f"{PITCH_CLASSES[tonic]} {mode}", shift


def _clean_part(notes: np.ndarray, mono: bool) -> np.ndarray:
    """[n, 3] (start, duration, pitch) with no two notes sounding at once (mono) or on one pitch (poly)."""
    if not len(notes):
        return notes
    lane = np.zeros(len(notes), np.int64) if mono else notes[:, 2].astype(np.int64)
    # Within a lane by start; of notes starting together, the highest (mono) / longest (poly) first.
    order = np.lexsort((-notes[:, 2 if mono else 1], notes[:, 0], lane))
    notes, lane = notes[order], lane[order]
    first = np.ones(len(notes), bool)
    first[1:] = (lane[1:] != lane[:-1]) | (notes[1:, 0] != notes[:-1, 0])
    notes, lane = notes[first].copy(), lane[first]
    follows = lane[1:] == lane[:-1]
    gap = notes[1:, 0] - notes[:-1, 0]
    notes[:-1, 1] = np.where(follows, np.minimum(notes[:-1, 1], gap), notes[:-1, 1])
    return notes


def _band_piece(
    raw: RawPiece, tracks: list[RawPart], kinds: list[str], transpose: str, trim: bool
) -> BandPiece:
    tables = []
    for part, (track, kind) in enumerate(zip(tracks, kinds, strict=True)):
        clean = _clean_part(track.notes, kind == "mono")
        tables.append(np.column_stack([np.full(len(clean), part), clean]).astype(np.int32).reshape(-1, 4))
    notes = sort_notes(np.concatenate(tables))
    if trim and len(notes):
        notes[:, 1] -= notes[:, 1].min() // STEPS * STEPS
    key, shift = _normalising_shift(notes) if transpose == "normalise" else ("", 0)
    notes[:, 3] += shift
    end = int((notes[:, 1] + notes[:, 2]).max()) if len(notes) else 1
    return BandPiece(raw.name, raw.source_path, notes, max(1, -(-end // STEPS)), shift, key)


def _words(name: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", name.lower())


def _match_parts(parts: list[RawPart], wanted: list[str]) -> list[RawPart] | None:
    """The part for each wanted name (exact name first, else all its words in a name; busiest of the
    candidates; each part used once), or None when one is missing."""
    chosen: list[int] = []
    for name in wanted:
        free = [i for i in range(len(parts)) if i not in chosen]
        exact = [i for i in free if name.strip().lower() in (n.lower() for n in parts[i].names)]
        words = set(_words(name))
        loose = [i for i in free if words and any(words <= set(_words(n)) for n in parts[i].names)]
        candidates = exact or loose
        if not candidates:
            return None
        chosen.append(max(candidates, key=lambda i: len(parts[i].notes)))
    return [parts[i] for i in chosen]


def _busiest(parts: list[RawPart], count: int) -> list[RawPart]:
    ranked = sorted(range(len(parts)), key=lambda i: -len(parts[i].notes))[:count]  # stable on ties
    return [parts[i] for i in sorted(ranked, key=lambda i: -_mean_pitch(parts[i]))]


def _mean_pitch(part: RawPart) -> float:
    return float(part.notes[:, 2].mean()) if len(part.notes) else 0.0


def _choose_named(
    raw: list[RawPiece], names: list[str], source: str, skipped: dict[str, int]
) -> tuple[list[tuple[RawPiece, list[RawPart]]], list[str]]:
    lowered = [name.strip().lower() for name in names]
    if len(set(lowered)) < len(lowered) or not all(lowered):
        raise UserError(f"parts = {names}: name each part once, with a non-empty name")
    for name in names:
        if not any(_match_parts(piece.parts, [name]) for piece in raw):
            found = sorted({n for piece in raw for part in piece.parts for n in part.names[:-1]})
            shown = ", ".join(found[:12]) + (" ..." if len(found) > 12 else "")
            raise UserError(
                f"{source}: part {name!r} matches no track name, program name or channel in {len(raw)} "
                f"piece(s) (names found: {shown or 'none'}); name parts as found, or set busiest instead"
            )
    chosen = []
    for piece in raw:
        tracks = _match_parts(piece.parts, names)
        if tracks is None:
            skipped["missing_parts"] = skipped.get("missing_parts", 0) + 1
        else:
            chosen.append((piece, tracks))
    if not chosen:
        raise UserError(
            f"{source}: no piece has all the parts {', '.join(names)} (each is in some piece); "
            "name parts that the files share, or set busiest instead"
        )
    return chosen, [name.strip() for name in names]


def _choose_busiest(
    raw: list[RawPiece], busiest: int, source: str, skipped: dict[str, int]
) -> tuple[list[tuple[RawPiece, list[RawPart]]], list[str]]:
    chosen = []
    for piece in raw:
        if len(piece.parts) < busiest:
            skipped["too_few_parts"] = skipped.get("too_few_parts", 0) + 1
        else:
            chosen.append((piece, _busiest(piece.parts, busiest)))
    if not chosen:
        most = max(len(piece.parts) for piece in raw)
        raise UserError(
            f"{source}: no piece has {busiest} parts besides drums (at most {most}); set busiest to {most} or less"
        )
    names: list[str] = []
    for position in range(busiest):  # the name most pieces give the part at this position
        common = Counter(tracks[position].names[0].lower() for _, tracks in chosen).most_common(1)[0][0]
        names.append(common if common not in names else f"part {position + 1}")
    return chosen, names


def _part_kinds(kinds: str | Sequence[str], tracks: list[list[RawPart]], names: list[str]) -> list[str]:
    if isinstance(kinds, str) and kinds in KINDS:
        return [kinds] * len(names)
    if not isinstance(kinds, str):
        kinds = [str(kind) for kind in kinds]
        if len(kinds) != len(names) or any(kind not in KINDS for kind in kinds):
            raise UserError(
                f"kinds = {kinds}: give one of mono, poly for each part ({', '.join(names)}), or 'auto'"
            )
        return kinds
    if kinds != "auto":
        raise UserError(f"kinds = {kinds!r}: use 'auto', 'mono', 'poly' or a list with one per part")
    single = np.zeros(len(names))
    sounding = np.zeros(len(names))
    for piece_tracks in tracks:
        for part, track in enumerate(piece_tracks):
            level = _sounding_notes(track.notes)
            single[part] += np.count_nonzero(level == 1)
            sounding[part] += np.count_nonzero(level)
    return ["mono" if s >= MONO_FRACTION * t else "poly" for s, t in zip(single, sounding, strict=True)]


def _sounding_notes(notes: np.ndarray) -> np.ndarray:
    """How many notes of [n, 3] (start, duration, pitch) sound at each step."""
    if not len(notes):
        return np.zeros(0, np.int64)
    ends = notes[:, 0].astype(np.int64) + notes[:, 1]
    change = np.zeros(int(ends.max()) + 1, np.int64)
    np.add.at(change, notes[:, 0], 1)
    np.add.at(change, ends, -1)
    return np.cumsum(change)[:-1]


def _log_summary(corpus: BandCorpus, log: Callable[[str], None]) -> None:
    measures = sum(piece.measures for piece in corpus.pieces)
    sizes = ", ".join(f"{name} {len(indices)}" for name, indices in corpus.split.items())
    groups = len(set(corpus.groups))
    log(
        f"band corpus {corpus.source}: {len(corpus.pieces)} pieces in {groups} groups (versions of a tune), "
        f"{measures} measures ({sizes} pieces)"
    )
    for part, (name, kind) in enumerate(zip(corpus.part_names, corpus.part_kinds, strict=True)):
        pitches = np.concatenate([p.notes[p.notes[:, 0] == part, 3] for p in corpus.pieces])
        span = f"pitches {pitches.min()}..{pitches.max()}" if len(pitches) else "no notes"
        log(f"band corpus {corpus.source}: part {part} {name!r} {kind}, {len(pitches)} notes, {span}")
    skips = ", ".join(f"{name}={count}" for name, count in corpus.skipped.items())
    log(f"band corpus {corpus.source}: skipped {skips or 'nothing'}; transpose {corpus.transpose}")

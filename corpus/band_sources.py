"""The sources of the band corpus, parsed into raw pieces (every part, before parts are chosen) and cached.

A folder is searched recursively for ``.mid`` / ``.midi`` files (names starting with ``.`` are skipped:
editor temp files, macOS ``._`` forks); without a folder the music21 chorales are parsed. The raw pieces
are cached as one ``.npz`` in ``cache_dir``, keyed by the source (a folder's files with their sizes and
mtimes; the music21 version) and ``max_pieces``; see :mod:`corpus.band_midi` for what is made of them.
"""

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np

from latentlive.core.errors import UserError
from latentlive.corpus.chorales import chorale_paths, read_chorale
from latentlive.corpus.multipart_midi import RawPart, RawPiece, SkippedFile, read_multipart_midi
from latentlive.corpus.npz_cache import NpzCache, folder_listing

# Bump when a reader or the cache layout changes: old caches are then ignored.
CACHE_VERSION = 2  # 2: files longer than corpus.midi_length.MAX_MIDI_BEATS are skipped (too_long_files)
SKIP_KEYS = ("unreadable_files", "too_long_files", "type_2_files", "not_4_4", "no_notes", "drum_parts")
LOGGED_SKIPS = ("unreadable_files", "too_long_files")  # a musician wants to know which file and why
MIDI_SUFFIXES = (".mid", ".midi")


@dataclass
class _PackedPieces:
    """Raw pieces as flat arrays, for the cache. P pieces, Q parts: ``piece_drums [P]``, ``part_pieces [Q]``
    (the piece of each part), ``part_names [Q]`` (a part's names joined by newlines), ``notes [M, 4]``
    int32 (the part, then a part's note row)."""

    piece_names: list[str]
    piece_paths: list[str]
    piece_drums: np.ndarray
    part_pieces: np.ndarray
    part_names: list[str]
    notes: np.ndarray
    skipped: dict[str, int]


_CACHE = NpzCache(_PackedPieces, "band", "band corpus", CACHE_VERSION)


def read_raw_corpus(
    db: Path | None, max_pieces: int | None, cache_dir: Path | None, log: Callable[[str], None]
) -> tuple[list[RawPiece], dict[str, int], str]:
    """The raw pieces of folder ``db`` (the chorales when None), the skipped counts, and the source's name."""
    if db is None:
        source = "chorales"
        settings = {
            "source": "music21 bach chorales",
            "music21": version("music21"),
            "max_pieces": max_pieces,
        }
    else:
        db = Path(db)
        source = str(db)
        files = _midi_files(db)
        settings = {"files": folder_listing(db, files), "max_pieces": max_pieces}
    packed = _CACHE.load(cache_dir, settings, log)
    if packed is not None:
        return *_unpack(packed), source
    if db is None:
        pieces, skipped = _read_chorales(max_pieces, log)
    else:
        pieces, skipped = _read_folder(db, files, max_pieces, log)
    _CACHE.save(cache_dir, settings, _pack(pieces, skipped), log)
    return pieces, skipped, source


def _midi_files(db: Path) -> list[Path]:
    if not db.is_dir():
        what = "does not exist" if not db.exists() else "is not a folder"
        raise UserError(f"{db}: band corpus folder {what}; pass --db with a folder of multi-part MIDI files")
    files = [
        path
        for path in db.rglob("*")
        if path.suffix.lower() in MIDI_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(db).parts)
        and path.is_file()
    ]
    if not files:
        raise UserError(
            f"{db}: no .mid or .midi files found (searched sub-folders too); add multi-part MIDI files"
        )
    return sorted(files, key=lambda path: path.relative_to(db).as_posix())


def _read_folder(
    db: Path, files: list[Path], max_pieces: int | None, log: Callable[[str], None]
) -> tuple[list[RawPiece], dict[str, int]]:
    skipped = dict.fromkeys(SKIP_KEYS, 0)
    pieces = []
    for path in files:
        if max_pieces is not None and len(pieces) >= max_pieces:
            break
        try:
            piece = read_multipart_midi(path, path.relative_to(db).as_posix())
        except SkippedFile as error:
            skipped[error.reason] += 1
            if error.reason in LOGGED_SKIPS:
                log(f"band corpus: skipped {error}")
            continue
        skipped["drum_parts"] += piece.drum_parts
        pieces.append(piece)
    if not pieces:
        reasons = ", ".join(f"{count} {reason}" for reason, count in skipped.items() if count)
        raise UserError(
            f"{db}: no usable piece among {len(files)} MIDI files ({reasons}); add 4/4 MIDI files with pitched parts"
        )
    return pieces, skipped


def _read_chorales(
    max_pieces: int | None, log: Callable[[str], None]
) -> tuple[list[RawPiece], dict[str, int]]:
    paths, duplicates = chorale_paths()
    skipped = {"unreadable_files": 0, "not_4_4": 0, "not_satb": 0, "duplicate_files": duplicates}
    log(f"band corpus: parsing up to {len(paths)} chorales with music21 (about 0.1 s each, cached after)")
    pieces = []
    for path in paths:
        if max_pieces is not None and len(pieces) >= max_pieces:
            break
        try:
            pieces.append(read_chorale(path))
        except SkippedFile as error:
            skipped[error.reason] += 1
    return pieces, skipped


def _pack(pieces: list[RawPiece], skipped: dict[str, int]) -> _PackedPieces:
    owners, names, tables = [], [], []
    for index, piece in enumerate(pieces):
        for part in piece.parts:
            tables.append(np.column_stack([np.full(len(part.notes), len(names)), part.notes]).reshape(-1, 4))
            owners.append(index)
            names.append("\n".join(part.names))
    return _PackedPieces(
        piece_names=[p.name for p in pieces],
        piece_paths=[p.source_path for p in pieces],
        piece_drums=np.array([p.drum_parts for p in pieces], dtype=np.int64),
        part_pieces=np.array(owners, dtype=np.int64),
        part_names=names,
        notes=np.concatenate(tables).astype(np.int32) if tables else np.zeros((0, 4), np.int32),
        skipped=skipped,
    )


def _unpack(packed: _PackedPieces) -> tuple[list[RawPiece], dict[str, int]]:
    pieces = [
        RawPiece(name, path, [], int(drums))
        for name, path, drums in zip(packed.piece_names, packed.piece_paths, packed.piece_drums, strict=True)
    ]
    notes = packed.notes
    order = np.argsort(notes[:, 0], kind="stable")
    bounds = np.searchsorted(notes[order, 0], np.arange(len(packed.part_names) + 1))
    for part, (owner, names) in enumerate(zip(packed.part_pieces, packed.part_names, strict=True)):
        table = notes[order[bounds[part] : bounds[part + 1]], 1:]
        pieces[int(owner)].parts.append(RawPart(tuple(names.split("\n")), np.ascontiguousarray(table)))
    return pieces, packed.skipped

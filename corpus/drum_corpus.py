"""The drum corpus of the drum VAE: a user folder of drum MIDI files or the built-in style patterns.

A folder is searched recursively for ``.mid`` / ``.midi`` files (names starting with ``.`` are
skipped: editor temp files, macOS ``._`` forks). The first sub-folder under the folder is the style
label; files directly in it get the style ``default``. The tensors are cached as ``.npz`` in
``cache_dir``, keyed by a hash of the file list (relative path, size, mtime) and of the settings, so
touching a file or changing a setting rebuilds the cache.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latentlive.core.errors import UserError
from latentlive.corpus.drum_map import NUM_INSTRUMENTS
from latentlive.corpus.drum_midi import STEPS_PER_BAR, UnreadableMidiError, read_drum_midi
from latentlive.corpus.drum_styles import STYLE_NAMES, generate_style_corpus
from latentlive.corpus.npz_cache import NpzCache, folder_listing

# Bump when the reader, the generator or the cache layout changes: old caches are then ignored.
CACHE_VERSION = 2  # 2: MIDI files longer than corpus.midi_length.MAX_MIDI_BEATS are skipped
DEFAULT_STYLE = "default"
MIDI_SUFFIXES = (".mid", ".midi")
SKIP_KEYS = ("non_4_4_bars", "empty_bars", "leftover_bars", "unreadable_files", "files_without_drums")


@dataclass
class DrumCorpus:
    """N drum examples of S steps (16 per bar) over the 9 classes of :mod:`corpus.drum_map`.

    grids: uint8 [N, 9, S] (1 = hit). velocities: float32 [N, 9, S] in 0..1 (0 where no hit).
    styles: int64 [N], indices into style_names. source: "builtin" or the folder path.
    skipped: counts of non_4_4_bars, empty_bars, leftover_bars (bars at the end of a run too short
    for an example), unreadable_files (files longer than ``corpus.midi_length.MAX_MIDI_BEATS`` too: the
    log names each), files_without_drums.
    """

    grids: np.ndarray
    velocities: np.ndarray
    styles: np.ndarray
    style_names: list[str]
    source: str
    skipped: dict[str, int]

    @property
    def steps(self) -> int:
        return int(self.grids.shape[-1])

    def __len__(self) -> int:
        return int(self.grids.shape[0])


_CACHE = NpzCache(DrumCorpus, "drums", "drum corpus", CACHE_VERSION, given=("source",))


def load_drum_corpus(
    db: Path | None,
    bars_per_example: int = 1,
    cache_dir: Path | None = None,
    builtin_examples_per_style: int = 1000,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> DrumCorpus:
    """Load the drum corpus of folder `db` (or the built-in styles when None), cached in `cache_dir`."""
    if bars_per_example < 1:
        raise UserError(f"bars_per_example = {bars_per_example}: must be 1 or more; set it to 1, 2 or 4")
    if db is None:
        settings = {"builtin": builtin_examples_per_style, "seed": seed, "bars": bars_per_example}
        corpus = _CACHE.load(cache_dir, settings, log, source="builtin")
        if corpus is None:
            corpus = _builtin_corpus(builtin_examples_per_style, bars_per_example, seed)
            _CACHE.save(cache_dir, settings, corpus, log)
    else:
        db = Path(db)
        files = _midi_files(db)
        listing = folder_listing(db, files)
        settings = {"files": listing, "bars": bars_per_example}
        corpus = _CACHE.load(cache_dir, settings, log, source=str(db))
        if corpus is None:
            corpus = _folder_corpus(db, files, bars_per_example, log)
            _CACHE.save(cache_dir, settings, corpus, log)
    _log_summary(corpus, log)
    return corpus


def split_by_index(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic random split of range(n): (train_idx, val_idx), int64, each sorted.

    The validation part holds round(n * val_fraction) examples, at least 1 when val_fraction > 0
    and n >= 2, and never all of them.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"val_fraction = {val_fraction}: must be in [0, 1); use e.g. 0.1")
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]).astype(np.int64), np.sort(order[:n_val]).astype(np.int64)


def split_by_group(groups: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`split_by_index`, over groups: examples that share a group id (crops of one file) all land
    on the same side, so held-out metrics never score material seen in training. Returns index arrays."""
    names, group_of = np.unique(np.asarray(groups), return_inverse=True)
    train_groups, _ = split_by_index(len(names), val_fraction, seed)
    in_train = np.isin(group_of, train_groups)
    return np.flatnonzero(in_train).astype(np.int64), np.flatnonzero(~in_train).astype(np.int64)


def split_by_group_or_time(
    groups: np.ndarray, starts: np.ndarray, extent: int, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`split_by_group` when there are two groups or more; a single group (a folder of one
    recording) is split in time instead by :func:`split_in_time`. ``starts [N]`` and ``extent`` place each
    example in its file (samples). Returns ``(train_idx, val_idx)``, int64, each sorted."""
    if len(np.unique(np.asarray(groups))) >= 2:
        return split_by_group(groups, val_fraction, seed)
    return split_in_time(starts, extent, val_fraction)


def split_in_time(starts: np.ndarray, extent: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Split the examples of one recording, ``starts [N]`` each ``extent`` samples long, in time: the last
    ``val_fraction`` of them (at least one when there are two or more) are held out, and training keeps only
    the examples that end before the first held-out one starts, so no held-out sample was trained on.
    Returns ``(train_idx, val_idx)``, int64, each sorted (either may be empty for very short recordings)."""
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"val_fraction = {val_fraction}: must be in [0, 1); use e.g. 0.1")
    starts = np.asarray(starts, dtype=np.int64)
    n_val = int(round(len(starts) * val_fraction))
    if val_fraction > 0 and len(starts) >= 2:
        n_val = min(max(n_val, 1), len(starts) - 1)
    order = np.argsort(starts, kind="stable")
    val = order[len(starts) - n_val :]
    boundary = int(starts[val].min()) if n_val else np.iinfo(np.int64).max
    train = order[: len(starts) - n_val]
    train = train[starts[train] + extent <= boundary]
    return np.sort(train).astype(np.int64), np.sort(val).astype(np.int64)


def split_unseen_patterns(grids: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``grids [N, ...]`` so that no validation pattern also occurs in training.

    Identical patterns are frequent (a style plays its main groove often), and a plain random split
    would measure memory rather than generalisation. Distinct patterns are drawn in random order into
    the validation part until it holds about ``val_fraction`` of the examples: at least one pattern when
    ``val_fraction > 0``, and never all of them. When every example is the same pattern (a one-bar loop
    repeated), one copy is held out so that a small folder still trains and evaluates; its metrics then
    measure memory, as there is nothing unseen to hold out.
    Returns ``(train_idx, val_idx)``, int64, each sorted.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"val_fraction = {val_fraction}: must be in [0, 1); use e.g. 0.1")
    if len(grids) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    _, group = np.unique(grids.reshape(len(grids), -1), axis=0, return_inverse=True)
    group = group.reshape(-1)
    counts = np.bincount(group)
    if len(counts) == 1:
        return split_by_index(len(grids), val_fraction, seed)
    wanted = int(round(len(grids) * val_fraction))
    if val_fraction > 0:
        wanted = max(wanted, 1)
    held_out = np.zeros(len(counts), dtype=bool)
    total = 0
    for g in np.random.default_rng(seed).permutation(len(counts)):
        if total >= wanted or len(counts) - held_out.sum() <= 1:
            break
        held_out[g] = True
        total += counts[g]
    in_val = held_out[group]
    return np.flatnonzero(~in_val).astype(np.int64), np.flatnonzero(in_val).astype(np.int64)


def _builtin_corpus(examples_per_style: int, bars: int, seed: int) -> DrumCorpus:
    grids, velocities, styles = generate_style_corpus(examples_per_style, bars, seed)
    return DrumCorpus(grids, velocities, styles, list(STYLE_NAMES), "builtin", dict.fromkeys(SKIP_KEYS, 0))


def _midi_files(db: Path) -> list[Path]:
    if not db.exists():
        raise UserError(
            f"{db}: drum corpus folder does not exist; pass --db with a folder of drum MIDI files"
        )
    if not db.is_dir():
        raise UserError(
            f"{db}: not a folder; pass --db with a folder of drum MIDI files (style sub-folders optional)"
        )
    files = [
        path
        for path in db.rglob("*")
        if path.suffix.lower() in MIDI_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(db).parts)
        and path.is_file()
    ]
    if not files:
        raise UserError(f"{db}: no .mid or .midi files found (searched sub-folders too); add drum MIDI files")
    return sorted(files, key=lambda path: path.relative_to(db).as_posix())


def _style_of(db: Path, path: Path) -> str:
    parts = path.relative_to(db).parts
    return parts[0] if len(parts) > 1 else DEFAULT_STYLE


def _folder_corpus(
    db: Path, files: list[Path], bars_per_example: int, log: Callable[[str], None]
) -> DrumCorpus:
    skipped = dict.fromkeys(SKIP_KEYS, 0)
    examples: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    first_unreadable = ""
    for path in files:
        try:
            result = read_drum_midi(path, bars_per_example)
        except UnreadableMidiError as error:
            skipped["unreadable_files"] += 1
            first_unreadable = first_unreadable or str(error)
            log(f"drum corpus: skipped {error}")
            continue
        if not result.has_drums:
            skipped["files_without_drums"] += 1
            continue
        for name in ("non_4_4_bars", "empty_bars", "leftover_bars"):
            skipped[name] += result.counts[name]
        if len(result.grids):
            examples.setdefault(_style_of(db, path), []).append((result.grids, result.velocities))

    if skipped["unreadable_files"] == len(files):
        raise UserError(
            f"{db}: none of the {len(files)} MIDI files could be read (first: {first_unreadable.split(';')[0]}); "
            "pass a folder of standard MIDI files"
        )
    if skipped["unreadable_files"] + skipped["files_without_drums"] == len(files):
        raise UserError(
            f"{db}: no drum notes in any of the {len(files)} MIDI files (expected GM drum notes on channel 10 "
            "or drums-only files); pass a folder of drum MIDI files"
        )
    if not examples:
        raise UserError(
            f"{db}: no usable 4/4 bars with drum hits for examples of {bars_per_example} bar(s) "
            f"(skipped {skipped['non_4_4_bars']} non-4/4, {skipped['empty_bars']} empty and "
            f"{skipped['leftover_bars']} left-over bars); add 4/4 drum MIDI files or lower bars_per_example"
        )

    style_names = sorted(examples)
    grids = np.concatenate([g for name in style_names for g, _ in examples[name]])
    velocities = np.concatenate([v for name in style_names for _, v in examples[name]])
    sizes = [sum(len(g) for g, _ in examples[name]) for name in style_names]
    styles = np.repeat(np.arange(len(style_names), dtype=np.int64), sizes)
    return DrumCorpus(grids, velocities, styles, style_names, str(db), skipped)


def _log_summary(corpus: DrumCorpus, log: Callable[[str], None]) -> None:
    assert corpus.grids.shape[1:] == (NUM_INSTRUMENTS, corpus.steps) and corpus.steps % STEPS_PER_BAR == 0
    counts = np.bincount(corpus.styles, minlength=len(corpus.style_names))
    for name, count in zip(corpus.style_names, counts, strict=True):
        log(f"drum corpus {corpus.source}: style {name}: {count} examples of {corpus.steps} steps")
    skips = ", ".join(f"{name}={count}" for name, count in corpus.skipped.items())
    log(f"drum corpus {corpus.source}: skipped {skips}")

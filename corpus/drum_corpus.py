"""The drum corpus of the drum VAE: a user folder of drum MIDI files or the built-in style patterns.

A folder is searched recursively for ``.mid`` / ``.midi`` files (names starting with ``.`` are
skipped: editor temp files, macOS ``._`` forks). The first sub-folder under the folder is the style
label; files directly in it get the style ``default``. The tensors are cached as ``.npz`` in
``cache_dir``, keyed by a hash of the file list (relative path, size, mtime) and of the settings, so
touching a file or changing a setting rebuilds the cache.

Every example has a group, the performance it comes from, which a split (``corpus.splits``) keeps on one
side: a file's relative path in a folder, ``<style>/performance-<p>`` in the built-in corpus (one seed's
groove played for 8 bars, see ``corpus.drum_styles``). ``starts`` orders the examples within their group, so
a folder of one file is split in time instead.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latentlive.core.errors import UserError
from latentlive.corpus.drum_map import INSTRUMENT_NAMES, NUM_INSTRUMENTS
from latentlive.corpus.drum_midi import STEPS_PER_BAR, DrumFileExamples, UnreadableMidiError, read_drum_midi
from latentlive.corpus.drum_styles import STYLE_NAMES, generate_style_corpus
from latentlive.corpus.npz_cache import NpzCache, folder_listing

# Bump when the reader, the generator or the cache layout changes: old caches are then ignored.
# 2: MIDI files longer than corpus.midi_length.MAX_MIDI_BEATS are skipped. 3: groups and starts; the
# built-in corpus is played as performances. 4: offsets (microtiming) and merged_notes; the built-in styles
# play with accents, ghost notes, microtiming and fills. 5: the drummer of corpus.drum_feel and four new styles.
# 6: a drummer may open the hat at the same off-beat steps bar after bar.
CACHE_VERSION = 6
DEFAULT_STYLE = "default"
MIDI_SUFFIXES = (".mid", ".midi")
SKIP_KEYS = (
    "non_4_4_bars",
    "empty_bars",
    "leftover_bars",
    "unreadable_files",
    "files_without_drums",
    "merged_notes",
)
_READER_COUNTS = ("non_4_4_bars", "empty_bars", "leftover_bars", "merged_notes")


@dataclass
class DrumCorpus:
    """N drum examples of S steps (16 per bar) over the 9 classes of :mod:`corpus.drum_map`.

    grids: uint8 [N, 9, S] (1 = hit). velocities: float32 [N, 9, S] in 0..1 (0 where no hit).
    offsets: float32 [N, 9, S] in -0.5..0.5, the fraction of a 16th each hit was played late (+) or early (-)
    of its step (0 where no hit; of the loudest note where several fell on one cell).
    styles: int64 [N], indices into style_names. source: "builtin" or the folder path.
    groups: str [N], the performance of each example (the file's relative path, or the built-in
    ``<style>/performance-<p>``). starts: int64 [N], each example's place in its group (0, 1, ...; examples
    do not overlap, so one apart is one example long).
    skipped: counts of non_4_4_bars, empty_bars, leftover_bars (bars at the end of a run too short
    for an example), unreadable_files (files longer than ``corpus.midi_length.MAX_MIDI_BEATS`` too: the
    log names each), files_without_drums, and merged_notes (not a skip: notes that fell on a cell already hit,
    folded into it, see ``corpus.drum_midi``).
    """

    grids: np.ndarray
    velocities: np.ndarray
    offsets: np.ndarray
    styles: np.ndarray
    groups: np.ndarray
    starts: np.ndarray
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


def patterns_seen_in_training(grids: np.ndarray, indices: dict[str, np.ndarray], side: str) -> int:
    """How many examples of ``side`` (indices into ``grids [N, ...]``) are also, verbatim, a training example:
    whole groups are held out, yet a style's main groove recurs across its performances."""
    seen = {grids[i].tobytes() for i in indices["train"]}
    return sum(grids[i].tobytes() in seen for i in indices[side])


def _builtin_corpus(examples_per_style: int, bars: int, seed: int) -> DrumCorpus:
    grids, velocities, offsets, styles, groups = generate_style_corpus(examples_per_style, bars, seed)
    # A performance's examples are consecutive rows: each one's place is its distance to the first.
    order = np.arange(len(groups), dtype=np.int64)
    first = np.maximum.accumulate(np.where(np.r_[True, groups[1:] != groups[:-1]], order, 0))
    return DrumCorpus(
        grids=grids,
        velocities=velocities,
        offsets=offsets,
        styles=styles,
        groups=groups,
        starts=order - first,
        style_names=list(STYLE_NAMES),
        source="builtin",
        skipped=dict.fromkeys(SKIP_KEYS, 0),
    )


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
    examples: dict[str, list[tuple[DrumFileExamples, str]]] = {}  # style -> (the file's examples, its group)
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
        for name in _READER_COUNTS:
            skipped[name] += result.counts[name]
        if len(result.grids):
            examples.setdefault(_style_of(db, path), []).append((result, path.relative_to(db).as_posix()))

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
    performances = [performance for name in style_names for performance in examples[name]]
    sizes = [sum(len(e.grids) for e, _ in examples[name]) for name in style_names]
    return DrumCorpus(
        grids=np.concatenate([e.grids for e, _ in performances]),
        velocities=np.concatenate([e.velocities for e, _ in performances]),
        offsets=np.concatenate([e.offsets for e, _ in performances]),
        styles=np.repeat(np.arange(len(style_names), dtype=np.int64), sizes),
        groups=np.concatenate([np.full(len(e.grids), group) for e, group in performances]).astype(str),
        starts=np.concatenate([np.arange(len(e.grids), dtype=np.int64) for e, _ in performances]),
        style_names=style_names,
        source=str(db),
        skipped=skipped,
    )


def _log_summary(corpus: DrumCorpus, log: Callable[[str], None]) -> None:
    assert corpus.grids.shape[1:] == (NUM_INSTRUMENTS, corpus.steps) and corpus.steps % STEPS_PER_BAR == 0
    counts = np.bincount(corpus.styles, minlength=len(corpus.style_names))
    for name, count in zip(corpus.style_names, counts, strict=True):
        log(f"drum corpus {corpus.source}: style {name}: {count} examples of {corpus.steps} steps")
    skips = ", ".join(f"{name}={count}" for name, count in corpus.skipped.items() if name != "merged_notes")
    log(f"drum corpus {corpus.source}: skipped {skips}")
    log(
        f"drum corpus {corpus.source}: merged_notes={corpus.skipped.get('merged_notes', 0)} "
        "(notes on a cell already hit: flams, doubled hits; each cell keeps its loudest note)"
    )


def drum_statistics(corpus: DrumCorpus, bpm: float = 120.0) -> dict[str, dict[str, float]]:
    """Per class (and "all"): ``share`` of steps with a hit (%), velocity ``velocity_std`` and ``velocity_mean``
    over the hits, and mean ``abs_offset_ms`` / ``offset_ms`` of the hits, in ms at ``bpm`` (a 16th lasts 15000 /
    bpm ms), so corpora of any tempo compare by feel."""
    step_ms = 15_000 / bpm
    statistics = {}
    for name, rows in [
        *((n, [c]) for c, n in enumerate(INSTRUMENT_NAMES)),
        ("all", list(range(NUM_INSTRUMENTS))),
    ]:
        hits = corpus.grids[:, rows] == 1
        velocities, offsets = corpus.velocities[:, rows][hits], corpus.offsets[:, rows][hits]
        some = bool(hits.any())
        statistics[name] = {
            "share": float(100 * hits.mean()),
            "velocity_std": float(velocities.std()) if some else 0.0,
            "velocity_mean": float(velocities.mean()) if some else 0.0,
            "abs_offset_ms": float(np.abs(offsets).mean() * step_ms) if some else 0.0,
            "offset_ms": float(offsets.mean() * step_ms) if some else 0.0,
        }
    return statistics


# python -m latentlive.corpus.drum_corpus [FOLDER]: the statistics of the built-in corpus or of a folder
if __name__ == "__main__":
    import sys

    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    try:
        table = drum_statistics(load_drum_corpus(folder, log=lambda _: None))
    except UserError as error:
        sys.exit(f"error: {error}")
    print("class        share %  velocity std  mean |offset| ms (120 bpm)  mean offset ms")
    for name, row in table.items():
        print(
            f"{name:11s} {row['share']:8.2f} {row['velocity_std']:13.3f} {row['abs_offset_ms']:27.1f}"
            f" {row['offset_ms']:15.1f}"
        )

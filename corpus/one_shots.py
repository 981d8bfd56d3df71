"""The one-shot corpus of the drum synth: a user folder of drum sounds, or the built-in sounds.

A folder holds one sub-folder per class (``kick/``, ``snare/``, ... any names): the first sub-folder
under the folder is the class, deeper folders only organise. Every file whose suffix is a format
that soundfile reads (wav, flac, aiff, ogg, mp3, ...) is read; names starting with ``.`` are skipped
(editor temp files, macOS ``._`` forks). Each sound is folded to mono, resampled to the model rate,
trimmed to start :data:`ONSET_PREROLL_S` before its onset (the first sample within 40 dB of the
peak), cropped (with a short fade-out) or zero-padded to a fixed length and peak-normalised to
:data:`PEAK`. Only the first ``length / sample_rate +`` :data:`MAX_LEAD_S` seconds of a file are read.
Unreadable, too short (under 10 ms above the onset threshold) and silent files are skipped and
counted; other files are ignored and counted.

The built-in corpus needs no download: the procedural sounds of :mod:`corpus.drum_synth` (with
their factors of variation) and the General MIDI drum kits of :mod:`corpus.soundfont_kit`, over the
same eight classes. Tensors are cached as ``.npz`` in ``cache_dir``, keyed by the settings and, for
a folder, by its file list (relative path, size, mtime), so touching a file rebuilds the cache.

Every sound has a group, the source that a split (:func:`split_one_shots`) keeps on one side: its file
(``file:kick/a.wav``, relative to the folder), its SoundFont sample (``sf2:TimGM6mb/Acoustic Tom``, shared by
every augmented variant and every kit and note that plays the sample) or its procedural voice
(``synth:<corpus seed>/<class>/<index>``, the voice that seed and index draw).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latentlive.core.errors import UserError
from latentlive.corpus.audio_folder import list_audio_files, read_audio, reading_summary
from latentlive.corpus.drum_synth import FACTOR_NAMES, PEAK, SYNTH_CLASSES, generate_synth_corpus
from latentlive.corpus.npz_cache import NpzCache, folder_listing
from latentlive.corpus.soundfont_kit import default_soundfont, soundfont_one_shots_per_class
from latentlive.corpus.splits import SIDES, Split, check_fractions, split_groups

__all__ = [
    "ONSET_PREROLL_S",
    "PEAK",
    "SKIP_KEYS",
    "OneShotCorpus",
    "load_one_shots",
    "prepare_one_shot",
    "split_one_shots",
]

# Bump when the reader, the generators or the cache layout change: old caches are then ignored.
CACHE_VERSION = 2  # 2: groups
SKIP_KEYS = ("unreadable_files", "too_short", "silent", "non_audio_files")
ONSET_THRESHOLD_DB = -40.0  # relative to the peak
ONSET_PREROLL_S = 0.002  # kept before the onset, so the attack is whole
MIN_SIGNAL_S = 0.01  # from onset to the last sample above the threshold
SILENCE_PEAK = 1e-4  # -80 dBFS
FADE_S = 0.01  # fade-out where a crop cuts the sound
MAX_LEAD_S = 5.0  # how late in a file the onset may come


@dataclass
class OneShotCorpus:
    """N one-shots of L samples at the sample rate they were loaded at.

    audio: float32 [N, L], each starting at its onset and peaking at PEAK. classes: int64 [N],
    indices into class_names. factors: float32 [N, F] over factor_names, normalised 0..1 and NaN
    where unknown (a synthesised sound has values for its class's factors; soundfont and folder
    sounds are all NaN). groups: [N] the source of each sound (see the module docstring). source:
    "builtin" or the folder path. skipped: counts per SKIP_KEYS.
    """

    audio: np.ndarray
    classes: np.ndarray
    class_names: list[str]
    factors: np.ndarray
    factor_names: list[str]
    groups: list[str]
    source: str
    skipped: dict[str, int]

    @property
    def length(self) -> int:
        return int(self.audio.shape[-1])

    def __len__(self) -> int:
        return int(self.audio.shape[0])


_CACHE = NpzCache(OneShotCorpus, "one-shots", "one-shots", CACHE_VERSION, given=("source",), compress=False)


def load_one_shots(
    db: Path | None,
    sample_rate: int = 22050,
    length: int = 16384,
    examples_per_class: int = 200,
    seed: int = 0,
    cache_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> OneShotCorpus:
    """Load the one-shots of folder `db` (or the built-in sounds when None), cached in `cache_dir`.

    Built-in: `examples_per_class` synthesised plus `examples_per_class` soundfont sounds per class
    (synthesised first); `examples_per_class` and `seed` do not apply to a folder.
    """
    _check_settings(sample_rate, length, examples_per_class)
    settings = {"sample_rate": sample_rate, "length": length}
    if db is None:
        sf2 = default_soundfont()
        settings |= {"builtin": examples_per_class, "seed": seed, "sf2_size": sf2.stat().st_size}
        corpus = _CACHE.load(cache_dir, settings, log, source="builtin")
        if corpus is None:
            corpus = _builtin_corpus(sample_rate, length, examples_per_class, seed, log)
            _CACHE.save(cache_dir, settings, corpus, log)
    else:
        db = Path(db)
        files, others = _audio_files(db)
        listing = folder_listing(db, files)
        settings |= {"files": listing, "others": others}
        corpus = _CACHE.load(cache_dir, settings, log, source=str(db))
        if corpus is None:
            corpus = _folder_corpus(db, files, others, sample_rate, length, log)
            _CACHE.save(cache_dir, settings, corpus, log)
    _log_summary(corpus, log)
    return corpus


def prepare_one_shot(audio: np.ndarray, sample_rate: int, length: int) -> np.ndarray | str:
    """Mono float audio [T] at `sample_rate` -> float32 [length] one-shot, or the skip reason.

    Trims to :data:`ONSET_PREROLL_S` before the onset, crops with a fade-out or pads with zeros,
    and peak-normalises to :data:`PEAK`. Returns "silent" (peak under -80 dBFS) or "too_short"
    (under 10 ms from onset to the last sample within 40 dB of the peak) for unusable sounds.
    """
    x = np.asarray(audio, dtype=np.float64)
    if len(x) < MIN_SIGNAL_S * sample_rate:
        return "too_short"
    peak = float(np.max(np.abs(x)))
    if peak < SILENCE_PEAK:
        return "silent"
    loud = np.flatnonzero(np.abs(x) >= peak * 10.0 ** (ONSET_THRESHOLD_DB / 20.0))
    if (loud[-1] - loud[0] + 1) < MIN_SIGNAL_S * sample_rate:
        return "too_short"
    x = x[max(0, loud[0] - int(round(ONSET_PREROLL_S * sample_rate))) :]
    if len(x) > length:
        x = x[:length].copy()
        fade = min(length, max(1, int(FADE_S * sample_rate)))
        x[length - fade :] *= np.linspace(1.0, 0.0, fade)
    else:
        x = np.pad(x, (0, length - len(x)))
    return (PEAK * x / float(np.max(np.abs(x)))).astype(np.float32)


def _check_settings(sample_rate: int, length: int, examples_per_class: int) -> None:
    if sample_rate < 8000:
        raise UserError(f"sample_rate = {sample_rate}: too low for drums; use 16000, 22050 or 44100")
    if length < MIN_SIGNAL_S * sample_rate:
        raise UserError(f"length = {length}: shorter than 10 ms at {sample_rate} Hz; use e.g. 16384")
    if examples_per_class < 1:
        raise UserError(f"examples_per_class = {examples_per_class}: must be 1 or more; use e.g. 200")


def _builtin_corpus(
    sample_rate: int, length: int, examples_per_class: int, seed: int, log: Callable[[str], None]
) -> OneShotCorpus:
    log(f"one-shots: synthesising the built-in corpus ({2 * examples_per_class} sounds per class)")
    start = time.perf_counter()
    synth_audio, synth_classes, synth_factors = generate_synth_corpus(
        examples_per_class, sample_rate, length, seed
    )
    kit_audio, kit_classes, _, kit_groups = soundfont_one_shots_per_class(
        sample_rate, length, examples_per_class, seed + 1
    )
    synth_groups = [f"synth:{seed}/{SYNTH_CLASSES[c]}/{i}" for i, c in enumerate(synth_classes)]
    kit_factors = np.full((len(kit_audio), len(FACTOR_NAMES)), np.nan, dtype=np.float32)
    log(f"one-shots: built-in corpus synthesised in {time.perf_counter() - start:.1f} s")
    return OneShotCorpus(
        audio=np.concatenate([synth_audio, kit_audio]),
        classes=np.concatenate([synth_classes, kit_classes]),
        class_names=list(SYNTH_CLASSES),
        factors=np.concatenate([synth_factors, kit_factors]),
        factor_names=list(FACTOR_NAMES),
        groups=synth_groups + kit_groups,
        source="builtin",
        skipped=dict.fromkeys(SKIP_KEYS, 0),
    )


def _audio_files(db: Path) -> tuple[list[Path], int]:
    """The audio files under `db` (each in a class sub-folder) and the number of other (ignored) files."""
    files, others = list_audio_files(
        db,
        "one-shot folder",
        "a folder of class sub-folders (kick/, snare/, ...) holding audio files",
        "add one-shots in class sub-folders such as kick/ and snare/",
    )
    loose = [path for path in files if path.parent == db]
    if loose:
        raise UserError(
            f"{db}: {len(loose)} audio file(s) lie directly in the folder (e.g. {loose[0].name}); "
            "move each sound into a sub-folder named after its class, such as kick/ or snare/"
        )
    return files, others


def _folder_corpus(
    db: Path, files: list[Path], others: int, sample_rate: int, length: int, log: Callable[[str], None]
) -> OneShotCorpus:
    skipped = dict.fromkeys(SKIP_KEYS, 0)
    skipped["non_audio_files"] = others
    sounds: dict[str, list[tuple[np.ndarray, str]]] = {}
    reads = []
    for path in files:
        read = read_audio(path, sample_rate, length / sample_rate + MAX_LEAD_S)
        if read is None:
            skipped["unreadable_files"] += 1
            log(f"one-shots: skipped {path}: soundfile cannot read it")
            continue
        reads.append(read)
        one_shot = prepare_one_shot(read.samples, sample_rate, length)
        if isinstance(one_shot, str):
            skipped[one_shot] += 1
            continue
        relative = path.relative_to(db)
        sounds.setdefault(relative.parts[0], []).append((one_shot, f"file:{relative.as_posix()}"))
    summary = reading_summary("one-shots", reads)
    if summary:
        log(summary)
    if not sounds:
        raise UserError(
            f"{db}: none of the {len(files)} audio files is usable ({skipped['unreadable_files']} unreadable, "
            f"{skipped['too_short']} too short, {skipped['silent']} silent); add one-shots of at least "
            f"{int(MIN_SIGNAL_S * 1000)} ms in class sub-folders"
        )
    class_names = sorted(sounds)
    audio = np.stack([x for name in class_names for x, _ in sounds[name]])
    sizes = [len(sounds[name]) for name in class_names]
    return OneShotCorpus(
        audio=audio,
        classes=np.repeat(np.arange(len(class_names), dtype=np.int64), sizes),
        class_names=class_names,
        factors=np.full((len(audio), len(FACTOR_NAMES)), np.nan, dtype=np.float32),
        factor_names=list(FACTOR_NAMES),
        groups=[group for name in class_names for _, group in sounds[name]],
        source=str(db),
        skipped=skipped,
    )


def split_one_shots(
    corpus: OneShotCorpus,
    fractions: tuple[float, float, float],
    seed: int,
    log: Callable[[str], None] = print,
) -> tuple[Split, dict[str, np.ndarray]]:
    """Deal the groups of ``corpus`` to train / validation / test, so that no group is on two sides and every
    class keeps held-out sounds where it can.

    The groups are dealt by :func:`corpus.splits.split_groups` (``fractions``, ``seed``) within each stratum:
    a class (the most common class among a group's sounds) and a kind of source (``synth``, ``sf2``,
    ``file``), so the held-out sides hold soundfont samples and user files of every class that has two
    groups or more. A stratum of one group stays in training, and a log line says so; when that leaves
    nothing held out (every class has one source), the groups are dealt across classes instead. Returns
    the split and the sound indices (int64, sorted) of each side.
    """
    fractions = check_fractions(fractions)
    strata: dict[tuple[str, str], list[str]] = {}
    for group, cls in _group_classes(corpus).items():
        strata.setdefault((corpus.class_names[cls], group.split(":", 1)[0]), []).append(group)
    sides: dict[str, list[str]] = {side: [] for side in SIDES}
    alone = []
    for (class_name, kind), groups in sorted(strata.items()):
        dealt = split_groups(groups, fractions, seed)
        for side in SIDES:
            sides[side] += dealt.groups[side]
        if len(groups) == 1 and fractions[1] > 0:
            alone.append(f"class {class_name} has one {kind} source ({groups[0]}): it trains only")
    split = Split(seed, fractions, {side: tuple(sorted(names)) for side, names in sides.items()})
    if not split.groups["validation"] and fractions[1] > 0 and len(set(corpus.groups)) >= 2:
        log(f"one-shots {corpus.source}: no class has two sources; holding out whole classes instead")
        split, alone = split_groups(corpus.groups, fractions, seed), []
    for line in alone:
        log(f"one-shots {corpus.source}: {line}, nothing of it is held out")
    return split, {side: split.indices(corpus.groups, side) for side in SIDES}


def _group_classes(corpus: OneShotCorpus) -> dict[str, int]:
    """The class of each group: the most common class among its sounds (the lowest index on a tie)."""
    counts: dict[str, np.ndarray] = {}
    for group, cls in zip(corpus.groups, corpus.classes, strict=True):
        counts.setdefault(group, np.zeros(len(corpus.class_names), dtype=np.int64))[cls] += 1
    return {group: int(np.argmax(count)) for group, count in counts.items()}


def _log_summary(corpus: OneShotCorpus, log: Callable[[str], None]) -> None:
    counts = np.bincount(corpus.classes, minlength=len(corpus.class_names))
    sources = np.bincount(list(_group_classes(corpus).values()), minlength=len(corpus.class_names))
    for name, count, groups in zip(corpus.class_names, counts, sources, strict=True):
        log(
            f"one-shots {corpus.source}: class {name}: {count} sounds of {corpus.length} samples, {groups} sources"
        )
    skips = ", ".join(f"{name}={count}" for name, count in corpus.skipped.items())
    log(f"one-shots {corpus.source}: skipped {skips}")

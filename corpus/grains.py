"""The grain corpus of the grain VAE: windowed grains cut from a folder of any sounds, or from built-in sounds.

A sound becomes grains as follows. It is folded to mono, resampled to the model rate (soxr, as
:mod:`corpus.loops`) and peak-normalised to :data:`PEAK` (the level within a sound is kept, the
level between sounds is not). It is padded with ``grain_size - hop`` zeros at both ends and cut
into grains of ``grain_size`` samples every ``hop`` samples, each multiplied by a periodic Hann
window (:func:`grain_window`): the model learns *windowed* grains, and the grains of a sound
overlap-add back into it (:func:`overlap_add`). Grain ``p`` of a sound covers its samples
``p * hop - (grain_size - hop)`` to ``p * hop + hop``, so the attack at sample 0 is whole in some
grain. Grains whose windowed RMS is under :data:`SILENT_GRAIN_RMS` (-60 dBFS, after the
normalisation) are dropped; ``max_grains`` keeps that many, spread evenly over all the others.

A folder is searched recursively for the formats soundfile reads (wav, flac, ogg, aiff, ...); names
starting with ``.`` are skipped. At most :data:`MAX_READ_S` seconds of a file are read. Unreadable
files, files shorter than one grain and silent files (peak under -80 dBFS, or no grain above the
grain threshold) are skipped and counted, like other files. The whole sounds are kept too (the
first :data:`MAX_SOUND_S` seconds of each), for metrics that resynthesise a sound from its grains.

Every sound has a group, what a split must hold out whole (:mod:`corpus.splits`): a file of a folder is
its own group (its relative path); a built-in texture or synthesised one-shot is its own procedural seed;
a soundfont one-shot shares its group with every variant of the same kit sample (``corpus.soundfont_kit``).

The built-in corpus needs no data: the built-in one-shots of :mod:`corpus.one_shots` (synthesised
drums and General MIDI kit sounds) and the procedural tones and textures of :mod:`corpus.textures`,
half and half. Arrays are cached as ``.npz`` in ``cache_dir``, keyed by the settings and, for a
folder, by its files (relative path, size, mtime).
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latentlive.core.errors import UserError
from latentlive.corpus.audio_folder import list_audio_files, read_audio, read_mono, reading_summary
from latentlive.corpus.drum_synth import SYNTH_CLASSES, generate_synth_corpus
from latentlive.corpus.npz_cache import NpzCache, folder_listing
from latentlive.corpus.soundfont_kit import default_soundfont, soundfont_one_shots_per_class
from latentlive.corpus.textures import generate_textures

__all__ = [
    "MAX_READ_S",
    "MAX_SOUND_S",
    "PEAK",
    "SILENT_GRAIN_RMS",
    "SKIP_KEYS",
    "GrainCorpus",
    "frame_sound",
    "grain_window",
    "load_grains",
    "overlap_add",
]

# Bump when the reader, the generators or the cache layout change: old caches are then ignored.
CACHE_VERSION = 2  # 2: groups
SKIP_KEYS = ("unreadable_files", "too_short_files", "silent_files", "non_audio_files", "silent_grains")
PEAK = 0.9  # every sound is peak-normalised to this, as the one-shots and textures
SILENT_PEAK = 1e-4  # -80 dBFS: a file this quiet holds nothing
SILENT_GRAIN_RMS = 1e-3  # -60 dBFS, of the windowed grain
MAX_READ_S = 600.0  # seconds read of a file; the grains of longer recordings are thinned by max_grains anyway
MAX_SOUND_S = 8.0  # seconds kept of each whole sound, to bound memory and the cache for folders of long files
ONE_SHOT_S = 0.75  # length of the built-in one-shots
TEXTURE_S = 3.0  # length of the built-in textures
_FRAME_CHUNK = 4096  # grains windowed at once when measuring loudness, to bound memory


@dataclass
class GrainCorpus:
    """N windowed grains of `grain_size` samples from S sounds at `sample_rate`.

    grains: float32 [N, grain_size], Hann-windowed (:func:`grain_window`). sound: int64 [N], the
    sound of each grain (an index into sources and sounds: split train and test by it). position:
    int64 [N], the grain's index within its sound, so ``grains[i] == frame_sound(sounds[sound[i]],
    grain_size, hop)[position[i]]`` while the grain lies within the kept sound. sources: [S]
    ``builtin/one_shot/<class>/<i>``, ``builtin/texture/<source>/<envelope>/<i>`` or the path
    relative to the folder. groups: [S] the group of each sound (the module docstring), what a split
    holds out whole. sounds: [S] float32 [T_s], mono, resampled, peak PEAK, at most MAX_SOUND_S
    seconds. counts: SKIP_KEYS -> number of files (or grains) skipped.
    """

    grains: np.ndarray
    sound: np.ndarray
    position: np.ndarray
    sources: list[str]
    groups: list[str]
    sounds: list[np.ndarray]
    counts: dict[str, int]
    sample_rate: int
    hop: int

    @property
    def grain_size(self) -> int:
        return int(self.grains.shape[-1])

    def __len__(self) -> int:
        return int(self.grains.shape[0])

    def grain_groups(self) -> np.ndarray:
        """The group (str) of each grain ``[N]``: its sound's."""
        return np.asarray(self.groups, dtype=object)[self.sound] if len(self) else np.zeros(0, dtype=object)


_CACHE = NpzCache(GrainCorpus, "grains", "grains", CACHE_VERSION, compress=False)


def grain_window(grain_size: int) -> np.ndarray:
    """float32 [grain_size]: the periodic Hann window of the grains (as ``torch.hann_window``)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(grain_size) / grain_size)).astype(np.float32)


def frame_sound(audio: np.ndarray, grain_size: int, hop: int) -> np.ndarray:
    """Mono audio [T] -> windowed grains float32 [P, grain_size], P = ceil((T + grain_size - hop) / hop).

    The sound is padded with ``grain_size - hop`` zeros at both ends, so every sample lies under as
    many windows as any other and :func:`overlap_add` inverts this exactly.
    """
    return _frames(np.asarray(audio, dtype=np.float32), grain_size, hop) * grain_window(grain_size)


def overlap_add(grains: np.ndarray, hop: int, length: int) -> np.ndarray:
    """Windowed grains [P, grain_size] (as from :func:`frame_sound`) -> audio float32 [length].

    The grains are summed at their places and divided by the summed windows (squared, as the
    grains carry one window already and the division undoes it), so frame_sound then overlap_add
    gives the sound back.
    """
    count, grain_size = grains.shape
    window = grain_window(grain_size).astype(np.float64)
    total = (count - 1) * hop + grain_size
    summed, weight = np.zeros(total), np.zeros(total)
    for index in range(count):
        start = index * hop
        summed[start : start + grain_size] += grains[index] * window
        weight[start : start + grain_size] += window * window
    pad = grain_size - hop
    audio = summed / np.maximum(weight, 1e-8)
    return np.pad(audio[pad : pad + length], (0, max(0, length - (total - pad)))).astype(np.float32)


def load_grains(
    db: Path | None,
    sample_rate: int = 22050,
    grain_size: int = 1024,
    hop: int | None = None,
    max_grains: int = 50000,
    sounds: int = 512,
    seed: int = 0,
    cache_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> GrainCorpus:
    """Load the grains of folder `db` (or of `sounds` built-in sounds when None), cached in `cache_dir`.

    `hop` defaults to a quarter grain. Built-in: about `sounds` sounds drawn with `seed`, 16 x max(1,
    sounds // 32) one-shots (8 classes, synthesised and soundfont) and the rest textures (at least one);
    `sounds` and `seed` do not apply to a folder.
    """
    hop = grain_size // 4 if hop is None else hop
    _check_settings(sample_rate, grain_size, hop, max_grains, sounds)
    settings = {"sample_rate": sample_rate, "grain_size": grain_size, "hop": hop, "max_grains": max_grains}
    if db is None:
        sf2_size = default_soundfont().stat().st_size
        settings |= {"builtin": sounds, "seed": seed, "sf2_size": sf2_size}
        corpus = _CACHE.load(cache_dir, settings, log)
        if corpus is None:
            corpus = _builtin_corpus(sample_rate, grain_size, hop, max_grains, sounds, seed, log)
            _CACHE.save(cache_dir, settings, corpus, log)
        source = "builtin"
    else:
        db = Path(db)
        files, others = list_audio_files(
            db,
            "sound folder",
            "a folder of audio files",
            "add sounds to grain: textures, notes, field recordings, one-shots",
        )
        listing = folder_listing(db, files)
        settings |= {"files": listing, "others": others}
        corpus = _CACHE.load(cache_dir, settings, log)
        if corpus is None:
            corpus = _folder_corpus(db, files, others, sample_rate, grain_size, hop, max_grains, log)
            _CACHE.save(cache_dir, settings, corpus, log)
        source = str(db)
    _log_summary(source, corpus, log)
    return corpus


# -- settings and files ---------------------------------------------------------------------------------


def _check_settings(sample_rate: int, grain_size: int, hop: int, max_grains: int, sounds: int) -> None:
    if sample_rate < 8000:
        raise UserError(f"sample_rate = {sample_rate}: too low for grains; use 22050")
    if grain_size < 64:
        raise UserError(f"grain_size = {grain_size}: too small; use 1024 or 2048")
    if not 1 <= hop <= grain_size // 2:
        raise UserError(
            f"hop = {hop}: grains must overlap by half or more; use a hop of 1..{grain_size // 2} "
            f"(default {grain_size // 4}, a quarter grain)"
        )
    if max_grains < 1:
        raise UserError(f"max_grains = {max_grains}: must be 1 or more; use e.g. 50000")
    if sounds < 2:
        raise UserError(f"sounds = {sounds}: the built-in corpus needs 2 or more; use e.g. 512")


# -- sounds to grains -----------------------------------------------------------------------------------


@dataclass
class _Sound:
    """A usable sound before the grains are cut: the kept audio, where its loud grains are, its file."""

    source: str
    group: str
    kept: np.ndarray  # normalised, at most MAX_SOUND_S seconds
    truncated: bool  # the sound was longer than `kept`
    loud: np.ndarray  # int64 positions of the grains above SILENT_GRAIN_RMS
    path: Path | None  # to read again for grains past `kept`


def _normalise(audio: np.ndarray, grain_size: int) -> np.ndarray | str:
    """float32 [T] at peak PEAK, or the skip key: "too_short_files" or "silent_files"."""
    if len(audio) < grain_size:
        return "too_short_files"
    peak = float(np.max(np.abs(audio)))
    if peak < SILENT_PEAK:
        return "silent_files"
    return (audio * (PEAK / peak)).astype(np.float32)


def _loud_positions(audio: np.ndarray, grain_size: int, hop: int) -> tuple[np.ndarray, int]:
    """(positions int64 of the grains with windowed RMS >= SILENT_GRAIN_RMS, number of grains)."""
    frames = _frames(audio, grain_size, hop)
    window = grain_window(grain_size)
    rms = np.concatenate(
        [
            np.sqrt(np.mean(np.square(frames[s : s + _FRAME_CHUNK] * window, dtype=np.float64), axis=-1))
            for s in range(0, len(frames), _FRAME_CHUNK)
        ]
    )
    return np.flatnonzero(rms >= SILENT_GRAIN_RMS).astype(np.int64), len(frames)


def _frames(audio: np.ndarray, grain_size: int, hop: int) -> np.ndarray:
    """[T] -> unwindowed grains [P, grain_size], a view into the sound padded with grain_size - hop zeros
    before and at least as many after (the last grain reaches past the end)."""
    pad = grain_size - hop
    count = -(-(len(audio) + pad) // hop)
    padded = np.pad(audio, (pad, count * hop - len(audio)))
    return np.lib.stride_tricks.sliding_window_view(padded, grain_size)[::hop]


def _plan(
    audio: np.ndarray, source: str, group: str, path: Path | None, sample_rate: int, grain_size: int, hop: int
) -> tuple[_Sound | None, str | None, int]:
    """A sound ready to cut, or None and its skip key; and the number of silent grains dropped."""
    normalised = _normalise(audio, grain_size)
    if isinstance(normalised, str):
        return None, normalised, 0
    loud, count = _loud_positions(normalised, grain_size, hop)
    if len(loud) == 0:
        return None, "silent_files", 0
    cap = int(MAX_SOUND_S * sample_rate)
    sound = _Sound(source, group, normalised[:cap].copy(), len(normalised) > cap, loud, path)
    return sound, None, count - len(loud)


def _cut(
    planned: list[_Sound],
    sample_rate: int,
    grain_size: int,
    hop: int,
    max_grains: int,
    counts: dict[str, int],
) -> GrainCorpus:
    """Keep at most `max_grains` loud grains (evenly spread) and cut them from the sounds."""
    sound = np.concatenate([np.full(len(s.loud), i, dtype=np.int64) for i, s in enumerate(planned)])
    position = np.concatenate([s.loud for s in planned])
    if len(position) > max_grains:
        keep = np.round(np.linspace(0, len(position) - 1, max_grains)).astype(np.int64)
        sound, position = sound[keep], position[keep]
    grains = np.zeros((len(position), grain_size), dtype=np.float32)
    for index, item in enumerate(planned):
        rows = np.flatnonzero(sound == index)
        if len(rows) == 0:
            continue
        audio = item.kept
        # A grain ends at position * hop + hop: read the file again only when one lies past the kept part.
        if item.truncated and int(position[rows].max()) * hop + hop > len(audio):
            audio = _read_again(item, sample_rate, grain_size)
        grains[rows] = _frames(audio, grain_size, hop)[position[rows]] * grain_window(grain_size)
    return GrainCorpus(
        grains=grains,
        sound=sound,
        position=position,
        sources=[s.source for s in planned],
        groups=[s.group for s in planned],
        sounds=[s.kept for s in planned],
        counts=counts,
        sample_rate=sample_rate,
        hop=hop,
    )


def _read_again(sound: _Sound, sample_rate: int, grain_size: int) -> np.ndarray:
    """The whole normalised sound of a file read before (only long files are read twice)."""
    audio = None if sound.path is None else read_mono(sound.path, sample_rate, MAX_READ_S)
    normalised = None if audio is None else _normalise(audio, grain_size)
    if not isinstance(normalised, np.ndarray):
        raise UserError(f"{sound.path}: the file changed while the grains were cut; run again")
    return normalised


def _folder_corpus(
    db: Path,
    files: list[Path],
    others: int,
    sample_rate: int,
    grain_size: int,
    hop: int,
    max_grains: int,
    log: Callable[[str], None],
) -> GrainCorpus:
    counts = dict.fromkeys(SKIP_KEYS, 0)
    counts["non_audio_files"] = others
    planned, reads = [], []
    for path in files:
        read = read_audio(path, sample_rate, MAX_READ_S)
        if read is None:
            counts["unreadable_files"] += 1
            log(f"grains: skipped {path}: soundfile cannot read it")
            continue
        reads.append(read)
        name = path.relative_to(db).as_posix()  # a file is its own group
        sound, skip, silent = _plan(read.samples, name, name, path, sample_rate, grain_size, hop)
        counts["silent_grains"] += silent
        if sound is None:
            counts[skip] += 1
        else:
            planned.append(sound)
    summary = reading_summary("grains", reads)
    if summary:
        log(summary)
    if not planned:
        raise UserError(
            f"{db}: none of the {len(files)} audio files is usable ({counts['unreadable_files']} unreadable, "
            f"{counts['too_short_files']} too short, {counts['silent_files']} silent); add sounds longer "
            f"than one grain ({1000.0 * grain_size / sample_rate:.0f} ms) and louder than -60 dBFS"
        )
    return _cut(planned, sample_rate, grain_size, hop, max_grains, counts)


def _builtin_corpus(
    sample_rate: int,
    grain_size: int,
    hop: int,
    max_grains: int,
    sounds: int,
    seed: int,
    log: Callable[[str], None],
) -> GrainCorpus:
    named = _builtin_one_shots(sample_rate, max(1, sounds // 32), seed, log)
    texture_count = max(1, sounds - len(named))
    log(f"grains: rendering {texture_count} built-in textures of {TEXTURE_S:g} s")
    textures, kinds = generate_textures(texture_count, sample_rate, TEXTURE_S, seed)
    named += [
        # texture i has its own random stream (seed, i): its own group
        (audio, f"builtin/texture/{kind}/{i}", f"builtin/texture/{seed}/{i}")
        for i, (audio, kind) in enumerate(zip(textures, kinds, strict=True))
    ]
    counts = dict.fromkeys(SKIP_KEYS, 0)
    planned = []
    for audio, source, group in named:
        sound, skip, silent = _plan(audio, source, group, None, sample_rate, grain_size, hop)
        counts["silent_grains"] += silent
        if sound is None:
            counts[skip] += 1
        else:
            planned.append(sound)
    return _cut(planned, sample_rate, grain_size, hop, max_grains, counts)


def _builtin_one_shots(
    sample_rate: int, per_class: int, seed: int, log: Callable[[str], None]
) -> list[tuple[np.ndarray, str, str]]:
    """(audio, source, group) of the built-in one-shots, as ``corpus.one_shots`` builds them: ``per_class``
    synthesised then ``per_class`` soundfont sounds of each class. A synthesised sound is its own group; a
    soundfont sound has its sample's group (``corpus.soundfont_kit``), shared by its augmented variants."""
    length = int(round(ONE_SHOT_S * sample_rate))
    log(f"grains: synthesising {2 * per_class} built-in one-shots per class")
    synth_audio, synth_classes, _ = generate_synth_corpus(per_class, sample_rate, length, seed)
    kit_audio, kit_classes, _, kit_groups = soundfont_one_shots_per_class(
        sample_rate, length, per_class, seed + 1
    )
    groups = [f"builtin/one_shot/synth/{seed}/{i}" for i in range(len(synth_audio))] + list(kit_groups)
    return [
        # The one-shots are padded with zeros to a fixed length: the padding is not part of the sound.
        (np.trim_zeros(audio, "b"), f"builtin/one_shot/{SYNTH_CLASSES[cls]}/{i}", group)
        for i, (audio, cls, group) in enumerate(
            zip(
                np.concatenate([synth_audio, kit_audio]),
                np.concatenate([synth_classes, kit_classes]),
                groups,
                strict=True,
            )
        )
    ]


# -- summary --------------------------------------------------------------------------------------------


def _log_summary(source: str, corpus: GrainCorpus, log: Callable[[str], None]) -> None:
    seconds = sum(len(s) for s in corpus.sounds) / corpus.sample_rate
    log(
        f"grains {source}: {len(corpus)} grains of {corpus.grain_size} samples (hop {corpus.hop}) "
        f"from {len(corpus.sources)} sounds ({seconds:.1f} s kept) at {corpus.sample_rate} Hz"
    )
    log(f"grains {source}: skipped " + ", ".join(f"{name}={count}" for name, count in corpus.counts.items()))

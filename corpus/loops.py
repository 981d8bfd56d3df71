"""The loop corpus of the techno model: crops of ``bars`` bars from a folder of audio, or built-in loops.

A folder is searched recursively for files of the formats soundfile reads (wav, flac, ogg, aiff, ...);
names starting with ``.`` are skipped (editor temp files, macOS ``._`` forks). Each file is read
(at most :data:`MAX_READ_S` seconds), folded to mono and resampled to the model rate.

Tempo: a ``bpm`` suffix in the file name, or else in the name of a folder above it (``124bpm``,
``124 BPM``, ``124_bpm``, ``123.5-bpm``; a bare number such as ``_124_`` is not a tempo), otherwise
the tempo is estimated from the audio (onset autocorrelation, then a beat grid fitted to the onsets)
and kept only when the estimate is confident and lies in 70..200 bpm; tempi under 100 are doubled,
as a techno loop at 70..100 bpm is almost always half-time felt.

Crops: with a known tempo, every crop starts on a downbeat of the fitted beat grid (a named loop
whose length is a whole number of bars starts at its first sample) and steps by ``bars`` bars; it
holds ``length`` samples, the ``bars`` bars repeated when the file ends sooner. ``loop_samples``
is the length of ``bars`` bars. When ``bars`` bars do not fit in ``length`` at the file's tempo, or
the tempo is unknown, windows of ``length`` samples with a hop of half of it are taken instead
(bpm NaN, loop_samples = length). Crops under -60 dBFS RMS are dropped; each kept crop is
peak-normalised to :data:`PEAK`. ``examples`` caps the number of crops, spread evenly over all.

Groups: every crop of one file is in the group of that file (its path relative to the folder), and every
built-in loop is its own group, named after its procedural seed (``builtin/seed7``): a run's split
(``corpus.splits``) deals whole groups to train, validation and test.

The built-in corpus is :func:`corpus.techno_synth.generate_techno_corpus`. Arrays are cached as
``.npz`` in ``cache_dir``, keyed by the settings and, for a folder, its files (path, size, mtime).
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft

from latentlive.core.errors import UserError
from latentlive.corpus.audio_folder import list_audio_files, read_audio, read_mono, reading_summary
from latentlive.corpus.npz_cache import NpzCache, folder_listing
from latentlive.corpus.techno_synth import (
    BPM_RANGE,
    PEAK,
    corpus_loop_seed,
    generate_techno_corpus,
    loop_samples_for,
)

__all__ = [
    "MAX_READ_S",
    "PEAK",
    "SKIP_KEYS",
    "LoopCorpus",
    "TempoEstimate",
    "builtin_group",
    "builtin_loop_seed",
    "estimate_tempo",
    "load_loops",
    "tempo_from_name",
]

# Bump when the reader, the generator or the cache layout change: old caches are then ignored.
CACHE_VERSION = 2
SKIP_KEYS = (
    "unreadable_files",
    "too_short_files",
    "silent_files",
    "non_audio_files",
    "silent_crops",
    "loop_longer_than_length_files",  # not skipped: cut into plain windows, tempo dropped
)
MAX_READ_S = 900.0
SILENT_PEAK = 1e-4  # -80 dBFS: a file this quiet holds nothing
SILENT_CROP_RMS = 1e-3  # -60 dBFS
TEMPO_RANGE = (70.0, 200.0)  # estimates outside are not trusted
FOLD_BELOW = 100.0  # estimated tempi under this are doubled
MIN_AUTOCORRELATION = 0.1  # of the onset envelope at the beat period, relative to lag 0
MIN_GRID_CONTRAST = 1.4  # mean onset strength on the beat grid over the mean onset strength
_BPM_IN_NAME = re.compile(r"(?<![\d.])(\d{2,3}(?:\.\d+)?)\s*[-_ ]?\s*bpm(?![a-z])", re.IGNORECASE)


@dataclass
class LoopCorpus:
    """N loop examples of `length` samples at the model rate.

    audio: float32 [N, length], each starting on a downbeat when its tempo is known, peak PEAK.
    bpm: float32 [N] (NaN when unknown). loop_samples: int64 [N], samples in ``bars`` bars at that
    tempo (<= length; length when the tempo is unknown). sources: [N] ``builtin/<index>`` or
    ``<path relative to the folder>@<start in seconds>``. groups: [N] the group of each loop, its file
    (path relative to the folder) or its procedural seed (:func:`builtin_group`). starts: int64 [N], the
    crop's first sample in its file at the model rate (0 for built-in loops). counts: SKIP_KEYS -> number
    of files (or crops) skipped.
    """

    audio: np.ndarray
    bpm: np.ndarray
    loop_samples: np.ndarray
    sources: list[str]
    groups: list[str]
    starts: np.ndarray
    counts: dict[str, int]

    def __len__(self) -> int:
        return int(self.audio.shape[0])


@dataclass(frozen=True)
class TempoEstimate:
    """A beat grid: ``bpm``, the first downbeat (sample) and the confidence measures behind it."""

    bpm: float
    downbeat: int
    autocorrelation: float
    grid_contrast: float


_CACHE = NpzCache(LoopCorpus, "loops", "loops", CACHE_VERSION, compress=False)


def load_loops(
    db: Path | None,
    sample_rate: int = 16000,
    length: int = 65536,
    bars: int = 2,
    examples: int = 512,
    seed: int = 0,
    cache_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> LoopCorpus:
    """Load loops of `bars` bars from folder `db` (or the built-in corpus when None), cached in `cache_dir`.

    Built-in: `examples` rendered loops drawn with `seed`. A folder: at most `examples` crops (`seed`
    does not apply).
    """
    _check_settings(sample_rate, length, bars, examples)
    settings = {"sample_rate": sample_rate, "length": length, "bars": bars, "examples": examples}
    if db is None:
        slowest = loop_samples_for(BPM_RANGE[0], bars, sample_rate)
        if slowest > length:
            raise UserError(
                f"length = {length}: shorter than {bars} bar(s) at {BPM_RANGE[0]:g} bpm ({slowest} samples at "
                f"{sample_rate} Hz); raise length or lower bars"
            )
        settings |= {"builtin": True, "seed": seed}
        corpus = _CACHE.load(cache_dir, settings, log)
        if corpus is None:
            log(f"loops: rendering {examples} built-in techno loops of {bars} bar(s)")
            audio, bpm = generate_techno_corpus(examples, sample_rate, bars, length, seed)
            loops = np.array([loop_samples_for(float(b), bars, sample_rate) for b in bpm], dtype=np.int64)
            sources = [f"builtin/{i}" for i in range(examples)]
            groups = [builtin_group(corpus_loop_seed(seed, i)) for i in range(examples)]
            starts = np.zeros(examples, dtype=np.int64)
            corpus = LoopCorpus(audio, bpm, loops, sources, groups, starts, dict.fromkeys(SKIP_KEYS, 0))
            _CACHE.save(cache_dir, settings, corpus, log)
        source = "builtin"
    else:
        db = Path(db)
        files, others = list_audio_files(
            db,
            "loop folder",
            "a folder of audio loops or tracks",
            "add loops or tracks, with the tempo in the name such as 'groove 124bpm.wav'",
        )
        listing = folder_listing(db, files)
        settings |= {"files": listing, "others": others}
        corpus = _CACHE.load(cache_dir, settings, log)
        if corpus is None:
            corpus = _folder_corpus(db, files, others, sample_rate, length, bars, examples, log)
            _CACHE.save(cache_dir, settings, corpus, log)
        source = str(db)
    _log_summary(source, corpus, log)
    return corpus


def builtin_group(loop_seed: int) -> str:
    """The group of the built-in loop rendered from procedural seed ``loop_seed``: ``builtin/seed<N>``."""
    return f"builtin/seed{loop_seed}"


def builtin_loop_seed(group: str) -> int | None:
    """The procedural seed of a built-in loop's group (see :func:`builtin_group`); None for a file's group."""
    prefix = "builtin/seed"
    return int(group[len(prefix) :]) if group.startswith(prefix) and group[len(prefix) :].isdigit() else None


def tempo_from_name(path: Path, root: Path | None = None) -> float | None:
    """The tempo written in the file name (``124bpm``, ``124 BPM``), else in a folder name up to `root`."""
    names = [path.stem]
    parent = path.parent
    while root is not None and parent != root and root in parent.parents:
        names.append(parent.name)
        parent = parent.parent
    for name in names:
        match = _BPM_IN_NAME.search(name)
        if match and 40.0 <= float(match.group(1)) <= 300.0:
            return float(match.group(1))
    return None


def estimate_tempo(audio: np.ndarray, sample_rate: int, bpm: float | None = None) -> TempoEstimate | None:
    """The beat grid of mono `audio` [T]: tempo (unless `bpm` is given) and first downbeat.

    The tempo comes from the autocorrelation of a spectral-flux onset envelope (8 ms frames), refined
    by fitting a comb of beats to the whole envelope; the beat phase is fitted to the bass onsets
    (under 200 Hz) when they are regular enough, and the downbeat is the beat (of 4) with the
    strongest bass onsets. Returns None when no onsets are found or, for an estimated tempo, when the
    estimate is not confident (see MIN_AUTOCORRELATION, MIN_GRID_CONTRAST) or outside TEMPO_RANGE.
    """
    envelope, bass, frame_rate = _onset_envelopes(np.asarray(audio, dtype=np.float32), sample_rate)
    if len(envelope) < 8 or float(envelope.max()) <= 0.0:
        return None
    autocorrelation = 1.0
    if bpm is None:
        bpm, autocorrelation = _autocorrelation_tempo(envelope, frame_rate)
        if bpm is None or not TEMPO_RANGE[0] <= bpm <= TEMPO_RANGE[1]:
            return None
        if autocorrelation < MIN_AUTOCORRELATION:
            return None
        period, phase, contrast = _fit_grid(envelope, 60.0 * frame_rate / bpm, refine=True)
        if contrast < MIN_GRID_CONTRAST:
            return None
        bpm = 60.0 * frame_rate / period
        while bpm < FOLD_BELOW:
            bpm, period = 2.0 * bpm, period / 2.0
    else:
        period, phase, contrast = _fit_grid(envelope, 60.0 * frame_rate / bpm, refine=False)
    if float(bass.max()) > 0.0:  # kicks mark the beat better than the loudest off-beat hats or bass notes
        _, bass_phase, bass_contrast = _fit_grid(bass, period, refine=False)
        if bass_contrast >= MIN_GRID_CONTRAST:
            phase = bass_phase
    beats = phase + period * np.arange(4)
    strength = [float(np.mean(_interp(bass, np.arange(b, len(bass), 4 * period)))) for b in beats]
    downbeat = beats[int(np.argmax(strength))]
    return TempoEstimate(
        float(bpm), int(round(downbeat * sample_rate / frame_rate)), float(autocorrelation), float(contrast)
    )


# -- settings and files ---------------------------------------------------------------------------------


def _check_settings(sample_rate: int, length: int, bars: int, examples: int) -> None:
    if sample_rate < 8000:
        raise UserError(f"sample_rate = {sample_rate}: too low for loops; use 16000")
    if length < 0.5 * sample_rate:
        raise UserError(f"length = {length}: under half a second at {sample_rate} Hz; use e.g. 65536")
    if bars < 1:
        raise UserError(f"bars = {bars}: must be 1 or more; use 1, 2 or 4")
    if examples < 1:
        raise UserError(f"examples = {examples}: must be 1 or more; use e.g. 512")


# -- crops ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Crop:
    """Where an example comes from: file index, start sample, samples of audio used, tempo and loop."""

    file: int
    start: int
    used: int  # samples read from the file; the rest of `length` repeats them
    bpm: float
    loop: int


def _plan_crops(
    audio: np.ndarray, named_bpm: float | None, file: int, sample_rate: int, length: int, bars: int
) -> tuple[list[_Crop], str | None]:
    """The crops of one file (before the silence check), and a note: "loop_longer_than_length_files",
    "too_short_files" or None."""
    note = None
    grid = None
    if named_bpm is not None:
        bar = loop_samples_for(named_bpm, 1, sample_rate)
        whole_bars = round(len(audio) / bar)
        if whole_bars >= 1 and abs(len(audio) - whole_bars * bar) <= 0.01 * bar:
            grid = TempoEstimate(named_bpm, 0, 1.0, 1.0)  # a cut loop: it starts on its downbeat
        else:
            grid = estimate_tempo(audio, sample_rate, bpm=named_bpm) or TempoEstimate(named_bpm, 0, 1.0, 1.0)
    elif len(audio) >= loop_samples_for(TEMPO_RANGE[1], bars, sample_rate):
        grid = estimate_tempo(audio, sample_rate)
    if grid is not None:
        loop = loop_samples_for(grid.bpm, bars, sample_rate)
        if loop > length:
            note, grid = "loop_longer_than_length_files", None
        else:
            crops = _loop_crops(audio, grid, named_bpm is not None, file, sample_rate, length, bars)
            return crops, None if crops else "too_short_files"
    if len(audio) < length:
        return [], "too_short_files"
    starts = range(0, len(audio) - length + 1, length // 2)
    return [_Crop(file, s, length, float("nan"), length) for s in starts], note


def _loop_crops(
    audio: np.ndarray, grid: TempoEstimate, named: bool, file: int, sample_rate: int, length: int, bars: int
) -> list[_Crop]:
    """Crops of `bars` bars on the downbeats of `grid`; a named loop shorter than `bars` bars but a whole
    number of bars that divides them is repeated to fill them."""
    loop = loop_samples_for(grid.bpm, bars, sample_rate)
    bar = loop_samples_for(grid.bpm, 1, sample_rate)
    if named and len(audio) < loop:
        whole_bars = round(len(audio) / bar)
        if whole_bars >= 1 and bars % whole_bars == 0 and abs(len(audio) - whole_bars * bar) <= 0.01 * bar:
            return [_Crop(file, 0, min(len(audio), whole_bars * bar), grid.bpm, loop)]
        return []
    stride = bars * 4 * 60.0 * sample_rate / grid.bpm
    first = grid.downbeat % stride  # the earliest downbeat in phase with the grid
    crops = []
    for start in np.round(first + stride * np.arange(int((len(audio) - first) // stride) + 1)).astype(int):
        if start + loop <= len(audio):
            crops.append(_Crop(file, int(start), min(length, len(audio) - int(start)), grid.bpm, loop))
    return crops


def _cut(audio: np.ndarray, crop: _Crop, length: int) -> np.ndarray:
    """float32 [length]: the crop's samples, repeated (whole loops) when they are fewer than `length`."""
    piece = audio[crop.start : crop.start + crop.used]
    if len(piece) < length:
        # repeat whole loops only: the part after the last full loop would break the period
        piece = np.resize(piece[: max(crop.loop, len(piece) // crop.loop * crop.loop)], length)
    return piece


def _folder_corpus(
    db: Path,
    files: list[Path],
    others: int,
    sample_rate: int,
    length: int,
    bars: int,
    examples: int,
    log: Callable[[str], None],
) -> LoopCorpus:
    counts = dict.fromkeys(SKIP_KEYS, 0)
    counts["non_audio_files"] = others
    planned: list[_Crop] = []
    reads = []
    for index, path in enumerate(files):
        read = read_audio(path, sample_rate, MAX_READ_S)
        if read is None:
            counts["unreadable_files"] += 1
            log(f"loops: skipped {path}: soundfile cannot read it")
            continue
        reads.append(read)
        audio = read.samples
        if len(audio) == 0 or float(np.max(np.abs(audio))) < SILENT_PEAK:
            counts["silent_files"] += 1
            continue
        crops, note = _plan_crops(audio, tempo_from_name(path, db), index, sample_rate, length, bars)
        if note is not None:
            counts[note] += 1
        loud = [c for c in crops if _rms(_cut(audio, c, length)) >= SILENT_CROP_RMS]
        counts["silent_crops"] += len(crops) - len(loud)
        planned += loud
    summary = reading_summary("loops", reads)
    if summary:
        log(summary)
    if not planned:
        raise UserError(
            f"{db}: none of the {len(files)} audio files gave a usable loop ({counts['unreadable_files']} "
            f"unreadable, {counts['too_short_files']} too short, {counts['silent_files']} silent, "
            f"{counts['silent_crops']} silent crops); add loops of at least {bars} bar(s) or tracks longer "
            f"than {length / sample_rate:.1f} s"
        )
    if len(planned) > examples:
        planned = [planned[i] for i in np.round(np.linspace(0, len(planned) - 1, examples)).astype(int)]
    return _extract(db, files, planned, sample_rate, length, counts)


def _extract(
    db: Path, files: list[Path], crops: list[_Crop], sample_rate: int, length: int, counts: dict[str, int]
) -> LoopCorpus:
    """Read the files of the kept crops again (one at a time, to bound memory) and cut the examples."""
    audio = np.zeros((len(crops), length), dtype=np.float32)
    current, mono = -1, np.zeros(0, dtype=np.float32)
    for row, crop in enumerate(crops):
        if crop.file != current:
            current, mono = crop.file, read_mono(files[crop.file], sample_rate, MAX_READ_S)
        piece = _cut(mono, crop, length)
        audio[row] = PEAK * piece / float(np.max(np.abs(piece)))
    return LoopCorpus(
        audio=audio,
        bpm=np.array([c.bpm for c in crops], dtype=np.float32),
        loop_samples=np.array([c.loop for c in crops], dtype=np.int64),
        sources=[f"{files[c.file].relative_to(db).as_posix()}@{c.start / sample_rate:.2f}" for c in crops],
        groups=[files[c.file].relative_to(db).as_posix() for c in crops],
        starts=np.array([c.start for c in crops], dtype=np.int64),
        counts=counts,
    )


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


# -- tempo ----------------------------------------------------------------------------------------------


def _onset_envelopes(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Spectral flux of log magnitudes: (all bands [F], bass under 200 Hz [F], frames per second).

    Frames of ~32 ms every ~8 ms, centred on their times; processed in chunks to bound memory.
    """
    n_fft = int(2 ** round(np.log2(0.032 * sample_rate)))
    hop = n_fft // 4
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak <= 0.0:
        return np.zeros(0), np.zeros(0), sample_rate / hop
    padded = np.pad(audio / peak, (n_fft // 2, n_fft // 2))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    window = np.hanning(n_fft).astype(np.float32)
    bands = _log_bands(n_fft, sample_rate)  # [bins, B]: kicks weigh as much as hats in the flux
    bass_bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate) < 200.0
    flux, bass = np.zeros(len(frames)), np.zeros(len(frames))
    previous, previous_power = None, None
    for start in range(0, len(frames), 4096):
        spectrum = np.abs(scipy.fft.rfft(frames[start : start + 4096] * window, axis=-1))
        magnitude = np.log1p(100.0 * spectrum @ bands)
        before = np.concatenate([magnitude[:1] if previous is None else previous, magnitude[:-1]])
        flux[start : start + len(magnitude)] = np.maximum(magnitude - before, 0.0).sum(axis=-1)
        # Bass onsets on power, not log magnitude: the kick, the loudest low event, must stand out
        # over bass notes that start from silence after a side-chain dip.
        power = np.square(spectrum[:, bass_bins]).sum(axis=-1)
        before = np.concatenate([power[:1] if previous_power is None else previous_power, power[:-1]])
        bass[start : start + len(power)] = np.maximum(power - before, 0.0)
        previous, previous_power = magnitude[-1:], power[-1:]
    # Only what stands above the local average is an onset; this removes slow swells and noise floors.
    smooth = max(1, int(0.25 * sample_rate / hop))
    kernel = np.ones(smooth) / smooth
    flux = np.maximum(flux - np.convolve(flux, kernel, mode="same"), 0.0)
    bass = np.maximum(bass - np.convolve(bass, kernel, mode="same"), 0.0)
    return flux, bass, sample_rate / hop


def _band_centres(sample_rate: int, count: int = 24) -> np.ndarray:
    """Centre frequencies (Hz) of the log-spaced bands of the onset envelope, 40 Hz .. 0.45 x rate."""
    return np.geomspace(40.0, 0.45 * sample_rate, count)


def _log_bands(n_fft: int, sample_rate: int) -> np.ndarray:
    """float32 [bins, B]: triangular weights (in log frequency) of the bands of _band_centres, area 1."""
    centres = np.log(_band_centres(sample_rate))
    step = centres[1] - centres[0]
    frequency = np.log(np.maximum(np.fft.rfftfreq(n_fft, 1.0 / sample_rate), 1.0))
    weights = np.maximum(1.0 - np.abs(frequency[:, None] - centres[None, :]) / step, 0.0)
    weights[:, weights.sum(axis=0) == 0] = 0.0
    return (weights / np.maximum(weights.sum(axis=0, keepdims=True), 1e-9)).astype(np.float32)


def _autocorrelation_tempo(envelope: np.ndarray, frame_rate: float) -> tuple[float | None, float]:
    """The most likely tempo (bpm, 60..240 searched, a prior around 120) and its normalised autocorrelation."""
    # Onsets are spikes a frame or two wide: smoothed, their peaks survive lags between two frames.
    kernel = np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2)
    smooth = np.convolve(envelope, kernel / kernel.sum(), mode="same")
    centred = smooth - smooth.mean()
    n = len(centred)
    spectrum = scipy.fft.rfft(centred, n=scipy.fft.next_fast_len(2 * n, real=True))
    autocorrelation = scipy.fft.irfft(np.abs(spectrum) ** 2)[:n]
    if autocorrelation[0] <= 0.0:
        return None, 0.0
    autocorrelation = autocorrelation / autocorrelation[0]
    low, high = int(np.floor(60.0 * frame_rate / 240.0)), int(np.ceil(60.0 * frame_rate / 60.0))
    if high + 1 >= n:
        return None, 0.0
    lags = np.arange(low, high + 1)
    # A true beat period also repeats at 2, 3 and 4 periods; a 3/4 or 4/3 ratio of it does not.
    multiples = [m for m in range(1, 5) if m * high < n] or [1]
    score = np.mean([_interp(np.maximum(autocorrelation, 0.0), m * lags) for m in multiples], axis=0)
    prior = np.exp(-0.5 * np.log2(60.0 * frame_rate / lags / 120.0) ** 2)
    best = int(lags[np.argmax(score * prior)])
    left, centre, right = autocorrelation[best - 1 : best + 2]
    curvature = left - 2.0 * centre + right
    offset = 0.5 * (left - right) / curvature if curvature < 0 else 0.0
    return 60.0 * frame_rate / (best + float(np.clip(offset, -0.5, 0.5))), float(centre)


def _fit_grid(envelope: np.ndarray, period: float, refine: bool) -> tuple[float, float, float]:
    """The comb of beats that best fits the onset envelope: (period, phase in frames, contrast)."""
    periods = period * (1.0 + np.linspace(-0.008, 0.008, 33)) if refine else np.array([period])
    phases = np.arange(0.0, period, 0.5)
    beats = np.arange(int(len(envelope) / period * 1.02) + 1)
    best = (-1.0, period, 0.0)
    for candidate in periods:
        times = phases[:, None] + candidate * beats[None, :]  # [P, K]
        inside = times <= len(envelope) - 1
        values = np.where(inside, _interp(envelope, np.minimum(times, len(envelope) - 1)), 0.0)
        score = values.sum(axis=1) / np.maximum(inside.sum(axis=1), 1)
        index = int(np.argmax(score))
        if score[index] > best[0]:
            best = (float(score[index]), float(candidate), float(phases[index]))
    mean = float(envelope.mean())
    return best[1], best[2], best[0] / mean if mean > 0 else 0.0


def _interp(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    return np.interp(positions, np.arange(len(values)), values)


# -- summary --------------------------------------------------------------------------------------------


def _log_summary(source: str, corpus: LoopCorpus, log: Callable[[str], None]) -> None:
    known = np.isfinite(corpus.bpm)
    tempo = f", median {float(np.median(corpus.bpm[known])):.1f} bpm" if known.any() else ""
    log(
        f"loops {source}: {len(corpus)} loops of {corpus.audio.shape[-1]} samples, "
        f"tempo known for {int(known.sum())}{tempo}"
    )
    log(f"loops {source}: skipped " + ", ".join(f"{name}={count}" for name, count in corpus.counts.items()))

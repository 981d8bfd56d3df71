"""How generated audio compares with held-out corpus audio (issue #18): measured on samples, not reconstructions.

Three measures, each reported for the generated clips and, beside them, for the held-out corpus clips:

- **frame-rate share**: the share of a clip's power within ``width_hz`` of the harmonics of a rate the model
  works at (a latent frame rate, a grain rate). A model that turns its frames into a periodic buzz puts much of
  its power there; music rarely does (a few percent: the share of white noise is about ``2 width / rate``).
- **Fréchet log-mel distance**: the Fréchet distance between Gaussians fitted to the log-mel frames (64 mel
  bands, 1024-point frames, hop 256, each band's mean power in dB floored at ``SILENT_DB``) of the generated
  clips and of the held-out ones. The embedding needs no download and no training: statistics of the
  spectral envelope, frame by frame. It is 0 for identical sets and grows with the difference of level,
  spectrum and its variety (tests/test_sample_quality.py shows it keeps the corpus apart from noise and from a
  buzz, and deaf to hiss below the floor).
- **per-band flatness and loudness**: for a few frequency bands, the mean spectral flatness of the frames where
  the band sounds (1: noise, 0: a few lines: metallic hats read low) and the mean and spread of its level in dB.

And spectral lines, for models that can leave one the corpus lacks (the drum kit's 11.025 kHz line):
:func:`line_at_db` (one line against a band's median power) and :func:`new_line_db` (the strongest line a clip
has that the corpus does not).
"""

import math
from collections.abc import Sequence

import numpy as np
import scipy.linalg
import scipy.ndimage

from latentlive.models.nsgt import hz_to_mel, mel_to_hz

N_FFT, HOP, MEL_BANDS = 1024, 256, 64
BAND_EDGES_HZ = (0.0, 500.0, 2000.0, 6000.0, 12000.0, 24000.0)  # cut at each rate's Nyquist frequency
SILENT_DB = -70.0  # a band quieter than this in a frame (dB of its mean power) is not measured there
EPS = 1e-12
LINE_FROM_HZ = 2000.0  # lines are looked for above this (where the bands are noise-like and wide)
LINE_BACKGROUND_HZ = 250.0  # a bin's prominence is over the median power within this distance of it
LINE_TOLERANCE_HZ = 20.0  # a generated line is one the corpus has when the corpus has one this close


def _clips(clips: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    """Mono float64 clips, each at least one frame long."""
    out = [np.asarray(c, dtype=np.float64).reshape(-1) for c in clips]
    if not out:
        raise ValueError("sample quality: no clips")
    return [np.pad(c, (0, max(0, N_FFT - len(c)))) for c in out]


def _power_frames(clip: np.ndarray) -> np.ndarray:
    """Power spectrogram ``[frames, N_FFT // 2 + 1]`` (Hann window, hop ``HOP``)."""
    frames = np.lib.stride_tricks.sliding_window_view(clip, N_FFT)[::HOP]
    return np.abs(np.fft.rfft(frames * np.hanning(N_FFT), axis=-1)) ** 2 / N_FFT


def power_spectrum(clip: np.ndarray) -> np.ndarray:
    """Power ``[T // 2 + 1]`` of one clip (Hann window over the whole clip)."""
    clip = np.asarray(clip, dtype=np.float64)
    return np.abs(np.fft.rfft(clip * np.hanning(len(clip)))) ** 2


def line_prominence_db(power: np.ndarray, rate: float) -> np.ndarray:
    """Per bin of a power spectrum ``[K]`` (bins up to ``rate / 2``), its level in dB over the median power
    within ``LINE_BACKGROUND_HZ`` (mirrored at the ends): about 0 for noise, up to ~12 for its largest
    chance peaks over a few thousand bins, tens of dB for a steady sinusoid."""
    size = 2 * int(LINE_BACKGROUND_HZ * 2 * (len(power) - 1) / rate) + 1
    background = scipy.ndimage.median_filter(power, size=size, mode="reflect")
    return 10.0 * np.log10((power + 1e-30) / (background + 1e-30))


def line_at_db(clip: np.ndarray, rate: float, line_hz: float, band_hz: tuple[float, float]) -> float:
    """The strongest bin of ``clip [T]`` within ``LINE_TOLERANCE_HZ`` of ``line_hz`` over the median power of
    ``band_hz``, in dB (issue #18's check of the line at 11.025 kHz against the 9-10.9 kHz band)."""
    power = power_spectrum(clip)
    freqs = np.fft.rfftfreq(len(clip), 1.0 / rate)
    near = power[np.abs(freqs - line_hz) <= LINE_TOLERANCE_HZ].max()
    background = np.median(power[(freqs >= band_hz[0]) & (freqs <= band_hz[1])])
    return float(10.0 * np.log10((near + 1e-30) / (background + 1e-30)))


def new_line_db(clips: np.ndarray, corpus: np.ndarray, rate: float) -> np.ndarray:
    """Per clip of ``clips [N, T]``, its strongest line above ``LINE_FROM_HZ`` that the ``corpus [R, T]``
    clips lack: the largest ``prominence - corpus prominence`` over bins, the corpus's being that of its mean
    power spectrum (steady lines stay, chance peaks average out), the largest within ``LINE_TOLERANCE_HZ``,
    and never below 0. About 12 dB for noise; tens of dB for a steady sinusoid the corpus does not have."""
    freqs = np.fft.rfftfreq(clips.shape[-1], 1.0 / rate)
    reach = int(LINE_TOLERANCE_HZ / freqs[1])
    corpus_db = line_prominence_db(np.mean([power_spectrum(c) for c in corpus], 0), rate)
    corpus_db = scipy.ndimage.maximum_filter(np.maximum(corpus_db, 0.0), size=2 * reach + 1, mode="reflect")
    above = freqs >= LINE_FROM_HZ
    return np.array([(line_prominence_db(power_spectrum(c), rate) - corpus_db)[above].max() for c in clips])


def frame_rate_share(
    clips: Sequence[np.ndarray] | np.ndarray, rate: int, fundamental: float, width_hz: float = 2.0
) -> float:
    """The share of the clips' power (pooled, DC left out) within ``width_hz`` of the harmonics of
    ``fundamental`` Hz, from one spectrum per clip (Hann window over the whole clip)."""
    on, total = 0.0, 0.0
    for clip in _clips(clips):
        power = power_spectrum(clip)
        freqs = np.fft.rfftfreq(len(clip), 1.0 / rate)
        nearest = np.maximum(np.round(freqs / fundamental), 1.0) * fundamental
        near = np.abs(freqs - nearest) <= width_hz
        on += float(power[1:][near[1:]].sum())
        total += float(power[1:].sum())
    return on / total if total > 0 else 0.0


def mel_filterbank(rate: int, bands: int = MEL_BANDS, n_fft: int = N_FFT) -> np.ndarray:
    """Triangular filters ``[bands, n_fft // 2 + 1]`` equally spaced in mel from 20 Hz to Nyquist."""
    edges = np.array([mel_to_hz(m) for m in np.linspace(hz_to_mel(20.0), hz_to_mel(rate / 2), bands + 2)])
    freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - low) / np.maximum(centre - low, EPS)
    falling = (high - freqs) / np.maximum(high - centre, EPS)
    return np.clip(np.minimum(rising, falling), 0.0, None)


def log_mel_frames(
    clips: Sequence[np.ndarray] | np.ndarray, rate: int, floor_db: float = SILENT_DB
) -> np.ndarray:
    """Every frame of every clip as log-mel powers ``[frames, MEL_BANDS]``: log10 of each mel band's mean
    power (the power :func:`band_statistics` measures), floored at ``floor_db``. Below ``SILENT_DB`` a band is
    silence, however far below: with a floor of -100 dB the distance was mostly a count of digitally silent
    frames (docs/sample_quality.md, scripts/frechet_floor.py)."""
    bank = mel_filterbank(rate)
    bank = bank / np.maximum(bank.sum(1, keepdims=True), EPS)
    floor = 10.0 ** (floor_db / 10.0)
    return np.concatenate([np.log10(_power_frames(c) @ bank.T + floor) for c in _clips(clips)])


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of ``a`` and of ``b`` (``[N, D]``)."""
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():  # singular covariances (a constant band): a tiny ridge, as FID does
        ridge = 1e-6 * np.eye(len(cov_a))
        root = scipy.linalg.sqrtm((cov_a + ridge) @ (cov_b + ridge))
    root = np.real(root)
    distance = float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2.0 * root))
    return max(distance, 0.0)


def frechet_log_mel(
    generated: Sequence[np.ndarray] | np.ndarray,
    reference: Sequence[np.ndarray] | np.ndarray,
    rate: int,
    floor_db: float = SILENT_DB,
) -> float:
    """:func:`frechet_distance` of the log-mel frames (:func:`log_mel_frames`) of ``generated`` and of
    ``reference``."""
    return frechet_distance(
        log_mel_frames(generated, rate, floor_db), log_mel_frames(reference, rate, floor_db)
    )


def band_names(rate: int) -> list[str]:
    """Names of the bands :func:`band_statistics` measures at ``rate``: ``"0-500"``, ... in Hz."""
    edges = _band_edges(rate)
    return [f"{int(lo)}-{int(hi)}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]


def _band_edges(rate: int) -> list[float]:
    nyquist = rate / 2
    return [e for e in BAND_EDGES_HZ if e < nyquist] + [nyquist]


def band_statistics(clips: Sequence[np.ndarray] | np.ndarray, rate: int) -> dict[str, dict[str, float]]:
    """Per band (:func:`band_names`): ``flatness`` (mean over the frames where the band is above
    ``SILENT_DB``; NaN where it never is), ``loudness_db`` and ``loudness_db_std`` (over every frame)."""
    power = np.concatenate([_power_frames(c) for c in _clips(clips)])
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / rate)
    edges = _band_edges(rate)
    stats = {}
    for name, lo, hi in zip(band_names(rate), edges[:-1], edges[1:], strict=True):
        band = power[:, (freqs >= lo) & (freqs < hi) & (freqs > 0)]
        mean = band.mean(1)
        level = 10.0 * np.log10(mean + EPS)
        flatness = np.exp(np.log(band + EPS).mean(1)) / (mean + EPS)
        sounding = level > SILENT_DB
        stats[name] = {
            "flatness": float(flatness[sounding].mean()) if sounding.any() else math.nan,
            "loudness_db": float(level.mean()),
            "loudness_db_std": float(level.std()),
        }
    return stats


def sample_quality(
    generated: Sequence[np.ndarray] | np.ndarray,
    reference: Sequence[np.ndarray] | np.ndarray,
    rate: int,
    rates: dict[str, float],
    prefix: str = "quality/",
) -> dict[str, float]:
    """The three measures of ``generated`` clips against held-out ``reference`` clips at ``rate`` Hz, keyed as
    metrics: ``<prefix>frame_share/<name>`` for each ``rates`` entry (a frame or grain rate in Hz) with
    ``..._corpus`` beside it, ``<prefix>frechet_log_mel``, and per band ``<prefix>flatness/<band>``,
    ``<prefix>loudness_db/<band>``, each with ``..._corpus``. NaN flatness (a band that never sounds) reads
    0."""
    metrics = {f"{prefix}frechet_log_mel": frechet_log_mel(generated, reference, rate)}
    for name, hz in rates.items():
        metrics[f"{prefix}frame_share/{name}"] = frame_rate_share(generated, rate, hz)
        metrics[f"{prefix}frame_share/{name}_corpus"] = frame_rate_share(reference, rate, hz)
    for side, clips in (("", generated), ("_corpus", reference)):
        for band, stats in band_statistics(clips, rate).items():
            metrics[f"{prefix}flatness/{band}{side}"] = float(np.nan_to_num(stats["flatness"]))
            metrics[f"{prefix}loudness_db/{band}{side}"] = stats["loudness_db"]
    return metrics

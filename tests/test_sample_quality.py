"""The sample-quality measures of issue #18 (latentlive.training.sample_quality) tell apart what they are
meant to: a corpus from noise and from a frame-rate buzz, noise from metallic lines."""

import numpy as np
import pytest

from latentlive.training.sample_quality import (
    band_names,
    band_statistics,
    frame_rate_share,
    frechet_log_mel,
    sample_quality,
)

RATE = 16000


def drum_like(seed: int, count: int = 12, seconds: float = 2.0) -> list[np.ndarray]:
    """A stand-in corpus: decaying noise bursts and pitched thumps at random times, levels and colours."""
    rng = np.random.default_rng(seed)
    clips = []
    t = np.arange(int(seconds * RATE)) / RATE
    for _ in range(count):
        clip = np.zeros_like(t)
        for _ in range(8):
            start = rng.uniform(0, seconds - 0.3)
            env = np.where(t >= start, np.exp(-(t - start) * rng.uniform(8, 40)), 0.0)
            noise = rng.standard_normal(len(t))
            if rng.random() < 0.5:  # a thump
                clip += rng.uniform(0.2, 0.6) * env * np.sin(2 * np.pi * rng.uniform(45, 90) * (t - start))
            else:  # a brighter burst: noise, lightly smoothed
                clip += rng.uniform(0.05, 0.3) * env * np.convolve(noise, np.ones(2) / 2, "same")
        clips.append(clip)
    return clips


def buzz(count: int = 6, seconds: float = 2.0, frame_rate: float = 125.0) -> list[np.ndarray]:
    """A pulse train at ``frame_rate`` under a slow envelope: what a decoder that stamps its frames makes."""
    n = int(seconds * RATE)
    rng = np.random.default_rng(7)
    clips = []
    for _ in range(count):
        clip = np.zeros(n)
        clip[:: int(RATE / frame_rate)] = rng.uniform(0.3, 0.6)
        clips.append(clip * (0.5 + 0.5 * np.sin(np.linspace(0, 3, n)) ** 2))
    return clips


def test_frame_rate_share_finds_a_buzz_and_not_the_corpus() -> None:
    buzzing = frame_rate_share(buzz(), RATE, 125.0)
    corpus = frame_rate_share(drum_like(0), RATE, 125.0)
    print(f"share on the harmonics of 125 Hz: buzz {buzzing:.3f}, corpus {corpus:.3f}")
    assert buzzing > 0.9
    noise = frame_rate_share([np.random.default_rng(1).standard_normal(2 * RATE)], RATE, 125.0)
    assert corpus < 0.2 and noise == pytest.approx(2 * 2.0 / 125.0, abs=0.01)  # white noise: 2 width / rate


def test_frechet_keeps_the_corpus_apart_from_noise_and_a_buzz() -> None:
    a, b = drum_like(0), drum_like(1)
    rng = np.random.default_rng(2)
    noise = [0.1 * rng.standard_normal(2 * RATE) for _ in range(6)]
    same, to_noise, to_buzz = (frechet_log_mel(a, other, RATE) for other in (b, noise, buzz()))
    print(f"Frechet log-mel: corpus vs corpus {same:.1f}, vs noise {to_noise:.0f}, vs buzz {to_buzz:.0f}")
    assert frechet_log_mel(a, a, RATE) == pytest.approx(0.0, abs=1e-6)
    assert same < 0.2 * to_noise
    assert same < 0.2 * to_buzz


def test_frechet_ignores_hiss_below_silence_and_not_hiss_one_hears() -> None:
    """The stand-in corpus's tails decay far below hearing. Hiss at -90 dBFS under them is silence too
    (``SILENT_DB``); with the old floor of -100 dB it read ten times the corpus-vs-corpus distance."""
    a = drum_like(0)
    rng = np.random.default_rng(4)

    def hissing(db: float) -> list[np.ndarray]:
        return [clip + 10 ** (db / 20) * rng.standard_normal(len(clip)) for clip in a]

    same = frechet_log_mel(a, drum_like(1), RATE)
    inaudible, audible = frechet_log_mel(a, hissing(-90.0), RATE), frechet_log_mel(a, hissing(-40.0), RATE)
    print(
        f"Frechet log-mel: corpus vs corpus {same:.1f}, hiss at -90 dB {inaudible:.2f}, at -40 dB {audible:.0f}"
    )
    assert inaudible < 0.1 * same
    assert audible > 10 * same


def test_flatness_reads_noise_high_and_metallic_lines_low() -> None:
    rng = np.random.default_rng(3)
    noise = [0.1 * rng.standard_normal(RATE)]
    t = np.arange(RATE) / RATE
    metallic = [sum(0.05 * np.sin(2 * np.pi * f * t) for f in (3210.0, 4870.0, 6330.0, 7150.0))]
    high = band_names(RATE)[-1]
    assert high == "6000-8000"
    assert band_statistics(noise, RATE)[high]["flatness"] > 0.4
    assert band_statistics(metallic, RATE)[high]["flatness"] < 0.05
    silent = band_statistics([np.zeros(RATE)], RATE)[high]
    assert np.isnan(silent["flatness"]) and silent["loudness_db"] < -100


def test_sample_quality_reports_each_measure_beside_the_corpus() -> None:
    metrics = sample_quality(buzz(), drum_like(0), RATE, {"frame": 125.0})
    assert metrics["quality/frame_share/frame"] > 0.9 > 0.2 > metrics["quality/frame_share/frame_corpus"]
    assert metrics["quality/frechet_log_mel"] > 0
    for band in band_names(RATE):
        for measure in ("flatness", "loudness_db"):
            assert f"quality/{measure}/{band}" in metrics and f"quality/{measure}/{band}_corpus" in metrics
    with pytest.raises(ValueError, match="no clips"):
        sample_quality([], drum_like(0), RATE, {})


def test_frechet_of_64_samples_moves_far_less_from_draw_to_draw_than_of_8() -> None:
    """Why the techno tasks score 128 samples (``quality_samples``): against the same 10 held-out clips, the
    distance of 8 generated clips depends on which 8 were drawn."""
    reference = drum_like(0, count=10, seconds=1.0)

    def spread(count: int) -> float:
        distances = [frechet_log_mel(drum_like(seed, count, 1.0), reference, RATE) for seed in range(1, 7)]
        return float(np.ptp(distances))

    few, many = spread(8), spread(64)
    print(f"Fréchet spread over 6 draws: 8 clips {few:.1f}, 64 clips {many:.1f}")
    assert many < few / 2

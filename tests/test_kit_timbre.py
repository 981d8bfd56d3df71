"""The kit's timbre (issue #18, item 5): hats and snares not metallic, and no spectral line the corpus lacks.

Sounds go through the path of the exported instrument (``export.drumsynth.DrumKit``: its NSGT, its noise fine
structure, its Griffin-Lim settings). A tiny model trained for a few steps cannot make a hat, so the flatness is
checked on the signal path itself: corpus one-shots pooled as the model pools them and synthesised by the kit
keep their high-band flatness. The line checks also run on one-shots of every class that the tiny kit renders
from its knobs. Each check is shown to fail on the old path (linear interpolation, Griffin-Lim from phase
zero) or on a planted sinusoid.
"""

from pathlib import Path

import gin
import numpy as np
import pytest
import torch

from latentlive.core.runs import load_checkpoint
from latentlive.export.drumsynth import PEAK, build_drumsynth_export
from latentlive.models.drumsynth import full_rate_magnitude
from latentlive.training.config import parse_gin
from latentlive.training.sample_quality import band_statistics, line_at_db, new_line_db
from latentlive.training.tasks.drumsynth import DrumSynthTask

HIGH_BAND = "6000-11025"
# the open hats of the corpus keep some metallic partials that the noise fine structure turns into noise:
# +51 % here, +42 % on the demo run (docs/drumsynth.md), so they are not held to the 30 %
NOISY_CLASSES = ("snare", "closed_hat")
FLATNESS_TOLERANCE = 0.3  # the goal: within 30 % of the corpus
NEW_LINE_DB = 15.0  # chance peaks of noise reach ~12 dB over their neighbourhood; the old comb 30-55 dB
# the line at the Nyquist frequency: at most this above the corpus's reading, or above 0 dB where the corpus is
# quieter there (its sounds were resampled, and fall off above 10 kHz): noise reads about +7 dB, the old line 55-70
NYQUIST_MARGIN_DB = 10.0


@pytest.fixture(scope="module")
def kit(drumsynth_run: Path):
    """The tiny run's task, its held-out corpus side (audio and classes), and the scripted ``DrumKit``."""
    parse_gin([drumsynth_run / "config.gin"])
    task = DrumSynthTask()
    held_out = task.load_data(None, 0, log=lambda _: None).side("validation")
    gin.clear_config()
    wrapper, _ = build_drumsynth_export(load_checkpoint(drumsynth_run / "checkpoints" / "last.pt"))
    return task, held_out.tensors["audio"], held_out.tensors["cls"], wrapper.kit


def _peak(audio: torch.Tensor) -> np.ndarray:
    return (audio * (PEAK / audio.abs().amax(-1, keepdim=True).clamp_min(1e-6))).double().numpy()


def _through_kit(kit, logmag: torch.Tensor) -> np.ndarray:
    """Pooled log-magnitudes ``[N, 1, F, M]`` -> one-shots as ``DrumKit.render`` makes them from decoded ones."""
    magnitude = kit.fine_structure.magnitude(logmag)
    phase = kit.fine_structure.start_phase
    return _peak(kit.nsgt.griffin_lim(magnitude, kit.iterations, kit.momentum, phase))


def _through_old_path(kit, logmag: torch.Tensor) -> np.ndarray:
    """The path before issue #18 item 5: interpolated magnitudes, Griffin-Lim from phase zero."""
    magnitude = full_rate_magnitude(logmag, int(kit.time_pool))
    return _peak(kit.nsgt.griffin_lim(magnitude, kit.iterations, kit.momentum))


def _flatness(clips: np.ndarray, rate: int) -> float:
    return band_statistics(clips, rate)[HIGH_BAND]["flatness"]


def _nyquist_line(clips: np.ndarray, task: DrumSynthTask) -> float:
    return float(np.median([line_at_db(c, task.sample_rate, *task.nyquist_line()) for c in clips]))


def _nyquist_limit(corpus: np.ndarray, task: DrumSynthTask) -> float:
    return max(_nyquist_line(corpus, task), 0.0) + NYQUIST_MARGIN_DB


def test_hats_and_snares_keep_the_high_band_flatness_of_the_corpus_through_the_kit_path(kit) -> None:
    task, audio, classes, drum_kit = kit
    for name in NOISY_CLASSES:
        corpus = audio[classes == task.class_names.index(name)]
        logmag = task.analyse(corpus)
        target = _flatness(corpus.double().numpy(), task.sample_rate)
        kept = _flatness(_through_kit(drum_kit, logmag), task.sample_rate)
        metallic = _flatness(_through_old_path(drum_kit, logmag), task.sample_rate)
        assert abs(kept / target - 1.0) <= FLATNESS_TOLERANCE, (name, kept, target)
        assert metallic < (1.0 - FLATNESS_TOLERANCE) * target, (name, metallic, target)  # the check can fail


def test_corpus_sounds_through_the_kit_path_gain_no_line_the_corpus_lacks(kit) -> None:
    task, audio, classes, drum_kit = kit
    for c, name in enumerate(task.class_names):
        corpus = audio[classes == c].double().numpy()
        rendered = _through_kit(drum_kit, task.analyse(audio[classes == c]))
        assert np.median(new_line_db(rendered, corpus, task.sample_rate)) < NEW_LINE_DB, name
        assert _nyquist_line(rendered, task) < _nyquist_limit(corpus, task), name
    hats = audio[classes == task.class_names.index("closed_hat")]
    comb = _through_old_path(drum_kit, task.analyse(hats))
    assert np.median(new_line_db(comb, hats.double().numpy(), task.sample_rate)) > NEW_LINE_DB + 10.0
    assert _nyquist_line(comb, task) > _nyquist_limit(hats.double().numpy(), task)


def test_one_shots_the_kit_renders_for_every_class_have_no_line_the_corpus_lacks(kit) -> None:
    task, audio, classes, drum_kit = kit
    knobs = torch.randn(4, drum_kit.latent_size, generator=torch.Generator().manual_seed(0))
    for c, name in enumerate(task.class_names):
        rendered = drum_kit.render(torch.full((4,), c), knobs).double().numpy()
        corpus = audio[classes == c].double().numpy()
        assert np.median(new_line_db(rendered, corpus, task.sample_rate)) < NEW_LINE_DB, name
        assert _nyquist_line(rendered, task) < _nyquist_limit(corpus, task), name


def test_a_planted_sinusoid_is_a_line_the_corpus_lacks(kit) -> None:
    """A quiet steady tone at the Nyquist frequency (11.025 kHz, the old line) or at 8.91 kHz (a band centre
    where the old comb had one), 40 dB under the peak, fails both checks on otherwise clean corpus hats."""
    task, audio, classes, _ = kit
    hats = audio[classes == task.class_names.index("closed_hat")].double().numpy()
    n = np.arange(hats.shape[-1])
    for hz in (task.sample_rate / 2.0, 8913.4):
        planted = hats + 0.01 * np.cos(2.0 * np.pi * hz / task.sample_rate * n)
        assert np.median(new_line_db(planted, hats, task.sample_rate)) > NEW_LINE_DB, hz
    planted = hats + 0.01 * np.cos(np.pi * n)
    assert _nyquist_line(planted, task) > _nyquist_limit(hats, task) + 10.0

"""Sample quality of the drum synth (issue #18): one-shots made from random knobs against the held-out sounds."""

import json
import math
from pathlib import Path

import gin
import pytest
import torch

from latentlive.core.runs import load_checkpoint
from latentlive.training.config import parse_gin
from latentlive.training.sample_quality import band_names
from latentlive.training.tasks.base import TensorData
from latentlive.training.tasks.drumsynth import DrumSynthTask


@pytest.fixture(scope="module")
def tiny(drumsynth_run: Path) -> tuple[DrumSynthTask, torch.nn.Module, TensorData, dict[str, float]]:
    """The tiny run's task (rebuilt from its config and seed), model, validation side and logged eval."""
    parse_gin([drumsynth_run / "config.gin"])
    task = DrumSynthTask()
    data = task.load_data(None, 0, log=lambda _: None)
    checkpoint = load_checkpoint(drumsynth_run / "checkpoints" / "last.pt")
    model, _ = task.build_model()
    model.load_state_dict(checkpoint["model_state"])
    model.eval()
    gin.clear_config()
    logged = json.loads((drumsynth_run / "metrics.json").read_text())["eval"]
    return task, model, data.side("validation"), logged


def test_training_logs_sample_quality_beside_the_corpus_for_every_band_and_class(tiny) -> None:
    task, _, held_out, logged = tiny
    bands = band_names(task.sample_rate)
    keys = ["eval/quality/frechet_log_mel", "eval/quality/frechet_log_mel_resynthesis"]
    for side in ("", "_corpus", "_resynthesis"):
        keys += [f"eval/quality/frame_share/{rate}{side}" for rate in ("frame", "nsgt_frame")]
        keys += [
            f"eval/quality/{kind}/{band}{side}" for kind in ("flatness", "loudness_db") for band in bands
        ]
        present = {task.class_names[int(c)] for c in held_out.tensors["cls"].unique()}
        keys += [f"eval/quality/{name}/flatness/{band}{side}" for name in present for band in bands]
    assert {"closed_hat", "snare"} <= present
    missing = [key for key in keys if key not in logged]
    assert not missing, missing
    assert all(math.isfinite(logged[key]) for key in keys)
    assert task.quality_rates()["frame"] == pytest.approx(task.sample_rate * task.frames / task.length)
    # held-out magnitudes through the signal path are far closer to the corpus than 6 steps of training are
    assert logged["eval/quality/frechet_log_mel_resynthesis"] < 0.5 * logged["eval/quality/frechet_log_mel"]


def test_logged_figures_are_those_of_the_generated_one_shots_not_of_the_held_out_ones(tiny) -> None:
    task, model, held_out, logged = tiny
    audio, cls = held_out.tensors["audio"], held_out.tensors["cls"]
    made, made_cls = task.generate_one_shots(model, task.quality_samples_per_class)
    again, _ = task.generate_one_shots(model, task.quality_samples_per_class)
    assert torch.equal(made, again)  # a fixed seed: every evaluation hears the same knobs
    assert made.shape == (len(task.class_names) * task.quality_samples_per_class, task.length)
    assert made.abs().amax(1).sub(0.9).abs().max() < 1e-5  # peak-normalised like the corpus

    generated = task.sample_quality_metrics(made, made_cls, audio, cls)
    for key, value in generated.items():  # what training logged is what these one-shots measure
        assert logged[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key

    # The held-out sounds as "generated": every figure reads as the corpus's own, Fréchet ~0 ...
    itself = task.sample_quality_metrics(audio, cls, audio, cls)
    assert itself["eval/quality/frechet_log_mel"] < 1e-3 * generated["eval/quality/frechet_log_mel"]
    for key in (k for k in itself if k.endswith("_corpus")):
        assert itself[key.removesuffix("_corpus")] == pytest.approx(itself[key]), key
    # ... while the tiny model's one-shots (6 steps of training) are far from it,
    assert generated["eval/quality/frechet_log_mel"] > 100.0
    high = band_names(task.sample_rate)[-1]
    assert generated[f"eval/quality/closed_hat/flatness/{high}"] != pytest.approx(
        generated[f"eval/quality/closed_hat/flatness/{high}_corpus"], abs=1e-3
    )
    # and a broken render (a 1 kHz tone for every sound) is further still, with a flat band no longer flat.
    t = torch.arange(task.length) / task.sample_rate
    tone = (0.9 * torch.sin(2 * math.pi * 1000.0 * t)).expand(len(made), -1)
    broken = task.sample_quality_metrics(tone, made_cls, audio, cls)
    assert broken["eval/quality/frechet_log_mel"] > itself["eval/quality/frechet_log_mel"] + 100.0
    assert broken["eval/quality/flatness/500-2000"] < 0.05 < itself["eval/quality/flatness/500-2000"]

"""The grain task's sample-quality measures (issue #18): what the instrument makes from its prior (an engine
texture along a walk drawn from N(0, 1), and grains decoded from N(0, 1)) against held-out grains."""

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from latentlive.core.runs import load_checkpoint
from latentlive.export.grain import DEFAULT_SETTINGS
from latentlive.models.grain_vae import GrainVAE
from latentlive.models.granular import GranularEngine
from latentlive.training.config import parse_gin
from latentlive.training.evaluation import evaluate_run
from latentlive.training.sample_quality import frame_rate_share, sample_quality
from latentlive.training.tasks.base import TensorData
from latentlive.training.tasks.grain import SYNC_SETTINGS, GrainTask

TEXTURE_KEYS = {
    "eval/quality/frame_share/grain",
    "eval/quality/frame_share/grain_corpus",
    "eval/quality/frame_share/grain_sync",
    "eval/quality/frame_share/grain_sync_corpus",
    "eval/quality/frechet_log_mel",
    "eval/quality/flatness/6000-11025",
    "eval/quality/flatness/6000-11025_corpus",
    "eval/quality/loudness_db/0-500",
    "eval/quality/loudness_db/0-500_corpus",
}
GRAIN_KEYS = {
    "eval/quality/grains/frechet_log_mel",
    "eval/quality/grains/flatness/6000-11025",
    "eval/quality/grains/flatness/6000-11025_corpus",
}


@pytest.fixture(scope="module")
def tiny(grain_run: Path) -> tuple[GrainTask, GrainVAE, TensorData]:
    """The tiny run's task (its config), trained model and test side, as ``latentlive evaluate`` rebuilds them."""
    checkpoint = load_checkpoint(grain_run / "checkpoints" / "last.pt")
    parse_gin([grain_run / "config.gin"])
    task = GrainTask()
    data = task.load_data(None, int(checkpoint["run"].get("seed", 0)), log=lambda _: None)
    model, _ = task.build_model()
    model.load_state_dict(checkpoint["model_state"])
    return task, model.eval(), data.test


class ConstantGrain(nn.Module):
    """A grain "decoder" that ignores its latent: every grain the same 1 kHz burst, a drone at any density."""

    def __init__(self, grain_size: int, rate: int, latent_size: int) -> None:
        super().__init__()
        self.latent_size = latent_size
        self.anchor = nn.Parameter(torch.zeros(1))  # sample_quality asks the parameters for the device
        t = torch.arange(grain_size) / rate
        self.register_buffer("grain", torch.hann_window(grain_size) * torch.sin(2 * math.pi * 1000.0 * t))

    def decode_mean(self, z: Tensor) -> Tensor:
        return self.grain.expand(z.shape[0], 1, -1)


def test_latentlive_evaluate_reports_finite_sample_quality_of_textures_and_grains(
    grain_run: Path, tmp_path: Path
) -> None:
    run = shutil.copytree(grain_run, tmp_path / "grain")  # evaluate writes eval_test.json into the run
    metrics = evaluate_run(run, "test", log=lambda _: None)["metrics"]
    assert TEXTURE_KEYS | GRAIN_KEYS <= set(metrics)
    quality = {key: value for key, value in metrics.items() if key.startswith("eval/quality/")}
    assert all(math.isfinite(value) for value in quality.values()), quality
    assert not any("frame_share" in key for key in quality if key.startswith("eval/quality/grains/"))
    assert "eval/lsd" in metrics  # beside the reconstruction metrics, not instead of them


def test_the_texture_plays_the_engine_defaults_of_the_instrument() -> None:
    engine = GranularEngine(nn.Identity(), 256, 22050, 4)
    assert {name: getattr(engine, name) for name in DEFAULT_SETTINGS} == DEFAULT_SETTINGS


def test_generated_side_is_the_prior_texture_and_the_corpus_side_the_held_out_grains(tiny) -> None:
    task, model, data = tiny
    metrics = task.sample_quality(model, data)
    texture, corpus = task.prior_texture(model), task.corpus_texture(data)
    rate, density = task.sample_rate, DEFAULT_SETTINGS["density"]
    assert len(texture) == round(task.quality_seconds * rate / task.hop) * task.hop
    assert metrics["eval/quality/frame_share/grain"] == pytest.approx(
        frame_rate_share([texture], rate, density)
    )
    assert metrics["eval/quality/frame_share/grain_corpus"] == pytest.approx(
        frame_rate_share([corpus], rate, density)
    )
    # the corpus as "generated" is at distance 0 from itself; the model's texture is not
    same = sample_quality([corpus], [corpus], rate, {"grain": density}, prefix="eval/quality/")
    assert same["eval/quality/frechet_log_mel"] < 1e-6
    assert metrics["eval/quality/frechet_log_mel"] > 1.0
    assert metrics["eval/quality/frame_share/grain"] != pytest.approx(same["eval/quality/frame_share/grain"])
    # the decoded grains likewise: the held-out grains against themselves read 0
    grains = list(task.corpus_grains(data))
    assert sample_quality(grains, grains, rate, {})["quality/frechet_log_mel"] < 1e-6
    assert metrics["eval/quality/grains/frechet_log_mel"] > 1.0


def test_sample_quality_is_repeatable_and_leaves_the_global_rng_alone(tiny) -> None:
    task, model, data = tiny
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = task.sample_quality(model, data)
    assert torch.equal(torch.get_rng_state(), before)
    assert task.sample_quality(model, data) == first


def test_a_drone_decoder_reads_near_all_of_its_power_on_the_grain_rate_when_synchronous(tiny) -> None:
    task, model, data = tiny
    drone = ConstantGrain(task.grain_size, task.sample_rate, model.latent_size)
    metrics = task.sample_quality(drone, data)
    sync = metrics["eval/quality/frame_share/grain_sync"]
    assert sync > 0.9
    assert sync > metrics["eval/quality/frame_share/grain_sync_corpus"] + 0.3
    assert sync == pytest.approx(
        frame_rate_share([task.prior_texture(drone, SYNC_SETTINGS)], task.sample_rate, 40.0)
    )
    # the corpus side does not depend on the decoder
    for key in ("grain_corpus", "grain_sync_corpus"):
        assert (
            metrics[f"eval/quality/frame_share/{key}"]
            == task.sample_quality(model, data)[f"eval/quality/frame_share/{key}"]
        )


def test_the_default_cloud_keeps_even_a_drone_decoder_off_the_grain_rate(tiny) -> None:
    """Issue #18: at the default settings (grains at random intervals) the grain rate is no pitch: the share of
    the same drone falls to about that of noise (``2 * 2 Hz / 100 Hz``), from over 0.9 when synchronous."""
    task, model, data = tiny
    drone = ConstantGrain(task.grain_size, task.sample_rate, model.latent_size)
    metrics = task.sample_quality(drone, data)
    assert metrics["eval/quality/frame_share/grain"] < 0.15
    assert metrics["eval/quality/frame_share/grain_sync"] > 0.9


def test_sizes_are_gin_arguments_and_zero_turns_a_set_off(tiny) -> None:
    _, model, data = tiny
    task = GrainTask(grain_size=256, hop=64, quality_seconds=0.0, quality_grains=16)
    metrics = task.sample_quality(model, data)
    assert GRAIN_KEYS <= set(metrics) and not TEXTURE_KEYS & set(metrics)
    assert len(task.prior_grains(model)) == 16 and len(task.corpus_grains(data)) == 16
    assert np.all(np.isfinite(task.prior_grains(model)))
    task = GrainTask(grain_size=256, hop=64, quality_seconds=0.5, quality_grains=0)
    assert set(task.sample_quality(model, data)) & GRAIN_KEYS == set()

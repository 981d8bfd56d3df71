"""grain_prior, the prior of the grain VAE: windows of grain latents, the grain run's split (read, never redrawn), both
objectives, the tiny run's metrics and audio, and bad grain runs through the CLI."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import Tensor, nn

from latentlive.cli import main
from latentlive.core.cache import cache_dir
from latentlive.core.errors import UserError
from latentlive.core.runs import load_checkpoint
from latentlive.corpus.grains import frame_sound, load_grains
from latentlive.corpus.splits import SIDES, Split, read_split
from latentlive.models.grain_vae import GrainVAE
from latentlive.training.config import parse_gin
from latentlive.training.loop import weighted_total
from latentlive.training.tasks.base import TensorData
from latentlive.training.tasks.grain_prior import (
    GrainPriorTask,
    cut_windows,
    sequence_audio,
    window_audio,
    window_samples,
    window_starts,
)

ROOT = Path(__file__).resolve().parents[1]
PRIOR_TINY = str(ROOT / "gin" / "grain_prior_tiny.gin")
FRAMES = 8  # GrainPriorTask.frames of gin/grain_prior_tiny.gin


class PassThrough(nn.Module):
    """A perfect grain "VAE" whose latent is the grain itself: decoding returns it unchanged."""

    def __init__(self, grain_size: int) -> None:
        super().__init__()
        self.grain_size = grain_size

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return z[:, None], torch.zeros_like(z[:, None])


def _prior_gin(grain_run: Path) -> None:
    parse_gin([PRIOR_TINY], [f"GrainPriorTask.grain_run = '{grain_run}'"])


@pytest.fixture(scope="module")
def prior_data(grain_run: Path) -> tuple[GrainPriorTask, TensorData, TensorData]:
    """A grain_prior task of gin/grain_prior_tiny.gin on the tiny grain run, with its encoded windows."""
    _prior_gin(grain_run)
    task = GrainPriorTask()
    data = task.load_data(None, seed=0, log=lambda *_: None)
    return task, data.train, data.validation


# -- windows -------------------------------------------------------------------------------------------


def test_window_starts_step_by_the_hop_end_at_the_last_grain_and_cover_short_sounds() -> None:
    assert window_starts(20, 8, 4).tolist() == [0, 4, 8, 12]  # 12 + 8 = 20: the last window ends the sound
    assert window_starts(21, 8, 4).tolist() == [0, 4, 8, 12, 13]  # one more, ending at the last grain
    assert window_starts(5, 8, 4).tolist() == [0]  # shorter than a window: one window, padded


def test_cut_windows_repeat_the_last_latent_past_the_end() -> None:
    sequence = torch.arange(10.0).reshape(2, 5)  # [D = 2, P = 5]
    windows = cut_windows(sequence, np.array([0, 2]), 4)
    assert windows.shape == (2, 2, 4)
    assert windows[0].tolist() == [[0, 1, 2, 3], [5, 6, 7, 8]]
    assert windows[1].tolist() == [[2, 3, 4, 4], [7, 8, 9, 9]]


def test_a_window_resynthesised_from_its_own_grains_is_its_original_audio() -> None:
    grain, hop, frames = 256, 64, 8
    sound = np.random.default_rng(0).standard_normal(3000).astype(np.float32)
    grains = torch.from_numpy(frame_sound(sound, grain, hop))  # [P, G]
    starts = np.array([0, 5, len(grains) - frames])
    latents = cut_windows(grains.T, starts, frames)  # the grain is its own latent: [W, G, K]
    rebuilt = sequence_audio(PassThrough(grain), latents, hop)
    assert rebuilt.shape == (3, window_samples(frames, grain, hop))
    for row, start in zip(rebuilt, starts, strict=True):
        original = window_audio(sound, int(start), frames, grain, hop)
        assert np.allclose(row.numpy(), original, atol=1e-5)


# -- data and split ------------------------------------------------------------------------------------


def test_windows_hold_the_grain_posteriors_in_order_and_the_split_is_the_grain_runs(
    prior_data: tuple[GrainPriorTask, TensorData, TensorData],
) -> None:
    task, train, val = prior_data
    latent = task.grain_vae.latent_size
    for data in (train, val):
        assert data.tensors["mean"].shape == data.tensors["logvar"].shape == (len(data), latent, FRAMES)
    # held out: exactly the windows of the sounds the grain run held out (its split.json)
    corpus = load_grains(
        None, sample_rate=22050, grain_size=256, hop=64, max_grains=300, sounds=8, cache_dir=cache_dir()
    )
    split = read_split(Path(task.grain_run) / "split.json")
    val_sounds = {i for i, group in enumerate(corpus.groups) if group in split.groups["validation"]}
    assert set(val.tensors["sound"].tolist()) == val_sounds
    assert not set(val.tensors["sound"].tolist()) & set(train.tensors["sound"].tolist())
    # frame k of a window is the grain VAE's posterior of grain start + k of its sound
    for i in (0, len(val) - 1):
        sound, start = int(val.tensors["sound"][i]), int(val.tensors["start"][i])
        grains = torch.from_numpy(frame_sound(corpus.sounds[sound], 256, 64)[start : start + FRAMES])
        with torch.no_grad():
            mean, logvar = task.grain_vae.encode(grains.unsqueeze(1))
        assert torch.allclose(val.tensors["mean"][i], mean.T, atol=1e-5)
        assert torch.allclose(val.tensors["logvar"][i], logvar.T, atol=1e-5)


def test_the_split_is_exactly_the_grain_runs_whatever_the_seed(grain_run: Path) -> None:
    _prior_gin(grain_run)
    task = GrainPriorTask()
    recorded = read_split(grain_run / "split.json")
    corpus = load_grains(
        None, sample_rate=22050, grain_size=256, hop=64, max_grains=300, sounds=8, cache_dir=cache_dir()
    )
    for seed in (0, 7):  # the prior's own seed draws nothing
        data = task.load_data(None, seed=seed, log=lambda *_: None)
        assert data.split == recorded
        for side in SIDES:
            groups = {corpus.groups[int(s)] for s in data.side(side).tensors["sound"]}
            assert groups <= set(recorded.groups[side]), side
        assert len(data.train) and len(data.validation) and len(data.test)


def test_a_grain_run_split_in_time_gives_windows_that_share_no_samples(
    grain_run: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "one"
    folder.mkdir()
    t = np.arange(4 * 22050) / 22050
    sf.write(str(folder / "long.wav"), (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 22050)
    _prior_gin(grain_run)
    task = GrainPriorTask()
    # as the grain run's split.json reads after a run on this one-file folder
    task.split = Split(0, (0.5, 0.25, 0.25), {side: ("long.wav",) for side in SIDES}, by_time=True)
    data = task.load_data(folder, seed=0, log=lambda *_: None)
    assert all(len(data.side(side)) for side in SIDES)
    # a window from grain s covers samples (s + 1) * hop - grain_size to (s + FRAMES) * hop
    first = {side: data.side(side).tensors["start"].numpy() for side in SIDES}
    for earlier, later in zip(SIDES[:-1], SIDES[1:], strict=True):
        assert (first[earlier].max() + FRAMES) * 64 <= (first[later].min() + 1) * 64 - 256, (earlier, later)
    # and a folder the grain run never split is refused, not split anew
    with pytest.raises(UserError, match="not the sounds the grain run"):
        task.load_data(tmp_path, seed=0, log=lambda *_: None)


def test_a_held_out_folder_gives_the_windows_of_all_its_sounds(
    prior_data: tuple[GrainPriorTask, TensorData, TensorData], tmp_path: Path
) -> None:
    first, _, _ = prior_data
    _prior_gin(Path(first.grain_run))
    task = GrainPriorTask()
    data = task.load_data(None, seed=0, log=lambda *_: None)
    folder = tmp_path / "held_out"
    folder.mkdir()
    t = np.arange(22050) / 22050
    for i in range(2):
        sf.write(
            str(folder / f"s{i}.wav"), (0.5 * np.sin(2 * np.pi * 300 * (i + 1) * t)).astype(np.float32), 22050
        )
    held_out = task.load_held_out(folder, log=lambda *_: None)
    seen = {int(s) for side in SIDES for s in data.side(side).tensors["sound"]}
    assert len(set(held_out.tensors["sound"].tolist())) == 2 and min(held_out.tensors["sound"]) > max(seen)
    model, _ = task.build_model()
    assert math.isfinite(task.evaluate(model.eval(), held_out)["eval/window_lsd"])


@pytest.mark.parametrize(("objective", "target"), [("kl", "mean"), ("nll", "mean"), ("nll", "sample")])
def test_both_objectives_give_finite_losses_with_their_keys(
    objective: str, target: str, prior_data: tuple[GrainPriorTask, TensorData, TensorData]
) -> None:
    first, train, _ = prior_data
    _prior_gin(Path(first.grain_run))  # the tiny sizes, whatever ran since the fixture
    task = GrainPriorTask(objective=objective, target=target)
    model, args = task.build_model()
    assert args["frames"] == FRAMES and args["latent_size"] == task.grain_vae.latent_size
    losses = task.losses(model, train.take(slice(0, 8)), step=1)
    assert set(losses) == {f"loss/{objective}", "loss/divergence"} == set(task.loss_weights(1))
    assert all(torch.isfinite(value) for value in losses.values())
    weighted_total(losses, task.loss_weights(1)).backward()  # every term has a weight and a gradient
    assert all(p.grad is not None for p in model.parameters())


# -- the tiny run and bad grain runs -------------------------------------------------------------------


def _train_prior(grain_run: Path, out: Path) -> int:
    args = ["train", "--gin", PRIOR_TINY, "--name", "grain_prior", "--out", str(out)]
    return main([*args, "--bind", f"GrainPriorTask.grain_run = '{grain_run}'"])


def test_tiny_run_writes_metrics_audio_and_carries_the_grain_vae(grain_run: Path, tmp_path: Path) -> None:
    assert _train_prior(grain_run, tmp_path) == 0
    run = tmp_path / "grain_prior"
    metrics = json.loads((run / "metrics.json").read_text())["eval"]
    for key in (
        "eval/kl",
        "eval/macro_kl",
        "eval/sequence_rmse",
        "eval/window_lsd",
        "eval/window_lsd_grain_only",
    ):
        assert math.isfinite(metrics[key]) and metrics[key] >= 0, key
    events = EventAccumulator(str(run), size_guidance={"audio": 0}).Reload()
    audio = set(events.Tags()["audio"])
    assert {"audio/sampled_sequence/0", "audio/through_both_levels/0", "audio/input/0"} <= audio
    # the checkpoint alone rebuilds the grain VAE it was trained over
    meta = load_checkpoint(run / "checkpoints" / "last.pt")["metadata"]
    grain_vae = GrainVAE(**meta["grain_args"])
    grain_vae.load_state_dict(meta["grain_state"])
    original = load_checkpoint(grain_run / "checkpoints" / "last.pt")["model_state"]
    assert all(torch.equal(original[key], value) for key, value in grain_vae.state_dict().items())
    assert meta["frames"] == FRAMES and meta["hop"] == 64 and "pca_components" in meta["grain_metadata"]
    # the prior's split.json is its grain run's
    assert json.loads((run / "split.json").read_text()) == json.loads((grain_run / "split.json").read_text())


@pytest.mark.parametrize("case", ["missing", "not a grain run", "no split.json"])
def test_a_bad_grain_run_gets_one_clear_line(
    case: str, grain_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if case == "missing":
        bad, expected = tmp_path / "no_such_run", "no such run"
    elif case == "no split.json":  # a grain run trained before splits were recorded
        bad, expected = tmp_path / "old_grain", "no split.json"
        shutil.copytree(grain_run, bad, ignore=shutil.ignore_patterns("events.*", "export"))
        (bad / "split.json").unlink()
    else:  # a trained run of another model: its checkpoint names its task
        bad, expected = tmp_path / "drums", "must be a grain VAE run"
        (bad / "checkpoints").mkdir(parents=True)
        (bad / "config.gin").write_text("train.task = 'drums'\n")
        torch.save({"task": "drums", "model_args": {}, "model_state": {}}, bad / "checkpoints" / "last.pt")
    capsys.readouterr()
    assert _train_prior(bad, tmp_path / "runs") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("latentlive: error: "), lines
    assert str(bad) in lines[0] and expected in lines[0], lines[0]
    assert not any((tmp_path / "runs").rglob("last.pt"))

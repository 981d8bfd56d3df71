"""Techno training tasks: stage 1 (waveform VAE, adversarial phase, user loops), techno_prior (trajectory VAE),
and the pure functions behind their metrics and data."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from cli_process import assert_one_clear_line, run_cli
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from latentlive.cli import main
from latentlive.core.runs import RunFolder, load_checkpoint
from latentlive.corpus.splits import SIDES, read_split
from latentlive.corpus.techno_synth import loop_samples_for
from latentlive.models.vae import kl_standard_normal
from latentlive.training.config import parse_gin
from latentlive.training.loop import weighted_total
from latentlive.training.metrics import latent_sensitivity, roughness, spearman_per_dimension
from latentlive.training.tasks.base import SplitData, TensorData
from latentlive.training.tasks.techno import TechnoTask, latent_frames_mmd, load_loop_tensors
from latentlive.training.tasks.techno_prior import TechnoPriorTask, loop_positions, resample_frames

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "gin" / "techno_tiny.gin")
PRIOR_TINY = str(ROOT / "gin" / "techno_prior_tiny.gin")
ENCODER_PREFIXES = ("encoder.", "posterior.")  # everything `WaveformVAE.encode` runs


# -- pure functions ------------------------------------------------------------------------------


def test_spearman_per_dimension_against_hand_computed_ranks() -> None:
    feature = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    latents = np.column_stack(
        [
            feature**3,  # monotonic, not linear: rho 1
            -np.exp(feature),  # decreasing: rho -1
            [2.0, 1.0, 4.0, 3.0, 5.0],  # rank differences 1, -1, 1, -1, 0: 1 - 6 * 4 / (5 * 24) = 0.8
            np.full(5, 7.0),  # constant: undefined
        ]
    )
    rho = spearman_per_dimension(latents, feature)
    assert rho[:3] == pytest.approx([1.0, -1.0, 0.8])
    assert np.isnan(rho[3])
    assert np.isnan(spearman_per_dimension(latents, np.ones(5))).all()  # a constant feature: all undefined


def test_roughness_is_the_mean_absolute_second_difference_over_the_range() -> None:
    assert roughness(np.array([3.0, 5.0, 7.0, 9.0])) == 0.0  # a straight line
    assert roughness(np.array([0.0, 1.0, 4.0, 9.0])) == pytest.approx(2.0 / 9.0)  # second differences 2, 2
    assert roughness(np.array([0.0, 10.0, 0.0, 10.0, 0.0])) == pytest.approx(2.0)  # |(-20, 20, -20)| / 10
    assert roughness(np.array([40.0, 40.0, 40.0])) == 0.0  # flat: no range to divide by
    assert roughness(np.array([0.0, 1.0])) == 0.0  # too short for a second difference


def test_latent_sensitivity_is_zero_for_a_decoder_that_ignores_its_latent() -> None:
    codes = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(2))
    distance = lambda a, b: (a - b).abs().mean()  # noqa: E731
    ignoring = latent_sensitivity(lambda z: torch.ones(len(z), 1, 64), codes, distance)
    assert ignoring.shape == (4,) and np.all(ignoring == 0.0)
    weights = torch.tensor([1.0, 0.5, 0.0, 2.0])  # dimension 2 is ignored, dimension 3 matters most
    linear = lambda z: (weights[None, :, None] * z).sum(1, keepdim=True)  # noqa: E731
    assert latent_sensitivity(linear, codes, distance, step=0.5) == pytest.approx([1.0, 0.5, 0.0, 2.0])


def test_loop_positions_put_k_of_K_frames_at_bar_phase_k_over_K() -> None:
    positions = loop_positions(torch.tensor([1024, 512, 640]), ratio=128, frames=4)
    expected = torch.tensor([[0.0, 2.0, 4.0, 6.0], [0.0, 1.0, 2.0, 3.0], [0.0, 1.25, 2.5, 3.75]])
    assert positions.shape == (3, 4)
    assert torch.allclose(positions, expected.double())


def test_resample_frames_reads_a_ramp_at_fractional_positions() -> None:
    ramp = torch.arange(8.0)[None, None].repeat(2, 3, 1)  # [N=2, L=3, T=8], value = frame index
    ramp[:, 1] *= -2.0  # another slope per latent dimension
    positions = torch.tensor([[0.0, 1.5, 2.25, 6.75], [0.5, 3.0, 7.0, 9.0]], dtype=torch.float64)
    out = resample_frames(ramp, positions)
    assert out.shape == (2, 3, 4)
    inside = positions.clamp(max=7.0).float()  # past the last frame the last value holds
    assert torch.allclose(out[:, 0], inside)
    assert torch.allclose(out[:, 1], -2.0 * inside)
    assert torch.allclose(out[:, 2], inside)


# -- stage 1: losses on a tiny batch -------------------------------------------------------------


@pytest.fixture
def tiny_gin() -> None:
    """The bindings of gin/techno_tiny.gin (the model's size, crop, warm-up) for tasks built in the test."""
    parse_gin([TINY])


def _audio_batch(batch: int = 2, samples: int = 2048) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return {"audio": 0.3 * torch.randn(batch, samples, generator=generator)}


@pytest.mark.usefixtures("tiny_gin")
def test_kl_divergence_is_the_kl_per_latent_frame_of_the_posterior() -> None:
    task = TechnoTask(divergence="kl", crop=2048)
    model, _ = task.build_model()
    batch = _audio_batch()  # as long as the crop: the crop is the whole clip
    losses = task.losses(model, batch, step=0)
    assert set(losses) == {"loss/spectral_distance", "loss/divergence"}
    mean, logvar = model.encode(batch["audio"].unsqueeze(1))
    assert mean.shape == (2, 4, 2048 // 128)
    expected = kl_standard_normal(mean, logvar).mean() / mean.shape[2]
    assert losses["loss/divergence"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert losses["loss/spectral_distance"].item() > 0


@pytest.mark.usefixtures("tiny_gin")
def test_mmd_divergence_compares_latent_frames_with_normal_samples() -> None:
    task = TechnoTask(divergence="mmd", crop=2048)
    model, _ = task.build_model()
    batch = _audio_batch()
    torch.manual_seed(3)
    losses = task.losses(model, batch, step=0)
    assert set(losses) == {"loss/spectral_distance", "loss/divergence"}
    torch.manual_seed(3)  # the same draws: z from the posterior, then the normal samples
    _, _, _, z = model(batch["audio"].unsqueeze(1))
    assert losses["loss/divergence"].item() == pytest.approx(latent_frames_mmd(z).item(), rel=1e-5)
    # the MMD sees the codes, not the KL: frames far from N(0, I) score higher than normal ones
    normal = torch.randn(2, 4, 64)
    assert latent_frames_mmd(normal + 3.0).item() > latent_frames_mmd(normal).item() + 0.1


@pytest.mark.usefixtures("tiny_gin")
def test_loss_weights_warm_beta_up_linearly_and_weigh_the_adversarial_terms() -> None:
    task = TechnoTask(beta=0.1, warmup_steps=4, adversarial_weight=2.0, feature_matching_weight=7.0)
    betas = [task.loss_weights(step)["loss/divergence"] for step in (0, 1, 2, 4, 100)]
    assert betas == pytest.approx([0.0, 0.025, 0.05, 0.1, 0.1])
    weights = task.loss_weights(10)
    assert weights["loss/spectral_distance"] == 1.0
    assert weights["loss/adversarial"] == 2.0 and weights["loss/feature_matching"] == 7.0
    assert weights["loss/discriminator"] == 1.0


@pytest.mark.usefixtures("tiny_gin")
def test_adversarial_losses_have_their_keys_and_leave_the_encoder_without_gradient() -> None:
    task = TechnoTask(adversarial_after=1, crop=2048)
    model, _ = task.build_model()
    discriminator = task.build_discriminator()
    assert discriminator is not None and not task.adversarial(0) and task.adversarial(1)
    batch = _audio_batch()
    assert set(task.losses(model, batch, step=0)) == {"loss/spectral_distance", "loss/divergence"}
    losses = task.losses(model, batch, step=1)
    assert set(losses) == {"loss/spectral_distance", "loss/adversarial", "loss/feature_matching"}
    weighted_total(losses, task.loss_weights(1)).backward()
    for name, parameter in model.named_parameters():
        if name.startswith(ENCODER_PREFIXES):
            assert parameter.grad is None, name
        else:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    discriminator_losses = task.discriminator_losses(model, discriminator, batch, step=1)
    assert set(discriminator_losses) == {"loss/discriminator"}
    assert math.isfinite(discriminator_losses["loss/discriminator"].item())


# -- stage 1: a tiny run ----------------------------------------------------------------------------


def test_tiny_run_writes_metrics_audio_and_figures(techno_run: Path) -> None:
    metrics = json.loads((techno_run / "metrics.json").read_text())
    assert metrics["step"] == 4
    evaluation = metrics["eval"]
    names = [
        "eval/spectral_distance",
        "eval/spearman_loudness",
        "eval/spearman_centroid",
        "eval/interpolation_roughness_loudness",
        "eval/interpolation_roughness_centroid",
        "eval/kl_per_frame",
        "eval/latent_sensitivity",
        *(
            f"eval/per_dimension/{m}/z{d}"
            for m in ("spearman_loudness", "latent_sensitivity")
            for d in range(4)
        ),
    ]
    assert set(names) <= set(evaluation)
    assert all(math.isfinite(evaluation[name]) for name in names)
    assert evaluation["eval/spectral_distance"] > 0 and evaluation["eval/kl_per_frame"] >= 0
    assert 0 <= evaluation["eval/spearman_loudness"] <= 1 and 0 <= evaluation["eval/spearman_centroid"] <= 1
    assert evaluation["eval/interpolation_roughness_loudness"] >= 0
    best = max(abs(evaluation[f"eval/per_dimension/spearman_loudness/z{d}"]) for d in range(4))
    assert evaluation["eval/spearman_loudness"] == pytest.approx(best)  # the best of the logged dimensions
    sensitivity = [evaluation[f"eval/per_dimension/latent_sensitivity/z{d}"] for d in range(4)]
    assert evaluation["eval/latent_sensitivity"] == pytest.approx(np.mean(sensitivity))

    events = EventAccumulator(str(techno_run), size_guidance={"images": 0, "audio": 0}).Reload()
    audio = set(events.Tags()["audio"])
    assert {"audio/input/0", "audio/reconstruction/0", "audio/interpolation"} <= audio
    clip = events.Audio("audio/reconstruction/0")[-1]
    assert clip.sample_rate == 16000 and clip.length_frames == 65536  # one whole example at the model rate
    assert events.Audio("audio/interpolation")[-1].length_frames == 5 * 65536  # five points from A to B
    assert {"latent/spearman", "latent/sensitivity", "interpolation/features"} <= set(events.Tags()["images"])
    betas = [e.value for e in events.Scalars("weight/loss/divergence")]
    assert betas == pytest.approx([0.05, 0.1])  # steps 2 and 4 of a 2-step warm-up to 0.1


def _train(out: Path, name: str, *args: str) -> dict:
    assert main(["train", "--out", str(out), "--name", name, *args]) == 0
    return load_checkpoint(out / name / "checkpoints" / "last.pt")


def _encoder(state: dict) -> dict:
    return {k: v for k, v in state.items() if k.startswith(ENCODER_PREFIXES)}


def _decoder(state: dict) -> dict:
    return {k: v for k, v in state.items() if not k.startswith(ENCODER_PREFIXES)}


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name, value in a.items():
        assert torch.equal(value, b[name]), name


def test_adversarial_phase_freezes_the_encoder_and_resumes_the_discriminator(tmp_path: Path) -> None:
    adversarial = ["--gin", TINY, "--bind", "TechnoTask.adversarial_after = 2"]
    # one run stopped and resumed after each step (the last resume starts inside the adversarial phase)
    steps = {1: _train(tmp_path, "resumed", *adversarial, "--max_steps", "1")}
    for step in (2, 3, 4):
        steps[step] = _train(tmp_path, "resumed", "--resume", "--max_steps", str(step))
    assert [c["step"] for c in steps.values()] == [1, 2, 3, 4]

    models = {step: c["model_state"] for step, c in steps.items()}
    assert any(not torch.equal(v, models[2][k]) for k, v in _encoder(models[1]).items())  # it learnt
    _assert_same(_encoder(models[2]), _encoder(models[3]))
    _assert_same(_encoder(models[2]), _encoder(models[4]))  # frozen from step 2 on
    for name, value in _decoder(models[2]).items():
        assert not torch.equal(value, models[4][name]), name  # fine-tuned
    for checkpoint in steps.values():
        assert {"discriminator_state", "discriminator_optimizer_state"} <= set(checkpoint)

    straight = _train(tmp_path, "straight", *adversarial, "--max_steps", "4")
    _assert_same(straight["model_state"], models[4])
    _assert_same(straight["discriminator_state"], steps[4]["discriminator_state"])
    assert not all(  # the discriminator did learn in steps 2 and 3 (else restoring it proves nothing)
        torch.equal(v, steps[2]["discriminator_state"][k]) for k, v in straight["discriminator_state"].items()
    )

    events = EventAccumulator(str(tmp_path / "straight")).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"loss/discriminator", "loss/adversarial", "loss/feature_matching"} <= scalars
    assert [e.step for e in events.Scalars("loss/adversarial")] == [4]  # logged at 2 and 4; adversarial at 4
    assert [e.step for e in events.Scalars("loss/divergence")] == [2]


class IgnoresItsLatent(nn.Module):
    """A stage-1 model whose decoder plays the same loop whatever its latent."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(torch.zeros_like(z))


@pytest.mark.usefixtures("tiny_gin")
def test_a_decoder_that_ignores_its_latent_is_smooth_but_has_no_sensitivity() -> None:
    task = TechnoTask()
    model, _ = task.build_model()
    generator = torch.Generator().manual_seed(4)
    gains = torch.tensor([0.05, 0.2, 0.4, 0.8])[:, None]
    data = TensorData({"audio": gains * torch.randn(4, 8192, generator=generator)})
    normal = task.evaluate(model.eval(), data)
    ignoring = task.evaluate(IgnoresItsLatent(model).eval(), data)
    assert ignoring["eval/interpolation_roughness_loudness"] == 0.0  # it looks perfectly smooth ...
    assert ignoring["eval/latent_sensitivity"] == pytest.approx(0.0, abs=1e-6)  # ... as nothing moves
    assert normal["eval/latent_sensitivity"] > 0.01
    assert all(normal[f"eval/per_dimension/latent_sensitivity/z{d}"] > 0 for d in range(4))


# -- stage 1 on a folder of loops --------------------------------------------------------------------


def _write_loop(path: Path, bpm: float, bars: int, seed: int) -> None:
    """A stereo 44.1 kHz loop of whole bars: a decaying kick on every beat and hats on the off-beats."""
    rate = 44100
    beat = 60.0 * rate / bpm
    total = int(round(bars * 4 * beat))
    rng = np.random.default_rng(seed)
    audio = 0.01 * rng.standard_normal(total)
    t = np.arange(int(0.15 * rate)) / rate
    kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-30 * t)) * t) * np.exp(-20 * t)
    hat = rng.standard_normal(int(0.03 * rate)) * np.exp(-150 * t[: int(0.03 * rate)])
    for n in range(bars * 4):
        start = int(round(n * beat))
        audio[start : start + len(kick)] += 0.8 * kick[: total - start]
        off = int(round((n + 0.5) * beat))
        audio[off : off + len(hat)] += 0.2 * hat[: max(0, total - off)]
    sf.write(path, np.stack([audio, 0.9 * audio], axis=1).astype(np.float32), rate)


def test_stage1_trains_on_a_folder_of_named_loops(tmp_path: Path) -> None:
    folder = tmp_path / "loops"
    folder.mkdir()
    for i in range(3):
        _write_loop(folder / f"groove {i} 124bpm.wav", 124.0, bars=3, seed=i)
    settings = ["--bind", "TechnoTask.bars = 1", "--bind", "TechnoTask.length = 32768"]
    checkpoint = _train(tmp_path, "user", "--gin", TINY, "--db", str(folder), *settings, "--max_steps", "2")
    meta = checkpoint["metadata"]
    assert meta["db"] == str(folder) and meta["bars"] == 1 and meta["length"] == 32768
    assert math.isfinite(
        json.loads((tmp_path / "user" / "metrics.json").read_text())["eval"]["eval/kl_per_frame"]
    )
    data, groups = load_loop_tensors(
        folder, {k: meta[k] for k in ("sample_rate", "length", "bars", "examples")}
    )
    assert sorted(set(groups)) == [f"groove {i} 124bpm.wav" for i in range(3)]
    split = read_split(tmp_path / "user" / "split.json")
    assert sorted(g for side in SIDES for g in split.groups[side]) == sorted(set(groups))  # each file once
    assert 3 <= len(data) <= 8 and data.tensors["audio"].shape[1] == 32768
    assert torch.all(data.tensors["bpm"] == 124.0)  # the tempo of the names
    assert torch.all(data.tensors["loop_samples"] == loop_samples_for(124.0, 1, 16000))


def test_a_folder_without_usable_loops_fails_with_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "nothing"
    folder.mkdir()
    sf.write(folder / "quiet 124bpm.wav", np.zeros((44100 * 3, 2), dtype=np.float32), 44100)  # silent
    (folder / "notes.txt").write_text("not audio")
    done = run_cli("train", "--gin", TINY, "--db", str(folder), "--out", str(tmp_path / "runs"), cwd=ROOT)
    assert_one_clear_line(done, str(folder), "usable loop")
    assert not any((tmp_path / "runs").rglob("last.pt"))


# -- techno_prior -------------------------------------------------------------------------------------------


def _prior_gin(stage1_run: Path) -> None:
    parse_gin([PRIOR_TINY], [f"TechnoPriorTask.stage1_run = '{stage1_run}'"])


@pytest.fixture(scope="module")
def prior_data(techno_run: Path) -> tuple[TechnoPriorTask, TensorData, TensorData]:
    """A techno_prior task of gin/techno_prior_tiny.gin on the tiny stage-1 run, with its encoded loops."""
    _prior_gin(techno_run)
    task = TechnoPriorTask()
    sides = task.load_data(None, seed=0, log=lambda *_: None)
    return task, sides.train, sides.validation


def test_techno_prior_deals_the_loops_exactly_as_its_stage1_run(
    techno_run: Path, techno_prior_run: Path, tmp_path: Path
) -> None:
    assert read_split(RunFolder(techno_prior_run).split_file) == read_split(RunFolder(techno_run).split_file)
    # a stage-1 run whose split no seed would draw (validation and test swapped): the prior follows the file
    stage1 = tmp_path / "techno"
    shutil.copytree(techno_run, stage1)
    recorded = json.loads((stage1 / "split.json").read_text())
    groups = recorded["groups"]
    groups["validation"], groups["test"] = groups["test"], groups["validation"]
    (stage1 / "split.json").write_text(json.dumps(recorded))
    _prior_gin(stage1)
    sides: SplitData = TechnoPriorTask().load_data(None, seed=7, log=lambda *_: None)
    split = read_split(stage1 / "split.json")
    assert sides.split == split and not split.by_time
    meta = load_checkpoint(stage1 / "checkpoints" / "last.pt")["metadata"]
    data, names = load_loop_tensors(None, {k: meta[k] for k in ("sample_rate", "length", "bars", "examples")})
    for side in ("validation", "test"):  # the held-out loops are those of the recorded held-out groups
        expected = data.tensors["audio"][split.indices(names, side)]
        assert len(expected) and torch.equal(sides.side(side).tensors["audio"], expected)
    assert len(sides.train) == len(split.indices(names, "train"))


def test_techno_prior_refuses_a_stage1_run_without_a_split(techno_run: Path, tmp_path: Path) -> None:
    stage1 = tmp_path / "old_techno"
    shutil.copytree(techno_run, stage1)
    (stage1 / "split.json").unlink()
    binding = f"TechnoPriorTask.stage1_run = '{stage1}'"
    done = run_cli("train", "--gin", PRIOR_TINY, "--bind", binding, "--out", str(tmp_path / "runs"), cwd=ROOT)
    assert_one_clear_line(done, str(stage1 / "split.json"), "no split.json")
    assert not any((tmp_path / "runs").rglob("last.pt"))


def test_techno_prior_keeps_the_training_audio_only_when_asked(
    prior_data: tuple[TechnoPriorTask, TensorData, TensorData],
) -> None:
    task, train, _ = prior_data
    assert "audio" not in train.tensors  # training listens to no training loop
    kept = task.load_data(None, seed=0, log=lambda *_: None, train_audio=True).train
    assert len(kept) == len(train) and kept.tensors["audio"].shape[0] == len(train)
    assert torch.equal(kept.tensors["mean"], train.tensors["mean"])


@pytest.mark.parametrize("critic", ["scales", "frame"])
def test_decoder_finetune_script_retrains_the_decoder_alone_into_a_new_run(
    techno_run: Path, tmp_path: Path, critic: str
) -> None:
    """scripts/techno_decoder_finetune.py (docs/techno.md): the encoder stays as it was, the run it read too."""
    script = ROOT / "scripts" / "techno_decoder_finetune.py"
    command = [
        sys.executable,
        str(script),
        "--run",
        str(techno_run),
        "--name",
        "ft",
        "--steps",
        "2",
        "--adversarial",
        "1",
        "--critic",
        critic,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    before = load_checkpoint(techno_run / "checkpoints" / "last.pt")["model_state"]
    after = load_checkpoint(tmp_path / "runs" / "ft" / "checkpoints" / "last.pt")["model_state"]
    assert before.keys() == after.keys()
    changed = {key for key in before if not torch.equal(before[key], after[key])}
    assert changed and all(key.startswith("decoder.") for key in changed)
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert again.returncode != 0 and "exists" in again.stderr  # nothing overwritten


@pytest.mark.parametrize(
    ("flag", "value", "said"), [("--prior-share", "1.5", "prior share 1.5"), ("--threads", "0", "threads 0")]
)
def test_decoder_finetune_refuses_a_bad_setting_in_one_line(
    techno_run: Path, tmp_path: Path, flag: str, value: str, said: str
) -> None:
    script = ROOT / "scripts" / "techno_decoder_finetune.py"
    command = [sys.executable, str(script), "--run", str(techno_run), "--name", "ft", flag, value]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and said in lines[0], done.stderr
    assert not (tmp_path / "runs").exists()


def test_techno_prior_data_are_phase_indexed_trajectories_of_K_frames(
    prior_data: tuple[TechnoPriorTask, TensorData, TensorData],
) -> None:
    task, train, val = prior_data
    K = 8 * 2  # frames_per_bar (tiny) * bars (stage 1)
    assert task.frames == K
    for data in (train, val):
        n = len(data)
        assert data.tensors["mean"].shape == data.tensors["logvar"].shape == (n, 4, K)
    # frame k of K is the stage-1 posterior at k / K of the loop (from its downbeat, the crop's start)
    audio, loop_samples = val.tensors["audio"], val.tensors["loop_samples"]
    with torch.no_grad():
        mean, _ = task.stage1.encode(audio.unsqueeze(1))
    assert torch.allclose(val.tensors["mean"][:, :, 0], mean[:, :, 0], atol=1e-6)  # phase 0: the downbeat
    for i in range(len(audio)):
        half = loop_samples[i].item() / 2 / task.stage1.ratio  # phase 1/2, between two stage-1 frames
        before, weight = math.floor(half), half - math.floor(half)
        expected = (1 - weight) * mean[i, :, before] + weight * mean[i, :, before + 1]
        assert torch.allclose(val.tensors["mean"][i, :, K // 2], expected, atol=1e-5)


@pytest.mark.parametrize(("objective", "target"), [("kl", "mean"), ("nll", "mean"), ("nll", "sample")])
def test_techno_prior_objectives_give_finite_losses_with_their_keys(
    objective: str, target: str, prior_data: tuple[TechnoPriorTask, TensorData, TensorData]
) -> None:
    first, train, _ = prior_data
    _prior_gin(Path(first.stage1_run))  # the tiny model's size, whatever ran since the fixture
    task = TechnoPriorTask(objective=objective, target=target)
    model, args = task.build_model()
    assert args["frames"] == 16 and args["latent_size"] == 4
    losses = task.losses(model, train.take(slice(None)), step=1)
    assert set(losses) == {f"loss/{objective}", "loss/divergence"} == set(task.loss_weights(1))
    assert all(torch.isfinite(value) for value in losses.values())
    weighted_total(losses, task.loss_weights(1)).backward()  # every term has a weight and a gradient
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("case", ["missing", "not techno"])
def test_a_bad_stage1_run_gets_one_clear_line(case: str, techno_prior_run: Path, tmp_path: Path) -> None:
    stage1 = tmp_path / "no_such_run" if case == "missing" else techno_prior_run
    binding = f"TechnoPriorTask.stage1_run = '{stage1}'"
    done = run_cli("train", "--gin", PRIOR_TINY, "--bind", binding, "--out", str(tmp_path / "runs"), cwd=ROOT)
    expected = "no such run" if case == "missing" else "must be a stage-1 techno run"
    assert_one_clear_line(done, str(stage1), expected)
    assert not any((tmp_path / "runs").rglob("last.pt"))

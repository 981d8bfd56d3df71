"""The drum model plays with feel: hits, velocities and offsets from the pattern VAE, rare classes kept by a weighted
loss and per-class thresholds, groove errors beside their baselines, two-bar runs, and a clip learnt with its style."""

import json
from pathlib import Path
from types import SimpleNamespace

import gin
import numpy as np
import pytest
import torch
from torch import Tensor, nn

from latentlive.cli import main
from latentlive.core.runs import load_checkpoint
from latentlive.corpus.drum_map import INSTRUMENT_NAMES
from latentlive.corpus.splits import SIDES, Split
from latentlive.models.drums import PatternVAE
from latentlive.models.vae import bernoulli_nll
from latentlive.training.loop import restore_checkpoint
from latentlive.training.tasks.base import SplitData, TensorData
from latentlive.training.tasks.drums import (
    STEP_MS_AT_120_BPM,
    DrumsTask,
    choose_class_thresholds,
    hit_scores,
    learn_clip,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def default_bindings() -> None:
    """The tasks here read gin's defaults, whatever a test before bound."""
    gin.clear_config()


def quiet(_: str) -> None:
    pass


class Oracle(nn.Module):
    """A stand-in pattern model whose latent is the clip itself: it decodes every clip back exactly, with
    ``velocity_bias`` added to every velocity it plays."""

    def __init__(self, velocity_bias: float = 0.0) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))
        self.velocity_bias, self.num_styles = velocity_bias, 0

    def encode(
        self, pattern: Tensor, style: Tensor, velocity: Tensor, offset: Tensor
    ) -> tuple[Tensor, Tensor]:
        code = torch.stack([pattern, velocity, offset], 1).flatten(1)
        return code, torch.full_like(code, -20.0)

    def decode_groove(self, z: Tensor, style: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        pattern, velocity, offset = z.view(len(z), 3, 9, -1).unbind(1)
        return 40 * pattern - 20, velocity + self.velocity_bias, offset

    def decode(self, z: Tensor, style: Tensor) -> Tensor:
        return self.decode_groove(z, style)[0]


def groove_data(count: int, seed: int) -> TensorData:
    """``count`` random one-bar clips with velocities in 0.2..1 and offsets in -0.3..0.3 on their hits."""
    rng = np.random.default_rng(seed)
    pattern = (rng.random((count, 9, 16)) < 0.3).astype(np.float32)
    velocity = rng.uniform(0.2, 1.0, pattern.shape).astype(np.float32) * pattern
    offset = rng.uniform(-0.3, 0.3, pattern.shape).astype(np.float32) * pattern
    return TensorData(
        {
            "pattern": torch.from_numpy(pattern),
            "style": torch.zeros(count, dtype=torch.long),
            "velocity": torch.from_numpy(velocity),
            "offset": torch.from_numpy(offset),
        }
    )


def test_sample_gives_hits_velocities_and_offsets_at_per_class_thresholds() -> None:
    torch.manual_seed(0)
    model = PatternVAE(latent_size=3, hidden_sizes=(32,), num_styles=2).eval()
    thresholds = torch.tensor([0.0] + [1.01] * 8)  # the kick plays every step, nothing else can
    hits, velocity, offset = model.sample(5, torch.tensor([0, 1, -1, 0, 1]), threshold=thresholds)
    assert hits.shape == velocity.shape == offset.shape == (5, 9, 16)
    assert hits[:, 0].eq(1).all() and hits[:, 1:].eq(0).all()
    assert velocity[:, 0].gt(0).all() and velocity.le(1).all() and velocity[:, 1:].eq(0).all()
    assert offset.abs().le(0.5).all() and offset[:, 1:].eq(0).all() and offset[:, 0].ne(0).any()
    drawn, _, _ = model.sample(5, torch.zeros(5, dtype=torch.long), threshold=None)
    assert set(drawn.unique().tolist()) <= {0.0, 1.0}


def test_forward_decodes_hits_velocities_and_offsets_in_range() -> None:
    torch.manual_seed(1)
    model = PatternVAE(latent_size=2, hidden_sizes=(16,), num_styles=3, steps=32)
    data = groove_data(4, 0).tensors
    pattern = torch.cat([data["pattern"]] * 2, -1)
    logits, velocity, offset, z, mean, logvar = model(
        pattern, torch.tensor([0, 1, 2, -1]), torch.cat([data["velocity"]] * 2, -1), torch.zeros_like(pattern)
    )
    assert logits.shape == velocity.shape == offset.shape == (4, 9, 32) and z.shape == mean.shape == (4, 2)
    assert velocity.min() >= 0 and velocity.max() <= 1 and offset.abs().max() <= 0.5
    plain = PatternVAE(latent_size=2, hidden_sizes=(16,), groove=False)
    _, velocity, offset = plain.decode_groove(torch.zeros(2, 2), torch.tensor([-1, -1]))
    assert velocity.eq(1).all() and offset.eq(0).all()


def test_class_thresholds_maximise_each_class_f1() -> None:
    truth = torch.zeros(20, 9, 16, dtype=torch.bool)
    truth[:, 0, ::4] = True  # kick: the model is unsure of it (0.3) but ranks it right
    truth[::2, 7, 0] = True  # crash, 10 hits: confident (0.9) with a confusable rest (0.6)
    truth[:3, 8, 5] = True  # ride, 3 hits: too few to choose by
    probs = torch.full((20, 9, 16), 0.1)
    probs[truth] = 0.9
    probs[:, 0][truth[:, 0]] = 0.3
    probs[1, 7, 0] = 0.6
    probs[:3, 8, 5] = 0.3
    chosen = choose_class_thresholds(probs, truth)
    assert 0.1 < chosen[0] <= 0.3 and 0.6 < chosen[7] <= 0.9
    assert chosen[5] == 0.5 and chosen[8] == 0.5  # mid tom never plays, the ride too rarely: the default
    assert choose_class_thresholds(probs, truth, min_hits=3)[8] <= 0.3
    for index in (0, 7):
        assert hit_scores(probs[:, index] >= chosen[index], truth[:, index])[2] == 1.0
    assert hit_scores(probs[:, 0] >= 0.5, truth[:, 0])[2] == 0.0  # one threshold of 0.5 loses the kick


def test_the_weighted_hit_loss_makes_a_missed_rare_hit_cost_more() -> None:
    task = DrumsTask(pos_weight_power=0.5)
    task.class_share = torch.tensor([0.25, 0.25, 0.25, 0.01, 0.01, 0.01, 0.01, 0.01, 0.25])
    missed_kick, missed_crash = torch.zeros(1, 9, 16), torch.zeros(1, 9, 16)
    missed_kick[0, 0, 0], missed_crash[0, 7, 0] = 1, 1
    logits = torch.full((1, 9, 16), -3.0)  # the model plays nothing
    ratio = task._hit_nll(logits, missed_crash) / task._hit_nll(logits, missed_kick)
    assert ratio.item() > 2.0
    plain = DrumsTask(pos_weight_power=0.0)
    plain.class_share = task.class_share
    assert torch.allclose(plain._hit_nll(logits, missed_crash), bernoulli_nll(logits, missed_crash))
    focal = DrumsTask(hit_loss="focal", focal_gamma=2.0)
    right, wrong = torch.full((1, 9, 16), -3.0), torch.full((1, 9, 16), 3.0)
    empty = torch.zeros(1, 9, 16)
    # an easy cell weighs (1 - p)^2 of its cross-entropy: far less than a wrong one
    assert focal._hit_nll(right, empty) < 0.01 * focal._hit_nll(wrong, empty)


def test_evaluate_reports_velocity_and_offset_errors_beside_their_baselines() -> None:
    task = DrumsTask(style_conditioning=False)
    train, held = groove_data(30, 1), groove_data(10, 2)
    task._fit_class_statistics(train)
    truth = held.tensors["pattern"] > 0
    mean_velocity = task.class_mean_velocity[None, :, None].expand_as(truth)
    expected_velocity = (held.tensors["velocity"] - mean_velocity).abs()[truth].mean().item()
    expected_offset = held.tensors["offset"].abs()[truth].mean().item() * STEP_MS_AT_120_BPM

    exact = task.evaluate(Oracle(), held)
    assert exact["eval/f1"] == 1.0 and exact["eval/velocity_error"] == pytest.approx(0.0, abs=1e-6)
    assert exact["eval/offset_error_ms"] == pytest.approx(0.0, abs=1e-4)
    assert exact["eval/baseline_mean_velocity/velocity_error"] == pytest.approx(expected_velocity, rel=1e-4)
    assert exact["eval/baseline_zero_offset/offset_error_ms"] == pytest.approx(expected_offset, rel=1e-4)
    assert 10 < expected_offset < 30 and exact["eval/classes_below_goal"] == 0
    assert {f"eval/f1/{name}" for name in INSTRUMENT_NAMES} <= set(exact)
    loud = task.evaluate(Oracle(velocity_bias=0.1), held)
    assert loud["eval/velocity_error"] == pytest.approx(0.1, rel=1e-4)


def test_the_lookup_answers_with_its_own_velocities_and_offsets() -> None:
    task = DrumsTask(style_conditioning=False)
    train = groove_data(30, 3)
    task._fit_class_statistics(train)
    empty = TensorData({key: value[:0] for key, value in train.tensors.items()})
    data = SplitData(train, train, empty, Split(0, (1.0, 0.0, 0.0), {side: () for side in SIDES}))
    # the training clips played again, 0.05 softer and 0.1 of a step later: the lookup finds their hits
    again = {key: value[:8].clone() for key, value in train.tensors.items()}
    again["velocity"] = (again["velocity"] - 0.05) * again["pattern"]
    again["offset"] = (again["offset"] + 0.1) * again["pattern"]
    metrics = task.evaluate_held_out(Oracle(), TensorData(again), data)
    lookup = "eval/baseline_nearest_bar"
    assert metrics[f"{lookup}/f1"] == 1.0 and metrics["eval/f1"] == 1.0
    assert metrics[f"{lookup}/velocity_error"] == pytest.approx(0.05, rel=1e-3)
    assert metrics[f"{lookup}/offset_error_ms"] == pytest.approx(0.1 * STEP_MS_AT_120_BPM, rel=1e-3)
    assert metrics["eval/velocity_error"] < 1e-6 and metrics["eval/beats_nearest_bar"] == 0.0


def test_a_two_bar_run_trains_evaluates_and_records_its_class_thresholds(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    args = ["train", "--gin", str(ROOT / "gin/drums_tiny.gin"), "--name", "two", "--out", str(runs)]
    assert main([*args, "--bind", "DrumsTask.bars_per_example = 2", "--max-steps", "20"]) == 0
    checkpoint = load_checkpoint(runs / "two" / "checkpoints" / "last.pt")
    metadata = checkpoint["metadata"]
    assert metadata["steps"] == 32 and metadata["groove"] is True
    assert len(metadata["class_thresholds"]) == 9
    assert all(0.0 < t < 1.0 for t in metadata["class_thresholds"])
    assert main(["evaluate", "--run", str(runs / "two")]) == 0
    metrics = json.loads((runs / "two" / "eval_test.json").read_text())["metrics"]
    for key in ("eval/f1", "eval/velocity_error", "eval/offset_error_ms", "eval/baseline_nearest_bar/f1",
                "eval/baseline_mean_velocity/velocity_error", "eval/baseline_zero_offset/offset_error_ms"):  # fmt: skip
        assert key in metrics and np.isfinite(metrics[key])


def humanised(data: TensorData, seed: int) -> dict[str, Tensor]:
    """``data``'s clips with each hit's velocity moved by up to +-0.1 and its offset by up to +-0.1 of a step."""
    generator = torch.Generator().manual_seed(seed)
    clip = dict(data.tensors)
    pattern = clip["pattern"]
    jitter = (torch.rand(pattern.shape, generator=generator) - 0.5) * 0.2
    clip["velocity"] = (clip["velocity"] + jitter).clamp(0.05, 1.0) * pattern
    jitter = (torch.rand(pattern.shape, generator=generator) - 0.5) * 0.2
    clip["offset"] = (clip["offset"] + jitter).clamp(-0.5, 0.5) * pattern
    return clip


def test_a_humanised_clip_is_learnt_with_its_style_and_decodes_back_to_it() -> None:
    torch.manual_seed(0)
    task = DrumsTask(examples_per_style=80, warmup_steps=50, style_dropout=0.1)
    data = task.load_data(None, 0, quiet)
    model, _ = task.build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(500):
        batch = data.train.take(torch.randint(0, len(data.train), (64,)))
        losses = task.losses(model, batch, step)
        total = sum(task.loss_weights(step)[name] * value for name, value in losses.items())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    model.eval()
    clip = humanised(data.test, 7)  # clips of performances it never trained on, played by a human
    z, style = learn_clip(model, clip["pattern"], clip["velocity"], clip["offset"])
    assert torch.equal(style, model.infer_style(clip["pattern"], clip["velocity"], clip["offset"]))
    truth = clip["pattern"] > 0.5

    def f1_of(z: Tensor, style: Tensor) -> float:
        return hit_scores(torch.sigmoid(model.decode(z, style)) >= 0.5, truth)[2]

    inferred = f1_of(z, style)
    wrong_style = (clip["style"] + 1) % model.num_styles
    wrong = f1_of(*learn_clip(model, clip["pattern"], clip["velocity"], clip["offset"], wrong_style))
    accuracy = (style == clip["style"]).float().mean().item()
    print(
        f"learnt clips: F1 {inferred:.3f} with the inferred style ({accuracy:.2f} right), {wrong:.3f} with a wrong one"
    )
    assert inferred >= 0.9 and inferred > wrong
    assert accuracy >= 0.8


def test_a_resumed_run_keeps_the_class_thresholds_of_its_checkpoint(drums_run: Path, tmp_path: Path) -> None:
    """A checkpoint written after a resume but before the next evaluation carries the thresholds the run had
    chosen, not the 0.5 a fresh task starts with."""
    checkpoint = load_checkpoint(drums_run / "checkpoints" / "last.pt")
    chosen = [0.3, 0.35, 0.4, 0.45, 0.55, 0.6, 0.65, 0.7, 0.75]
    checkpoint["metadata"]["class_thresholds"] = chosen
    path = tmp_path / "last.pt"
    torch.save(checkpoint, path)
    model = PatternVAE(**checkpoint["model_args"])
    task = DrumsTask()
    state = SimpleNamespace(
        task=task,
        model=model,
        optimizer=torch.optim.Adam(model.parameters()),
        discriminator=None,
        split=None,
        step=0,
        last_eval={},
    )
    assert task.metadata()["class_thresholds"] != chosen  # a fresh task: the check can fail
    restore_checkpoint(
        state, SimpleNamespace(checkpoint=path), {"seed": checkpoint["run"]["seed"], "db": None}
    )
    assert task.metadata()["class_thresholds"] == chosen

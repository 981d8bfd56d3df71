"""The sample quality of issue #18 in the evaluation of both techno stages: loops generated from the prior (stage
1: N(0, I) latents; both stages: macro draws -> trajectory -> a draw per stage-1 frame -> stage-1 decoder)
against the held-out loops."""

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from latentlive.core.runs import load_checkpoint
from latentlive.training.config import parse_gin
from latentlive.training.sample_quality import band_names, sample_quality
from latentlive.training.tasks.base import TensorData
from latentlive.training.tasks.techno import TechnoTask
from latentlive.training.tasks.techno_prior import TechnoPriorTask, sampled_latents

RATE = 16000
FRAME_HZ = RATE / 128  # gin/techno.gin: 16 kHz, 128x


def quality_keys(rate: int) -> set[str]:
    keys = {
        "eval/quality/frechet_log_mel",
        "eval/quality/frame_share/frame",
        "eval/quality/frame_share/frame_corpus",
    }
    for band in band_names(rate):
        for side in ("", "_corpus"):
            keys |= {f"eval/quality/flatness/{band}{side}", f"eval/quality/loudness_db/{band}{side}"}
    return keys


def quality(metrics: dict[str, float]) -> dict[str, float]:
    return {key: value for key, value in metrics.items() if key.startswith("eval/quality/")}


def trained(run: Path, task_class: type) -> tuple[object, nn.Module, TensorData]:
    """The task of ``run`` rebuilt from its config.gin, its trained model (eval mode) and its validation side."""
    parse_gin([run / "config.gin"])
    checkpoint = load_checkpoint(run / "checkpoints" / "last.pt")
    task = task_class()
    data = task.load_data(None, int(checkpoint["run"]["seed"]), log=lambda *_: None)
    model, _ = task.build_model()
    model.load_state_dict(checkpoint["model_state"])
    return task, model.eval(), data.validation


class RecordsItsLatents(nn.Module):
    """The model it wraps, recording every latent its decoder is given; ``plays`` replaces what it decodes by
    held-out loops (one per latent, wrapping), as if its samples were the corpus itself."""

    def __init__(self, model: nn.Module, plays: torch.Tensor | None = None) -> None:
        super().__init__()
        self.model, self.plays, self.decoded = model, plays, []

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        self.decoded.append(z.clone())
        if self.plays is None:
            return self.model.decode(z)
        return self.plays[torch.arange(len(z)) % len(self.plays)].unsqueeze(1)


def test_stage1_evaluate_scores_prior_samples_against_the_held_out_loops(techno_run: Path) -> None:
    task, model, held_out = trained(techno_run, TechnoTask)
    assert task.sample_rate == RATE and model.ratio == 128
    spy = RecordsItsLatents(model)
    metrics = task.evaluate(spy, held_out)
    scores = quality(metrics)
    assert set(scores) == quality_keys(RATE) and all(math.isfinite(v) for v in scores.values())
    # the last decode is of N(0, I) latents of the held-out loops' shape, seeded: not of their posteriors
    count, frames = task.quality_samples, held_out.tensors["audio"].shape[1] // model.ratio
    assert count > len(held_out)  # gin/techno_tiny.gin: more samples than held-out loops
    drawn = task.sample_latents(count, (model.latent_size, frames))
    torch.testing.assert_close(spy.decoded[-1], drawn)
    assert quality(task.evaluate(model, held_out)) == scores  # repeatable

    clips = held_out.tensors["audio"].numpy()
    itself = sample_quality(clips, clips, RATE, {"frame": FRAME_HZ}, prefix="eval/quality/")
    assert itself["eval/quality/frechet_log_mel"] == pytest.approx(0.0, abs=1e-6)
    assert {k: v for k, v in scores.items() if k.endswith("_corpus")} == pytest.approx(
        {k: v for k, v in itself.items() if k.endswith("_corpus")}
    )  # the reference side is the held-out loops
    assert scores["eval/quality/frechet_log_mel"] > 1.0  # four steps of training: far from the corpus
    assert scores["eval/quality/frame_share/frame"] != pytest.approx(
        scores["eval/quality/frame_share/frame_corpus"]
    )

    # a decoder whose "samples" are the held-out loops themselves (played in turn) scores as the
    # corpus does, up to the n - 1 of the covariances
    playing = quality(task.evaluate(RecordsItsLatents(model, plays=held_out.tensors["audio"]), held_out))
    assert playing["eval/quality/frechet_log_mel"] == pytest.approx(0.0, abs=1e-3)
    assert playing["eval/quality/frame_share/frame"] == pytest.approx(
        playing["eval/quality/frame_share/frame_corpus"]
    )


def test_stage1_quality_samples_sets_the_count_and_zero_leaves_the_metrics_out(techno_run: Path) -> None:
    task, model, held_out = trained(techno_run, TechnoTask)
    for count in (1, len(held_out) + 5):
        spy = RecordsItsLatents(model)
        task.quality_samples = count
        scores = quality(task.evaluate(spy, held_out))
        assert len(spy.decoded[-1]) == count and set(scores) == quality_keys(RATE)
    task.quality_samples = 0
    assert quality(task.evaluate(model, held_out)) == {}


def test_the_training_run_logged_the_sample_quality(techno_run: Path, techno_prior_run: Path) -> None:
    for run in (techno_run, techno_prior_run):
        logged = load_checkpoint(run / "checkpoints" / "last.pt")["last_eval"]
        assert quality_keys(RATE) <= set(logged), run


def test_both_stages_evaluate_scores_loops_sampled_through_both_stages(techno_prior_run: Path) -> None:
    task, model, held_out = trained(techno_prior_run, TechnoPriorTask)
    assert "audio" in held_out.tensors  # the held-out side keeps its loops' audio
    metrics = task.evaluate(model, held_out)
    scores = quality(metrics)
    assert set(scores) == quality_keys(RATE) and all(math.isfinite(v) for v in scores.values())
    assert quality(task.evaluate(model, held_out)) == scores  # repeatable

    lengths = held_out.tensors["loop_samples"].tolist()
    clips = [loop[:n].numpy() for loop, n in zip(held_out.tensors["audio"], lengths, strict=True)]
    itself = sample_quality(clips, clips, RATE, {"frame": FRAME_HZ}, prefix="eval/quality/")
    assert itself["eval/quality/frechet_log_mel"] == pytest.approx(0.0, abs=1e-6)
    assert {k: v for k, v in scores.items() if k.endswith("_corpus")} == pytest.approx(
        {k: v for k, v in itself.items() if k.endswith("_corpus")}
    )  # the reference side is the held-out loops, each one loop long
    assert scores["eval/quality/frechet_log_mel"] > 1.0

    # the generated side is macros drawn where the training codes lie (their mean plus their spread times N(0, I),
    # seeded as `render techno --seed 0` draws them), through both stages with a draw per stage-1 frame from the
    # same generator: those loops, fed directly, give the same numbers
    assert not torch.equal(model.code_std, torch.ones_like(model.code_std))  # training tracked the codes
    count = task.quality_samples
    assert count > len(clips)  # gin/techno_prior_tiny.gin: the held-out loops' lengths are reused in turn
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(count, model.macro_size, model.macro_frames, generator=generator)
    macro = model.code_mean + model.code_std * noise
    with torch.no_grad():
        means, logscales = model.decode(macro)
        generated = [
            task.stage1.decode(sampled_latents(m[None], s[None], 128, n, 1.0, generator))[0, 0, :n].numpy()
            for i, (m, s) in enumerate(zip(means, logscales, strict=True))
            for n in [lengths[i % len(lengths)]]
        ]
    direct = sample_quality(generated, clips, RATE, {"frame": FRAME_HZ}, prefix="eval/quality/")
    assert direct == pytest.approx(scores)


def test_sampled_loops_change_from_frame_to_frame_the_mean_does_not(techno_prior_run: Path) -> None:
    """Issue #18: the buzz came from playing the decoded mean, whose stage-1 latents are smooth (almost no power
    above half the latent Nyquist frequency, where the demo corpus's posteriors have half of theirs); a draw per
    stage-1 frame gives them the decoded scale's power there (white noise: half its variance)."""
    task, model, held_out = trained(techno_prior_run, TechnoPriorTask)
    assert task.frame_temperature == 1.0  # the default samples every frame
    sampled = task.evaluate(model, held_out)["eval/latent_high_band"]
    task.frame_temperature = 0.0  # the old sampling: the decoded mean alone
    smooth = task.evaluate(model, held_out)["eval/latent_high_band"]
    assert smooth < sampled / 100.0
    with torch.no_grad():
        macro = torch.randn(
            64, model.macro_size, model.macro_frames, generator=torch.Generator().manual_seed(0)
        )
        variance = model.decode(macro)[1].exp().square().mean().item()
    # a periodogram's bins above half Nyquist hold about half the variance of white noise, times its length / 2
    frames = int(held_out.tensors["loop_samples"].max()) // 128
    assert sampled == pytest.approx(variance * frames / 4.0, rel=0.5)

"""Drum synth: metrics against hand-computed values, the conditional VAE, the signal path, a tiny run."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from latentlive.cli import main
from latentlive.core.errors import UserError
from latentlive.core.runs import load_checkpoint
from latentlive.corpus.drum_synth import synthesise
from latentlive.corpus.splits import SIDES, read_split
from latentlive.models.drum_classifier import classify
from latentlive.models.drumsynth import DrumSynthVAE
from latentlive.training.drum_classifier_fit import train_classifier
from latentlive.training.drumsynth_judge import judge_report
from latentlive.training.metrics import (
    log_spectral_distance,
    mutual_information_gap,
    r2_per_factor,
    spectral_convergence,
)
from latentlive.training.tasks.drumsynth import DrumSynthTask, per_class_mmd

ROOT = Path(__file__).resolve().parents[1]


# -- metrics -------------------------------------------------------------------------------------


def test_log_spectral_distance_is_the_rms_difference_in_db() -> None:
    reference = torch.ones(2, 1, 2)
    estimate = torch.tensor([[[10.0, 10.0]], [[1.0, 10.0]]])  # +20 dB everywhere; 0 and +20 dB
    assert torch.allclose(log_spectral_distance(reference, estimate), torch.tensor([20.0, math.sqrt(200.0)]))
    # below the floor (-100 dB) everything is the same silence
    assert log_spectral_distance(torch.zeros(1, 3), torch.full((1, 3), 1e-6)).item() == 0.0


def test_spectral_convergence_is_the_relative_frobenius_error() -> None:
    reference = torch.tensor([[[3.0, 4.0]]])
    assert spectral_convergence(reference, torch.zeros_like(reference)).item() == pytest.approx(1.0)
    assert spectral_convergence(reference, torch.tensor([[[3.0, 0.0]]])).item() == pytest.approx(0.8)
    assert spectral_convergence(reference, reference).item() == 0.0


def test_r2_per_factor_scores_a_linear_readout_on_held_out_rows_ignoring_nan() -> None:
    train_z = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])
    test_z = np.array([[5.0], [6.0], [7.0]])
    nan = np.nan
    train_f = np.column_stack(
        [2 * train_z[:, 0] + 1, [3.0, 3.0, 3.0, 3.0, nan], [1.0, nan, nan, nan, nan]]
    )  # linear; constant 3 (so predicts 3); known once only
    test_f = np.column_stack([2 * test_z[:, 0] + 1, [2.0, nan, 4.0], [1.0, 2.0, 3.0]])
    r2 = r2_per_factor(train_z, train_f, test_z, test_f, min_examples=2)
    assert r2[0] == pytest.approx(1.0)
    # truth (2, 4), prediction 3: SSE 2, SST 2 -> R^2 = 0
    assert r2[1] == pytest.approx(0.0, abs=1e-9)
    assert np.isnan(r2[2])  # too few training rows know it


def test_mutual_information_gap_against_hand_computed_entropies() -> None:
    factor = np.tile(np.arange(4.0), 25)  # uniform over 4 values: H = ln 4
    informative = factor.copy()
    half = np.floor(factor / 2)  # knows one bit of two: I = ln 2
    constant = np.zeros_like(factor)
    gap = mutual_information_gap(np.column_stack([half, informative, constant]), factor[:, None], bins=4)
    assert gap[0] == pytest.approx((math.log(4) - math.log(2)) / math.log(4))  # 0.5
    both = mutual_information_gap(np.column_stack([informative, informative]), factor[:, None], bins=4)
    assert both[0] == pytest.approx(0.0)
    alone = mutual_information_gap(np.column_stack([informative, constant]), factor[:, None], bins=4)
    assert alone[0] == pytest.approx(1.0)
    unknown = np.full((100, 1), np.nan)
    assert np.isnan(mutual_information_gap(np.column_stack([informative, constant]), unknown)[0])


# -- the model -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bins", "frames", "channels"), [(37, 21, (4, 8, 8)), (99, 64, (4, 8)), (5, 3, (4,))]
)
def test_model_returns_exactly_the_input_shape_for_odd_sizes(bins: int, frames: int, channels: tuple) -> None:
    model = DrumSynthVAE(3, bins, frames, latent_size=5, channels=channels, cond_dim=6)
    logmag = torch.randn(2, 1, bins, frames)
    mean, logscale, z, mu, logvar = model(logmag, torch.tensor([0, 2]))
    assert mean.shape == logscale.shape == (2, 1, bins, frames)
    assert z.shape == mu.shape == logvar.shape == (2, 5)
    assert model.sample(torch.tensor([1, 1, 1])).shape == (3, 1, bins, frames)


def test_output_is_in_log_magnitude_units_with_a_floored_scale() -> None:
    torch.manual_seed(0)
    model = DrumSynthVAE(2, 9, 8, channels=(4,), logmag_mean=-8.0, logmag_std=3.0, min_logscale=-2.0)
    mean, logscale = model.decode(torch.zeros(4, model.latent_size), torch.tensor([0, 1, -1, 0]))
    assert abs(mean.mean().item() + 8.0) < 3.0  # centred on the data's mean, not on 0
    assert (logscale >= -2.0 + math.log(3.0) - 1e-5).all()


def _randomise_film(model: DrumSynthVAE) -> None:
    for name, parameter in model.named_parameters():
        if ".film." in name:
            torch.nn.init.normal_(parameter, std=0.5)


def test_film_conditioning_changes_the_output_and_no_class_is_the_mean_class() -> None:
    torch.manual_seed(0)
    model = DrumSynthVAE(3, 16, 16, channels=(4, 8), cond_dim=6).eval()
    z = torch.randn(1, model.latent_size)
    plain = model.decode(z, torch.tensor([0]))[0]
    _randomise_film(model)
    filmed = model.decode(z, torch.tensor([0]))[0]
    assert not torch.allclose(plain, filmed, atol=1e-4)
    other = model.decode(z, torch.tensor([1]))[0]
    assert not torch.allclose(filmed, other, atol=1e-4)
    logmag = torch.randn(1, 1, 16, 16)
    assert not torch.allclose(
        model.encode(logmag, torch.tensor([0]))[0], model.encode(logmag, torch.tensor([1]))[0]
    )
    # -1 and out-of-range labels both mean "no class": the mean embedding
    with torch.no_grad():
        model.classes.embedding.weight.copy_(torch.randn(3, 6))
    none = model.decode(z, torch.tensor([-1]))[0]
    assert torch.equal(none, model.decode(z, torch.tensor([7]))[0])
    with torch.no_grad():
        model.classes.embedding.weight.copy_(
            model.classes.embedding.weight.mean(0, keepdim=True).expand(3, 6)
        )
    assert torch.allclose(none, model.decode(z, torch.tensor([2]))[0], atol=1e-5)


def test_judge_tells_apart_classes_that_differ_only_in_pitch() -> None:
    """Two classes with the same decaying shape, one band apart in frequency, plus noise: a judge that
    pooled over frequency could not separate them; the class metric needs one that can."""
    generator = torch.Generator().manual_seed(0)

    def sounds(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        classes = torch.randint(2, (count,), generator=generator)
        band = 10 + 6 * classes + torch.randint(-1, 2, (count,), generator=generator)
        decay = torch.exp(-torch.arange(32.0) / 8.0)
        logmag = torch.randn(count, 1, 40, 32, generator=generator) * 0.5 - 8.0
        for i in range(count):
            logmag[i, 0, band[i] : band[i] + 3] += 6.0 * decay
        return logmag, classes

    logmag, classes = sounds(256)
    judge = train_classifier(
        logmag, classes, 2, steps=60, logmag_mean=-8.0, logmag_std=2.0, channels=(16, 16)
    )
    held_out, truth = sounds(128)
    assert (classify(judge, held_out) == truth).float().mean() > 0.95
    assert not judge.training


def test_model_scripts_with_torchscript_and_matches_eager() -> None:
    torch.manual_seed(0)
    model = DrumSynthVAE(4, 21, 16, latent_size=3, channels=(4, 8), cond_dim=5).eval()
    _randomise_film(model)
    scripted = torch.jit.script(model)
    logmag, cls = torch.randn(2, 1, 21, 16), torch.tensor([3, -1])
    for eager, script in zip(model.encode(logmag, cls), scripted.encode(logmag, cls), strict=True):
        assert torch.allclose(eager, script, atol=1e-5)
    z = torch.randn(2, 3)
    for eager, script in zip(model.decode(z, cls), scripted.decode(z, cls), strict=True):
        assert torch.allclose(eager, script, atol=1e-5)
    assert scripted(logmag, cls)[0].shape == (2, 1, 21, 16)


# -- the task --------------------------------------------------------------------------------------


def _small_task(**kwargs: object) -> DrumSynthTask:
    return DrumSynthTask(length=4096, time_pool=6, griffin_lim_iterations=16, **kwargs)


def test_griffin_lim_through_the_nsgt_recovers_a_drum_like_sound() -> None:
    task = _small_task()
    t = torch.arange(task.length) / task.sample_rate
    tone = torch.sin(2 * math.pi * 180.0 * t) * torch.exp(-t * 12.0)
    logmag = task.analyse(tone[None])
    assert logmag.shape == (1, 1, task.bins, task.frames)
    heard = task.analyse(task.synthesise(logmag))
    assert spectral_convergence(logmag.exp(), heard.exp()).item() < 0.3
    assert log_spectral_distance(logmag.exp(), heard.exp()).item() < 10.0


def test_wae_divergence_is_mmd_within_each_class_of_the_batch() -> None:
    torch.manual_seed(0)
    far = torch.randn(6, 2) + 6.0  # class 0: far from the prior
    near = torch.randn(6, 2)  # class 1: prior-like
    single = torch.randn(1, 2) + 50.0  # class 2: one example, skipped
    z = torch.cat([far, near, single])
    classes = torch.tensor([0] * 6 + [1] * 6 + [2])
    mmd = per_class_mmd(z, classes, prior_samples=64)
    assert mmd.item() > per_class_mmd(near, torch.ones(6, dtype=torch.long), prior_samples=64).item()
    assert per_class_mmd(single, torch.tensor([2])).item() == 0.0

    task = _small_task(divergence="mmd")
    task.class_names = ["a", "b"]
    model, args = task.build_model()
    batch = {"logmag": torch.randn(8, 1, task.bins, task.frames) - 8.0, "cls": torch.tensor([0, 1] * 4)}
    losses = task.losses(model, batch, step=0)
    assert set(losses) == set(task.loss_weights(0)) == {"loss/reconstruction", "loss/divergence"}
    assert args["bins"] == task.bins and args["frames"] == task.frames
    sum(losses.values()).backward()  # both terms reach the parameters


def test_tiny_run_writes_metrics_media_and_the_pca_of_the_knobs(drumsynth_run: Path) -> None:
    metrics = json.loads((drumsynth_run / "metrics.json").read_text())["eval"]
    for key in ("eval/lsd", "eval/sc", "eval/elbo", "eval/prior_accuracy", "eval/classifier_accuracy"):
        assert math.isfinite(metrics[key]), key
    assert {"eval/prior_accuracy/kick", "eval/knob_accuracy", "eval/r2_mean", "eval/mig"} <= set(metrics)
    assert metrics["eval/lsd"] > 0 and 0 <= metrics["eval/prior_accuracy"] <= 1

    events = EventAccumulator(str(drumsynth_run), size_guidance={"images": 0, "audio": 0}).Reload()
    assert {
        "spectrograms/input_vs_reconstruction",
        "spectrograms/prior_by_class",
        "latent/map_by_class",
    } <= set(events.Tags()["images"])
    audio = set(events.Tags()["audio"])
    assert {"audio/prior/kick", "audio/prior/cymbal"} <= audio
    assert any(tag.startswith("audio/reconstruction/") for tag in audio)
    assert any(tag.startswith("audio/input/") for tag in audio)

    checkpoint = load_checkpoint(drumsynth_run / "checkpoints" / "last.pt")
    split = read_split(drumsynth_run / "split.json")
    assert checkpoint["split"] == split.to_json() and split.fractions == (0.4, 0.5, 0.1)
    sides = [set(split.groups[side]) for side in SIDES]
    assert all(sides) and not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert any(group.startswith("sf2:") for group in split.groups["validation"])
    meta, args = checkpoint["metadata"], checkpoint["model_args"]
    classes, dim = len(meta["class_names"]), args["latent_size"]
    assert meta["class_names"][0] == "kick" and meta["sample_rate"] == 22050 and meta["length"] == 4096
    assert meta["nsgt"]["bins"] == args["bins"] and meta["nsgt"]["model_frames"] == args["frames"]
    assert meta["logmag_std"] == args["logmag_std"] > 0
    components = np.array(meta["pca_components"])
    std = np.array(meta["pca_std"])
    assert np.array(meta["pca_mean"]).shape == std.shape == (classes, dim)
    assert components.shape == (classes, dim, dim)
    for c in range(classes):
        assert np.allclose(components[c] @ components[c].T, np.eye(dim), atol=1e-6)
        assert np.all(np.diff(std[c]) <= 1e-9) and np.all(std[c] >= 0)


def test_trains_on_a_user_folder_of_one_shots(tmp_path: Path) -> None:
    """Class folders of WAV files at another rate, in stereo: the run learns their classes."""
    for class_name in ("kick", "snare", "closed_hat"):
        folder = tmp_path / "kit" / class_name
        folder.mkdir(parents=True)
        for i in range(4):
            mono = synthesise(class_name, {"decay": 0.2 + 0.2 * i}, 44100, 8192, seed=i)
            sf.write(str(folder / f"{class_name}_{i}.wav"), np.stack([mono, 0.5 * mono], axis=1), 44100)
    args = ["train", "--gin", str(ROOT / "gin/drumsynth_tiny.gin"), "--db", str(tmp_path / "kit")]
    assert main([*args, "--out", str(tmp_path / "runs"), "--name", "mine", "--device", "cpu"]) == 0
    checkpoint = load_checkpoint(tmp_path / "runs" / "mine" / "checkpoints" / "last.pt")
    assert checkpoint["metadata"]["class_names"] == ["closed_hat", "kick", "snare"]
    assert checkpoint["model_args"]["num_classes"] == 3


def _write_kit(db: Path, files_per_class: dict[str, int]) -> None:
    for class_name, count in files_per_class.items():
        (db / class_name).mkdir(parents=True)
        for i in range(count):
            factors = {"decay": 0.1 + 0.2 * i} if class_name in ("kick", "snare", "clap") else {}
            sound = synthesise(class_name if class_name != "cowbell" else "rim", factors, 22050, 4096, seed=i)
            sf.write(str(db / class_name / f"{i}.wav"), sound, 22050)


def test_load_data_deals_files_and_fits_the_statistics_on_the_training_side(tmp_path: Path) -> None:
    _write_kit(tmp_path / "kit", {"kick": 5, "snare": 5, "clap": 5})
    task = _small_task()
    data = task.load_data(tmp_path / "kit", seed=1, log=lambda _: None)
    assert task.class_names == ["clap", "kick", "snare"]
    groups = {side: set(data.split.groups[side]) for side in SIDES}
    assert not (groups["train"] & groups["validation"]) and not (groups["train"] & groups["test"])
    assert sum(len(data.side(side)) for side in SIDES) == 15 and len(groups["validation"]) >= 3
    assert set(data.validation.tensors["cls"].tolist()) == {0, 1, 2}  # every class holds sounds out
    assert "audio" in data.validation.tensors and "audio" not in data.train.tensors
    train_logmag = data.train.tensors["logmag"]
    assert task.logmag_mean == pytest.approx(float(train_logmag.mean()))
    assert task._train is data.train  # the judge and the PCA of the knobs read this side only


def test_load_held_out_reads_every_sound_of_the_known_classes(tmp_path: Path) -> None:
    _write_kit(tmp_path / "kit", {"kick": 3, "snare": 3, "clap": 3})
    _write_kit(tmp_path / "mine", {"snare": 2, "kick": 1, "cowbell": 2})
    task = _small_task()
    task.load_data(tmp_path / "kit", seed=0, log=lambda _: None)
    lines: list[str] = []
    held_out = task.load_held_out(tmp_path / "mine", log=lines.append)
    assert sorted(held_out.tensors["cls"].tolist()) == [1, 2, 2]  # kick, snare, snare in the model's order
    assert held_out.tensors["logmag"].shape == (3, 1, task.bins, task.frames)
    assert held_out.tensors["audio"].shape == (3, task.length)
    assert any("cowbell" in line and "not classes of this model" in line for line in lines)
    _write_kit(tmp_path / "strange", {"cowbell": 2})
    with pytest.raises(UserError) as caught:
        task.load_held_out(tmp_path / "strange", log=lambda _: None)
    message = str(caught.value)
    assert str(tmp_path / "strange") in message and "clap, kick, snare" in message and "\n" not in message


def test_the_judge_report_scores_each_held_out_side_by_kind_and_class(tmp_path: Path) -> None:
    _write_kit(tmp_path / "kit", {"kick": 4, "snare": 4, "clap": 4})
    task = _small_task(classifier_steps=5, classifier_channels=(4,))
    data = task.load_data(tmp_path / "kit", seed=0, log=lambda _: None)
    report = judge_report(task, data)
    for side in ("validation", "test"):
        assert report[f"{side}/count"] == len(data.side(side)) == report[f"{side}/count/other"]
        assert 0 <= report[f"{side}/accuracy"] <= 1 and f"{side}/accuracy/synth" not in report
    assert {f"validation/accuracy/class/{name}" for name in ("clap", "kick", "snare")} <= set(report)

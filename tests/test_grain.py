"""Training the grain VAE: the tiny run's metrics, media and knob PCA, the losses, resynthesis, and folders of
sounds through the CLI."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import Tensor, nn

from latentlive.cli import main
from latentlive.core.runs import load_checkpoint
from latentlive.corpus.grains import frame_sound
from latentlive.models.grain_vae import GrainVAE
from latentlive.training.tasks.base import TensorData
from latentlive.training.tasks.grain import GrainTask, principal_axes

ROOT = Path(__file__).resolve().parents[1]
GRAIN, HOP, RATE = 256, 64, 22050
LOSS_KEYS = {"loss/gaussian", "loss/spectral_distance", "loss/divergence"}


class PassThrough(nn.Module):
    """A perfect grain "VAE": the latent is the grain itself and decoding returns it unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # resynthesise asks the parameters for the device

    def encode(self, grain: Tensor) -> tuple[Tensor, Tensor]:
        latent = grain.flatten(1)
        return latent, torch.zeros_like(latent)

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return z[:, None], torch.full_like(z[:, None], -5.0)


def chirp(seconds: float, rate: int, start_hz: float, end_hz: float, seed: int = 0) -> np.ndarray:
    """A gliding tone with a little noise under a slow swell: a sound with grains worth learning."""
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * (start_hz * t + 0.5 * (end_hz - start_hz) * t**2 / seconds)
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return (0.5 * np.sin(phase) + 0.05 * noise) * np.sin(np.pi * t / seconds) ** 0.5


# -- the tiny run ------------------------------------------------------------------------------------


def test_tiny_run_writes_grain_and_sound_metrics_audio_and_the_latent_map(grain_run: Path) -> None:
    metrics = json.loads((grain_run / "metrics.json").read_text())["eval"]
    for key in ("eval/lsd", "eval/sc", "eval/sound_lsd", "eval/sound_sc"):
        assert math.isfinite(metrics[key]) and metrics[key] >= 0, key
    events = EventAccumulator(str(grain_run), size_guidance={"images": 0, "audio": 0}).Reload()
    audio = set(events.Tags()["audio"])
    assert "audio/input/0" in audio and "audio/resynthesis/0" in audio
    assert "latent/map_by_sound" in events.Tags()["images"]


def test_checkpoint_pca_is_orthonormal_and_ordered_by_decreasing_spread(grain_run: Path) -> None:
    checkpoint = load_checkpoint(grain_run / "checkpoints" / "last.pt")
    meta, size = checkpoint["metadata"], checkpoint["model_args"]["latent_size"]
    assert (meta["sample_rate"], meta["grain_size"], meta["hop"]) == (RATE, GRAIN, HOP)
    components, std = np.array(meta["pca_components"]), np.array(meta["pca_std"])
    assert components.shape == (size, size) and std.shape == np.array(meta["pca_mean"]).shape == (size,)
    assert np.allclose(components @ components.T, np.eye(size), atol=1e-6)
    assert np.all(np.diff(std) <= 1e-9) and np.all(std >= 0)


def test_principal_axes_recover_known_axes_in_order_of_spread() -> None:
    rng = np.random.default_rng(0)
    rotation = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    spreads = np.array([0.5, 3.0, 1.0])
    codes = 2.0 + (rng.standard_normal((20000, 3)) * spreads) @ rotation.T
    pca = principal_axes(codes)
    assert np.allclose(pca["pca_std"], [3.0, 1.0, 0.5], rtol=0.03)
    assert np.allclose(pca["pca_mean"], 2.0, atol=0.05)
    components = np.array(pca["pca_components"])
    for row, column in zip(components, (1, 2, 0), strict=True):  # axis k is the k-th widest column
        assert abs(row @ rotation[:, column]) > 0.999
        assert row[np.abs(row).argmax()] > 0  # the sign convention: the largest entry is positive
    # a knob moves the code by its std along its axis
    z = np.array(pca["pca_mean"]) + 1.0 * pca["pca_std"][0] * components[0]
    assert np.linalg.norm(z - np.array(pca["pca_mean"])) == pytest.approx(pca["pca_std"][0])


def test_principal_axes_of_fewer_codes_than_dimensions_still_give_every_axis() -> None:
    codes = np.random.default_rng(1).standard_normal((2, 5))
    pca = principal_axes(codes)
    components = np.array(pca["pca_components"])
    assert components.shape == (5, 5) and np.allclose(components @ components.T, np.eye(5), atol=1e-9)
    assert pca["pca_std"][0] > 0 and pca["pca_std"][1:] == pytest.approx([0.0] * 4, abs=1e-9)


# -- losses and resynthesis --------------------------------------------------------------------------


def test_losses_have_the_keys_of_the_weights_and_the_divergence_warms_up() -> None:
    task = GrainTask(grain_size=GRAIN, gaussian_weight=0.5, spectral_weight=2.0, beta=0.1, warmup_steps=100)
    model = GrainVAE(grain_size=GRAIN, latent_size=4, channels=(4, 8))
    grains = torch.from_numpy(frame_sound(chirp(0.2, RATE, 200, 2000), GRAIN, HOP)[:8])
    losses = task.losses(model, {"grain": grains}, step=0)
    assert set(losses) == set(task.loss_weights(0)) == LOSS_KEYS
    assert all(value.dim() == 0 and torch.isfinite(value) for value in losses.values())
    weights = [task.loss_weights(step) for step in (0, 50, 100, 1000)]
    assert [w["loss/divergence"] for w in weights] == pytest.approx([0.0, 0.05, 0.1, 0.1])
    assert all(w["loss/gaussian"] == 0.5 and w["loss/spectral_distance"] == 2.0 for w in weights)
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_resynthesis_by_a_perfect_model_reproduces_the_sound() -> None:
    task = GrainTask(grain_size=GRAIN)
    sound = chirp(0.3, RATE, 300, 3000).astype(np.float32)
    rebuilt = task.resynthesise(PassThrough(), sound)
    assert rebuilt.shape == sound.shape
    np.testing.assert_allclose(rebuilt, sound, atol=1e-5)


def test_evaluate_scores_a_perfect_model_near_zero() -> None:
    task = GrainTask(grain_size=GRAIN)
    sound = chirp(0.3, RATE, 300, 3000).astype(np.float32)
    task._held_out_sounds = {0: sound}  # what load_data keeps of the held-out sounds
    grains = torch.from_numpy(frame_sound(sound, GRAIN, HOP))
    metrics = task.evaluate(PassThrough(), TensorData({"grain": grains, "sound": torch.zeros(len(grains))}))
    assert metrics["eval/lsd"] < 1e-3 and metrics["eval/sc"] < 1e-5
    assert metrics["eval/sound_lsd"] < 1e-2 and metrics["eval/sound_sc"] < 1e-4


# -- folders of sounds -------------------------------------------------------------------------------


def test_trains_on_a_user_folder_of_44k_stereo_sounds(tmp_path: Path) -> None:
    folder = tmp_path / "sounds"
    folder.mkdir()
    for i, (low, high) in enumerate(((100, 800), (400, 4000), (2000, 300))):
        mono = chirp(2.0, 44100, low, high, seed=i)
        sf.write(str(folder / f"sound{i}.wav"), np.stack([mono, 0.7 * mono], axis=1), 44100)
    args = ["train", "--gin", str(ROOT / "gin/grain_tiny.gin"), "--db", str(folder), "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "runs"), "--name", "mine"]) == 0
    run = tmp_path / "runs" / "mine"
    checkpoint = load_checkpoint(run / "checkpoints" / "last.pt")
    assert checkpoint["metadata"]["sample_rate"] == RATE and len(checkpoint["metadata"]["pca_std"]) == 4
    metrics = json.loads((run / "metrics.json").read_text())["eval"]
    assert math.isfinite(metrics["eval/lsd"]) and math.isfinite(metrics["eval/sound_lsd"])


def test_a_folder_of_nothing_usable_fails_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "nothing"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a sound")
    sf.write(str(folder / "silence.wav"), np.zeros(44100, dtype=np.float32), 44100)
    (folder / "broken.wav").write_bytes(b"RIFF but not really")
    sf.write(str(folder / "click.wav"), np.full(40, 0.5, dtype=np.float32), 44100)  # shorter than a grain
    args = ["train", "--gin", str(ROOT / "gin/grain_tiny.gin"), "--db", str(folder), "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "runs"), "--name", "empty"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(folder) in err[0] and "none of the 3 audio files is usable" in err[0]
    assert not (tmp_path / "runs" / "empty" / "checkpoints" / "last.pt").exists()

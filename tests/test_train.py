"""Training: the run folder, TensorBoard, resume after an interruption, torchrun with 2 processes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gin
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from latentlive.cli import main
from latentlive.core.runs import load_checkpoint
from latentlive.training.config import parse_gin
from latentlive.training.metrics import headline

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "gin" / "drums_tiny.gin")


def test_run_folder_holds_config_checkpoint_metrics_and_tensorboard(drums_run: Path) -> None:
    config = (drums_run / "config.gin").read_text()
    assert "train.task = 'drums'" in config and "PatternVAE.latent_size = 4" in config
    parse_gin([drums_run / "config.gin"])  # the operative config parses again, as export does
    assert gin.query_parameter("train.max_steps") == 40

    checkpoint = load_checkpoint(drums_run / "checkpoints" / "last.pt")
    assert checkpoint["step"] == 40 and checkpoint["task"] == "drums"
    assert checkpoint["model_args"]["latent_size"] == 4 and len(checkpoint["metadata"]["style_names"]) >= 8
    assert {"model_state", "optimizer_state", "rng_state"} <= set(checkpoint)

    metrics = json.loads((drums_run / "metrics.json").read_text())
    assert metrics["step"] == 40
    assert {"eval/precision", "eval/recall", "eval/f1", "eval/elbo"} <= set(metrics["eval"])
    assert 0.0 <= metrics["eval"]["eval/f1"] <= 1.0 and metrics["eval"]["eval/elbo"] < 0

    events = EventAccumulator(str(drums_run), size_guidance={"images": 0, "tensors": 0}).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {
        "loss/reconstruction",
        "loss/divergence",
        "loss/total",
        "weight/loss/divergence",
        "eval/f1",
    } <= scalars
    images = set(events.Tags()["images"])
    assert {"patterns/input_vs_reconstruction", "patterns/samples_by_style", "latent/map_by_style"} <= images
    betas = [e.value for e in events.Scalars("weight/loss/divergence")]
    assert betas == sorted(betas) and betas[-1] > betas[0]  # the warm-up ramps beta up


def _train_command(out: Path, name: str, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), "--gin", TINY, "--out", str(out), "--name", name, *extra]


def test_interrupted_and_resumed_run_matches_an_uninterrupted_one(tmp_path: Path) -> None:
    steps = ["--max_steps", "160", "--bind", "train.checkpoint_every = 10", "--bind", "train.eval_every = 80"]
    assert (
        main(["train", "--gin", TINY, "--out", str(tmp_path), "--name", "straight", *steps[:2], *steps[2:]])
        == 0
    )

    process = subprocess.Popen(_train_command(tmp_path, "stopped", *steps), stderr=subprocess.PIPE, text=True)
    checkpoint = tmp_path / "stopped" / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    stopped_at = load_checkpoint(checkpoint)["step"]
    assert 0 < stopped_at < 160 and "--resume" in stderr.strip().splitlines()[-1]

    assert main(["train", "--out", str(tmp_path), "--name", "stopped", "--resume", *steps[:2]]) == 0
    straight = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")
    resumed = load_checkpoint(checkpoint)
    assert resumed["step"] == straight["step"] == 160
    for name, value in straight["model_state"].items():
        assert torch.equal(value, resumed["model_state"][name]), name
    straight_metrics = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    resumed_metrics = json.loads((tmp_path / "stopped" / "metrics.json").read_text())
    assert straight_metrics["train"]["loss/total"] == resumed_metrics["train"]["loss/total"]


def test_torchrun_trains_with_two_cpu_processes(tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--standalone", "--nproc_per_node", "2", str(ROOT / "train.py")]
    command += [
        "--gin",
        TINY,
        "--out",
        str(tmp_path),
        "--name",
        "ddp",
        "--max_steps",
        "20",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    run = tmp_path / "ddp"
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 20
    assert len(list(run.glob("events.out.tfevents.*"))) == 1  # rank 0 alone logs
    assert done.stdout.count("done: ") == 1


def test_headline_metrics_keep_two_levels_unprefixed() -> None:
    metrics = {"eval/next/acc": 0.25, "eval/next/acc/soprano": 0.5, "eval/lsd": 7.0, "eval/acc/kick": 0.9}
    assert headline(metrics) == {"next/acc": 0.25, "lsd": 7.0, "acc/kick": 0.9}

"""The operative config of each checkpoint (file and TensorBoard text) and the record of each resume."""

import json
from pathlib import Path

import gin
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from latentlive.cli import main
from latentlive.core.runs import RunFolder, RunSettings
from latentlive.training.config import parse_gin
from latentlive.training.tasks.drums import DrumsTask

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "gin" / "drums_tiny.gin")


def texts(run: Path, tag: str) -> dict[int, str]:
    """The TensorBoard text of ``tag`` in ``run``, by step."""
    events = EventAccumulator(str(run), size_guidance={"tensors": 0}).Reload()
    if f"{tag}/text_summary" not in events.Tags()["tensors"]:
        return {}
    return {
        event.step: event.tensor_proto.string_val[0].decode("utf-8")
        for event in events.Tensors(f"{tag}/text_summary")
    }


def test_each_checkpoint_writes_its_operative_config_and_it_parses_back(drums_run: Path) -> None:
    run = RunFolder(drums_run)  # 40 steps, a checkpoint every 20
    written = sorted(p.name for p in run.checkpoint.parent.glob("operative_config-*.gin"))
    assert written == ["operative_config-20.gin", "operative_config-40.gin"]
    assert not list(run.checkpoint.parent.glob("*.tmp"))
    parse_gin([run.operative_config(40)])
    assert gin.query_parameter("train.max_steps") == 40
    assert gin.query_parameter("train.weight_decay") == 0.0  # a default, absent from config.gin
    assert gin.query_parameter("DrumsTask.examples_per_style") == 40


def test_tensorboard_shows_the_operative_config_at_each_checkpoint(drums_run: Path) -> None:
    shown = texts(drums_run, "operative_config")
    assert sorted(shown) == [20, 40]
    lines = shown[40].splitlines()
    assert "    train.max_steps = 40" in lines
    assert all(line.startswith("    ") for line in lines if line)  # a markdown code block, line by line


def test_a_resume_that_changes_max_steps_is_recorded_with_its_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DrumsTask, "log_media", lambda *args: None)  # figures: the slow part, not tested here
    steps = ["--bind", "train.checkpoint_every = 1", "--bind", "train.eval_every = 100"]
    start = ["train", "--gin", TINY, "--out", str(tmp_path), "--name", "r", "--max_steps", "2", *steps]
    assert main(start) == 0
    run = RunFolder(tmp_path / "r")
    assert run.settings().resumes == ()
    assert main(["train", "--out", str(tmp_path), "--name", "r", "--resume", "--max_steps", "3"]) == 0

    (resume,) = run.settings().resumes
    assert resume.step == 2 and resume.bindings == ("train.max_steps = 3",) and resume.time
    assert texts(run.root, "resume")[2].endswith("    --bind 'train.max_steps = 3'")
    parse_gin([run.operative_config(3)])
    assert gin.query_parameter("train.max_steps") == 3
    assert "train.max_steps = 2" in run.operative_config(2).read_text()


def test_a_run_json_without_resumes_still_loads(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    run.settings_file.write_text(json.dumps({"seed": 3, "db": None, "gin": ["a.gin"], "bindings": []}))
    assert run.settings() == RunSettings(seed=3, gin=("a.gin",), started="")

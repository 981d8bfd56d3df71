"""``make demo`` renders again from a run trained since its last render, and only then; its techno prior
trains on a fine-tuned copy of the techno run."""

import dataclasses
import json
import os
import shutil
from pathlib import Path

from latentlive import demo
from latentlive.core.runs import RunFolder
from latentlive.demo import needs_render


def _run_with_checkpoint(root: Path, written_at: float) -> RunFolder:
    run = RunFolder(root)
    run.checkpoint.parent.mkdir(parents=True)
    run.checkpoint.write_bytes(b"weights")
    os.utime(run.checkpoint, (written_at, written_at))
    return run


def _render(path: Path, written_at: float) -> Path:
    path.write_bytes(b"audio")
    os.utime(path, (written_at, written_at))
    return path


def test_a_missing_render_is_rendered(tmp_path: Path):
    run = _run_with_checkpoint(tmp_path / "run", 1000.0)
    assert needs_render(tmp_path / "texture.wav", run)


def test_a_render_made_after_the_training_is_kept(tmp_path: Path):
    run = _run_with_checkpoint(tmp_path / "run", 1000.0)
    assert not needs_render(_render(tmp_path / "texture.wav", 2000.0), run)


def test_a_render_older_than_the_checkpoint_is_rendered_again(tmp_path: Path):
    """The run was trained again (a changed demo gin file): its old render no longer plays its model."""
    run = _run_with_checkpoint(tmp_path / "run", 3000.0)
    assert needs_render(_render(tmp_path / "texture.wav", 2000.0), run)


def test_the_demo_prior_trains_on_a_decoder_fine_tuned_once_per_training_of_techno(
    techno_run: Path, tmp_path: Path, monkeypatch, capsys
):
    """`make demo` fine-tunes the techno run's decoder for new loops (docs/techno.md), binds techno_prior to the
    copy, keeps it while the techno run is unchanged and makes it again once the run was trained since."""
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copytree(techno_run, runs / "techno_demo")
    name, settings = demo.FINETUNED["techno"]
    monkeypatch.setitem(demo.FINETUNED, "techno", (name, dataclasses.replace(settings, steps=2)))
    assert demo.demo_run_name("techno") == name != "techno_demo"
    assert demo.demo_run_name("drums") == "drums_demo"

    demo._finetune(runs, "techno")
    made = RunFolder(runs / name)
    first = made.checkpoint.stat().st_mtime_ns
    assert json.loads((made.root / "finetune.json").read_text())["critic"] == "frame"
    demo._finetune(runs, "techno")
    assert made.checkpoint.stat().st_mtime_ns == first and "already fine-tuned" in capsys.readouterr().out

    later = made.checkpoint.stat().st_mtime + 10
    os.utime(RunFolder(runs / "techno_demo").checkpoint, (later, later))  # techno trained again
    demo._finetune(runs, "techno")
    assert made.checkpoint.stat().st_mtime_ns != first and "made again" in capsys.readouterr().out

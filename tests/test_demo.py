"""``make demo`` renders again from a run trained since its last render, and only then."""

import os
from pathlib import Path

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

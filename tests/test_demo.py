"""``make demo`` renders again from a run trained since its last render, and only then; its techno prior
trains on a fine-tuned copy of the techno run."""

import dataclasses
import json
import os
import shutil
from pathlib import Path

import gin

from latentlive import demo
from latentlive.core.runs import RunFolder, load_checkpoint
from latentlive.demo import needs_render
from latentlive.training.config import parse_gin

ROOT = Path(__file__).resolve().parents[1]


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


def test_the_fine_tuned_copy_is_made_again_when_its_settings_change(
    techno_run: Path, tmp_path: Path, monkeypatch, capsys
):
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copytree(techno_run, runs / "techno_demo")
    name, settings = demo.FINETUNED["techno"]
    quick = dataclasses.replace(settings, steps=2)
    monkeypatch.setitem(demo.FINETUNED, "techno", (name, quick))
    demo._finetune(runs, "techno")
    made = RunFolder(runs / name)
    first = made.checkpoint.stat().st_mtime_ns
    monkeypatch.setitem(demo.FINETUNED, "techno", (name, dataclasses.replace(quick, threads=2)))
    demo._finetune(runs, "techno")  # threads do not change the decoder
    assert made.checkpoint.stat().st_mtime_ns == first and "already fine-tuned" in capsys.readouterr().out
    monkeypatch.setitem(demo.FINETUNED, "techno", (name, dataclasses.replace(quick, frames_per_bar=16)))
    demo._finetune(runs, "techno")
    assert made.checkpoint.stat().st_mtime_ns != first and "other settings" in capsys.readouterr().out
    assert json.loads((made.root / "finetune.json").read_text())["frames_per_bar"] == 16
    # a copy made before the share was recorded decoded the prior's latents in half the batches: made again
    record = json.loads((made.root / "finetune.json").read_text())
    assert record.pop("prior_share") == demo.FINETUNED["techno"][1].prior_share == 0.75
    (made.root / "finetune.json").write_text(json.dumps(record))
    second = made.checkpoint.stat().st_mtime_ns
    demo._finetune(runs, "techno")
    assert made.checkpoint.stat().st_mtime_ns != second and "prior_share=0.5" in capsys.readouterr().out


def test_the_decoder_is_fine_tuned_at_the_demo_prior_s_frames_a_bar(monkeypatch):
    """The fine-tune reads the latents back as the prior will (docs/techno.md: at 32 frames a bar under a prior
    at 64, new loops read a Fréchet distance of 63 against 51-54, on the old -100 dB log-mel floor)."""
    monkeypatch.chdir(ROOT)
    parse_gin(["gin/techno_prior_demo.gin"])
    assert demo.FINETUNED["techno"][1].frames_per_bar == gin.query_parameter("TechnoPriorTask.frames_per_bar")


def test_a_demo_run_is_trained_again_when_its_source_or_its_gin_file_changed(
    techno_run: Path, tmp_path: Path, monkeypatch, capsys
):
    """`make demo` continues its runs; one that reads a run made after it (the fine-tuned decoder made again), or
    whose demo gin file changed a setting, is trained again from step 0 instead of failing or going stale."""
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copytree(techno_run, runs / "techno_ft_demo")
    spec = next(s for s in demo.DEMO_MODELS if s.name == "techno_prior")
    tiny = tmp_path / "techno_prior_demo.gin"
    tiny.write_text(f"include '{ROOT / 'gin/techno_prior_tiny.gin'}'\n")
    monkeypatch.setattr(type(spec), "demo_gin", property(lambda _: str(tiny)))
    monkeypatch.chdir(ROOT)

    run = demo._train_or_continue(runs, spec, 4)
    first = run.checkpoint.stat().st_mtime_ns
    demo._train_or_continue(runs, spec, 4)
    assert run.checkpoint.stat().st_mtime_ns == first and "already trained" in capsys.readouterr().out

    later = run.checkpoint.stat().st_mtime_ns + 10_000_000
    os.utime(RunFolder(runs / "techno_ft_demo").checkpoint, ns=(later, later))  # the decoder made again
    demo._train_or_continue(runs, spec, 4)
    out = capsys.readouterr().out
    assert "techno_ft_demo was made after it; trained again" in out
    second = run.checkpoint.stat().st_mtime_ns
    assert second != first and load_checkpoint(run.checkpoint)["step"] == 4

    tiny.write_text(tiny.read_text() + "TrajectoryVAE.macro_size = 3\n")  # the demo gin file changed
    demo._train_or_continue(runs, spec, 4)
    out = capsys.readouterr().out
    assert "its config differs" in out and "TrajectoryVAE.macro_size" in out and "trained again" in out
    assert run.checkpoint.stat().st_mtime_ns != second
    assert load_checkpoint(run.checkpoint)["model_state"]["code_mean"].shape[1] == 3  # macro_size

"""The models shipped in pretrained/: small files that name no path of the machine that trained them, metrics of
the weights they sit beside, devices built on them by ``latentlive devices --pretrained``, and training that
continues from the committed checkpoint (pretrained/README.md)."""

import json
import shutil
from pathlib import Path

import pytest

from latentlive.cli import PRETRAINED, main
from latentlive.core.errors import UserError
from latentlive.core.runs import RunFolder, load_checkpoint, recorded_path
from latentlive.export.metadata import read_metadata
from latentlive.m4l_devices.amxd import read_amxd
from latentlive.m4l_devices.build import build_pretrained_devices

LIMIT_BYTES = 16 * 1024 * 1024  # each committed weight file (issue #18)
NOT_SHIPPED = ("events.out.tfevents.", ".train.lock", "operative_config-")


def shipped_runs() -> list[RunFolder]:
    return [RunFolder(p) for p in sorted(PRETRAINED.iterdir()) if RunFolder(p).exported_model.is_file()]


def shipped_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not any(part in p.name for part in NOT_SHIPPED)]


def test_drums_is_shipped_and_every_file_is_small_and_names_no_machine_path() -> None:
    names = [run.name for run in shipped_runs()]
    assert "drums" in names, names
    for run in shipped_runs():
        files = shipped_files(run.root)
        assert run.checkpoint in files and run.exported_model in files
        for path in files:
            assert path.stat().st_size < LIMIT_BYTES, path
            if path.suffix in (".json", ".gin"):
                text = path.read_text(encoding="utf-8")
                assert str(PRETRAINED.parent) not in text and "/home/" not in text, path
        settings = run.settings()
        assert settings is not None and settings.db is None  # the built-in corpus: nothing to download
        assert all(not Path(gin).is_absolute() for gin in settings.gin), settings.gin


def test_records_name_paths_inside_the_working_folder_relative_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "work" / "gin").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    assert recorded_path("gin/drums.gin") == "gin/drums.gin"
    assert recorded_path(tmp_path / "work" / "gin" / "drums.gin") == "gin/drums.gin"
    assert recorded_path("../elsewhere") == str(tmp_path / "elsewhere")  # outside it: absolute


def test_the_shipped_metrics_and_model_are_those_of_the_shipped_checkpoint() -> None:
    for run in shipped_runs():
        step = load_checkpoint(run.checkpoint)["step"]
        evaluation = json.loads(run.evaluation("test").read_text(encoding="utf-8"))
        assert evaluation["step"] == step, (run.name, evaluation["step"], step)
        assert read_metadata(run.exported_model)["model"] == run.name


def test_devices_pretrained_builds_each_shipped_model_in_a_folder_of_its_own(tmp_path: Path) -> None:
    assert main(["devices", "--pretrained", "--out", str(tmp_path)]) == 0
    for run in shipped_runs():
        folder = tmp_path / run.name
        beside = folder / f"{run.name}.ts"
        assert beside.read_bytes() == run.exported_model.read_bytes()
        devices = sorted(folder.glob("*.amxd"))
        assert devices, folder
        for device in devices:
            read_amxd(device)  # a device Max can open: header, chunks and patcher JSON
    assert main(["devices", "--pretrained", "--run", "runs/x"]) == 2  # one or the other
    assert main(["devices", "--pretrained", "--model", str(tmp_path / "drums" / "drums.ts")]) == 2


def test_a_folder_without_shipped_models_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "pretrained" / "drums").mkdir(parents=True)  # a run folder without an export
    with pytest.raises(UserError, match="no pretrained model"):
        build_pretrained_devices(tmp_path / "pretrained", tmp_path / "out")
    with pytest.raises(UserError, match="no pretrained model"):
        build_pretrained_devices(tmp_path / "missing", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_shipped_model_trains_on_from_its_committed_checkpoint(tmp_path: Path) -> None:
    shipped = RunFolder(PRETRAINED / "drums")
    copy = tmp_path / "pretrained" / "drums"
    for path in shipped_files(shipped.root):
        target = copy / path.relative_to(shipped.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    step = load_checkpoint(shipped.checkpoint)["step"]
    args = ["train", "--out", str(copy.parent), "--name", "drums", "--resume", "--max-steps", str(step + 2)]
    assert main([*args, "--device", "cpu"]) == 0
    resumed = RunFolder(copy)
    assert load_checkpoint(resumed.checkpoint)["step"] == step + 2
    settings = resumed.settings()
    assert settings is not None and [r.step for r in settings.resumes] == [step]

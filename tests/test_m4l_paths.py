"""Devices that travel (issue 12): a device names its models by file name, and its folder holds them.

Every device kind is built from the tiny exports of tests/conftest.py into one folder, the way
`make demo` builds build/demo/devices; the folder is then checked byte by byte for paths of this
machine, and moved elsewhere to check that each device still finds its models by name beside it.
"""

import dataclasses
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from latentlive import registry
from latentlive.cli import main
from latentlive.core.errors import UserError
from latentlive.export.metadata import read_metadata
from latentlive.m4l_devices.amxd import MIDI_EFFECT, read_amxd, write_amxd
from latentlive.m4l_devices.build import build_devices_for_run
from latentlive.m4l_devices.drums import DrumsSpec, drums_patcher
from latentlive.m4l_devices.max_objects import split_box_text
from latentlive.m4l_devices.validate import validate_device

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("drums", "drumsynth", "techno", "techno_prior", "grain", "band")
COMPANIONS = [name for kind in KINDS for name, _ in registry.find(kind).companions]  # they load no model
# an atom that names a .ts through a folder: "/home/me/drums.ts", "C:\\Users\\me\\drums.ts", "b/drums.ts"
PATH_TO_TS = re.compile(rb"[^\s\"',\[\]{}]*[/\\][^\s\"',\[\]{}]*\.ts\b")


def model_names(device: Path) -> set[str]:
    """The model of every nn~ box of ``device`` (its first argument), as written."""
    texts = [b["box"].get("text", "") for b in read_amxd(device).patcher["patcher"]["boxes"]]
    return {split_box_text(text)[1][0] for text in texts if text.startswith("nn~ ")}


def travel_problems(device: Path, local_paths: list[Path]) -> list[str]:
    """What ties ``device`` to this machine: a path of ``local_paths`` in its bytes, a folder before a
    ``.ts``, or an nn~ model that is not a bare ``*.ts`` file name found beside the device."""
    raw = device.read_bytes()
    problems = [f"holds {path}" for path in local_paths if str(path).encode() in raw]
    problems += [f"names {m.group().decode()}" for m in PATH_TO_TS.finditer(raw)]
    for name in model_names(device):
        if Path(name).name != name or not name.endswith(".ts"):
            problems.append(f"nn~ loads {name!r}, not a bare .ts file name")
        elif not (device.parent / name).is_file():
            problems.append(f"nn~ loads {name}, which is not beside the device")
    return problems


@pytest.fixture(scope="module")
def exports(request: pytest.FixtureRequest) -> dict[str, Path]:
    """The tiny export of every model kind, by kind."""
    return {kind: request.getfixturevalue(f"{kind}_ts") for kind in KINDS}


def build_all(exports: dict[str, Path], out: Path) -> list[Path]:
    """`latentlive devices --run RUN --out OUT` for every kind; the devices written."""
    for ts in exports.values():
        assert main(["devices", "--run", str(ts.parent.parent), "--out", str(out)]) == 0
    return sorted(out.glob("*.amxd"))


def local_paths(exports: dict[str, Path], out: Path) -> list[Path]:
    """The folders of this machine a device must not mention: build folder, runs, repository, tmp."""
    runs = {ts.parent.parent for ts in exports.values()}
    return [out, out.resolve(), *runs, ROOT, Path(tempfile.gettempdir()).resolve()]


def test_every_device_names_its_models_by_file_name_beside_it(
    exports: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "build" / "devices"
    devices = build_all(exports, out)
    assert len(devices) == len(KINDS) + len(COMPANIONS)
    assert sorted(p.name for p in out.glob("*.ts")) == sorted(f"{kind}.ts" for kind in KINDS)
    for device in devices:
        assert validate_device(device) == []
        assert travel_problems(device, local_paths(exports, out)) == [], device.name
        for name in model_names(device):
            assert read_metadata(out / name) == read_metadata(exports[Path(name).stem])
    assert model_names(out / "LatentLoops.amxd") == {"techno_prior.ts"}  # decode runs inside it too
    assert model_names(out / "LatentLoopsFX.amxd") == {"techno.ts"}


def test_the_check_flags_a_device_built_the_old_way(drums_ts: Path, tmp_path: Path) -> None:
    spec = DrumsSpec.from_metadata(str(drums_ts), read_metadata(drums_ts))
    old = dataclasses.replace(spec, model_file=str(drums_ts.resolve()))  # the absolute path of before
    device = write_amxd(tmp_path / "LatentDrums.amxd", drums_patcher(old), MIDI_EFFECT)
    run = drums_ts.resolve().parent.parent
    problems = travel_problems(device, [run, ROOT])
    assert f"holds {run}" in problems
    assert f"names {drums_ts.resolve()}" in problems
    assert f"nn~ loads {str(drums_ts.resolve())!r}, not a bare .ts file name" in problems
    assert any("names its model by a path" in p for p in validate_device(device))


def test_a_moved_folder_finds_every_model_by_name_beside_each_device(
    exports: dict[str, Path], tmp_path: Path
) -> None:
    built = tmp_path / "here" / "devices"
    build_all(exports, built)
    elsewhere = tmp_path / "another machine" / "User Library" / "latentlive"
    elsewhere.parent.mkdir(parents=True)
    shutil.move(built, elsewhere)  # the build folder is gone, as on another machine
    for device in sorted(elsewhere.glob("*.amxd")):
        names = model_names(device)
        assert (names or device.stem in COMPANIONS) and all((device.parent / n).is_file() for n in names)
        assert travel_problems(device, [built]) == []


def test_an_explicit_model_is_copied_under_its_model_name_once(drumsynth_ts: Path, tmp_path: Path) -> None:
    mine = tmp_path / "my kit v2.ts"
    shutil.copyfile(drumsynth_ts, mine)
    out = tmp_path / "devices"
    device, model = build_devices_for_run(drumsynth_ts.parent.parent, model=mine, out=out)
    assert model == out / "drumsynth.ts" and model.read_bytes() == mine.read_bytes()
    assert model_names(device) == {"drumsynth.ts"}
    before = model.stat().st_mtime_ns
    build_devices_for_run(drumsynth_ts.parent.parent, model=mine, out=out)
    assert model.stat().st_mtime_ns == before  # the same bytes are not copied again


def test_an_earlier_export_under_the_model_name_is_replaced(
    drums_ts: Path, drumsynth_ts: Path, tmp_path: Path
) -> None:
    shutil.copyfile(drumsynth_ts, tmp_path / "drums.ts")  # a latentlive export, but not this one
    build_devices_for_run(drums_ts.parent.parent, out=tmp_path)
    assert (tmp_path / "drums.ts").read_bytes() == drums_ts.read_bytes()


def test_a_foreign_file_under_the_model_name_stops_the_build(drums_ts: Path, tmp_path: Path) -> None:
    (tmp_path / "drums.ts").write_text("my own notes")
    with pytest.raises(UserError) as err:
        build_devices_for_run(drums_ts.parent.parent, out=tmp_path)
    assert "\n" not in str(err.value) and str(err.value).startswith(f"{tmp_path / 'drums.ts'}: ")
    assert (tmp_path / "drums.ts").read_text() == "my own notes"
    assert not (tmp_path / "LatentDrums.amxd").exists()  # nothing written

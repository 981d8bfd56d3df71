"""The installed package: one import name, every source folder inside it, and the layers of pyproject.toml.

The layers are checked by import-linter on the tree the wheel installs (the folders map to subpackages of
``latentlive`` there, as ``[tool.setuptools.package-dir]`` says), so what is checked is what users import.
"""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# folder of the repository -> the subpackage it installs as
FOLDERS = {
    "latentlive": "latentlive",
    "corpus": "latentlive/corpus",
    "models": "latentlive/models",
    "training": "latentlive/training",
    "export": "latentlive/export",
    "live": "latentlive/live",
    "m4l_devices": "latentlive/m4l_devices",
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        str(out),
    ]
    subprocess.run([*command, str(ROOT)], check=True, capture_output=True)
    return next(out.glob("latentlive-*.whl"))


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel unpacked: the tree ``pip install .`` puts into site-packages."""
    tree = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tree)
    return tree


def _lint_imports(site: Path) -> subprocess.CompletedProcess:
    """import-linter with the project's contracts on the package found in ``site``."""
    lint = Path(sys.executable).with_name("lint-imports")
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [str(lint), str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_wheel_adds_one_top_level_name(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert archive.read(top_level).decode().split() == ["latentlive"]
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {"latentlive"}


def test_every_source_module_is_installed_under_latentlive(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        installed = set(archive.namelist())
    for folder, package in FOLDERS.items():
        for source in (ROOT / folder).rglob("*.py"):
            assert f"{package}/{source.relative_to(ROOT / folder).as_posix()}" in installed, source


def test_the_layers_hold_on_the_installed_tree(installed: Path) -> None:
    done = _lint_imports(installed)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "imports", "contract"),
    [
        ("models/upward.py", "import latentlive.export.exporter", "layers"),
        ("corpus/upward.py", "from latentlive.training import loop", "layers"),
        ("models/reads_files.py", "from latentlive.core import files", "models/ is torch only"),
        ("export/metadata_cycle.py", "import latentlive.export.exporter", "no cycles"),
    ],
)
def test_an_import_against_the_layers_breaks_a_contract(
    installed: Path, tmp_path: Path, module: str, imports: str, contract: str
) -> None:
    site = tmp_path / "site"
    shutil.copytree(installed, site)
    if "cycle" in module:  # exporter imports metadata; metadata importing exporter closes a cycle
        target = site / "latentlive/export/metadata.py"
        target.write_text(target.read_text() + f"\n{imports}\n")
    else:
        (site / "latentlive" / module).write_text(f"{imports}\n")
    done = _lint_imports(site)
    assert done.returncode != 0
    assert contract in done.stdout.split("Broken contracts", 1)[-1]

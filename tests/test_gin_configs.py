"""Every gin file builds, trains a step, is scored on its test split (``latentlive evaluate``), exports and
reloads at tiny size (its model's *_tiny.gin sizes). A tiny variant itself is the session's run and export
of it (conftest.py), which the export tests use too."""

import math
from pathlib import Path

import gin
import pytest
import torch
from cli_process import exporter_verdict

from latentlive import registry
from latentlive.core.errors import UserError
from latentlive.core.runs import RunFolder
from latentlive.export.exporter import export_run
from latentlive.training.config import parse_gin
from latentlive.training.evaluation import evaluate_run
from latentlive.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
GIN_FILES = sorted(p.name for p in (ROOT / "gin").glob("*.gin") if p.name != "base.gin")


def _tiny_bindings(task: str) -> list[str]:
    """The bindings of ``gin/<task>_tiny.gin`` without its include lines, to shrink any config of that task."""
    tiny = ROOT / registry.find(task).tiny_gin
    assert tiny.is_file(), f"every model needs a tiny variant for the tests: {tiny} is missing"
    lines = tiny.read_text().splitlines()
    return [line for line in lines if line.strip() and not line.startswith(("#", "include"))]


def _dependencies(task: str, tmp_path: Path) -> list[str]:
    """Bindings to the runs a config needs first (latentlive.registry: techno_prior needs a
    techno run, grain_prior a grain run), trained here at their tiny sizes."""
    bindings = []
    for binding, first_level in registry.find(task).needs:
        parse_gin([ROOT / registry.find(first_level).tiny_gin], ["train.max_steps = 2"])
        first = RunFolder(tmp_path / first_level)
        first.root.mkdir()
        train(first, device="cpu")
        bindings.append(f"{binding} = '{first.root}'")
    return bindings


def _session_export(task: str, gin_file: str, request: pytest.FixtureRequest) -> Path | None:
    """conftest.py's export of ``gin_file`` (the ``<task>_ts`` fixtures, which train and export each tiny
    variant once for every test) when ``gin_file`` is its task's tiny variant; None otherwise."""
    if Path(registry.find(task).tiny_gin).name != gin_file:
        return None
    try:
        return request.getfixturevalue(f"{task}_ts")
    except pytest.FixtureLookupError:
        return None


def _trained_here(gin_file: str, task: str, tmp_path: Path) -> Path:
    """``gin_file`` at its task's tiny sizes, trained for two steps in ``tmp_path``."""
    needs = _dependencies(task, tmp_path)
    parse_gin([ROOT / "gin" / gin_file], [*_tiny_bindings(task), "train.max_steps = 2", *needs])
    run = RunFolder(tmp_path / gin_file.removesuffix(".gin"))
    run.root.mkdir()
    train(run, device="cpu")
    return run.root


@pytest.mark.parametrize("gin_file", GIN_FILES)
def test_gin_file_trains_exports_and_reloads(
    gin_file: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    parse_gin([ROOT / "gin" / gin_file])
    task = gin.query_parameter("train.task")
    exported = _session_export(task, gin_file, request)
    run_root = exported.parents[1] if exported else _trained_here(gin_file, task, tmp_path)
    scored = evaluate_run(run_root, "test", log=lambda _: None)
    assert scored["examples"] > 0 and scored["metrics"]
    assert all(math.isfinite(value) for value in scored["metrics"].values()), scored["metrics"]
    if registry.find(task).export is None:  # trained and evaluated, not (yet) exported for nn~
        with pytest.raises(UserError, match=f"no exporter for task '{task}'"):
            export_run(run_root, streaming=True)
        return
    report = exporter_verdict(exported) if exported else export_run(run_root, streaming=True)
    module = torch.jit.load(report["path"])
    assert set(module.get_methods()) == set(report["methods"])

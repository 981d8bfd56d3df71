"""The model registry: every reference resolves into the layer of its role, every gin file it names exists
and trains its model, and no other module keeps a table of model names."""

import ast
import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from latentlive import registry
from latentlive.registry import ModelSpec

ROOT = Path(__file__).resolve().parents[1]
SOURCE_FOLDERS = ("latentlive", "corpus", "models", "training", "export", "live", "m4l_devices")
# the package each role's references must lie in (the layers of pyproject.toml)
ROLE_PACKAGES = {
    "task": ("latentlive.training.tasks.",),
    "export": ("latentlive.export.",),
    "device": ("latentlive.m4l_devices.",),
    "render": ("latentlive.live.", "latentlive.render_techno"),
    "play": ("latentlive.live.",),
    "bench": ("latentlive.bench.",),
}


def _gin_task(gin_file: Path) -> str | None:
    """``train.task`` of a gin file, following its includes (as text: no parsing, no configurables)."""
    text = gin_file.read_text()
    found = re.search(r"^train\.task\s*=\s*'(\w+)'", text, re.M)
    if found:
        return found.group(1)
    for include in re.findall(r"^include\s+'([^']+)'", text, re.M):
        task = _gin_task(ROOT / include)
        if task:
            return task
    return None


def spec_problems(spec: ModelSpec) -> list[str]:
    """What is wrong with ``spec``: references that do not resolve or lie outside their layer, missing gin
    files, gin files that train another model, dependencies on unknown models."""
    problems = []
    references = {
        "task": spec.task,
        "export": spec.export,
        "device": spec.device,
        "render": spec.render[1] if spec.render else None,
        "play": spec.play,
        "bench": spec.bench,
    }
    for role, reference in references.items():
        if reference is None:
            continue
        if not reference.startswith(ROLE_PACKAGES[role]):
            problems.append(f"{spec.name}.{role}: {reference} is outside {' or '.join(ROLE_PACKAGES[role])}")
            continue
        try:
            loaded = registry.load(reference)
        except (ImportError, AttributeError) as error:
            problems.append(f"{spec.name}.{role}: {reference} does not resolve ({error})")
            continue
        needed = {
            "render": ("render_command", "OPTIONS", "RANGES"),
            "play": ("play_command", "OPTIONS", "RANGES"),
        }
        needed["bench"] = (
            "bench",
            "TRAINING_BINDINGS",
            "FROM_FILE",
            "REUSE_CURRENT_EXPORT",
            "HELD_BY_DEPENDENT_RUNS",
        )
        missing = [name for name in needed.get(role, ()) if not hasattr(loaded, name)]
        if missing or (role in ("task", "export", "device") and not callable(loaded)):
            problems.append(f"{spec.name}.{role}: {reference} lacks {missing or 'a callable'}")
    if (spec.device is None) != (spec.device_name is None):
        problems.append(f"{spec.name}: a device needs both its builder and its name")
    gin_files = [spec.gin, spec.tiny_gin] + ([spec.demo_gin] if spec.demo else [])
    for gin_file in gin_files:
        if not (ROOT / gin_file).is_file():
            problems.append(f"{spec.name}: {gin_file} is missing")
        elif _gin_task(ROOT / gin_file) != spec.name:
            problems.append(f"{spec.name}: {gin_file} trains {_gin_task(ROOT / gin_file)!r}")
    for _, other in spec.needs:
        if registry.find(other) is None:
            problems.append(f"{spec.name}: needs unknown model {other!r}")
    return problems


@pytest.mark.parametrize("spec", registry.MODELS, ids=lambda spec: spec.name)
def test_every_reference_resolves_in_its_layer(spec: ModelSpec) -> None:
    assert spec_problems(spec) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"task": "latentlive.training.tasks.drums:NoSuchTask"}, "does not resolve"),
        ({"export": "latentlive.live.render:render_command"}, "is outside latentlive.export."),
        ({"render": ("drums", "latentlive.live.drum_model")}, "lacks ['render_command'"),
        ({"device_name": None}, "needs both"),
        ({"name": "drums_wae"}, "gin/drums_wae_tiny.gin is missing"),
        ({"needs": (("DrumsTask.first", "no_such_model"),)}, "unknown model 'no_such_model'"),
    ],
)
def test_a_broken_spec_is_found(change: dict, problem: str) -> None:
    broken = dataclasses.replace(registry.find("drums"), **change)
    assert any(problem in line for line in spec_problems(broken)), spec_problems(broken)


def test_names_and_devices_are_unique() -> None:
    names = registry.names()
    devices = [spec.device_name for spec in registry.MODELS if spec.device_name]
    renders = [spec.render[0] for spec in registry.MODELS if spec.render]
    for values in (names, devices, renders):
        assert len(values) == len(set(values))


def _model_name_tables(path: Path, models: set[str]) -> list[str]:
    """Literal dicts, lists, tuples and sets in ``path`` that hold two or more model names as strings."""
    tables = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None)
        if not isinstance(node, ast.Dict | ast.List | ast.Tuple | ast.Set) or items is None:
            continue
        named = {item.value for item in items if isinstance(item, ast.Constant) and item.value in models}
        if len(named) >= 2:
            tables.append(f"{path}:{node.lineno}: {sorted(named)}")
    return tables


def _sources() -> list[Path]:
    return [path for folder in SOURCE_FOLDERS for path in sorted((ROOT / folder).rglob("*.py"))]


def test_no_module_but_the_registry_keeps_a_table_of_models() -> None:
    models = set(registry.names())
    registry_file = Path(inspect.getfile(registry))
    tables = [t for path in _sources() if path != registry_file for t in _model_name_tables(path, models)]
    assert tables == []


def test_the_table_check_finds_a_table(tmp_path: Path) -> None:
    tables = tmp_path / "tables.py"
    tables.write_text(
        'BUILDERS = {"drums": 1, "band": 2}\nNAMES = ("grain", "drumsynth")\nONE = ["drums", 3]\n'
    )
    assert len(_model_name_tables(tables, set(registry.names()))) == 2

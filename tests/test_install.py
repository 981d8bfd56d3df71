"""The install is the lock: what `make` installed is exactly requirements.lock, and the lock satisfies
pyproject.toml, so a clean clone gets what CI tested."""

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"


def read_lock(text: str, environment: dict[str, str]) -> dict[str, str]:
    """Exact pins of a lock that apply in ``environment``: canonical name -> version.

    Raises ValueError for a line that is not an exact ``name==version`` pin."""
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in specifiers[0].version:
            raise ValueError(f"{line!r} is not an exact pin")
        if requirement.marker is None or requirement.marker.evaluate(environment):
            pins[canonicalize_name(requirement.name)] = specifiers[0].version
    return pins


def unlocked_requirements(requirements: list[str], pins: dict[str, str], environment: dict) -> list[str]:
    """The requirements (of pyproject.toml) that no pin of the lock satisfies in ``environment``."""
    missing = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        version = pins.get(canonicalize_name(requirement.name))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            missing.append(text)
    return missing


def _project_requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["dependencies"] + project["optional-dependencies"]["test"]


def test_every_locked_package_is_installed_at_its_pinned_version():
    pins = read_lock(LOCK.read_text(), default_environment())
    assert len(pins) > 50, "the lock should hold every transitive dependency"
    wrong = {}
    for name, version in pins.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = (version, installed)
    assert not wrong, (
        f"installed differs from requirements.lock (locked, installed): {wrong}; run make install"
    )


def test_the_lock_satisfies_pyproject_on_every_supported_python():
    for python in ("3.11", "3.12", "3.13"):
        environment = default_environment() | {"python_version": python, "python_full_version": f"{python}.0"}
        pins = read_lock(LOCK.read_text(), environment)
        missing = unlocked_requirements(_project_requirements(), pins, environment)
        assert not missing, f"Python {python}: pyproject.toml asks for {missing}; regenerate with `make lock`"


def test_the_checks_fail_on_a_stale_or_loose_lock():
    environment = default_environment()
    with pytest.raises(ValueError, match="not an exact pin"):
        read_lock("numpy>=1.26\n", environment)
    stale = read_lock("numpy==1.25.0\ntorch==2.5.0 ; sys_platform == 'nowhere'\n", environment)
    assert stale == {"numpy": "1.25.0"}
    assert unlocked_requirements(["numpy>=1.26", "torch>=2.5"], stale, environment) == [
        "numpy>=1.26",
        "torch>=2.5",
    ]

"""Gin configuration: parse layered files and bindings, with one-line errors that name close matches."""

import difflib
import inspect
import re
from pathlib import Path
from typing import Any

import gin

from latentlive.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _known_parameters() -> dict[str, list[str]]:
    """Every registered configurable (short name) with its parameter names."""
    known: dict[str, list[str]] = {}
    for selector, configurable in gin.config._REGISTRY.items():  # noqa: SLF001 - gin has no public listing
        name = selector.split(".")[-1]
        try:
            params = list(inspect.signature(configurable.wrapped).parameters)
        except (TypeError, ValueError):
            params = []
        known[name] = [p for p in params if p not in ("self", "args", "kwargs")]
    return known


def _close_matches(error: str) -> str:
    known = _known_parameters()
    missing_param = re.search(r"Configurable '([\w.]+)' doesn't have a parameter named '(\w+)'", error)
    if missing_param:
        name, param = missing_param.groups()
        candidates = known.get(name.split(".")[-1], [])
        matches = difflib.get_close_matches(param, candidates, n=3, cutoff=0.5)
        return f"{name} has no parameter {param!r}" + (
            f"; did you mean {', '.join(matches)}?" if matches else ""
        )
    missing_name = re.search(r"No configurable matching '([\w.]+)'", error)
    if missing_name:
        name = missing_name.group(1)
        matches = difflib.get_close_matches(name.split(".")[-1], list(known), n=3, cutoff=0.5)
        return f"no configurable named {name!r}" + (
            f"; did you mean {', '.join(matches)}?" if matches else ""
        )
    return error.splitlines()[0]


def _error_location(error: Exception, files: list[str | Path]) -> str:
    """Where gin met the error: ``file:line`` or ``--bind``."""
    in_file = re.search(r'In file "([^"]+)", line (\d+)', str(error))
    if in_file:
        return f"{in_file.group(1)}:{in_file.group(2)}"
    if "bindings string" in str(error):
        return "--bind"
    return ", ".join(map(str, files)) or "--bind"


def parse_gin(files: list[str | Path], bindings: list[str] | None = None) -> str:
    """Parse gin ``files`` (later ones override earlier ones) then ``bindings``; return the config text.

    ``include`` lines resolve against the current folder and the project root, so
    ``include 'gin/base.gin'`` works from anywhere. Errors become a :class:`UserError`.
    """
    import latentlive.tasks  # noqa: F401 - registers every configurable before parsing

    gin.clear_config()
    for search_path in (Path.cwd(), PROJECT_ROOT):
        gin.add_config_file_search_path(str(search_path))
    for file in files:
        if not Path(file).is_file() and not (PROJECT_ROOT / file).is_file():
            raise UserError(f"{file}: no such gin file; see gin/ for the model configs (e.g. gin/drums.gin)")
    resolved = [str(f if Path(f).is_file() else PROJECT_ROOT / f) for f in files]
    try:
        gin.parse_config_files_and_bindings(resolved, bindings or [], finalize_config=False)
    except (ValueError, SyntaxError, OSError) as error:
        raise UserError(f"{_error_location(error, files)}: {_close_matches(str(error))}") from None
    return gin.config_str()


def configured_arguments(cls: type) -> dict[str, Any]:
    """The constructor arguments of a gin-configurable class: its defaults updated with the bindings.

    Checkpoints store them, so a model is rebuilt later with plain Python and no gin.
    """
    defaults = {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    return {**defaults, **gin.get_bindings(cls)}

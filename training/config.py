"""Gin configuration: parse layered files and bindings, with one-line errors that name close matches."""

import collections.abc
import difflib
import inspect
import logging
import re
import tokenize
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gin

from latentlive.core.errors import UserError
from latentlive.core.gin_files import PROJECT_ROOT, resolve_gin_file


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


class _IncludeSearchFilter(logging.Filter):
    """Drops gin's "Path not found" records: an ``include`` is looked for in the current folder first, and
    gin logs every folder that lacks it to the root logger, which prints it on stderr."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.module == "resource_reader" and str(record.msg).startswith("Path not found"))


@contextmanager
def _quiet_include_search() -> Iterator[None]:
    root, quiet = logging.getLogger(), _IncludeSearchFilter()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


def parse_gin(files: list[str | Path], bindings: list[str] | None = None) -> str:
    """Parse gin ``files`` (later ones override earlier ones) then ``bindings``; return the config text.

    ``include`` lines resolve against the current folder and the project root, so
    ``include 'gin/base.gin'`` works from anywhere. Errors become a :class:`UserError`.
    """
    gin.clear_config()
    for search_path in (Path.cwd(), PROJECT_ROOT):
        gin.add_config_file_search_path(str(search_path))
    resolved = [str(resolve_gin_file(f)) for f in files]
    try:
        with _quiet_include_search():
            gin.parse_config_files_and_bindings(resolved, bindings or [], finalize_config=False)
    except (ValueError, SyntaxError, OSError, tokenize.TokenError) as error:
        # A broken binding can be reported at a line of the last file: name the binding when one fails alone.
        where = _failing_binding(bindings or []) or _error_location(error, files)
        message = _close_matches(_message(error))
        if where.startswith("--bind '"):  # the binding is named: gin's line in the joined bindings misleads
            message = re.sub(r"\s*\(line \d+\)", "", message)
        raise UserError(f"{where}: {message}") from None
    check_binding_types()
    return gin.config_str()


def _message(error: Exception) -> str:
    """A parse error's text; tokenize's ``('EOF in multi-line statement', (2, 0))`` said in words."""
    if isinstance(error, tokenize.TokenError):
        return "unterminated value (a bracket or quote is not closed); close it"
    return str(error)


def _failing_binding(bindings: list[str]) -> str | None:
    """``--bind 'TEXT'`` of the first binding that gin cannot parse on its own, if one is."""
    for binding in bindings:
        try:
            gin.parse_config(binding)
        except (ValueError, SyntaxError, tokenize.TokenError):
            return f"--bind {binding!r}"
    return None


def _target(configurable: Any) -> collections.abc.Callable | None:
    """The function a configurable's parameters belong to: its ``__init__`` for a class, unwrapped from gin."""
    wrapped = configurable.wrapped
    function = wrapped.__init__ if inspect.isclass(wrapped) else wrapped
    return inspect.unwrap(function) if callable(function) else None


def _hint_text(hint: Any) -> str:
    return getattr(hint, "__name__", None) if isinstance(hint, type) else str(hint).replace("typing.", "")


def _fits(value: Any, hint: Any) -> bool:
    """Whether a literal gin value fits a type hint. Only what the hint clearly refuses is refused: a
    reference (``@fn``, ``%MACRO``) or a hint this does not know passes."""
    if not isinstance(value, int | float | str | tuple | list | dict | type(None)):
        return True  # a gin reference or macro: its value is known only when called
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is Path:
        return isinstance(value, str)
    if origin in (tuple, list, typing.Sequence, collections.abc.Sequence):
        if not isinstance(value, tuple | list):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(args) == len(value) and all(map(_fits, value, args))
        return not args or all(_fits(item, args[0]) for item in value)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True


def check_binding_types() -> None:
    """UserError naming the first binding whose literal value does not fit its parameter's type hint, as
    ``PatternVAE.latent_size = "x"`` or ``= 2.5`` (an int): without this, torch fails deep inside."""
    for (scope, selector), params in gin.config._CONFIG.items():  # noqa: SLF001 - gin has no public listing
        configurable = gin.config._REGISTRY.get(selector)  # noqa: SLF001
        target = None if configurable is None else _target(configurable)
        if target is None:
            continue
        try:
            hints = typing.get_type_hints(target)
            defaults = {n: p.default for n, p in inspect.signature(target).parameters.items()}
        except (NameError, TypeError, ValueError):
            continue  # hints that do not resolve: nothing to check against
        name = (f"{scope}/" if scope else "") + selector.split(".")[-1]
        for param, value in params.items():
            if param in hints and not _fits(value, hints[param]):
                example = defaults.get(param, inspect.Parameter.empty)
                hint = (
                    f" (e.g. {name}.{param} = {example!r})" if example is not inspect.Parameter.empty else ""
                )
                raise UserError(
                    f"gin binding {name}.{param} = {value!r}: {param} takes {_hint_text(hints[param])}; "
                    f"change it in the gin file or --bind{hint}"
                )


def _configurable_codes() -> dict[Any, str]:
    """The code object of every registered configurable's function -> its short name."""
    codes = {}
    for selector, configurable in gin.config._REGISTRY.items():  # noqa: SLF001
        target = _target(configurable)
        code = getattr(target, "__code__", None)
        if code is not None:
            codes[code] = selector.split(".")[-1]
    return codes


def config_error(error: BaseException) -> str | None:
    """The one line for a ValueError that a configurable's constructor or entry point raised itself, about
    its arguments, which the gin config gave (``PatternVAE.latent_size must be at least 1``); else None.

    Only the raising frame counts: a ValueError from deeper code (torch, numpy) stays an internal fault.
    """
    if not isinstance(error, ValueError) or error.__traceback__ is None:
        return None
    last = error.__traceback__
    while last.tb_next is not None:
        last = last.tb_next
    name = _configurable_codes().get(last.tb_frame.f_code)
    if name is None:
        return None
    text = str(error).strip().splitlines()[0]
    return f"{text}; change the binding of {name} in the gin file or with --bind"


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

"""Opening an exported ``.ts`` for live use: its kind checked, its metadata read, the module loaded, each with
a one-line error that names the file and the fix."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from latentlive.core.errors import UserError
from latentlive.export.metadata import read_metadata


def read_model_metadata(path: str | Path, model: str, hint: str = "") -> dict[str, Any]:
    """The metadata of the export ``path``, which must be a ``model`` (its metadata's ``model``); ``hint``
    says which file to pass instead (default: the ``model`` .ts that ``latentlive export`` writes)."""
    meta = read_metadata(path)
    if meta.get("model") != model:
        fix = hint or f"pass the {model} .ts from `latentlive export`"
        raise UserError(f"{path}: a {meta.get('model')!r} model, not a {model} model; {fix}")
    return meta


@contextmanager
def metadata_fields(path: str | Path, model: str) -> Iterator[None]:
    """Reading fields of a ``model`` export's metadata: a missing or malformed field is a one-line error."""
    try:
        yield
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(
            f"{path}: incomplete {model} metadata ({err}); re-export it with `latentlive export`"
        ) from None


def load_module(path: str | Path, methods: Sequence[str] = ()) -> torch.jit.ScriptModule:
    """The TorchScript module of ``path`` on the CPU, in eval mode, with every one of ``methods``."""
    try:
        module = torch.jit.load(str(path), map_location="cpu").eval()
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{path}: cannot load the TorchScript model ({reason}); re-export it") from None
    missing = [method for method in methods if not hasattr(module, method)]
    if missing:
        raise UserError(
            f"{path}: the model has no {', '.join(missing)}; re-export it with `latentlive export`"
        )
    return module

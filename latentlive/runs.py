"""The run folder (``runs/NAME/``) and atomic writes.

A run holds ``config.gin`` (the operative config, re-read by export), ``checkpoints/last.pt``,
TensorBoard events, ``metrics.json`` and, after export, ``export/NAME.ts`` and ``export/report.json``.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from latentlive.errors import UserError
from latentlive.files import atomic_write, atomic_write_json, atomic_write_text

__all__ = [
    "RunFolder",
    "atomic_torch_save",
    "atomic_write",
    "atomic_write_json",
    "atomic_write_text",
    "load_checkpoint",
]


@dataclass(frozen=True)
class RunFolder:
    """Paths inside one run folder."""

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def config(self) -> Path:
        return self.root / "config.gin"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoints" / "last.pt"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def export_dir(self) -> Path:
        return self.root / "export"

    @property
    def exported_model(self) -> Path:
        return self.export_dir / f"{self.name}.ts"

    @property
    def report(self) -> Path:
        return self.export_dir / "report.json"

    def require_trained(self) -> "RunFolder":
        """Fail with one line unless this folder holds a run with a checkpoint."""
        if not self.root.is_dir():
            raise UserError(f"{self.root}: no such run; train one with `python train.py --gin gin/MODEL.gin`")
        for needed in (self.config, self.checkpoint):
            if not needed.is_file():
                raise UserError(
                    f"{self.root}: not a trained run ({needed.relative_to(self.root)} is missing); "
                    "train it first or pass the right --run"
                )
        return self


def atomic_torch_save(obj: Any, path: Path) -> Path:
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint written by the trainer (on the CPU), with a clear error if it is unreadable."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same one-line message
        raise UserError(
            f"{path}: unreadable checkpoint ({type(error).__name__}); resume from another run"
        ) from None

"""The run folder (``runs/NAME/``): its files, its lock, its record of what decided the data, and atomic writes.

A run holds ``config.gin`` (the bindings it started with, re-read by export and ``--resume``), ``run.json`` (the seed,
the ``--db`` folder, the gin files and bindings it was started with, and each resume), ``checkpoints/last.pt``
with ``checkpoints/operative_config-STEP.gin`` beside it for each checkpoint written (what gin actually used),
TensorBoard events, ``metrics.json``, ``split.json`` (the groups on each side of its data split) and, after export, ``export/NAME.ts`` and ``export/report.json``.

While a process trains in a run, the run is locked (an ``flock`` on ``.train.lock``, released by the kernel
when the process ends, however it ends). What ``--resume`` may change is decided in
``latentlive.training.run_plan``.
"""

import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from latentlive.core.errors import UserError
from latentlive.core.files import atomic_write, atomic_write_json, atomic_write_text

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not locked
    fcntl = None

__all__ = [
    "Resume",
    "RunFolder",
    "RunSettings",
    "atomic_torch_save",
    "atomic_write",
    "atomic_write_json",
    "atomic_write_text",
    "load_checkpoint",
    "training_lock",
]

RunState = Literal["new", "unstarted", "trained", "foreign"]


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
    def task(self) -> str | None:
        """The task the run trains (``train.task`` of its ``config.gin``); None when it has no config."""
        if not self.config.is_file():
            return None
        found = re.search(
            r"^train\.task\s*=\s*['\"](\w+)['\"]", self.config.read_text(encoding="utf-8"), re.M
        )
        return found.group(1) if found else None

    def operative_config(self, step: int) -> Path:
        """``checkpoints/operative_config-STEP.gin``: every gin parameter the run used, written with the
        checkpoint of ``step``."""
        return self.checkpoint.parent / f"operative_config-{step}.gin"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def split_file(self) -> Path:
        """``split.json``: the seed, fractions and groups on each side of the run's data split."""
        return self.root / "split.json"

    def evaluation(self, held_out: str) -> Path:
        """``eval_<held_out>.json``: what ``latentlive evaluate`` measured on a split or a folder."""
        return self.root / f"eval_{held_out}.json"

    @property
    def settings_file(self) -> Path:
        return self.root / "run.json"

    @property
    def lock_file(self) -> Path:
        return self.root / ".train.lock"

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

    def state(self) -> RunState:
        """``new`` (no folder, or an empty one), ``unstarted`` (a run that stopped before its first
        checkpoint), ``trained`` (it has a checkpoint) or ``foreign`` (a folder that is not a run)."""
        if not self.root.exists():
            return "new"
        if not self.root.is_dir():
            return "foreign"
        if self.checkpoint.is_file():
            return "trained"
        if self.settings_file.is_file() or self.config.is_file():
            return "unstarted"
        if all(p == self.lock_file or _is_empty_folder(p) for p in self.root.iterdir()):
            return "new"
        return "foreign"

    def settings(self) -> "RunSettings | None":
        """The settings recorded in ``run.json``; None for a run trained before they were recorded."""
        if not self.settings_file.is_file():
            return None
        try:
            return RunSettings.from_json(json.loads(self.settings_file.read_text(encoding="utf-8")))
        except (ValueError, TypeError, KeyError, AttributeError):
            raise UserError(
                f"{self.settings_file}: unreadable run record; restore it or train a new run"
            ) from None

    def clear_unstarted(self) -> None:
        """Remove what a run that stopped before its first checkpoint wrote, before it starts again."""
        for path in [*self.root.glob("events.out.tfevents.*"), self.config, self.metrics, self.settings_file]:
            path.unlink(missing_ok=True)
        self.remove_stale_temps()

    def remove_stale_temps(self) -> None:
        """Temporary files of a checkpoint (or its operative config) write that a killed process never finished."""
        for pattern in (f".{self.checkpoint.name}.*.tmp", ".operative_config-*.gin.*.tmp"):
            for path in self.checkpoint.parent.glob(pattern):
                path.unlink(missing_ok=True)

    def record_resume(self, resume: "Resume") -> None:
        """Add ``resume`` to the ``resumes`` of ``run.json`` (a run trained before ``run.json`` existed has
        none to add to)."""
        settings = self.settings()
        if settings is not None:
            atomic_write_json(
                self.settings_file, replace(settings, resumes=(*settings.resumes, resume)).to_json()
            )

    def discard_if_empty(self) -> None:
        """Remove the run folder when it holds nothing but its record and lock: a start that failed on
        bad input leaves nothing behind."""
        if not self.root.is_dir():
            return
        leftovers = [p for p in self.root.iterdir() if p not in (self.lock_file, self.settings_file)]
        if all(_is_empty_folder(p) for p in leftovers):
            for path in leftovers:
                path.rmdir()
            self.settings_file.unlink(missing_ok=True)
            self.lock_file.unlink(missing_ok=True)
            self.root.rmdir()


def _is_empty_folder(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def recorded_path(path: str | Path) -> str:
    """How a run's records (``run.json``, evaluations) name a file or folder: relative to the working folder
    when it lies in it, so that a run folder that is shipped (``pretrained/``) names no path of the machine
    that wrote it; else absolute."""
    absolute = Path(path).expanduser().resolve()
    try:
        return str(absolute.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(absolute)


@dataclass(frozen=True)
class Resume:
    """One ``--resume`` of a run: when, from which checkpoint ``step``, with which gin files and bindings
    (only ``train.max_steps`` and the logging intervals may change on a resume)."""

    step: int
    gin: tuple[str, ...] = ()
    bindings: tuple[str, ...] = ()
    time: str = field(default_factory=_now)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "gin": list(self.gin), "bindings": list(self.bindings)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Resume":
        return cls(
            step=int(data["step"]),
            gin=tuple(data.get("gin", ())),
            bindings=tuple(data.get("bindings", ())),
            time=str(data.get("time", "")),
        )


@dataclass(frozen=True)
class RunSettings:
    """What decides a run's data and batches besides its config: stored in ``run.json``, reused by --resume.

    ``db`` is the absolute ``--db`` folder (None: the built-in corpus); ``gin`` and ``bindings`` are what the
    run was started with (gin files inside the working folder relative to it), so a run that stopped before
    writing its ``config.gin`` can still be resumed;
    ``resumes`` records each resume since (absent from the ``run.json`` of older runs).
    """

    seed: int = 0
    db: str | None = None
    gin: tuple[str, ...] = ()
    bindings: tuple[str, ...] = ()
    started: str = field(default_factory=_now)
    resumes: tuple[Resume, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "gin": list(self.gin),
            "bindings": list(self.bindings),
            "resumes": [resume.to_json() for resume in self.resumes],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunSettings":
        return cls(
            seed=int(data["seed"]),
            db=data.get("db"),
            gin=tuple(data.get("gin", ())),
            bindings=tuple(data.get("bindings", ())),
            started=str(data.get("started", "")),
            resumes=tuple(Resume.from_json(resume) for resume in data.get("resumes", ())),
        )


@contextmanager
def training_lock(run: RunFolder) -> Iterator[None]:
    """Hold the run's lock while training: a second process that trains the same run is refused with one
    line. The kernel releases the lock when the holder ends, even under kill -9, so a stale lock file of a
    dead process is simply taken over."""
    try:
        run.root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(
            f"{run.root}: cannot create the run folder ({error.strerror or type(error).__name__}); "
            "choose another --out"
        ) from None
    if fcntl is None:
        yield
        return
    fd = os.open(run.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise UserError(
            f"{run.root}: another process (pid {holder}) is training this run; "
            "wait for it, stop it, or choose another --name"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        yield
    finally:
        os.close(fd)  # releases the lock


def atomic_torch_save(obj: Any, path: Path, fix: str | None = None) -> Path:
    """``torch.save`` through :func:`atomic_write`; ``fix`` ends the one-line error of a full disk."""
    import torch  # here, not at the top: the CLI reads run folders (and refuses bad ones) without torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp), **({"fix": fix} if fix else {}))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint written by the trainer (on the CPU), with a clear error if it is unreadable."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same one-line message
        raise UserError(
            f"{path}: unreadable checkpoint ({type(error).__name__}); resume from another run"
        ) from None

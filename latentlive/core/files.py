"""Atomic file writes and output-path checks: a reader never sees half a file, a crash or a full disk
keeps the previous version, and no command replaces a file or a folder that is not its own.

Every write goes to a temporary file beside the target, is flushed to the disk (fsync) and renamed
over the target; the folder is synced after the rename so the new name survives a power cut. A write
that fails for lack of space or permission becomes one :class:`UserError` line naming the path.
"""

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from latentlive.core.errors import UserError

# Errors of the disk or the folder, not of the program: they become one line naming the path.
NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}
MARGIN_BYTES = 1 << 20  # room left beyond an estimated size: metadata, the file system's own blocks


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def megabytes(size: float) -> str:
    """A size for a message: ``0.1 MB``, ``512.0 MB``, ``66.4 GB``."""
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.1f} MB"


def free_bytes(folder: Path) -> int:
    """Bytes free to an ordinary user on the disk that holds ``folder`` (or its nearest existing parent)."""
    return shutil.disk_usage(existing_parent(folder)).free


def existing_parent(path: Path) -> Path:
    """``path`` itself if it exists, else its nearest existing parent."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


RETRY = "free some space and run the command again (the previous file, if any, is kept)"


def require_space(path: Path, needed: int, what: str, fix: str = RETRY) -> None:
    """Raise UserError unless the disk of ``path`` has ``needed`` bytes (plus a margin) free."""
    free = free_bytes(path.parent)
    if free < needed + MARGIN_BYTES:
        raise UserError(
            f"{path}: not enough disk space for {what}: it needs about {megabytes(needed + MARGIN_BYTES)}, "
            f"{megabytes(free)} is free; {fix}"
        )


def write_error(path: Path, error: OSError, fix: str = RETRY) -> UserError:
    """The one-line error for an OSError met while writing ``path``; ``fix`` says what to do when the disk
    is full."""
    reason = error.strerror or type(error).__name__
    if error.errno in NO_SPACE:
        return UserError(
            f"{path}: the disk is full ({reason}; {megabytes(free_bytes(path.parent))} free); {fix}"
        )
    return UserError(f"{path}: cannot write it ({reason}); choose a folder you can write to")


def atomic_write(path: str | Path, write: Callable[[Path], None], fix: str = RETRY) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    If ``write`` raises, ``path`` is left as it was and the temporary file is removed; an OSError of the
    disk or the folder (full, read-only, missing) becomes a UserError ending in ``fix`` when the disk is
    full. Returns ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise write_error(path, error, fix) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        _fsync(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except OSError as error:
        raise write_error(path, error, fix) from None
    except RuntimeError as error:
        if not _is_torch_write_failure(error):
            raise
        raise write_error(path, OSError(errno.ENOSPC, "torch could not write the file"), fix) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _is_torch_write_failure(error: RuntimeError) -> bool:
    """torch.save and ScriptModule.save report a failed write (a full disk) as a RuntimeError of their
    zip writer: ``[enforce fail at inline_container.cc] ... PytorchStreamWriter failed writing file``."""
    text = str(error)
    return "inline_container" in text or "PytorchStreamWriter" in text or "file write failed" in text


def _fsync(path: Path) -> None:
    """Flush ``path`` to the disk, so that the rename never publishes a file whose bytes are not there."""
    with open(path, "rb+") as file:
        os.fsync(file.fileno())


def _fsync_folder(folder: Path) -> None:
    """Flush the folder entry of a rename (a no-op where folders cannot be opened, as on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the file itself is already on the disk
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def check_writable_folder(folder: Path, option: str = "--out") -> None:
    """Raise UserError unless files can be created in ``folder`` (or, when it is missing, in its nearest
    existing parent, where it would be created). Tried for real: a temporary file is made and removed."""
    base = existing_parent(folder)
    if not base.is_dir():
        raise UserError(f"{folder}: {base} is a file, not a folder; choose another {option}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".latentlive-probe.", dir=base)
    except OSError as error:
        raise UserError(
            f"{folder}: cannot write there ({error.strerror or type(error).__name__}); choose another {option}"
        ) from None
    os.close(fd)
    os.unlink(probe)


def check_output_file(
    path: Path,
    force: bool = False,
    is_own: Callable[[Path], bool] | None = None,
    option: str = "--out",
    example: str = "NAME",
) -> Path:
    """Refuse, before any work is done, an output ``path`` that would be lost or cannot be written.

    A folder is never replaced. An existing file is replaced only with ``force`` or when ``is_own(path)``
    says it is this command's own earlier output. The folder must be writable. Returns ``path``.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder; {option} takes a file name, e.g. {path / example}")
    if path.exists() and not force and not (is_own is not None and is_own(path)):
        raise UserError(
            f"{path}: exists and was not written by this command; pass --force to replace it "
            f"or choose another {option}"
        )
    check_writable_folder(path.parent, option)
    return path

"""The preprocessing cache shared by the corpora: named numpy arrays in one ``.npz`` per corpus and settings."""

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from latentlive.core.files import atomic_write


def cache_key(version: int, settings: dict) -> str:
    """A short hash of the reader's ``version`` and every setting that changes the arrays."""
    payload = json.dumps({"version": version, **settings}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]


def read_cached(path: Path | None, label: str, log: Callable[[str], None]) -> dict[str, np.ndarray] | None:
    """The arrays stored at ``path``; None when there is no cache or it is unreadable (then it is rebuilt)."""
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, KeyError, ValueError) as error:
        log(f"{label}: ignoring unreadable cache {path} ({error})")  # only a lost shortcut
        return None
    log(f"{label}: loaded cache {path}")
    return arrays


def write_cached(
    path: Path | None,
    arrays: dict[str, np.ndarray],
    label: str,
    log: Callable[[str], None],
    compress: bool = True,
) -> None:
    """Store ``arrays`` at ``path`` atomically (nothing when ``path`` is None). Audio hardly compresses:
    pass ``compress=False`` for it, zlib over hundreds of MB would cost more than it saves."""
    if path is None:
        return
    save = np.savez_compressed if compress else np.savez

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:  # a file object, so numpy does not append ".npz" to the name
            save(file, **arrays)

    atomic_write(path, write)
    log(f"{label}: wrote cache {path}")


def counts_to_arrays(counts: dict[str, int]) -> dict[str, np.ndarray]:
    return {
        "skip_keys": np.array(list(counts), dtype=str),
        "skip_counts": np.array(list(counts.values()), dtype=np.int64),
    }


def arrays_to_counts(arrays: dict[str, np.ndarray]) -> dict[str, int]:
    return {str(k): int(v) for k, v in zip(arrays["skip_keys"], arrays["skip_counts"], strict=True)}


def folder_listing(db: Path, files: list[Path]) -> list[tuple[str, int, int]]:
    """``(relative path, size, mtime)`` of each file: part of a folder corpus's cache key, so that any added,
    removed or edited file makes a new cache."""
    return [(f.relative_to(db).as_posix(), f.stat().st_size, f.stat().st_mtime_ns) for f in files]

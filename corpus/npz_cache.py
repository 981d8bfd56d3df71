"""The preprocessing cache shared by the corpora: one dataclass per ``.npz`` file, keyed by the settings."""

import hashlib
import json
import typing
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from latentlive.core.files import atomic_write

FORMAT = 1  # how a dataclass is laid out in the file; a file of another format is rebuilt
_META = "__meta__"  # the JSON of the format and of the fields that are not arrays
_LENGTHS = "__lengths"  # suffix of the lengths of a list of arrays, stored end to end

Value = TypeVar("Value")


def cache_key(version: int, settings: dict) -> str:
    """A short hash of the reader's ``version`` and every setting that changes the arrays."""
    payload = json.dumps({"version": version, **settings}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]


@dataclass(frozen=True)
class NpzCache(Generic[Value]):
    """Caches the dataclass ``kind`` as ``<cache_dir>/<prefix>-<key>.npz``, the key a hash of ``version``
    (the corpus's reader) and the settings, so a changed setting makes a new file.

    Array fields are stored as arrays, ``list[np.ndarray]`` fields end to end with their lengths, and the
    rest (ints, floats, strings, lists of strings, dicts of counts) as JSON. Fields named in ``given`` are
    not stored; :meth:`load` takes them (such as a folder's path, which may move without changing the key).
    ``label`` starts the log lines. Audio hardly compresses: ``compress=False`` for it, as zlib over hundreds
    of MB would cost more than it saves.
    """

    kind: type[Value]
    prefix: str
    label: str
    version: int
    given: tuple[str, ...] = ()
    compress: bool = True

    def path(self, cache_dir: Path | None, settings: dict) -> Path | None:
        """Where the value of ``settings`` is cached; None without a ``cache_dir``."""
        if cache_dir is None:
            return None
        return Path(cache_dir) / f"{self.prefix}-{cache_key(self.version, settings)}.npz"

    def load(
        self, cache_dir: Path | None, settings: dict, log: Callable[[str], None], **given: Any
    ) -> Value | None:
        """The cached value of ``settings``; None when there is none, or (logged) when the file is of another
        format or unreadable: it is then rebuilt, as a cache is only a shortcut."""
        path = self.path(cache_dir, settings)
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            meta = json.loads(str(arrays.pop(_META))) if _META in arrays else {}
            if meta.get("format") != FORMAT:
                log(f"{self.label}: ignoring stale cache {path} (format {meta.get('format')}, not {FORMAT})")
                return None
            value = self.kind(**self._decode(arrays, meta["fields"]), **given)
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
            log(f"{self.label}: ignoring unreadable cache {path} ({error!r})")
            return None
        log(f"{self.label}: loaded cache {path}")
        return value

    def save(self, cache_dir: Path | None, settings: dict, value: Value, log: Callable[[str], None]) -> None:
        """Store ``value`` as the cache of ``settings``, atomically (nothing without a ``cache_dir``)."""
        path = self.path(cache_dir, settings)
        if path is None:
            return
        arrays = self._encode(value)
        save = np.savez_compressed if self.compress else np.savez

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as file:  # a file object, so numpy does not append ".npz" to the name
                save(file, **arrays)

        atomic_write(path, write)
        log(f"{self.label}: wrote cache {path}")

    def _stored(self) -> dict[str, Any]:
        """The stored fields of ``kind``, with their types."""
        hints = typing.get_type_hints(self.kind)
        return {f.name: hints[f.name] for f in fields(self.kind) if f.name not in self.given}

    def _encode(self, value: Value) -> dict[str, np.ndarray]:
        arrays, meta = {}, {}
        for name, hint in self._stored().items():
            item = getattr(value, name)
            if hint is np.ndarray:
                arrays[name] = np.asarray(item)
            elif hint == list[np.ndarray]:
                arrays[name] = np.concatenate(item) if item else np.zeros(0, np.float32)
                arrays[name + _LENGTHS] = np.array([len(part) for part in item], dtype=np.int64)
            else:
                meta[name] = item
        text = json.dumps({"format": FORMAT, "fields": meta}, default=_plain)
        return {**arrays, _META: np.array(text)}

    def _decode(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> dict[str, Any]:
        values = {}
        for name, hint in self._stored().items():
            if hint is np.ndarray:
                values[name] = arrays[name]
            elif hint == list[np.ndarray]:
                lengths = arrays[name + _LENGTHS]
                ends = np.cumsum(lengths)
                values[name] = [arrays[name][end - n : end] for end, n in zip(ends, lengths, strict=True)]
            else:
                values[name] = meta[name]
        return values


def _plain(value: Any) -> Any:
    """numpy scalars (counts summed from arrays) as the Python numbers JSON takes."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not cacheable as JSON")


def folder_listing(db: Path, files: list[Path]) -> list[tuple[str, int, int]]:
    """``(relative path, size, mtime)`` of each file: part of a folder corpus's cache key, so that any added,
    removed or edited file makes a new cache."""
    return [(f.relative_to(db).as_posix(), f.stat().st_size, f.stat().st_mtime_ns) for f in files]

"""The corpus cache: a dataclass goes in and comes back; a broken or stale file is a miss, rebuilt."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latentlive.corpus.npz_cache import NpzCache


@dataclass
class _Corpus:
    audio: np.ndarray
    sounds: list[np.ndarray]
    names: list[str]
    counts: dict[str, int]
    rate: int
    source: str


_CACHE = NpzCache(_Corpus, "test", "test corpus", version=1, given=("source",))


def test_a_dataclass_round_trips_and_a_broken_file_is_a_miss(tmp_path: Path) -> None:
    corpus = _Corpus(
        audio=np.arange(6, dtype=np.float32).reshape(2, 3),
        sounds=[np.ones(2, np.float32), np.zeros(5, np.float32)],
        names=["kick", "snare"],
        counts={"silent": np.int64(2), "short": 0},
        rate=22050,
        source="here",
    )
    lines: list[str] = []
    settings = {"rate": 22050}
    assert _CACHE.load(tmp_path, settings, lines.append, source="there") is None  # nothing cached yet
    _CACHE.save(tmp_path, settings, corpus, lines.append)
    back = _CACHE.load(tmp_path, settings, lines.append, source="there")
    assert back is not None and "loaded cache" in lines[-1]
    np.testing.assert_array_equal(back.audio, corpus.audio)
    assert back.audio.dtype == np.float32 and [len(s) for s in back.sounds] == [2, 5]
    assert (back.names, back.counts, back.rate, back.source) == (
        ["kick", "snare"],
        corpus.counts,
        22050,
        "there",
    )
    assert _CACHE.load(tmp_path, {"rate": 44100}, lines.append, source="there") is None  # another key

    path = _CACHE.path(tmp_path, settings)
    path.write_bytes(path.read_bytes()[:100])  # cut short: a crash while copying, a full disk
    assert _CACHE.load(tmp_path, settings, lines.append, source="there") is None
    assert "ignoring unreadable cache" in lines[-1]
    np.savez(path, audio=corpus.audio)  # an older layout, without the format
    assert _CACHE.load(tmp_path, settings, lines.append, source="there") is None
    assert "ignoring stale cache" in lines[-1]

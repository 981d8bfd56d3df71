"""The techno corpus: the procedural loop renderer and the loop folder reader."""

from pathlib import Path

import numpy as np
import pytest
import soundfile

from latentlive.core.errors import UserError
from latentlive.corpus import loops, techno_synth
from latentlive.corpus.loops import builtin_loop_seed, estimate_tempo, load_loops, tempo_from_name
from latentlive.corpus.splits import SIDES
from latentlive.corpus.techno_synth import (
    BPM_RANGE,
    PART_NAMES,
    PEAK,
    corpus_loop_seed,
    generate_techno_corpus,
    loop_samples_for,
    render_techno_loop,
)
from latentlive.training.tasks.base import TensorData
from latentlive.training.tasks.techno import load_loop_tensors, split_loops

SR = 16000


def _band_share(audio: np.ndarray, low: float, high: float, sample_rate: int = SR) -> float:
    """Share of the energy of `audio` between `low` and `high` Hz."""
    power = np.abs(np.fft.rfft(audio.astype(np.float64))) ** 2
    frequency = np.fft.rfftfreq(len(audio), 1.0 / sample_rate)
    return float(power[(frequency >= low) & (frequency < high)].sum() / power.sum())


def _click_track(bpm: float, seconds: float, sample_rate: int = SR) -> np.ndarray:
    """float32 [T]: a short 1 kHz click on every beat, the first at sample 0."""
    audio = np.zeros(int(seconds * sample_rate), dtype=np.float32)
    click = np.sin(2 * np.pi * 1000 * np.arange(400) / sample_rate) * np.exp(-np.arange(400) / 80)
    for start in np.round(np.arange(0, len(audio), 60.0 / bpm * sample_rate)).astype(int):
        piece = click[: len(audio) - start]
        audio[start : start + len(piece)] += 0.8 * piece
    return audio


def _tone(seconds: float, sample_rate: int = SR) -> np.ndarray:
    """A steady sine: sound without onsets, so without a tempo."""
    return (0.5 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * sample_rate)) / sample_rate)).astype(
        np.float32
    )


# -- the renderer ---------------------------------------------------------------------------------------


def test_render_is_deterministic_per_seed() -> None:
    first, again, other = render_techno_loop(11), render_techno_loop(11), render_techno_loop(12)
    assert first.audio.dtype == np.float32
    assert np.array_equal(first.audio, again.audio)
    assert first.levels == again.levels and first.key == again.key
    assert not np.array_equal(first.audio[: len(other.audio)], other.audio[: len(first.audio)])


def test_loop_length_and_tempo_bookkeeping() -> None:
    for seed, bars in ((1, 1), (2, 2), (3, 4)):
        loop = render_techno_loop(seed, bars=bars)
        assert BPM_RANGE[0] * 0.995 <= loop.bpm <= BPM_RANGE[1] * 1.005
        assert len(loop.audio) == loop.loop_samples == loop_samples_for(loop.bpm, bars, SR)
        assert abs(loop.loop_samples * loop.bpm / (bars * 4 * 60 * SR) - 1.0) < 1e-9  # the exact tempo
        assert 24 <= loop.key < 36 and set(loop.levels) == set(PART_NAMES)
        assert abs(float(np.max(np.abs(loop.audio))) - PEAK) < 1e-3
    fixed = render_techno_loop(4, bpm=128.0)
    assert abs(fixed.bpm - 128.0) < 0.01 and fixed.loop_samples == loop_samples_for(128.0, 2, SR)
    longer = render_techno_loop(4, bpm=128.0, length=2 * fixed.loop_samples + 100)
    assert np.array_equal(longer.audio, np.resize(fixed.audio, 2 * fixed.loop_samples + 100))
    shorter = render_techno_loop(4, bpm=128.0, length=1000)
    assert np.array_equal(shorter.audio, fixed.audio[:1000])


def test_tiled_loop_has_no_jump_at_the_seam() -> None:
    for seed, bars in ((5, 1), (6, 2), (7, 2)):
        loop = render_techno_loop(seed, bars=bars)
        tiled = np.tile(loop.audio.astype(np.float64), 2)
        steps = np.abs(np.diff(tiled))
        seam = steps[loop.loop_samples - 1]
        assert seam <= np.percentile(steps, 99.5), (seed, seam)
    # The mechanism behind it: an event that rings past the end of the loop continues at its start.
    placed = techno_synth._place(100, np.array([90]), np.array([0.5]), np.ones(20))
    assert np.array_equal(placed, np.where((np.arange(100) >= 90) | (np.arange(100) < 10), 0.5, 0.0))


def test_parts_sound_where_they_belong() -> None:
    bass = render_techno_loop(21, parts=["bass"]).audio
    hats = render_techno_loop(21, parts=["hats"]).audio
    kick = render_techno_loop(21, parts=["kick"]).audio
    assert _band_share(bass, 20, 200) > 0.5
    assert _band_share(kick, 20, 200) > 0.5
    assert _band_share(hats, 4000, SR / 2) > 0.5 and _band_share(hats, 0, 200) < 0.02
    for name in ("stabs", "pad", "sweep"):
        part = render_techno_loop(21, parts=[name])
        assert np.max(np.abs(part.audio)) > 0.5 and set(k for k, v in part.levels.items() if v) == {name}
    full = render_techno_loop(21)
    assert not np.array_equal(full.audio, bass)


def test_generated_corpus_shapes() -> None:
    audio, bpm = generate_techno_corpus(3, SR, bars=1, length=20000, seed=5)
    assert audio.shape == (3, 20000) and audio.dtype == np.float32 and bpm.dtype == np.float32
    assert np.all((bpm >= BPM_RANGE[0] * 0.995) & (bpm <= BPM_RANGE[1] * 1.005))
    again, _ = generate_techno_corpus(2, SR, bars=1, length=20000, seed=5)
    assert np.array_equal(again, audio[:2])


# -- the folder reader ----------------------------------------------------------------------------------


def test_tempo_from_names_needs_the_bpm_suffix(tmp_path: Path) -> None:
    assert tempo_from_name(Path("groove_124bpm.wav")) == 124.0
    assert tempo_from_name(Path("Acid Line 126 BPM.flac")) == 126.0
    assert tempo_from_name(Path("x_123.5-bpm_y.wav")) == 123.5
    assert tempo_from_name(Path("take_124_.wav")) is None
    assert tempo_from_name(tmp_path / "Loops 128 BPM" / "a.wav", tmp_path) == 128.0

    db = tmp_path / "db"
    db.mkdir()
    # the content clicks at 120 bpm: the name wins where it has a tempo
    soundfile.write(db / "loop_124bpm.wav", _click_track(120.0, 6.0), SR)
    soundfile.write(db / "other 128 BPM.wav", _click_track(120.0, 6.0), SR)
    soundfile.write(db / "take_124_.wav", _tone(6.0), SR)
    corpus = load_loops(db, length=40000, bars=1, log=lambda _: None)
    by_file: dict[str, set[float]] = {}
    for source, bpm in zip(corpus.sources, corpus.bpm, strict=True):
        by_file.setdefault(source.rsplit("@", 1)[0], set()).add(round(float(bpm), 3))
    assert by_file["loop_124bpm.wav"] == {124.0}
    assert by_file["other 128 BPM.wav"] == {128.0}
    assert all(np.isnan(b) for b in by_file["take_124_.wav"])
    for bpm, loop in zip(corpus.bpm, corpus.loop_samples, strict=True):
        expected = 40000 if np.isnan(bpm) else loop_samples_for(float(bpm), 1, SR)
        assert loop == expected


def test_click_track_tempo_is_tracked_within_2_percent(tmp_path: Path) -> None:
    estimate = estimate_tempo(_click_track(127.0, 12.0), SR)
    assert estimate is not None and abs(estimate.bpm / 127.0 - 1.0) < 0.02
    assert estimate_tempo(_tone(8.0), SR) is None  # no onsets: no tempo

    db = tmp_path / "db"
    db.mkdir()
    soundfile.write(db / "clicks.wav", _click_track(127.0, 12.0), SR)
    corpus = load_loops(db, length=32768, bars=1, log=lambda _: None)
    assert len(corpus) >= 4
    assert np.all(np.abs(corpus.bpm / 127.0 - 1.0) < 0.02)
    assert np.all(corpus.loop_samples == [loop_samples_for(float(b), 1, SR) for b in corpus.bpm])
    beat = 60.0 / 127.0 * SR
    for source in corpus.sources:  # crops start on a beat (within 30 ms)
        start = float(source.rsplit("@", 1)[1]) * SR
        assert min(start % beat, beat - start % beat) < 0.03 * SR


def test_built_in_loops_tempo_is_estimated_within_1_percent() -> None:
    # The renderer knows each loop's tempo: an oracle stricter than librosa's beat tracker, which put 15
    # of 40 such loops within 2 % (it lands on 3/4 or 4/3 of the tempo, and steps in 32 ms lags).
    for seed in range(3):
        loop = render_techno_loop(seed, SR, bars=4)
        estimate = estimate_tempo(np.tile(loop.audio, 2), SR)
        assert estimate is not None and abs(estimate.bpm / loop.bpm - 1.0) < 0.01


def test_a_44k_stereo_file_is_resampled_and_folded(tmp_path: Path) -> None:
    rate = 44100
    t = np.arange(int(5.0 * rate)) / rate
    left = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    soundfile.write(tmp_path / "pad.flac", np.stack([left, 0.5 * left], axis=1), rate)
    corpus = load_loops(tmp_path, sample_rate=SR, length=32768, bars=1, log=lambda _: None)
    assert corpus.audio.shape[1] == 32768 and len(corpus) >= 1
    spectrum = np.abs(np.fft.rfft(corpus.audio[0]))
    assert abs(np.argmax(spectrum) * SR / 32768 - 440.0) < 1.0
    assert np.isnan(corpus.bpm[0]) and corpus.loop_samples[0] == 32768


def test_bad_files_are_skipped_and_counted(tmp_path: Path) -> None:
    soundfile.write(tmp_path / "good.wav", _click_track(125.0, 4.0), SR)
    (tmp_path / "broken.wav").write_bytes(b"not audio at all")
    soundfile.write(tmp_path / "short.wav", _click_track(125.0, 0.5), SR)
    soundfile.write(tmp_path / "silent.wav", np.zeros(5 * SR, dtype=np.float32), SR)
    quiet = np.concatenate([_click_track(125.0, 2.0), np.zeros(6 * SR, dtype=np.float32)])
    soundfile.write(tmp_path / "half quiet 125bpm.wav", quiet, SR)
    (tmp_path / "notes.txt").write_text("hello")
    soundfile.write(tmp_path / ".hidden.wav", _click_track(125.0, 4.0), SR)
    messages: list[str] = []
    corpus = load_loops(tmp_path, length=32768, bars=1, log=messages.append)
    counts = corpus.counts
    assert counts["unreadable_files"] == 1 and counts["too_short_files"] == 1
    assert counts["silent_files"] == 1 and counts["non_audio_files"] == 1
    assert counts["silent_crops"] >= 1
    files = {source.rsplit("@", 1)[0] for source in corpus.sources}
    assert files == {"good.wav", "half quiet 125bpm.wav"}
    assert any("broken.wav" in message for message in messages)


def test_examples_caps_the_count_evenly(tmp_path: Path) -> None:
    soundfile.write(tmp_path / "long.wav", _tone(12.0), SR)
    every = load_loops(tmp_path, length=16000, bars=1, examples=100, log=lambda _: None)
    capped = load_loops(tmp_path, length=16000, bars=1, examples=3, log=lambda _: None)
    starts = [float(s.rsplit("@", 1)[1]) for s in capped.sources]
    assert len(every) == 23 and len(capped) == 3
    assert starts == [0.0, 5.5, 11.0]


def _one_line_error(db: Path | None, **settings) -> str:
    with pytest.raises(UserError) as error:
        load_loops(db, log=lambda _: None, **settings)
    message = str(error.value)
    assert "\n" not in message and ";" in message  # what is wrong; the fix
    return message


def test_errors_are_one_line(tmp_path: Path) -> None:
    assert "does not exist" in _one_line_error(tmp_path / "missing")
    (tmp_path / "file.wav").write_bytes(b"")
    assert "not a folder" in _one_line_error(tmp_path / "file.wav")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no audio")
    assert "no audio files" in _one_line_error(empty)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.wav").write_bytes(b"junk")
    soundfile.write(bad / "b.wav", np.zeros(SR, dtype=np.float32), SR)
    message = _one_line_error(bad)
    assert str(bad) in message and "1 unreadable" in message and "1 silent" in message
    assert "length = 65536" in _one_line_error(None, bars=4)
    assert "bars = 0" in _one_line_error(None, bars=0)


def test_second_load_hits_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    first = load_loops(None, length=32768, bars=1, examples=2, cache_dir=cache, log=lambda _: None)
    assert len(list(cache.glob("loops-*.npz"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("the cached corpus must not be rendered again")

    monkeypatch.setattr(loops, "generate_techno_corpus", fail)
    messages: list[str] = []
    second = load_loops(None, length=32768, bars=1, examples=2, cache_dir=cache, log=messages.append)
    assert any("loaded cache" in message for message in messages)
    assert np.array_equal(first.audio, second.audio) and np.array_equal(first.bpm, second.bpm)
    assert np.array_equal(first.loop_samples, second.loop_samples) and first.sources == second.sources
    assert np.all(first.loop_samples == [loop_samples_for(float(b), 1, SR) for b in first.bpm])
    assert np.all(first.loop_samples <= 32768)

    db = tmp_path / "db"
    db.mkdir()
    soundfile.write(db / "a 130bpm.wav", _click_track(130.0, 4.0), SR)
    load_loops(db, length=32768, bars=1, cache_dir=cache, log=lambda _: None)
    monkeypatch.setattr(loops, "_folder_corpus", fail)
    messages.clear()
    load_loops(db, length=32768, bars=1, cache_dir=cache, log=messages.append)
    assert any("loaded cache" in message for message in messages)


def test_a_one_bar_named_loop_is_repeated_and_slow_loops_become_windows(tmp_path: Path) -> None:
    bar = loop_samples_for(125.0, 1, SR)
    one_bar = _click_track(125.0, bar / SR)[:bar]
    soundfile.write(tmp_path / "hit 125bpm.wav", one_bar, SR)
    soundfile.write(tmp_path / "slow 90bpm.wav", _click_track(90.0, 8.0), SR)
    corpus = load_loops(tmp_path, length=65536, bars=2, log=lambda _: None)
    named = [i for i, source in enumerate(corpus.sources) if source.startswith("hit")]
    assert len(named) == 1
    row = corpus.audio[named[0]]
    assert corpus.loop_samples[named[0]] == loop_samples_for(125.0, 2, SR) and corpus.bpm[named[0]] == 125.0
    assert np.allclose(row[bar : 2 * bar], row[:bar])  # the bar, played twice
    slow = [i for i, source in enumerate(corpus.sources) if source.startswith("slow")]
    assert slow and np.all(np.isnan(corpus.bpm[slow])) and np.all(corpus.loop_samples[slow] == 65536)
    assert corpus.counts["loop_longer_than_length_files"] == 1


# -- groups and the split ---------------------------------------------------------------------------------


def groups_on_two_sides(groups: list[str], sides: dict[str, np.ndarray]) -> set[str]:
    """The groups with examples on more than one side of ``sides`` (side -> example indices)."""
    seen: dict[str, set[str]] = {}
    for side, indices in sides.items():
        for index in indices:
            seen.setdefault(groups[int(index)], set()).add(side)
    return {group for group, where in seen.items() if len(where) > 1}


def _tensors(db: Path | None, **settings: int) -> tuple[TensorData, list[str]]:
    return load_loop_tensors(
        db, {"sample_rate": SR, "length": 32768, "bars": 1, **settings}, log=lambda _: None
    )


def test_the_leak_check_fails_on_a_split_by_loop() -> None:
    groups = ["a.wav", "a.wav", "b.wav", "b.wav", "c.wav", "c.wav"]
    by_loop = {"train": np.array([0, 2, 4]), "validation": np.array([1, 3]), "test": np.array([5])}
    assert groups_on_two_sides(groups, by_loop) == {"a.wav", "b.wav", "c.wav"}
    by_file = {"train": np.array([0, 1, 2, 3]), "validation": np.array([4, 5]), "test": np.array([], int)}
    assert groups_on_two_sides(groups, by_file) == set()


def test_every_built_in_loop_is_the_group_of_its_seed_and_on_one_side() -> None:
    data, groups = _tensors(None, examples=12)
    assert groups == [f"builtin/seed{corpus_loop_seed(0, i)}" for i in range(12)]
    assert [builtin_loop_seed(g) for g in groups] == list(range(12)) and builtin_loop_seed("a.wav") is None
    split, sides = split_loops(data, groups, 32768, (0.6, 0.2, 0.2), seed=3)
    assert [len(sides[side]) for side in SIDES] == [8, 2, 2] and not split.by_time
    assert groups_on_two_sides(groups, sides) == set()
    for side in SIDES:
        assert {groups[i] for i in sides[side]} == set(split.groups[side])


def test_no_file_of_a_folder_is_on_two_sides(tmp_path: Path) -> None:
    for i in range(5):  # 8 s each: 3 or 4 one-bar crops per file
        soundfile.write(tmp_path / f"take {i} 125bpm.wav", _click_track(125.0, 8.0) * (0.5 + 0.1 * i), SR)
    data, groups = _tensors(tmp_path)
    assert sorted(set(groups)) == [f"take {i} 125bpm.wav" for i in range(5)]
    assert all(groups.count(g) >= 3 for g in groups)  # several crops per file: a split by crop would leak
    split, sides = split_loops(data, groups, 32768, (0.8, 0.1, 0.1), seed=0)
    assert [len(split.groups[side]) for side in SIDES] == [3, 1, 1]
    assert sum(len(sides[side]) for side in SIDES) == len(groups)
    assert groups_on_two_sides(groups, sides) == set()


def test_one_file_is_split_in_time_without_overlap(tmp_path: Path) -> None:
    soundfile.write(tmp_path / "set 125bpm.wav", _click_track(125.0, 24.0), SR)
    data, groups = _tensors(tmp_path)
    split, sides = split_loops(data, groups, 32768, (0.6, 0.2, 0.2), seed=0)
    assert split.by_time and all(len(sides[side]) for side in SIDES)
    starts = data.tensors["start"].numpy()
    for earlier, later in (("train", "validation"), ("validation", "test")):
        assert starts[sides[earlier]].max() + 32768 <= starts[sides[later]].min()

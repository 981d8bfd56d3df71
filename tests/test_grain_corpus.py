"""The grain corpus: procedural textures, framing and overlap-add, the built-in corpus and folders of sounds."""

from pathlib import Path

import numpy as np
import pytest
import soundfile

from latentlive.core.errors import UserError
from latentlive.corpus import grains as grains_module
from latentlive.corpus.grains import (
    PEAK,
    SILENT_GRAIN_RMS,
    SKIP_KEYS,
    frame_sound,
    grain_window,
    load_grains,
    overlap_add,
)
from latentlive.corpus.textures import ENVELOPES, SOURCES, generate_textures

SR = 22050
GRAIN = 1024


def _quiet(_: str) -> None:
    pass


def _sine(seconds: float, frequency: float = 440.0, sample_rate: int = SR, level: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (level * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def _write(path: Path, audio: np.ndarray, sample_rate: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), audio, sample_rate)
    return path


def _rms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(np.square(x.astype(np.float64)), axis=-1))


@pytest.fixture(scope="module")
def builtin() -> grains_module.GrainCorpus:
    """A small built-in corpus: 16 one-shots and 8 textures."""
    return load_grains(None, sample_rate=SR, sounds=24, max_grains=1500, seed=3, log=_quiet)


# -- textures -------------------------------------------------------------------------------------------


def test_textures_are_deterministic_and_extend_with_count() -> None:
    audio, kinds = generate_textures(8, SR, 0.5, seed=7)
    again, _ = generate_textures(8, SR, 0.5, seed=7)
    fewer, fewer_kinds = generate_textures(3, SR, 0.5, seed=7)
    other, _ = generate_textures(8, SR, 0.5, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(audio, again, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(audio, fewer, strict=False))
    assert fewer_kinds == kinds[:3]
    assert not any(np.array_equal(a, b) for a, b in zip(audio, other, strict=True))


def test_textures_shapes_levels_and_kinds() -> None:
    audio, kinds = generate_textures(12, SR, 1.0, seed=0)
    assert len(audio) == len(kinds) == 12
    for x in audio:
        assert x.dtype == np.float32 and x.shape == (SR,)
        assert np.all(np.isfinite(x)) and abs(float(np.max(np.abs(x))) - 0.9) < 1e-4
        assert abs(float(x[-1])) < 1e-3  # faded out: no click when a sound ends
    sources = [kind.split("/")[0] for kind in kinds]
    assert sources == [SOURCES[i % len(SOURCES)] for i in range(12)]
    assert all(kind.split("/")[1] in ENVELOPES for kind in kinds)


def test_tones_do_not_alias() -> None:
    audio, kinds = generate_textures(30, SR, 1.0, seed=1)
    tones = [(x, kind) for x, kind in zip(audio, kinds, strict=True) if not kind.startswith("noise_band")]
    assert len(tones) == 25
    for x, kind in tones:
        power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
        frequency = np.fft.rfftfreq(len(x), 1.0 / SR)
        # polyBLEP oscillators and FM under Carson's bound: almost nothing near Nyquist.
        assert power[frequency > 0.47 * SR].sum() < 1e-4 * power.sum(), kind


# -- framing --------------------------------------------------------------------------------------------


def test_frames_are_windowed_hops_apart_and_overlap_add_back() -> None:
    rng = np.random.default_rng(0)
    audio = rng.uniform(-1, 1, 5000).astype(np.float32)
    for grain_size, hop in ((1024, 256), (2048, 512), (256, 128)):
        frames = frame_sound(audio, grain_size, hop)
        pad = grain_size - hop
        assert frames.shape == (-(-(len(audio) + pad) // hop), grain_size) and frames.dtype == np.float32
        padded = np.pad(audio, (pad, grain_size))
        for p in (0, 1, 5, len(frames) - 1):
            expected = padded[p * hop : p * hop + grain_size] * grain_window(grain_size)
            assert np.allclose(frames[p], expected)
        assert np.allclose(overlap_add(frames, hop, len(audio)), audio, atol=1e-5)
    window = grain_window(8)
    assert window[0] == 0.0 and window[4] == 1.0 and np.allclose(window[1:4], window[7:4:-1])


# -- the built-in corpus --------------------------------------------------------------------------------


def test_builtin_shapes_hop_and_bookkeeping(builtin: grains_module.GrainCorpus) -> None:
    corpus = builtin
    assert corpus.grains.shape == (len(corpus), GRAIN) and corpus.grains.dtype == np.float32
    assert corpus.hop == GRAIN // 4 and corpus.sample_rate == SR and len(corpus) == 1500
    assert corpus.sound.dtype == np.int64 and corpus.position.dtype == np.int64
    assert len(corpus.sources) == len(corpus.sounds) and set(corpus.sound) <= set(range(len(corpus.sounds)))
    assert any(s.startswith("builtin/one_shot/kick/") for s in corpus.sources)
    assert {s.split("/")[2] for s in corpus.sources if s.startswith("builtin/texture/")} <= set(SOURCES)
    assert sum(s.startswith("builtin/texture/") for s in corpus.sources) == 8
    for i in np.linspace(0, len(corpus) - 1, 40).astype(int):
        sound = corpus.sounds[corpus.sound[i]]
        assert np.array_equal(corpus.grains[i], frame_sound(sound, GRAIN, corpus.hop)[corpus.position[i]])
    assert np.all(_rms(corpus.grains) >= SILENT_GRAIN_RMS)
    assert all(abs(float(np.max(np.abs(s))) - PEAK) < 1e-4 for s in corpus.sounds)


def test_builtin_is_deterministic(builtin: grains_module.GrainCorpus) -> None:
    again = load_grains(None, sample_rate=SR, sounds=24, max_grains=1500, seed=3, log=_quiet)
    assert np.array_equal(builtin.grains, again.grains) and np.array_equal(builtin.sound, again.sound)
    assert builtin.sources == again.sources and builtin.groups == again.groups


def test_max_grains_spreads_evenly_over_all_sounds(builtin: grains_module.GrainCorpus) -> None:
    few = load_grains(None, sample_rate=SR, sounds=24, max_grains=150, seed=3, log=_quiet)
    assert len(few) == 150
    # Every sound keeps about its share: the cap thins all sounds rather than dropping the last ones.
    shares = np.bincount(few.sound, minlength=len(few.sounds)) / np.bincount(
        builtin.sound, minlength=len(builtin.sounds)
    ).clip(1)
    big = np.bincount(builtin.sound, minlength=len(builtin.sounds)) >= 40
    assert np.all(np.abs(shares[big] - 0.1) < 0.05)


# -- folders --------------------------------------------------------------------------------------------


def test_folder_skips_and_counts_files_and_drops_silent_grains(tmp_path: Path) -> None:
    db = tmp_path / "sounds"
    gap = np.concatenate([_sine(0.5), np.zeros(SR, dtype=np.float32), _sine(0.5, 660.0)])
    _write(db / "a" / "gap.wav", gap)
    _write(db / "b" / "tone.flac", _sine(0.3, 220.0))
    _write(db / "silent.wav", np.zeros(SR, dtype=np.float32))
    _write(db / "short.wav", _sine(0.01))  # 220 samples: under one grain
    (db / "broken.wav").write_bytes(b"RIFF not really a wave file")
    (db / "notes.txt").write_text("not audio")
    (db / ".hidden.wav").write_bytes(b"ignored")
    corpus = load_grains(db, sample_rate=SR, log=_quiet)
    assert corpus.sources == corpus.groups == ["a/gap.wav", "b/tone.flac"]  # a file is its group
    assert corpus.grain_groups().tolist() == [corpus.groups[s] for s in corpus.sound]
    assert corpus.counts["unreadable_files"] == 1 and corpus.counts["too_short_files"] == 1
    assert corpus.counts["silent_files"] == 1 and corpus.counts["non_audio_files"] == 1
    assert set(corpus.counts) == set(SKIP_KEYS)
    # The second of silence in the middle of gap.wav gives no grains: its positions are missing.
    positions = set(corpus.position[corpus.sound == 0].tolist())
    all_positions = len(frame_sound(corpus.sounds[0], GRAIN, 256))
    middle = range(int(0.5 * SR) // 256 + 4, int(1.5 * SR) // 256)
    assert positions and not positions & set(middle)
    assert corpus.counts["silent_grains"] == all_positions - len(positions) >= len(middle)
    assert np.all(_rms(corpus.grains) >= SILENT_GRAIN_RMS)


def test_folder_resamples_a_44k_stereo_file(tmp_path: Path) -> None:
    t = np.arange(44100) / 44100
    left, right = np.sin(2 * np.pi * 1000 * t), 0.5 * np.sin(2 * np.pi * 1000 * t)
    _write(tmp_path / "db" / "stereo.wav", np.stack([left, right], axis=1).astype(np.float32), 44100)
    corpus = load_grains(tmp_path / "db", sample_rate=SR, grain_size=2048, log=_quiet)
    (sound,) = corpus.sounds
    assert abs(len(sound) - SR) <= 2 and corpus.grains.shape[1] == 2048 and corpus.hop == 512
    spectrum = np.abs(np.fft.rfft(sound[2000:-2000].astype(np.float64)))
    assert abs(np.fft.rfftfreq(len(sound) - 4000, 1.0 / SR)[np.argmax(spectrum)] - 1000.0) < 2.0
    assert abs(float(np.max(np.abs(sound))) - PEAK) < 1e-3


def test_long_file_grains_past_the_kept_sound_are_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audio = _sine(2.0) * np.linspace(0.2, 1.0, 2 * SR, dtype=np.float32)  # each grain differs in level
    _write(tmp_path / "db" / "long.wav", audio)
    whole = load_grains(tmp_path / "db", sample_rate=SR, log=_quiet)
    monkeypatch.setattr(grains_module, "MAX_SOUND_S", 0.5)
    kept = load_grains(tmp_path / "db", sample_rate=SR, log=_quiet)
    assert len(kept.sounds[0]) == SR // 2 and len(whole.sounds[0]) == 2 * SR
    assert np.array_equal(kept.grains, whole.grains) and np.array_equal(kept.position, whole.position)


def test_one_line_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no sounds")
    unusable = tmp_path / "unusable"
    _write(unusable / "silent.wav", np.zeros(4000, dtype=np.float32))
    (unusable / "bad.wav").write_bytes(b"garbage")
    cases = [
        (tmp_path / "missing", {}, "does not exist"),
        (empty / "readme.txt", {}, "not a folder"),
        (empty, {}, "no audio files"),
        (unusable, {}, "none of the 2 audio files is usable (1 unreadable, 0 too short, 1 silent)"),
        (unusable, {"hop": 1024}, "hop = 1024"),
        (unusable, {"grain_size": 16}, "grain_size = 16"),
        (unusable, {"max_grains": 0}, "max_grains = 0"),
    ]
    for db, settings, words in cases:
        with pytest.raises(UserError) as error:
            load_grains(db, sample_rate=SR, log=_quiet, **settings)
        message = str(error.value)
        assert "\n" not in message and words in message, message
        assert settings or str(db) in message


def test_cache_hit_and_rebuild_on_change(tmp_path: Path) -> None:
    db, cache = tmp_path / "db", tmp_path / "cache"
    _write(db / "a.wav", _sine(0.4))
    _write(db / "b.wav", _sine(0.6, 330.0))
    first_log: list[str] = []
    first = load_grains(db, sample_rate=SR, cache_dir=cache, log=first_log.append)
    assert any("wrote cache" in line for line in first_log)
    hit_log: list[str] = []
    hit = load_grains(db, sample_rate=SR, cache_dir=cache, log=hit_log.append)
    assert any("loaded cache" in line for line in hit_log)
    assert np.array_equal(hit.grains, first.grains) and np.array_equal(hit.position, first.position)
    assert (
        np.array_equal(hit.sound, first.sound) and hit.sources == first.sources and hit.groups == first.groups
    )
    assert all(np.array_equal(a, b) for a, b in zip(hit.sounds, first.sounds, strict=True))
    assert hit.counts == first.counts and hit.hop == first.hop
    _write(db / "b.wav", _sine(0.8, 330.0))  # a changed file changes the key
    changed_log: list[str] = []
    changed = load_grains(db, sample_rate=SR, cache_dir=cache, log=changed_log.append)
    assert not any("loaded cache" in line for line in changed_log) and len(changed.sounds[1]) == int(0.8 * SR)
    other_hop: list[str] = []
    load_grains(db, sample_rate=SR, hop=512, cache_dir=cache, log=other_hop.append)
    assert not any("loaded cache" in line for line in other_hop)

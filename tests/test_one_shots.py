"""The one-shot corpus: the procedural drum synthesiser, the SoundFont kits and user folders."""

from pathlib import Path

import numpy as np
import pytest
import soundfile

from latentlive.core.errors import UserError
from latentlive.corpus.drum_synth import (
    CLASS_FACTORS,
    FACTOR_NAMES,
    PEAK,
    SYNTH_CLASSES,
    generate_synth_corpus,
    synthesise,
)
from latentlive.corpus.one_shots import (
    ONSET_PREROLL_S,
    SKIP_KEYS,
    OneShotCorpus,
    load_one_shots,
    prepare_one_shot,
    split_one_shots,
)
from latentlive.corpus.soundfont_kit import (
    SOUNDFONT_PARAM_NAMES,
    kit_sounds,
    render,
    soundfont_one_shots,
    soundfont_one_shots_per_class,
)
from latentlive.corpus.splits import SIDES

SR = 22050
LENGTH = 4096


def _centroid(x: np.ndarray, sample_rate: int = SR) -> float:
    power = np.abs(np.fft.rfft(x)) ** 2
    return float(np.sum(power * np.fft.rfftfreq(len(x), 1.0 / sample_rate)) / np.sum(power))


def _zero_crossings(x: np.ndarray) -> int:
    return int(np.count_nonzero(np.diff(np.signbit(x))))


def _tail_energy(x: np.ndarray, after_s: float, sample_rate: int = SR) -> float:
    return float(np.sum(x[int(after_s * sample_rate) :] ** 2) / np.sum(x**2))


def _mean_over_seeds(measure, class_name: str, factors: dict[str, float], length: int = LENGTH) -> float:
    return float(np.mean([measure(synthesise(class_name, factors, SR, length, seed=s)) for s in range(3)]))


# --- the procedural synthesiser ---------------------------------------------------------------------


def test_synth_corpus_is_deterministic_for_a_seed():
    first = generate_synth_corpus(2, SR, LENGTH, seed=5)
    again = generate_synth_corpus(2, SR, LENGTH, seed=5)
    other = generate_synth_corpus(2, SR, LENGTH, seed=6)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(first[0], other[0])


def test_synth_corpus_has_every_class_with_its_factors_stored_in_range():
    audio, classes, factors = generate_synth_corpus(3, SR, LENGTH, seed=0)
    assert audio.shape == (3 * len(SYNTH_CLASSES), LENGTH) and audio.dtype == np.float32
    assert classes.dtype == np.int64 and factors.shape == (len(audio), len(FACTOR_NAMES))
    np.testing.assert_array_equal(np.bincount(classes), [3] * len(SYNTH_CLASSES))
    assert np.all(np.isfinite(audio))
    np.testing.assert_allclose(np.abs(audio).max(axis=1), PEAK, rtol=1e-5)
    for row, class_index in zip(factors, classes, strict=True):
        has = {FACTOR_NAMES[i] for i in np.flatnonzero(~np.isnan(row))}
        assert has == set(CLASS_FACTORS[SYNTH_CLASSES[class_index]])
        assert np.all((row[~np.isnan(row)] >= 0) & (row[~np.isnan(row)] <= 1))
    # the sounds start at once, with no lead-in of silence
    assert np.all(np.abs(audio[:, : int(0.003 * SR)]).max(axis=1) > 0.01 * PEAK)


def test_synth_factors_move_what_they_name():
    def higher(measure, class_name, factor, length=LENGTH):
        low = _mean_over_seeds(measure, class_name, {factor: 0.0}, length)
        high = _mean_over_seeds(measure, class_name, {factor: 1.0}, length)
        return high > low

    assert higher(_zero_crossings, "kick", "pitch")
    assert higher(_zero_crossings, "tom", "pitch")
    assert higher(_zero_crossings, "rim", "pitch")
    assert higher(_centroid, "closed_hat", "brightness")
    assert higher(_centroid, "snare", "brightness")
    assert higher(_centroid, "clap", "brightness")
    assert higher(_centroid, "snare", "noise_mix")
    for class_name in ("kick", "snare", "open_hat", "tom", "cymbal"):
        assert higher(lambda x: _tail_energy(x, 0.1), class_name, "decay", length=8192), class_name
    # a deep sweep starts the kick high: more zero crossings in its first 20 ms
    assert higher(lambda x: _zero_crossings(x[: int(0.02 * SR)]), "kick", "sweep_depth")
    # the beater click puts energy above 2 kHz into the first 10 ms
    assert higher(lambda x: _centroid(x[: int(0.01 * SR)]), "kick", "click")


def test_synthesise_rejects_unknown_classes_factors_and_values():
    with pytest.raises(ValueError, match="unknown drum class"):
        synthesise("cowbell", {}, SR, LENGTH)
    with pytest.raises(ValueError, match="spread"):
        synthesise("kick", {"spread": 0.5}, SR, LENGTH)
    with pytest.raises(ValueError, match="0..1"):
        synthesise("kick", {"pitch": 1.5}, SR, LENGTH)


# --- the SoundFont kits -----------------------------------------------------------------------------


def test_soundfont_kits_cover_every_class_with_audible_sounds():
    sounds = kit_sounds()
    assert {sound.class_name for sound in sounds} == set(SYNTH_CLASSES)
    assert {35, 36} & {s.note for s in sounds if s.class_name == "kick" and s.program == 0}
    standard = [s for s in sounds if s.program == 0]
    for sound in standard:
        x = render(sound, SR, LENGTH)
        assert np.all(np.isfinite(x)) and np.abs(x).max() > 0.01, (sound.note, sound.class_name)


def test_soundfont_notes_play_at_their_pitch():
    # The Standard kit plays one tom sample on six notes: the higher note sounds higher.
    toms = {s.note: s for s in kit_sounds(programs=(0,)) if s.class_name == "tom"}
    low, high = render(toms[41], SR, LENGTH), render(toms[50], SR, LENGTH)
    assert _zero_crossings(high) > 1.3 * _zero_crossings(low)
    down, up = render(toms[45], SR, LENGTH, pitch_shift=-3.0), render(toms[45], SR, LENGTH, pitch_shift=3.0)
    assert _zero_crossings(up) > 1.2 * _zero_crossings(down)


def test_soundfont_variants_are_augmented_and_their_parameters_stored():
    audio, classes, params, groups = soundfont_one_shots(
        SR, LENGTH, variants_per_note=2, seed=0, programs=(0,)
    )
    assert audio.shape == (len(classes), LENGTH) and params.shape == (
        len(classes),
        len(SOUNDFONT_PARAM_NAMES),
    )
    np.testing.assert_allclose(np.abs(audio).max(axis=1), PEAK, rtol=1e-5)
    dry, augmented = params[0::2], params[1::2]
    assert np.all(dry[:, 1] == 0) and np.all(np.isnan(dry[:, 2:]))
    pitch = augmented[:, SOUNDFONT_PARAM_NAMES.index("pitch_semitones")]
    assert np.all(np.abs(pitch) <= 3.0) and np.all(pitch != 0)
    assert np.all(np.abs(audio[0::2] - audio[1::2]).max(axis=1) > 0.05)
    np.testing.assert_array_equal(classes[0::2], classes[1::2])
    assert groups[0::2] == groups[1::2]  # a variant keeps the group of its sound
    for name in ("decay_t60_s", "lowpass_hz", "highpass_hz"):  # each augmentation is drawn somewhere
        assert np.any(~np.isnan(augmented[:, SOUNDFONT_PARAM_NAMES.index(name)])), name


def test_soundfont_per_class_is_balanced():
    audio, classes, _, groups = soundfont_one_shots_per_class(SR, 2048, examples_per_class=5, seed=1)
    np.testing.assert_array_equal(np.bincount(classes), [5] * len(SYNTH_CLASSES))
    assert np.all(np.abs(audio).max(axis=1) > 0.5)
    assert len(groups) == len(audio) and all(group.startswith("sf2:TimGM6mb/") for group in groups)


def test_soundfont_groups_are_samples_shared_across_notes_and_kits():
    sounds = kit_sounds()
    # the Standard kit plays one tom sample on six notes, and the Power, Room and Brush kits play it again
    toms = [s for s in sounds if s.class_name == "tom" and s.program in (0, 8, 16, 40)]
    assert len(toms) >= 12 and {s.group for s in toms} == {"sf2:TimGM6mb/Acoustic Tom"}
    # a layered sound goes with its loudest sample (the Power kit's toms add a quiet reverb layer)
    power_tom = next(s for s in sounds if s.program == 8 and s.note == 45)
    assert len(power_tom.zones) == 2 and power_tom.group == "sf2:TimGM6mb/Acoustic Tom"
    assert len({s.group for s in sounds}) > len(SYNTH_CLASSES)  # enough samples to hold some out


# --- preparing a sound ------------------------------------------------------------------------------


def test_prepare_one_shot_trims_crops_pads_and_rejects():
    rng = np.random.default_rng(0)
    lead = np.zeros(1000)
    burst = rng.standard_normal(2 * LENGTH) * np.exp(-np.arange(2 * LENGTH) / 3000)
    cropped = prepare_one_shot(np.concatenate([lead, 0.1 * burst]), SR, LENGTH)
    assert cropped.shape == (LENGTH,) and cropped.dtype == np.float32
    assert np.isclose(np.abs(cropped).max(), PEAK) and abs(cropped[-1]) < 1e-3  # faded at the crop
    onset = np.flatnonzero(np.abs(cropped) >= 0.01 * PEAK)[0]
    assert abs(onset - ONSET_PREROLL_S * SR) <= 2
    padded = prepare_one_shot(burst[:1000], SR, LENGTH)
    assert padded.shape == (LENGTH,) and np.all(padded[1000:] == 0)
    assert prepare_one_shot(np.zeros(LENGTH), SR, LENGTH) == "silent"
    assert prepare_one_shot(burst[:100], SR, LENGTH) == "too_short"
    click = np.zeros(LENGTH)
    click[500:520] = 1.0  # under 10 ms of signal in a long file
    assert prepare_one_shot(click, SR, LENGTH) == "too_short"


# --- user folders -----------------------------------------------------------------------------------


def _tone(sample_rate: int, seconds: float, hz: float) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (0.5 * np.sin(2 * np.pi * hz * t) * np.exp(-t / 0.1)).astype(np.float32)


@pytest.fixture
def one_shot_folder(tmp_path: Path) -> Path:
    db = tmp_path / "my one-shots"
    for sub in ("kick", "snare/deeper", ".hidden"):
        (db / sub).mkdir(parents=True)
    kick = np.concatenate([np.zeros(int(0.05 * 44100), np.float32), _tone(44100, 0.5, 1000.0)])
    soundfile.write(db / "kick" / "a.wav", np.stack([kick, 0.5 * kick], axis=1), 44100)  # stereo
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, 8000).astype(np.float32)
    soundfile.write(db / "snare" / "b.flac", noise, 16000)
    soundfile.write(db / "snare" / "deeper" / "c.wav", _tone(48000, 0.2, 3000.0), 48000)
    soundfile.write(db / "kick" / "silent.wav", np.zeros(22050, np.float32), 22050)
    soundfile.write(db / "kick" / "short.wav", _tone(44100, 0.005, 500.0), 44100)
    (db / "snare" / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio")
    (db / "kick" / "notes.txt").write_text("not audio")
    soundfile.write(db / ".hidden" / "x.wav", _tone(22050, 0.2, 300.0), 22050)
    return db


def test_folder_corpus_reads_classes_and_counts_skips(one_shot_folder: Path):
    lines: list[str] = []
    corpus = load_one_shots(one_shot_folder, sample_rate=SR, length=LENGTH, log=lines.append)
    assert corpus.class_names == ["kick", "snare"]
    np.testing.assert_array_equal(corpus.classes, [0, 1, 1])
    assert corpus.audio.shape == (3, LENGTH) and corpus.audio.dtype == np.float32
    np.testing.assert_allclose(np.abs(corpus.audio).max(axis=1), PEAK, rtol=1e-5)
    assert corpus.skipped == {"unreadable_files": 1, "too_short": 1, "silent": 1, "non_audio_files": 1}
    assert list(corpus.skipped) == list(SKIP_KEYS)
    assert corpus.factors.shape == (3, len(FACTOR_NAMES)) and np.all(np.isnan(corpus.factors))
    assert corpus.source == str(one_shot_folder)
    kick = corpus.audio[0]
    # 50 ms of leading silence trimmed to the pre-roll; the 1 kHz tone survived the 44.1 -> 22.05 kHz resampling
    onset = np.flatnonzero(np.abs(kick) >= 0.01 * PEAK)[0]
    assert abs(onset - ONSET_PREROLL_S * SR) <= 3
    crossings = _zero_crossings(kick[onset : onset + 2048])
    assert abs(crossings - 2 * 1000 * 2048 / SR) <= 4
    assert any("corrupt.wav" in line for line in lines)
    assert any("class snare: 2 sounds" in line for line in lines)


def test_folder_corpus_is_cached_and_rebuilt_when_a_file_changes(one_shot_folder: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    first = load_one_shots(
        one_shot_folder, sample_rate=SR, length=LENGTH, cache_dir=cache, log=lambda _: None
    )
    lines: list[str] = []
    again = load_one_shots(one_shot_folder, sample_rate=SR, length=LENGTH, cache_dir=cache, log=lines.append)
    assert any("loaded cache" in line for line in lines)
    np.testing.assert_array_equal(first.audio, again.audio)
    assert again.class_names == first.class_names and again.skipped == first.skipped
    soundfile.write(one_shot_folder / "snare" / "d.wav", _tone(22050, 0.3, 700.0), 22050)
    lines.clear()
    grown = load_one_shots(one_shot_folder, sample_rate=SR, length=LENGTH, cache_dir=cache, log=lines.append)
    assert not any("loaded cache" in line for line in lines) and len(grown) == 4
    assert not list(cache.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_builtin_corpus_joins_synth_and_soundfont_sounds_and_caches(tmp_path: Path):
    corpus = load_one_shots(
        None, sample_rate=SR, length=2048, examples_per_class=3, cache_dir=tmp_path, log=lambda _: None
    )
    assert corpus.class_names == list(SYNTH_CLASSES) and corpus.source == "builtin"
    np.testing.assert_array_equal(np.bincount(corpus.classes), [6] * len(SYNTH_CLASSES))
    synthesised = ~np.all(np.isnan(corpus.factors), axis=1)
    assert synthesised.sum() == 3 * len(SYNTH_CLASSES)
    np.testing.assert_allclose(np.abs(corpus.audio).max(axis=1), PEAK, rtol=1e-5)
    lines: list[str] = []
    cached = load_one_shots(
        None, sample_rate=SR, length=2048, examples_per_class=3, cache_dir=tmp_path, log=lines.append
    )
    assert any("loaded cache" in line for line in lines)
    np.testing.assert_array_equal(cached.audio, corpus.audio)
    np.testing.assert_array_equal(cached.factors, corpus.factors)


def _error(db: Path) -> str:
    with pytest.raises(UserError) as caught:
        load_one_shots(db, sample_rate=SR, length=LENGTH, log=lambda _: None)
    message = str(caught.value)
    assert str(db) in message and "\n" not in message
    return message


def test_bad_folders_fail_with_one_line_naming_the_path(tmp_path: Path):
    assert "does not exist" in _error(tmp_path / "missing")
    a_file = tmp_path / "file.wav"
    soundfile.write(a_file, _tone(22050, 0.2, 300.0), 22050)
    assert "not a folder" in _error(a_file)
    empty = tmp_path / "empty"
    (empty / "kick").mkdir(parents=True)
    (empty / "kick" / "readme.txt").write_text("no audio here")
    assert "no audio files" in _error(empty)
    loose = tmp_path / "loose"
    loose.mkdir()
    soundfile.write(loose / "kick.wav", _tone(22050, 0.2, 60.0), 22050)
    assert "sub-folder" in _error(loose)
    useless = tmp_path / "useless"
    (useless / "kick").mkdir(parents=True)
    soundfile.write(useless / "kick" / "silent.wav", np.zeros(4096, np.float32), 22050)
    (useless / "kick" / "broken.flac").write_bytes(b"fLaC garbage")
    assert "none of the 2 audio files is usable" in _error(useless)


def test_bad_settings_fail_with_one_line():
    with pytest.raises(UserError, match="sample_rate"):
        load_one_shots(None, sample_rate=1000, log=lambda _: None)
    with pytest.raises(UserError, match="examples_per_class"):
        load_one_shots(None, examples_per_class=0, log=lambda _: None)


# --- splits by source -------------------------------------------------------------------------------


def _groups_on_two_sides(groups: list[str], indices: dict[str, np.ndarray]) -> set[str]:
    """The groups that have sounds on more than one side of a split."""
    seen: dict[str, set[str]] = {}
    for side, index in indices.items():
        for i in index:
            seen.setdefault(groups[i], set()).add(side)
    return {group for group, sides in seen.items() if len(sides) > 1}


def _check_split(corpus: OneShotCorpus, indices: dict[str, np.ndarray], kind: str) -> None:
    """No group of ``kind`` on two sides; every sound on one side; held-out sounds of that kind exist."""
    mine = [i for i, group in enumerate(corpus.groups) if group.startswith(kind + ":")]
    assert mine, kind
    sides = {side: np.intersect1d(index, mine) for side, index in indices.items()}
    assert _groups_on_two_sides(corpus.groups, sides) == set(), kind
    assert sorted(np.concatenate(list(indices.values())).tolist()) == list(range(len(corpus)))
    assert len(sides["validation"]) and len(sides["test"]), kind


@pytest.fixture(scope="module")
def builtin_corpus() -> OneShotCorpus:
    return load_one_shots(None, sample_rate=SR, length=2048, examples_per_class=24, log=lambda _: None)


def test_the_leak_check_fails_on_a_split_of_sounds_at_random(builtin_corpus: OneShotCorpus):
    """The old split (sounds shuffled, 10 % held out) puts variants of one soundfont sample on both sides."""
    order = np.random.default_rng(0).permutation(len(builtin_corpus))
    held = len(order) // 10
    leaky = {"train": order[2 * held :], "validation": order[:held], "test": order[held : 2 * held]}
    assert any(g.startswith("sf2:") for g in _groups_on_two_sides(builtin_corpus.groups, leaky))
    with pytest.raises(AssertionError):
        _check_split(builtin_corpus, leaky, "sf2")


@pytest.mark.parametrize("kind", ["synth", "sf2"])
def test_no_procedural_voice_or_soundfont_sample_is_on_two_sides(builtin_corpus: OneShotCorpus, kind: str):
    lines: list[str] = []
    split, indices = split_one_shots(builtin_corpus, (0.8, 0.1, 0.1), seed=3, log=lines.append)
    _check_split(builtin_corpus, indices, kind)
    assert split.seed == 3 and set(split.groups) == set(SIDES)
    for side in SIDES:  # the split names the groups of the sounds on each side
        assert set(split.groups[side]) == {builtin_corpus.groups[i] for i in indices[side]}
    # every class keeps procedural sounds on each held-out side
    for side in ("validation", "test"):
        assert len(set(builtin_corpus.classes[indices[side]].tolist())) == len(SYNTH_CLASSES)
    again, _ = split_one_shots(builtin_corpus, (0.8, 0.1, 0.1), seed=3, log=lambda _: None)
    other, _ = split_one_shots(builtin_corpus, (0.8, 0.1, 0.1), seed=4, log=lambda _: None)
    assert again == split and other.groups != split.groups


def _write_kit(db: Path, files_per_class: dict[str, int]) -> None:
    for c, (class_name, count) in enumerate(files_per_class.items()):
        for i in range(count):
            folder = db / class_name / ("layered" if i % 2 else "")
            folder.mkdir(parents=True, exist_ok=True)
            soundfile.write(folder / f"{i}.wav", _tone(22050, 0.2, 200.0 * (c + 1) + 30 * i), 22050)


def test_no_user_file_is_on_two_sides_and_every_class_holds_some_out(tmp_path: Path):
    _write_kit(tmp_path / "kit", {"kick": 4, "snare": 5, "closed_hat": 3, "cowbell": 1})
    lines: list[str] = []
    corpus = load_one_shots(tmp_path / "kit", sample_rate=SR, length=LENGTH, log=lines.append)
    assert "file:snare/layered/1.wav" in corpus.groups and len(set(corpus.groups)) == len(corpus)
    split, indices = split_one_shots(corpus, (0.8, 0.1, 0.1), seed=0, log=lines.append)
    _check_split(corpus, indices, "file")
    held_out = {corpus.class_names[c] for c in corpus.classes[indices["validation"]]}
    assert held_out == {"kick", "snare", "closed_hat"}  # the lone cowbell trains, and a line says so
    assert any("class cowbell has one file source (file:cowbell/0.wav)" in line for line in lines)


def test_classes_of_one_file_each_hold_out_a_whole_class(tmp_path: Path):
    _write_kit(tmp_path / "kit", {"kick": 1, "snare": 1})
    lines: list[str] = []
    corpus = load_one_shots(tmp_path / "kit", sample_rate=SR, length=LENGTH, log=lines.append)
    _, indices = split_one_shots(corpus, (0.8, 0.2, 0.0), seed=0, log=lines.append)
    assert [len(indices[side]) for side in SIDES] == [1, 1, 0]
    assert any("holding out whole classes" in line for line in lines)


def test_the_cache_keeps_the_groups(tmp_path: Path):
    _write_kit(tmp_path / "kit", {"kick": 2, "snare": 2})
    first = load_one_shots(
        tmp_path / "kit", sample_rate=SR, length=LENGTH, cache_dir=tmp_path / "c", log=print
    )
    lines: list[str] = []
    cached = load_one_shots(
        tmp_path / "kit", sample_rate=SR, length=LENGTH, cache_dir=tmp_path / "c", log=lines.append
    )
    assert any("loaded cache" in line for line in lines)
    assert (
        cached.groups
        == first.groups
        == ["file:kick/0.wav", "file:kick/layered/1.wav", "file:snare/0.wav", "file:snare/layered/1.wav"]
    )

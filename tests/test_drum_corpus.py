"""The drum data: GM map, MIDI reading and quantisation, the style generator, the corpus loader and its cache."""

import os
import struct
from pathlib import Path

import mido
import numpy as np
import pytest

from latentlive.core.errors import UserError
from latentlive.corpus.drum_corpus import DrumCorpus, drum_statistics, load_drum_corpus
from latentlive.corpus.drum_map import DEFAULT_NOTES, INSTRUMENT_NAMES, NOTE_TO_CLASS, note_to_class
from latentlive.corpus.drum_midi import UnreadableMidiError, drum_examples_from_midi, read_drum_midi
from latentlive.corpus.drum_styles import (
    STYLE_BPM,
    STYLE_NAMES,
    generate_pattern,
    generate_style_corpus,
    write_midi,
)

K, S, CH, OH, LT, MT, HT, CR, RD = range(9)
TPQ = 96  # not 480, so nothing depends on the writer's resolution
BAR = 4 * TPQ
SIXTEENTH = TPQ // 4


def quiet(_: str) -> None:
    pass


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        assert "\n" not in line
        self.lines.append(line)


def midi_file(tracks: list[list[tuple[int, mido.Message]]], midi_type: int = 1) -> mido.MidiFile:
    """A mido file from tracks of (absolute tick, message)."""
    midi = mido.MidiFile(type=midi_type, ticks_per_beat=TPQ)
    for events in tracks:
        track = mido.MidiTrack()
        now = 0
        for tick, message in sorted(events, key=lambda event: event[0]):
            track.append(message.copy(time=tick - now))
            now = tick
        midi.tracks.append(track)
    return midi


def hit(tick: int, note: int, channel: int = 9, velocity: int = 100) -> list[tuple[int, mido.Message]]:
    return [
        (tick, mido.Message("note_on", channel=channel, note=note, velocity=velocity)),
        (tick + 10, mido.Message("note_off", channel=channel, note=note, velocity=0)),
    ]


def meta(tick: int, kind: str, **fields) -> tuple[int, mido.MetaMessage]:
    return (tick, mido.MetaMessage(kind, **fields))


# --- the GM map -------------------------------------------------------------------------------


def test_gm_map_classes_default_notes_and_coverage():
    assert INSTRUMENT_NAMES == (
        "kick", "snare", "closed_hat", "open_hat", "low_tom", "mid_tom", "high_tom", "crash", "ride",
    )  # fmt: skip
    assert DEFAULT_NOTES == (36, 38, 42, 46, 45, 47, 50, 49, 51)
    assert [note_to_class(n) for n in DEFAULT_NOTES] == list(range(9))
    # Every GM / GM2 percussion key and the e-kit hat edges has a class.
    for note in [*range(27, 88), 22, 26]:
        assert note_to_class(note) in range(9), note
    expected = {35: K, 36: K, 37: S, 39: S, 40: S, 22: CH, 44: CH, 26: OH, 41: LT, 43: LT, 48: MT}
    expected |= {57: CR, 52: CR, 55: CR, 59: RD, 53: RD}
    assert {note: note_to_class(note) for note in expected} == expected
    assert note_to_class(21) is None and note_to_class(88) is None and note_to_class(0) is None
    assert set(NOTE_TO_CLASS) == {*range(27, 88), 22, 26}


# --- reading and quantising MIDI ------------------------------------------------------------------


def tempo_meter_file() -> tuple[mido.MidiFile, np.ndarray, np.ndarray]:
    """Bars: 0, 1 in 4/4 (tempo change in bar 1), 2 in 3/4, 3 and 5 in 4/4 with hits, 4 empty.

    Returns the file, the expected grids of the usable bars, uint8 [3, 9, 16], and their offsets in 16ths.
    """
    three_four_start = 2 * BAR
    after = three_four_start + 3 * TPQ  # 4/4 again after one 3/4 bar
    conductor = [
        meta(0, "set_tempo", tempo=mido.bpm2tempo(120)),
        meta(0, "time_signature", numerator=4, denominator=4),
        meta(BAR + 6 * SIXTEENTH, "set_tempo", tempo=mido.bpm2tempo(97)),  # mid-bar tempo change
        meta(three_four_start, "time_signature", numerator=3, denominator=4),
        meta(after, "time_signature", numerator=4, denominator=4),
    ]
    expected = np.zeros((3, 9, 16), dtype=np.uint8)
    offsets = np.zeros((3, 9, 16), dtype=np.float32)
    drums: list = [meta(0, "track_name", name="Kit")]

    def play(bar_start: int, bar: int, cls: int, step: int, offset: int = 0, note: int | None = None) -> None:
        drums.extend(hit(bar_start + step * SIXTEENTH + offset, note or DEFAULT_NOTES[cls]))
        expected[bar, cls, step] = 1
        offsets[bar, cls, step] = offset / SIXTEENTH

    play(0, 0, K, 0)
    play(0, 0, S, 4, offset=-3)  # early
    play(0, 0, CH, 2, offset=+5)  # late
    play(0, 0, CH, 7, offset=-11)  # early by almost half a 16th (12 ticks): still step 7
    play(0, 0, K, 10, offset=+11)
    play(BAR, 1, CR, 0, offset=-4)  # just before bar 1: crash on its step 0, early
    play(BAR, 1, K, 8)
    play(BAR, 1, S, 12, offset=2)
    play(BAR, 1, CH, 14, note=44)  # pedal hat -> closed hat
    drums.extend(hit(three_four_start + 4, 36) + hit(three_four_start + 6 * SIXTEENTH, 38))  # the 3/4 bar
    play(after, 2, OH, 0, offset=-3)  # just before the 4/4 bar: its step 0
    play(after, 2, RD, 6)
    play(after, 2, LT, 15, offset=4)
    # bar 4 (after + BAR) is empty; bar 5 has one hit.
    drums.extend(hit(after + 2 * BAR + 4 * SIXTEENTH, 40))
    piano = [meta(0, "track_name", name="Piano")]
    for step in range(0, 96, 3):  # a piano on channel 1 playing kick/snare pitches: ignored
        piano.extend(hit(step * SIXTEENTH, 36 + step % 5, channel=0))
    return midi_file([conductor, drums, piano]), expected, offsets


def test_quantisation_tempo_change_meter_and_offsets(tmp_path):
    midi, expected, offsets = tempo_meter_file()
    path = tmp_path / "song.mid"
    midi.save(path)
    result = read_drum_midi(path)
    assert result.has_drums
    assert result.grids.dtype == np.uint8 and result.velocities.dtype == np.float32
    # Usable bars: 0, 1, 3 (the 4/4 bar after 3/4) and 5; bar 5 has one snare on step 4.
    last = np.zeros((1, 9, 16), dtype=np.uint8)
    last[0, S, 4] = 1
    np.testing.assert_array_equal(result.grids, np.concatenate([expected, last]))
    assert result.counts == {
        "bars_used": 4, "non_4_4_bars": 1, "empty_bars": 1, "leftover_bars": 0, "merged_notes": 0,
    }  # fmt: skip
    assert np.allclose(result.velocities[result.grids == 1], 100 / 127)
    assert np.all(result.velocities[result.grids == 0] == 0)
    np.testing.assert_allclose(result.bpms, [120, 120, 97, 97], rtol=1e-3)  # tempo at each bar's start
    # The microtiming is kept: each hit's offset from its step in 16ths, 0 where no hit.
    assert result.offsets.dtype == np.float32 and result.offsets.shape == result.grids.shape
    np.testing.assert_allclose(result.offsets, np.concatenate([offsets, np.zeros((1, 9, 16))]), atol=1e-6)
    assert result.offsets[0, CH, 7] == pytest.approx(-11 / 24) and result.offsets[0, K, 10] == pytest.approx(
        11 / 24
    )


def test_multi_bar_examples_are_consecutive_bars(tmp_path):
    midi, expected, offsets = tempo_meter_file()
    result = drum_examples_from_midi(midi, bars_per_example=2)
    # Runs of usable bars: [0, 1], [3], [5] -> one 2-bar example, two bars left over.
    assert result.grids.shape == (1, 9, 32)
    np.testing.assert_array_equal(result.grids[0], np.concatenate([expected[0], expected[1]], axis=-1))
    np.testing.assert_allclose(
        result.offsets[0], np.concatenate([offsets[0], offsets[1]], axis=-1), atol=1e-6
    )
    assert result.counts["leftover_bars"] == 2 and result.counts["bars_used"] == 2


def test_notes_on_one_cell_merge_into_the_loudest_and_are_counted():
    drums = []
    drums += hit(4 * SIXTEENTH - 5, 38, velocity=40) + hit(4 * SIXTEENTH, 38, velocity=110)  # a flam
    drums += hit(8 * SIXTEENTH, 42, velocity=80) + hit(8 * SIXTEENTH + 2, 44, velocity=80)  # one class, tie
    drums += hit(0, 36, velocity=70) + hit(11, 36, velocity=90)  # a 32nd double kick: the later is louder
    drums += hit(12 * SIXTEENTH, 38) + hit(
        13 * SIXTEENTH - 12, 38, velocity=50
    )  # half a 16th late: next step
    drums += hit(BAR + 4 * SIXTEENTH, 38)  # bar 1, one note
    in_three_four = [*hit(2 * BAR, 36), *hit(2 * BAR + 1, 36)]  # a 3/4 bar: not used, not counted
    conductor = [meta(2 * BAR, "time_signature", numerator=3, denominator=4)]
    result = drum_examples_from_midi(midi_file([conductor, drums + in_three_four]))
    assert result.counts["merged_notes"] == 3 and result.counts["bars_used"] == 2
    grid, velocity, offset = result.grids[0], result.velocities[0], result.offsets[0]
    assert grid.sum() == 5 and grid[S, 4] == grid[CH, 8] == grid[K, 0] == grid[S, 12] == grid[S, 13] == 1
    assert velocity[S, 4] == pytest.approx(110 / 127) and offset[S, 4] == 0  # the loudest note of the flam
    assert velocity[CH, 8] == pytest.approx(80 / 127) and offset[CH, 8] == 0  # equally loud: the earliest
    assert velocity[K, 0] == pytest.approx(90 / 127) and offset[K, 0] == pytest.approx(11 / 24)
    assert offset[S, 13] == pytest.approx(-0.5) and velocity[S, 13] == pytest.approx(50 / 127)
    # One note per cell: nothing merged.
    assert drum_examples_from_midi(midi_file([hit(0, 36) + hit(SIXTEENTH, 36)])).counts["merged_notes"] == 0


def test_write_midi_round_trips_hits_velocities_and_offsets(tmp_path):
    rng = np.random.default_rng(3)
    grid = (rng.random((9, 32)) < 0.3).astype(np.uint8)
    grid[:, 0] = 0  # the first step of a file cannot be early
    velocities = np.where(grid == 1, rng.uniform(1 / 127, 1.0, grid.shape), 0).astype(np.float32)
    offsets = np.where(grid == 1, rng.uniform(-0.5, 0.5, grid.shape), 0).astype(np.float32)
    edges = tuple(np.argwhere(grid == 1)[:2].T)
    offsets[edges] = (-0.5, 0.5)  # both edges of a step
    path = write_midi(grid, velocities, tmp_path / "played.mid", bpm=97, offsets=offsets)
    result = read_drum_midi(path, bars_per_example=2)
    assert result.counts["merged_notes"] == 0
    np.testing.assert_array_equal(result.grids[0], grid)
    tick = 1 / 120  # of a 16th, at the writer's 480 ticks a beat
    assert np.abs(result.velocities[0] - velocities).max() <= 0.5 / 127 + 1e-6
    assert np.abs(result.offsets[0] - offsets).max() <= tick + 1e-6
    # without offsets the notes sit on the grid
    plain = read_drum_midi(write_midi(grid, velocities, tmp_path / "grid.mid", bpm=97), bars_per_example=2)
    assert np.all(plain.offsets == 0) and np.array_equal(plain.grids[0], grid)


def test_channel_rules_named_tracks_and_single_channel_loops():
    pattern = [(0, 36), (4, 38), (8, 36), (12, 38)] + [(s, 42) for s in range(0, 16, 2)]

    def loop(channel: int, name: str | None) -> mido.MidiFile:
        track = [meta(0, "track_name", name=name)] if name else []
        for step, note in pattern:
            track.extend(hit(step * SIXTEENTH, note, channel=channel))
        return midi_file([track])

    expected = np.zeros((9, 16), dtype=np.uint8)
    for step, note in pattern:
        expected[note_to_class(note), step] = 1
    for channel, name in [(9, None), (3, "Drums"), (0, None), (5, "Percussion kit")]:
        result = drum_examples_from_midi(loop(channel, name))
        assert result.has_drums, (channel, name)
        np.testing.assert_array_equal(result.grids[0], expected)

    # Channel 10 wins: the other channels are ignored even when their notes map to drums.
    mixed = [hit(0, 36)[0], *hit(4 * SIXTEENTH, 38, channel=0), *hit(8 * SIXTEENTH, 42, channel=2)]
    result = drum_examples_from_midi(midi_file([mixed]))
    assert result.grids.shape == (1, 9, 16) and result.grids.sum() == 1 and result.grids[0, K, 0] == 1

    # A bass line on one channel, and two melodic tracks, are not drums.
    bass = [e for step, note in enumerate([36, 38, 40, 41, 43, 45, 47, 48]) for e in hit(step * TPQ, note, 0)]
    assert not drum_examples_from_midi(midi_file([bass])).has_drums
    two = [hit(0, 36, channel=0), hit(TPQ, 42, channel=1)]
    assert not drum_examples_from_midi(midi_file(two)).has_drums


def raw_midi_with_running_status() -> bytes:
    """A type 0 file assembled by hand: running status across notes, note-on velocity 0 as note-off."""
    events = bytes(
        [0x00, 0xFF, 0x51, 0x03, 0x07, 0xA1, 0x20]  # tempo 120 bpm
        + [0x00, 0x99, 36, 100]  # note-on ch 10 kick, step 0
        + [0x00, 42, 80]  # running status: closed hat, step 0
        + [0x10, 36, 0, 0x00, 42, 0]  # note-offs as velocity 0
        + [0x50, 38, 90]  # tick 96 = step 4 at 96 ticks per beat: snare
        + [0x30, 46, 70]  # tick 144 = step 6: open hat
        + [0x60, 38, 0, 0x00, 46, 0, 0x00, 0xFF, 0x2F, 0x00]
    )
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TPQ)
    return header + b"MTrk" + struct.pack(">I", len(events)) + events


def test_type_0_file_with_running_status(tmp_path):
    path = tmp_path / "raw.mid"
    path.write_bytes(raw_midi_with_running_status())
    result = read_drum_midi(path)
    assert result.grids.shape == (1, 9, 16)
    assert {(int(c), int(s)) for c, s in zip(*np.nonzero(result.grids[0]), strict=True)} == {
        (K, 0), (CH, 0), (S, 4), (OH, 6),
    }  # fmt: skip
    assert result.velocities[0, S, 4] == pytest.approx(90 / 127)


def test_unreadable_file_raises_with_path(tmp_path):
    path = tmp_path / "broken.mid"
    path.write_bytes(b"RIFF not a midi file at all")
    with pytest.raises(UnreadableMidiError, match="broken.mid"):
        read_drum_midi(path)
    truncated = tmp_path / "truncated.mid"
    truncated.write_bytes(raw_midi_with_running_status()[:30])
    with pytest.raises(UserError, match="truncated.mid"):
        read_drum_midi(truncated)


# --- the style generator and the MIDI writer ------------------------------------------------------


def test_generator_is_deterministic_and_has_enough_styles():
    assert len(STYLE_NAMES) >= 8 and len(set(STYLE_NAMES)) == len(STYLE_NAMES)
    assert set(STYLE_BPM) == set(STYLE_NAMES)
    first = generate_style_corpus(20, bars=2, seed=3)
    again = generate_style_corpus(20, bars=2, seed=3)
    other = generate_style_corpus(20, bars=2, seed=4)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    grids, velocities, offsets, styles, groups = first
    assert grids.shape == (20 * len(STYLE_NAMES), 9, 32) and grids.dtype == np.uint8
    assert velocities.dtype == np.float32 and styles.dtype == np.int64
    assert offsets.dtype == np.float32 and offsets.shape == grids.shape
    assert np.all(offsets[grids == 0] == 0) and np.abs(offsets).max() <= 0.5
    # 2-bar examples: 4 to a performance of 8 bars, so 5 performances of one groove per style
    assert groups[0] == "techno/performance-0000" and len(set(groups)) == 5 * len(STYLE_NAMES)
    assert np.all((velocities > 0) == (grids == 1)) and velocities.max() <= 1.0
    a, b = (
        generate_pattern("rock", np.random.default_rng(0)),
        generate_pattern("rock", np.random.default_rng(0)),
    )
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_styles_are_musical_and_distinct():
    grids, _, _, styles, _ = generate_style_corpus(120, bars=1, seed=0)
    name = {n: i for i, n in enumerate(STYLE_NAMES)}
    by_style = {n: grids[styles == i] for n, i in name.items()}
    # Signatures a listener would name the style by.
    assert np.all(by_style["techno"][:, K, [0, 4, 8, 12]] == 1)
    assert np.all(by_style["house"][:, K, [0, 4, 8, 12]] == 1)
    assert np.all(by_style["trap"][:, S, 8] == 1) and not by_style["trap"][:, S, 4].any()
    assert np.all(by_style["rock"][:, K, 0] == 1) and by_style["rock"][:, S, [4, 12]].mean() > 0.95
    assert by_style["dembow"][:, S, [3, 6, 11, 14]].mean() > 0.85
    # Hits are sparse structured choices, not noise: each style repeats a modest set of patterns.
    for n, patterns in by_style.items():
        assert 4 <= patterns.sum(axis=(1, 2)).mean() <= 30, n
        assert len({p.tobytes() for p in patterns}) < len(patterns), n
    # A nearest-centroid classifier, fitted on half, names the style of the other half.
    features = grids.reshape(len(grids), -1).astype(np.float32)
    fit = np.arange(len(grids)) % 2 == 0
    centroids = np.stack([features[fit & (styles == i)].mean(0) for i in range(len(STYLE_NAMES))])
    distances = ((features[~fit, None, :] - centroids[None]) ** 2).sum(-1)
    accuracy = (distances.argmin(1) == styles[~fit]).mean()
    assert accuracy >= 0.85, accuracy


def test_write_midi_round_trip_with_humanize_and_swing(tmp_path):
    rng = np.random.default_rng(7)
    grid, velocities, _ = generate_pattern("breakbeat", rng, bars=4)
    path = write_midi(
        grid, velocities, tmp_path / "sub" / "loop.mid", bpm=132, humanize=1.0, seed=1, swing=0.15
    )
    assert path == tmp_path / "sub" / "loop.mid" and sorted(os.listdir(path.parent)) == ["loop.mid"]
    midi = mido.MidiFile(path)
    assert midi.type == 0
    notes = [m for m in midi.tracks[0] if m.type == "note_on" and m.velocity > 0]
    assert {m.channel for m in notes} == {9} and len(notes) == int(grid.sum())
    tempo = next(m.tempo for m in midi.tracks[0] if m.type == "set_tempo")
    assert mido.tempo2bpm(tempo) == pytest.approx(132, rel=1e-4)
    result = read_drum_midi(path, bars_per_example=4)
    np.testing.assert_array_equal(result.grids[0], grid)
    # Humanized velocities stay near the pattern's.
    assert np.abs(result.velocities[0] - velocities)[grid == 1].mean() < 0.15


# --- the corpus ---------------------------------------------------------------------------------


def write_user_corpus(root: Path) -> dict[str, list[np.ndarray]]:
    """~40 humanized 2-bar files in 3 style folders and one at the top; returns each style's bars."""
    bars: dict[str, list[np.ndarray]] = {}
    rng = np.random.default_rng(11)
    for style, count in [("techno", 13), ("hiphop", 13), ("rock", 13), (None, 1)]:
        folder = root / style if style else root
        label = style or "default"
        for index in range(count):
            grid, velocities, _ = generate_pattern(style or "house", rng, bars=2)
            swing = 0.2 if style == "hiphop" else 0.0
            path = folder / f"groove_{index:02d}.mid"
            write_midi(
                grid, velocities, path, STYLE_BPM[style or "house"], humanize=1.0, seed=index, swing=swing
            )
            bars.setdefault(label, []).extend([grid[:, :16], grid[:, 16:]])
    return bars


def test_user_corpus_of_humanized_files(tmp_path):
    source = write_user_corpus(tmp_path / "db")
    (tmp_path / "db" / "notes.txt").write_text("not midi")
    log = Recorder()
    corpus = load_drum_corpus(tmp_path / "db", log=log)
    assert isinstance(corpus, DrumCorpus)
    assert corpus.style_names == ["default", "hiphop", "rock", "techno"]
    assert corpus.source == str(tmp_path / "db")
    assert corpus.grids.shape[1:] == (9, 16) and corpus.steps == 16
    for index, name in enumerate(corpus.style_names):
        loaded = corpus.grids[corpus.styles == index]
        assert len(loaded) == len(source[name])
        same = np.mean([np.array_equal(a, b) for a, b in zip(loaded, source[name], strict=True)])
        assert same >= 0.9, (name, same)
    assert corpus.skipped["unreadable_files"] == 0 and corpus.skipped["non_4_4_bars"] == 0
    assert any("style techno: 26 examples" in line for line in log.lines)
    assert any("skipped" in line and "empty_bars=" in line for line in log.lines)
    assert any("merged_notes=0" in line for line in log.lines) and corpus.skipped["merged_notes"] == 0
    assert np.abs(corpus.offsets).max() > 0.05  # humanized timing is read, not quantised away

    two_bars = load_drum_corpus(tmp_path / "db", bars_per_example=2, log=quiet)
    assert two_bars.grids.shape == (40, 9, 32)


def test_cache_is_reused_and_invalidated_by_a_touched_file(tmp_path):
    db, cache = tmp_path / "db", tmp_path / "cache"
    rng = np.random.default_rng(0)
    for index in range(3):
        grid, velocities, offsets = generate_pattern("techno", rng, bars=1)
        write_midi(grid, velocities, db / "techno" / f"{index}.mid", bpm=130, offsets=offsets)
    first_log, second_log, third_log = Recorder(), Recorder(), Recorder()
    first = load_drum_corpus(db, cache_dir=cache, log=first_log)
    second = load_drum_corpus(db, cache_dir=cache, log=second_log)
    assert any("wrote cache" in line for line in first_log.lines)
    assert any("loaded cache" in line for line in second_log.lines)
    assert [p.name for p in cache.iterdir() if p.name.endswith(".tmp")] == []
    np.testing.assert_array_equal(first.grids, second.grids)
    np.testing.assert_array_equal(first.velocities, second.velocities)
    np.testing.assert_array_equal(first.offsets, second.offsets)
    assert first.style_names == second.style_names and first.skipped == second.skipped

    stat = (db / "techno" / "1.mid").stat()
    os.utime(db / "techno" / "1.mid", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    load_drum_corpus(db, cache_dir=cache, log=third_log)
    assert not any("loaded cache" in line for line in third_log.lines)
    assert any("wrote cache" in line for line in third_log.lines)


def test_builtin_corpus_and_its_cache(tmp_path):
    log = Recorder()
    corpus = load_drum_corpus(None, builtin_examples_per_style=8, cache_dir=tmp_path, seed=2, log=log)
    assert corpus.source == "builtin" and corpus.style_names == list(STYLE_NAMES)
    assert corpus.grids.shape == (8 * len(STYLE_NAMES), 9, 16) and corpus.grids.dtype == np.uint8
    assert corpus.velocities.dtype == np.float32 and corpus.styles.dtype == np.int64
    assert np.bincount(corpus.styles).tolist() == [8] * len(STYLE_NAMES)
    assert sum(corpus.skipped.values()) == 0
    assert len([line for line in log.lines if "style " in line]) == len(STYLE_NAMES)
    again = load_drum_corpus(None, builtin_examples_per_style=8, cache_dir=tmp_path, seed=2, log=log)
    assert any("loaded cache" in line for line in log.lines)
    np.testing.assert_array_equal(again.grids, corpus.grids)
    np.testing.assert_array_equal(again.offsets, corpus.offsets)  # the cache keeps the microtiming
    assert corpus.offsets.shape == corpus.grids.shape and corpus.offsets.dtype == np.float32
    longer = load_drum_corpus(None, bars_per_example=2, builtin_examples_per_style=3, log=quiet)
    assert longer.grids.shape == (3 * len(STYLE_NAMES), 9, 32)


def bad_folder(tmp_path: Path, case: str) -> Path:
    db = tmp_path / case
    if case == "missing":
        return db
    db.mkdir()
    if case == "no_midi":
        (db / "readme.txt").write_text("drums?")
    elif case == "unreadable":
        for index in range(2):
            (db / f"bad{index}.mid").write_bytes(b"\x00\x01garbage")
    elif case == "no_drums":
        bass = [e for step in range(8) for e in hit(step * TPQ, 40 + step, channel=0)]
        midi_file([bass]).save(db / "bass.mid")
        (db / "bad.mid").write_bytes(b"garbage")
    elif case == "no_4_4":
        waltz = [meta(0, "time_signature", numerator=3, denominator=4)]
        for beat in range(12):
            waltz.extend(hit(beat * TPQ, 36 if beat % 3 == 0 else 42))
        midi_file([waltz]).save(db / "waltz.mid")
    return db


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("missing", "does not exist"),
        ("no_midi", "no .mid or .midi files"),
        ("unreadable", "could be read"),
        ("no_drums", "no drum notes"),
        ("no_4_4", "no usable 4/4 bars"),
    ],
)
def test_bad_folders_give_one_line_user_errors(tmp_path, case, words):
    db = bad_folder(tmp_path, case)
    with pytest.raises(UserError) as error:
        load_drum_corpus(db, log=quiet)
    message = str(error.value)
    assert str(db) in message and words in message and "\n" not in message


def test_bad_bars_per_example_and_folder_file(tmp_path):
    with pytest.raises(UserError, match="bars_per_example"):
        load_drum_corpus(None, bars_per_example=0, log=quiet)
    not_a_folder = tmp_path / "file.mid"
    not_a_folder.write_bytes(raw_midi_with_running_status())
    with pytest.raises(UserError, match="not a folder"):
        load_drum_corpus(not_a_folder, log=quiet)


def test_drum_statistics_per_class_in_ms_at_120_bpm():
    grids = np.zeros((2, 9, 16), dtype=np.uint8)
    velocities = np.zeros((2, 9, 16), dtype=np.float32)
    offsets = np.zeros((2, 9, 16), dtype=np.float32)
    grids[0, S, [4, 12]] = 1
    velocities[0, S, [4, 12]] = (1.0, 0.5)
    offsets[0, S, [4, 12]] = (0.1, -0.3)  # 12.5 and -37.5 ms at 120 bpm
    grids[1, K, 0], velocities[1, K, 0] = 1, 0.8
    corpus = DrumCorpus(grids, velocities, offsets, np.zeros(2, np.int64), np.array(["a", "a"]),
                        np.arange(2), ["default"], "test", {})  # fmt: skip
    stats = drum_statistics(corpus)
    assert stats["snare"]["share"] == pytest.approx(100 * 2 / 32)
    assert stats["snare"]["velocity_std"] == pytest.approx(0.25)
    assert stats["snare"]["abs_offset_ms"] == pytest.approx(25.0) and stats["snare"][
        "offset_ms"
    ] == pytest.approx(-12.5)
    assert stats["kick"]["abs_offset_ms"] == 0 and stats["crash"]["share"] == 0
    assert stats["all"]["share"] == pytest.approx(100 * 3 / 288)
    assert drum_statistics(corpus, bpm=60)["snare"]["abs_offset_ms"] == pytest.approx(50.0)

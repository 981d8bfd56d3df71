"""The band corpus: notes <-> measure rolls, multi-part MIDI folders, part kinds, keys, splits, chorales."""

from pathlib import Path

import mido
import numpy as np
import pytest
from midi_files import save_midi

from latentlive.core.errors import UserError
from latentlive.corpus.band_midi import (
    DURATION,
    MAX_DURATION,
    ONSET,
    PITCHES,
    SOUNDING,
    STEPS,
    BandPiece,
    estimate_key,
    load_band_corpus,
    measure_rolls,
    read_seed_midi,
    rolls_to_notes,
    window_rolls,
    write_band_midi,
)

TPQ = 96
SIXTEENTH = TPQ // 4


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        assert "\n" not in line
        self.lines.append(line)


def quiet(_: str) -> None:
    pass


def notes_of(*rows: tuple[int, int, int, int]) -> np.ndarray:
    return np.array(rows, dtype=np.int32).reshape(-1, 4)


def piece_of(notes: np.ndarray, measures: int | None = None) -> BandPiece:
    end = int((notes[:, 1] + notes[:, 2]).max())
    return BandPiece("synthetic", "", notes, measures or -(-end // STEPS))


# --- MIDI files written by the tests ----------------------------------------------------------


def note(
    step: int, length: int, pitch: int, channel: int = 0, nudge: int = 0
) -> list[tuple[int, mido.Message]]:
    """A note of `length` sixteenths from `step`, its ticks moved by `nudge` (humanised timing)."""
    begin = step * SIXTEENTH + nudge
    return [
        (begin, mido.Message("note_on", channel=channel, note=pitch, velocity=90)),
        (begin + length * SIXTEENTH, mido.Message("note_off", channel=channel, note=pitch, velocity=0)),
    ]


def meta(tick: int, kind: str, **fields) -> list[tuple[int, mido.MetaMessage]]:
    return [(tick, mido.MetaMessage(kind, **fields))]


def program(channel: int, number: int) -> list[tuple[int, mido.Message]]:
    return [(0, mido.Message("program_change", channel=channel, program=number))]


def save(path: Path, tracks: list[list[tuple[int, mido.Message]]], midi_type: int = 1) -> Path:
    return save_midi(path, tracks, TPQ, midi_type)


MELODY = [(0, 4, 76), (4, 2, 74), (6, 2, 72), (8, 8, 74), (16, 4, 72), (20, 12, 71)]  # step, length, pitch
CHORDS = (
    [(0, 8, p) for p in (60, 64, 67)]
    + [(8, 8, p) for p in (59, 62, 67)]
    + [(16, 16, p) for p in (60, 64, 67)]
)
BASS = [(0, 8, 48), (8, 8, 43), (16, 8, 48), (24, 8, 36)]


def type1_song(path: Path) -> Path:
    """Lead (flute), Keys (piano chords), Bass (finger bass) and a drum track, with a tempo change."""
    lead = meta(0, "track_name", name="Lead") + program(0, 73)
    lead += [
        event for s, n, p in MELODY for event in note(s, n, p, 0, nudge=2)
    ]  # 2 ticks late: still on grid
    keys = meta(0, "track_name", name="Keys") + program(1, 0)
    keys += [event for s, n, p in CHORDS for event in note(s, n, p, 1)]
    bass = meta(0, "track_name", name="Bass") + program(2, 33)
    bass += [event for s, n, p in BASS for event in note(s, n, p, 2)]
    drums = meta(0, "track_name", name="Drums") + [e for s in range(0, 32, 4) for e in note(s, 1, 36, 9)]
    tempo = meta(0, "set_tempo", tempo=500_000) + meta(16 * SIXTEENTH, "set_tempo", tempo=400_000)
    return save(
        path, [tempo + meta(0, "time_signature", numerator=4, denominator=4), lead, keys, bass, drums]
    )


def type0_song(path: Path) -> Path:
    """The same song on the channels of one track (no track names: programs and channels name the parts)."""
    events = meta(0, "track_name", name="whole song") + program(0, 73) + program(1, 0) + program(2, 33)
    events += [e for s, n, p in MELODY for e in note(s, n, p + 2, 0)]
    events += [e for s, n, p in CHORDS for e in note(s, n, p + 2, 1)]
    events += [e for s, n, p in BASS for e in note(s, n, p + 2, 2)]
    events += [e for s in range(0, 32, 2) for e in note(s, 1, 42, 9)]
    return save(path, [events], midi_type=0)


def waltz(path: Path) -> Path:
    events = meta(0, "time_signature", numerator=3, denominator=4) + meta(0, "track_name", name="Lead")
    return save(path, [events + [e for s in range(0, 24, 4) for e in note(s, 4, 60 + s, 0)]])


@pytest.fixture
def song_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "songs"
    type1_song(folder / "a_band.mid")
    type0_song(folder / "more" / "b_single_track.midi")
    waltz(folder / "c_waltz.mid")
    (folder / "notes.txt").write_text("not MIDI")
    return folder


# --- the encoding ---------------------------------------------------------------------------------


def test_constants_agree_with_the_model():
    assert (STEPS, ONSET, SOUNDING, DURATION, MAX_DURATION, PITCHES) == (16, 0, 1, 2, 32, 128)
    from latentlive.models import band

    assert (band.STEPS, band.ONSET, band.SOUNDING, band.DURATION) == (STEPS, ONSET, SOUNDING, DURATION)
    assert (band.MAX_DURATION, band.PITCHES) == (MAX_DURATION, PITCHES)


def test_notes_to_rolls_and_back_keep_ties_rests_repeats_and_chords():
    notes = notes_of(
        (0, 0, 2, 60), (0, 2, 2, 60), (0, 4, 1, 60),  # repeated pitch, no gap
        (0, 8, 4, 62),  # rest 5..7 and 12..13 around it
        (0, 14, 6, 64),  # tied over the barline into measure 1
        (0, 20, 40, 65),  # 40 steps: over two barlines, duration capped in the roll
        (1, 0, 16, 48), (1, 0, 16, 52), (1, 0, 8, 55), (1, 8, 8, 55),  # a chord, the top voice repeated
        (1, 60, 4, 47),  # the last measure
    )  # fmt: skip
    piece = piece_of(notes)
    assert piece.measures == 4
    rolls = measure_rolls(piece, 0, 4, 2)
    assert rolls.shape == (4, 2, 3, 128, 16) and rolls.dtype == np.uint8
    assert rolls[0, 0, ONSET, 64, 14] == 1 and rolls[0, 0, DURATION, 64, 14] == 6
    assert rolls[1, 0, SOUNDING, 64, :4].all() and not rolls[1, 0, ONSET, 64].any()
    assert rolls[1, 0, DURATION, 65, 4] == MAX_DURATION and rolls[3, 0, SOUNDING, 65, :12].all()
    assert rolls[0, 0, SOUNDING, 60, :5].all() and rolls[0, 0, ONSET, 60].nonzero()[0].tolist() == [0, 2, 4]
    assert (
        not rolls[0, 0, SOUNDING, :, 5:8].any()
        and rolls[:, :, DURATION].sum() == notes[:, 2].clip(max=32).sum()
    )
    np.testing.assert_array_equal(
        rolls_to_notes(rolls), notes[np.lexsort((notes[:, 3], notes[:, 0], notes[:, 1]))]
    )
    np.testing.assert_array_equal(rolls_to_notes(rolls.astype(np.float32) * 0.9), rolls_to_notes(rolls))


def test_windows_outside_the_piece_mid_note_starts_and_onsets_without_sounding():
    notes = notes_of((0, 14, 6, 64), (1, 16, 2, 40))
    piece = piece_of(notes)
    assert not measure_rolls(piece, -2, 2, 2).any() and not measure_rolls(piece, 2, 3, 2).any()
    padded = measure_rolls(piece, -1, 4, 2)
    np.testing.assert_array_equal(padded[1:3], measure_rolls(piece, 0, 2, 2))
    # A window that begins inside a note: the note sounds from step 0 of the window.
    np.testing.assert_array_equal(
        rolls_to_notes(measure_rolls(piece, 1, 1, 2)), notes_of((0, 0, 4, 64), (1, 0, 2, 40))
    )
    rolls = np.zeros((1, 1, 3, 128, 16), np.uint8)
    rolls[0, 0, ONSET, 70, 3] = 1
    rolls[0, 0, DURATION, 70, 3] = 5
    np.testing.assert_array_equal(rolls_to_notes(rolls), notes_of((0, 3, 5, 70)))


def test_window_rolls_batch_matches_single_windows_and_checks_shifts():
    rng = np.random.default_rng(0)
    pieces = []
    for index in range(3):
        starts = np.sort(rng.integers(0, 200, 60))
        table = np.stack(
            [rng.integers(0, 4, 60), starts, rng.integers(1, 40, 60), rng.integers(40, 90, 60)], 1
        )
        pieces.append(BandPiece(f"p{index}", "", table.astype(np.int32), 15))
    starts, shifts = [0, 7, -1, 12], [0, 5, -6, 3]
    batch = window_rolls([pieces[0], pieces[1], pieces[2], pieces[0]], starts, 5, 4, shifts)
    assert batch.shape == (4, 5, 4, 3, 128, 16)
    for row, (piece, start, shift) in enumerate(zip([*pieces, pieces[0]], starts, shifts, strict=True)):
        np.testing.assert_array_equal(batch[row], measure_rolls(piece, start, 5, 4, shift))
    np.testing.assert_array_equal(np.roll(batch[1], -5, axis=3), measure_rolls(pieces[1], 7, 5, 4))
    with pytest.raises(ValueError, match="0..127"):
        window_rolls([pieces[0]], [0], 5, 4, [60])
    low, high = pieces[0].shift_range()
    assert (low, high) == (-6, 5) and pieces[0].shift_range((-50, 50)) == (
        -pieces[0].min_pitch,
        127 - pieces[0].max_pitch,
    )


# --- user folders ----------------------------------------------------------------------------------


def test_folder_busiest_parts_ordered_by_pitch_drums_and_3_4_left_out(song_folder: Path, tmp_path: Path):
    log = Recorder()
    corpus = load_band_corpus(song_folder, busiest=3, transpose="none", cache_dir=tmp_path / "cache", log=log)
    assert [piece.name for piece in corpus.pieces] == ["a_band.mid", "more/b_single_track.midi"]
    assert corpus.part_names == ["lead", "keys", "bass"]  # the most common name at each position
    assert corpus.part_kinds == ["mono", "poly", "mono"]
    assert corpus.skipped["not_4_4"] == 1 and corpus.skipped["drum_parts"] == 2
    first, second = corpus.pieces
    expected = sorted(
        [(0, s, n, p) for s, n, p in MELODY] + [(1, *c) for c in CHORDS] + [(2, *b) for b in BASS]
    )
    np.testing.assert_array_equal(first.notes, notes_of(*sorted(expected, key=lambda r: (r[1], r[0], r[3]))))
    np.testing.assert_array_equal(second.notes[:, :3], first.notes[:, :3])
    np.testing.assert_array_equal(second.notes[:, 3], first.notes[:, 3] + 2)
    assert first.measures == second.measures == 2  # and no drum notes among them
    assert any("skipped" in line and "not_4_4=1" in line for line in log.lines)
    # The cache holds the parsed files, keyed by the folder's listing: a new file makes a new cache.
    again = Recorder()
    load_band_corpus(song_folder, busiest=2, transpose="all", cache_dir=tmp_path / "cache", log=again)
    assert any("loaded cache" in line for line in again.lines)
    type0_song(song_folder / "d_copy.mid")
    grown = Recorder()
    assert len(load_band_corpus(song_folder, busiest=3, cache_dir=tmp_path / "cache", log=grown).pieces) == 3
    assert (
        any("wrote cache" in line for line in grown.lines)
        and len(list((tmp_path / "cache").glob("*.npz"))) == 2
    )


def test_folder_named_parts_by_track_program_and_channel(song_folder: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    by_track = load_band_corpus(
        song_folder, parts=["BASS", "lead"], transpose="none", cache_dir=cache, log=quiet
    )
    # "lead" is a track name of the type 1 file only; the type 0 file lacks it and is counted.
    assert by_track.part_names == ["BASS", "lead"] and len(by_track.pieces) == 1
    assert by_track.skipped["missing_parts"] == 1
    assert by_track.pieces[0].notes[by_track.pieces[0].notes[:, 0] == 0, 3].tolist() == [48, 43, 48, 36]
    # GM program names (exact, or all the words: "bass" is in "Electric Bass (finger)") and channels.
    by_program = load_band_corpus(
        song_folder,
        parts=["flute", "channel 2", "bass"],
        kinds="auto",
        transpose="none",
        cache_dir=cache,
        log=quiet,
    )
    assert len(by_program.pieces) == 2 and by_program.part_kinds == ["mono", "poly", "mono"]
    for piece, offset in zip(by_program.pieces, (0, 2), strict=True):
        assert sorted(piece.notes[piece.notes[:, 0] == 1, 3]) == sorted(p + offset for _, _, p in CHORDS)


def test_mono_parts_cut_overlaps_and_poly_detection(tmp_path: Path):
    legato = [
        (0, 6, 60),
        (4, 4, 62),
        (8, 4, 64),
        (8, 2, 67),
        (12, 8, 65),
        (14, 2, 65),
    ]  # overlaps, a 2-note onset
    pad = [(0, 16, 60), (0, 16, 64), (4, 4, 67), (16, 16, 62), (16, 16, 65)]
    lines = [meta(0, "track_name", name="Line") + [e for s, n, p in legato for e in note(s, n, p, 0)]]
    lines.append(meta(0, "track_name", name="Pad") + [e for s, n, p in pad for e in note(s, n, p, 1)])
    for index in range(3):  # more measures of clean melody: the line is mono at >= 95 % of its steps
        lines[0] += [
            e for s in range(32 + 64 * index, 96 + 64 * index, 4) for e in note(s, 4, 60 + s % 12, 0)
        ]
    save(tmp_path / "db" / "legato.mid", lines)
    corpus = load_band_corpus(tmp_path / "db", busiest=2, transpose="none", cache_dir=None, log=quiet)
    assert corpus.part_kinds == ["mono", "poly"]
    line = corpus.pieces[0].notes[corpus.pieces[0].notes[:, 0] == 0][:5, 1:]
    # Each note ends where the next begins; of the two at step 8 the higher stays. The two 65s overlap in
    # the file: the first note-off ends the first (12..16), the second the other (14..20), cut to 12..14.
    np.testing.assert_array_equal(line, [[0, 4, 60], [4, 4, 62], [8, 2, 67], [12, 2, 65], [14, 6, 65]])
    as_poly = load_band_corpus(tmp_path / "db", busiest=2, kinds="poly", transpose="none", log=quiet)
    assert len(as_poly.pieces[0].notes) > len(corpus.pieces[0].notes)
    all_mono = load_band_corpus(
        tmp_path / "db", busiest=2, kinds=["mono", "mono"], transpose="none", log=quiet
    )
    pad_notes = all_mono.pieces[0].notes[all_mono.pieces[0].notes[:, 0] == 1, 1:]
    np.testing.assert_array_equal(pad_notes, [[0, 4, 64], [4, 4, 67], [16, 16, 65]])


def test_pickup_bar_is_padded_to_a_full_measure(tmp_path: Path):
    events = meta(0, "time_signature", numerator=1, denominator=4) + meta(
        TPQ, "time_signature", numerator=4, denominator=4
    )
    events += note(0, 4, 67) + note(4, 16, 72) + note(20, 4, 71)
    save(tmp_path / "db" / "pickup.mid", [events])
    piece = load_band_corpus(tmp_path / "db", busiest=1, transpose="none", log=quiet).pieces[0]
    assert piece.notes[:, 1].tolist() == [12, 16, 32] and piece.measures == 3


def test_key_normalisation_brings_e_major_to_c_major(tmp_path: Path):
    scale = [0, 2, 4, 5, 7, 9, 11, 12]
    steps = [(4 * i, 4 if i < 7 else 12) for i in range(8)]  # the tonic held at the end
    for tonic, name in ((60, "c.mid"), (64, "e.mid")):
        melody = [e for (s, n), d in zip(steps, scale, strict=True) for e in note(s, n, tonic + d)]
        bass = note(0, 16, tonic - 24) + note(16, 8, tonic - 17) + note(24, 16, tonic - 24)
        save(tmp_path / "db" / name, [melody, [(t, m.copy(channel=1)) for t, m in bass]])
    corpus = load_band_corpus(tmp_path / "db", busiest=2, transpose="normalise", log=quiet)
    c, e = corpus.pieces
    assert (c.key, c.shift, e.key, e.shift) == ("C major", 0, "E major", -4)
    np.testing.assert_array_equal(c.notes, e.notes)
    untouched = load_band_corpus(tmp_path / "db", busiest=2, transpose="all", log=quiet)
    assert untouched.pieces[1].notes[0, 3] == 64 and untouched.shift_ranges().tolist() == [[-6, 5], [-6, 5]]
    a_minor = notes_of(*[(0, 4 * i, 4, 57 + d) for i, d in enumerate([0, 2, 3, 5, 7, 3, 2, 0, -1, 0, 0])])
    assert estimate_key(a_minor) == (9, "minor")


def test_split_deals_whole_groups_and_copies_of_a_song_share_one(song_folder: Path, tmp_path: Path):
    """The song in two keys (a_band, b_single_track) and a copy of it are one group; two other songs are
    their own. The corpus's split is split_examples over the groups: every piece of a group on one side."""
    type0_song(song_folder / "d_copy.mid")
    others = [
        [(0, 4, 72), (4, 4, 76), (8, 4, 79), (12, 4, 84), (16, 8, 83), (24, 8, 79)],
        [(0, 2, 79), (2, 2, 77), (4, 4, 76), (8, 8, 72), (16, 4, 74), (20, 4, 76), (24, 8, 77)],
    ]
    for n, melody in enumerate(others):  # other tunes over the same chords
        events = [e for s, length, p in melody for e in note(s, length, p, 0)]
        events += [e for s, length, p in CHORDS for e in note(s, length, p, 1)]
        events += [e for s, length, p in BASS for e in note(s, length, p, 2)]
        save(song_folder / f"e_other_{n}.mid", [events])
    for seed in range(5):
        corpus = load_band_corpus(song_folder, busiest=3, seed=seed, cache_dir=tmp_path, log=quiet)
        groups = dict(zip((piece.name for piece in corpus.pieces), corpus.groups, strict=True))
        assert groups == {
            "a_band.mid": "a_band.mid",
            "d_copy.mid": "a_band.mid",
            "e_other_0.mid": "e_other_0.mid",
            "e_other_1.mid": "e_other_1.mid",
            "more/b_single_track.midi": "a_band.mid",
        }
        record = corpus.split_record
        assert record is not None and record.seed == seed
        assert [len(record.groups[side]) for side in ("train", "validation", "test")] == [1, 1, 1]
        for side, indices in corpus.split.items():
            assert {corpus.groups[i] for i in indices} == set(record.groups[side])
        assert sorted(sum(corpus.split.values(), [])) == list(range(5))
    with pytest.raises(UserError, match="fractions"):
        load_band_corpus(song_folder, busiest=3, fractions=(0.5, 0.1, 0.1), cache_dir=tmp_path, log=quiet)


# --- writing and seeds ---------------------------------------------------------------------------


def test_write_band_midi_and_read_it_back_as_a_seed(tmp_path: Path):
    notes = notes_of((0, 0, 4, 72), (0, 4, 4, 72), (1, 0, 8, 60), (1, 0, 8, 64), (2, 2, 30, 40))
    path = write_band_midi(
        notes, ["melody", "chords", "bass"], tmp_path / "out" / "song.mid", bpm=90, programs=[73, 0, 33]
    )
    midi = mido.MidiFile(path)
    assert len(midi.tracks) == 4 and [t.name for t in midi.tracks[1:]] == ["melody", "chords", "bass"]
    channels = [{m.channel for m in track if m.type == "note_on"} for track in midi.tracks[1:]]
    assert channels == [{0}, {1}, {2}]
    assert not list(tmp_path.glob("out/.*"))  # no temp file left behind
    seed = read_seed_midi(path, ["melody", "chords", "bass"], ["mono", "poly", "mono"])
    np.testing.assert_array_equal(seed.notes, notes[np.lexsort((notes[:, 3], notes[:, 0], notes[:, 1]))])
    assert seed.measures == 2 and seed.shift == 0
    # Names in another order pick the tracks by name; unknown names fall back to the busiest by pitch.
    swapped = read_seed_midi(path, ["bass", "melody", "chords"], ["mono", "mono", "poly"])
    assert swapped.notes[swapped.notes[:, 0] == 0, 3].tolist() == [40]
    busiest = read_seed_midi(path, ["soprano", "alto"], ["mono", "mono"])
    assert sorted(busiest.notes[:, 3].tolist()) == [64, 72, 72]  # chords (mono: the top note) and melody
    normalised = read_seed_midi(
        path, ["melody", "chords", "bass"], ["mono", "poly", "mono"], transpose="normalise"
    )
    assert (normalised.key, normalised.shift) == ("E minor", 5)  # the long low E weighs most: to A minor
    np.testing.assert_array_equal(normalised.notes[:, 3], seed.notes[:, 3] + 5)


def test_seed_midi_errors_name_the_file(tmp_path: Path, song_folder: Path):
    with pytest.raises(UserError, match="missing.mid.*not found"):
        read_seed_midi(tmp_path / "missing.mid", ["a"], ["mono"])
    with pytest.raises(UserError, match="c_waltz.mid.*4/4"):
        read_seed_midi(song_folder / "c_waltz.mid", ["lead"], ["mono"])
    with pytest.raises(UserError, match="a_band.mid: 3 part.*plays 4"):
        read_seed_midi(song_folder / "a_band.mid", list("satb"), ["mono"] * 4)
    garbage = tmp_path / "garbage.mid"
    garbage.write_bytes(b"MThd not really")
    with pytest.raises(UserError, match="garbage.mid: cannot read"):
        read_seed_midi(garbage, ["a"], ["mono"])


# --- the corpus: bad input, chorales, cache ----------------------------------------------------------


def test_user_errors_name_the_folder_and_the_fix(tmp_path: Path, song_folder: Path):
    cases = [
        (dict(db=tmp_path / "nope"), "nope: band corpus folder does not exist"),
        (dict(db=song_folder / "a_band.mid"), "a_band.mid: band corpus folder is not a folder"),
        (dict(db=tmp_path / "empty"), "empty: no .mid or .midi files"),
        (
            dict(db=song_folder, parts=["lead", "violin"]),
            "part 'violin' matches no track name.*names found: .*Lead",
        ),
        (dict(db=song_folder, parts=["lead", "channel 1"]), "no piece has all the parts lead, channel 1"),
        (dict(db=song_folder, busiest=5), "no piece has 5 parts besides drums.*busiest to 3"),
        (dict(db=song_folder, transpose="up"), "transpose = 'up'"),
        (dict(db=song_folder, busiest=3, kinds=["mono"]), "kinds = .*one of mono, poly for each part"),
        (dict(db=song_folder, busiest=3, kinds="drone"), "kinds = 'drone'"),
        (dict(db=song_folder, parts=["bass", "BASS"]), "name each part once"),
    ]
    (tmp_path / "empty").mkdir()
    for kwargs, message in cases:
        with pytest.raises(UserError, match=message):
            load_band_corpus(**kwargs, log=quiet)
    only_waltz = tmp_path / "waltzes"
    waltz(only_waltz / "w.mid")
    (only_waltz / "broken.mid").write_bytes(b"MThd\x00")
    with pytest.raises(
        UserError, match=r"waltzes: no usable piece among 2 MIDI files \(1 unreadable_files, 1 not_4_4\)"
    ):
        load_band_corpus(only_waltz, log=quiet)


def test_chorales_load_four_mono_voices_and_come_from_the_cache(tmp_path: Path):
    log = Recorder()
    corpus = load_band_corpus(None, max_pieces=6, cache_dir=tmp_path, log=log)
    assert corpus.part_names == ["soprano", "alto", "tenor", "bass"] and corpus.part_kinds == ["mono"] * 4
    assert len(corpus.pieces) == 6 and sum(corpus.skipped.values()) > 0
    assert sorted(sum(corpus.split.values(), [])) == list(range(6)) and len(corpus.split["test"]) >= 1
    names = [piece.name for piece in corpus.pieces]
    assert corpus.groups[names.index("bwv102.7")] == "bwv101.7"  # both set "Vater unser im Himmelreich"
    assert len(set(corpus.groups)) == 5
    ranges = {
        "soprano": (50, 88),
        "alto": (45, 81),
        "tenor": (40, 77),
        "bass": (28, 71),
    }  # with -6..+5 of shift
    for part, name in enumerate(corpus.part_names):
        pitches = np.concatenate([p.notes[p.notes[:, 0] == part, 3] for p in corpus.pieces])
        assert ranges[name][0] <= pitches.min() and pitches.max() <= ranges[name][1], (
            name,
            pitches.min(),
            pitches.max(),
        )
    means = [np.mean([p.notes[p.notes[:, 0] == part, 3].mean() for p in corpus.pieces]) for part in range(4)]
    assert means == sorted(means, reverse=True)
    for piece in corpus.pieces:
        assert piece.measures >= 8 and piece.notes[:, 1].min() < STEPS and -6 <= piece.shift <= 5
        assert piece.key.endswith(("major", "minor")) and estimate_key(piece.notes)[0] in (0, 9)
        mono = np.zeros((4, piece.measures * STEPS), np.int64)
        for part, begin, length, _ in piece.notes:
            mono[part, begin : begin + length] += 1
        assert mono.max() == 1  # at most one note at a time in each voice
    assert any("wrote cache" in line for line in log.lines)
    again = Recorder()
    cached = load_band_corpus(None, max_pieces=6, cache_dir=tmp_path, transpose="all", log=again)
    assert any("loaded cache" in line for line in again.lines) and not any(
        "parsing" in line for line in again.lines
    )
    assert [p.name for p in cached.pieces] == [
        p.name for p in corpus.pieces
    ] and cached.skipped == corpus.skipped
    for original, moved in zip(cached.pieces, corpus.pieces, strict=True):
        np.testing.assert_array_equal(np.sort(original.notes[:, 3] + moved.shift), np.sort(moved.notes[:, 3]))

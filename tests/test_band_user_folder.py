"""The band model end to end on a user's folder of multi-part MIDI files (not the chorales): a tiny run on
generated songs with a mono lead, poly keys, a mono bass and drums (left out), its export, and the renders
and the player on a song of that folder."""

import json
import random
from pathlib import Path

import mido
import numpy as np
import pytest
from list_output import ListOutput
from midi_files import save_midi, track_notes

from latentlive.cli import main
from latentlive.core.runs import load_checkpoint
from latentlive.live.band_model import BandModel
from latentlive.live.band_player import BandPlayer

TPQ = 96
SIXTEENTH = TPQ // 4
MEASURES = 8
SONGS = 10
PROGRESSIONS = [(0, 7, 9, 5), (0, 5, 7, 0), (9, 5, 0, 7), (0, 9, 5, 7)]  # roots above the key's tonic
RHYTHMS = [(4, 4, 4, 4), (8, 4, 4), (4, 2, 2, 8), (2, 2, 4, 4, 4), (6, 2, 8)]  # a measure of the lead


def song(path: Path, rng: random.Random) -> Path:
    """An 8-measure song in a random major key: a mono lead on chord tones, poly keys holding the chords,
    a mono bass on the roots, drums on channel 10; the tracks are named."""
    tonic = 60 + rng.randrange(-5, 7)
    progression = rng.choice(PROGRESSIONS)
    tracks: dict[str, list[tuple[int, mido.Message]]] = {
        name: [] for name in ("Lead", "Keys", "Bass", "Drums")
    }

    def note(track: str, channel: int, step: int, length: int, pitch: int) -> None:
        begin, end = step * SIXTEENTH, (step + length) * SIXTEENTH
        tracks[track] += [
            (begin, mido.Message("note_on", channel=channel, note=pitch, velocity=90)),
            (end, mido.Message("note_off", channel=channel, note=pitch, velocity=0)),
        ]

    for measure in range(MEASURES):
        root = tonic + progression[measure % 4]
        chord = [root, root + (3 if progression[measure % 4] == 9 else 4), root + 7]
        start = measure * 16
        for pitch in chord:
            note("Keys", 1, start, 8, pitch - 12)
            note("Keys", 1, start + 8, 8, pitch - 12)
        for beat in range(0, 16, 8 if measure % 2 else 4):
            note("Bass", 2, start + beat, 8 if measure % 2 else 4, root - 24)
        step = start
        for length in rng.choice(RHYTHMS):
            note("Lead", 0, step, length, rng.choice(chord) + 12 * rng.randrange(0, 2))
            step += length
        for beat in range(0, 16, 4):
            note("Drums", 9, start + beat, 1, 36 if beat % 8 == 0 else 38)
    named = [[(0, mido.MetaMessage("track_name", name=name)), *events] for name, events in tracks.items()]
    return save_midi(path, named, TPQ)


@pytest.fixture(scope="module")
def songs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("my_songs")
    rng = random.Random(3)
    for n in range(SONGS):
        song(folder / f"song_{n:02d}.mid", rng)
    return folder


@pytest.fixture(scope="module")
def songs_run(songs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """gin/band_tiny.gin on the folder: the three busiest parts (drums are never a part), every piece."""
    runs = tmp_path_factory.mktemp("runs")
    args = ["train", "--gin", "gin/band_tiny.gin", "--db", str(songs), "--name", "songs", "--out", str(runs)]
    binds = ["BandTask.busiest = 3", "BandTask.max_pieces = 0", "BandTask.ablations = ()"]
    assert main([*args, *(word for bind in binds for word in ("--bind", bind))]) == 0
    assert main(["export", "--run", str(runs / "songs"), "--streaming"]) == 0
    return runs / "songs"


def test_training_on_a_folder_takes_its_parts_and_evaluates_them(songs_run: Path):
    checkpoint = load_checkpoint(songs_run / "checkpoints" / "last.pt")
    args = checkpoint["model_args"]
    assert args["part_kinds"] == ["mono", "poly", "mono"]  # ordered high to low: lead, keys, bass
    metrics = json.loads((songs_run / "metrics.json").read_text())
    names = BandModel(songs_run / "export" / "songs.ts").part_names
    assert names == ["lead", "keys", "bass"]
    for name in names:
        for task in ("next", "fill"):
            for who in ("", "baseline_repeat/", "baseline_frequent/"):
                assert np.isfinite(metrics["eval"][f"eval/{task}/{who}acc/{name}"])
    assert np.isfinite(metrics["eval"]["eval/next/nll"])


def test_the_export_plays_the_folders_parts_with_poly_voices(songs_run: Path):
    band = BandModel(songs_run / "export" / "songs.ts")
    assert band.part_kinds == ["mono", "poly", "mono"]
    assert band.lane_parts == [0, 1, 1, 1, 1, 2]  # four voices of keys
    assert band.channels == [0, 1, 2]  # 0-based MIDI channels, a part each
    roll = band.next_measure(np.stack([band.empty_roll()]), 1.0, 0, ahead=1)
    assert roll.shape == (3, 3, 128, 16)


def test_renders_continue_and_fill_a_song_of_the_folder(songs: Path, songs_run: Path, tmp_path: Path):
    ts, seed = songs_run / "export" / "songs.ts", songs / "song_00.mid"
    render = ["render", "band", "--model", str(ts), "--seed-midi", str(seed)]
    continued, filled = tmp_path / "continued.mid", tmp_path / "filled.mid"
    assert main([*render, "--task", "continue", "--measures", "2", "--out", str(continued)]) == 0
    assert main([*render, "--task", "fill", "--part", "Keys", "--out", str(filled)]) == 0
    before = track_notes(continued)
    assert list(before) == ["lead", "keys", "bass"]
    seed_steps = MEASURES * 16
    assert max(start for notes in before.values() for start, _, _ in notes) >= seed_steps
    assert max(start for notes in before.values() for start, _, _ in notes) < seed_steps + 32
    after = track_notes(filled)
    assert after["lead"] == [n for n in before["lead"] if n[0] < seed_steps]  # the lead is kept as it was
    assert after["bass"] == [n for n in before["bass"] if n[0] < seed_steps]
    assert after["keys"] != [n for n in before["keys"] if n[0] < seed_steps]  # the keys were redone


def test_the_player_accompanies_the_lead_with_keys_and_bass(songs_run: Path):
    band = BandModel(songs_run / "export" / "songs.ts")
    output = ListOutput()
    player = BandPlayer(band, output, part=0, bpm=480.0, seed=1, temperature=1.0)
    assert player.play(bars=3) == 3 * 16
    ons = [m for m in output.sent if m.type == "note_on" and m.velocity > 0]
    assert ons and {m.channel for m in ons} <= {1, 2}  # keys and bass channels (0-based), never the lead's
    sounding = set()
    for m in output.sent:
        if m.type == "note_on" and m.velocity > 0:
            sounding.add((m.channel, m.note))
        elif m.type in ("note_off", "note_on"):
            sounding.discard((m.channel, m.note))
    assert not sounding, "notes left sounding after the player stopped"

"""The band model in live/: renders (continue, fill, redo) to MIDI files, the player on real ports through the
JACK dummy server (a test output plays a part and sends MIDI clock, a test input records the band), and the
one-line errors of bad input."""

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mido
import numpy as np
import pytest
from bench_fields import assert_common_fields
from cli_process import killed_if_running
from jack_midi import API, Recorder, sender_to
from midi_files import track_notes

from latentlive.cli import main
from latentlive.core.errors import UserError
from latentlive.corpus.band_midi import read_seed_midi, rolls_to_notes, write_band_midi
from latentlive.corpus.band_rolls import BandPiece, measure_rolls, sort_notes
from latentlive.live import ports
from latentlive.live.band_model import BandModel
from latentlive.live.band_player import BandPlayer, play_band
from latentlive.live.playback import ALL_NOTES_OFF
from latentlive.live.render_band import continue_piece, fill_part
from latentlive.live.scheduler import CLOCKS_PER_STEP, ClockFollower

REPO_ROOT = Path(__file__).resolve().parents[1]
STEPS = 16
# The played part: (start step, duration, pitch); the last note is held over the barline into measure 2.
MELODY = [(0, 4, 72), (4, 2, 74), (6, 2, 76), (8, 8, 77), (16, 4, 79), (20, 4, 77), (24, 6, 76), (30, 4, 74)]


@pytest.fixture(scope="module")
def band(band_ts: Path) -> BandModel:
    return BandModel(band_ts)


def seed_notes(band: BandModel, measures: int = 2) -> np.ndarray:
    """Notes [n, 4] of every part of ``band``: quarter notes (a rest at each measure's last beat), each part
    a fifth below the one before."""
    notes = []
    for part in range(band.parts):
        for beat in range(measures * 4):
            if beat % 4 != 3:
                notes.append([part, beat * 4, 4, 72 - 7 * part + (2 * beat) % 5])
    return sort_notes(np.array(notes))


def write_seed(band: BandModel, path: Path, measures: int = 2) -> Path:
    return write_band_midi(seed_notes(band, measures), band.part_names, path, bpm=90.0)


def read_parts(band: BandModel, path: Path) -> np.ndarray:
    """Notes [n, 4] of a file that write_band_midi wrote: after the tempo track, one track per part, named after
    it (empty parts included)."""
    tracks = track_notes(path)
    assert list(tracks) == band.part_names
    notes = [[part, *note] for part, name in enumerate(tracks) for note in tracks[name]]
    return sort_notes(np.array(notes).reshape(-1, 4))


def seed_rolls(band: BandModel, seed: Path) -> tuple[np.ndarray, int]:
    """The seed as the renderer reads it (transposed as the model was trained), and the shift."""
    mode = "normalise" if band.transpose == "normalise" else "none"
    piece = read_seed_midi(seed, band.part_names, band.part_kinds, transpose=mode)
    return measure_rolls(piece, 0, piece.measures, band.parts).astype(np.float32), piece.shift


def notes_of(rolls: np.ndarray, shift: int) -> np.ndarray:
    notes = rolls_to_notes(rolls)
    notes[:, 3] -= shift
    return sort_notes(notes)


def render(band_ts: Path, seed: Path, out: Path, *args: str) -> int:
    return main(
        ["render", "band", "--model", str(band_ts), "--seed-midi", str(seed), "--out", str(out), *args]
    )


# ---------------------------------------------------------------- rendering


def test_render_continue_appends_the_predicted_measures(band, band_ts, tmp_path):
    seed, out = write_seed(band, tmp_path / "seed.mid"), tmp_path / "out.mid"
    assert render(band_ts, seed, out, "--task", "continue", "--measures", "3", "--seed", "5") == 0
    midi = mido.MidiFile(out)
    assert [t.name for t in midi.tracks[1:]] == band.part_names
    for track, channel in zip(midi.tracks[1:], band.channels, strict=True):
        assert {m.channel for m in track if m.type in ("note_on", "note_off")} <= {channel}
    rolls, shift = seed_rolls(band, seed)
    expected = notes_of(continue_piece(band, rolls, 3, 1.0, 5), shift)
    got = read_parts(band, out)
    np.testing.assert_array_equal(got, expected)
    assert got[:, 1].max() >= 2 * STEPS, "nothing was predicted after the seed"
    assert got[:, 1].max() < 5 * STEPS
    np.testing.assert_array_equal(got[got[:, 1] < 2 * STEPS], read_parts(band, seed))


def test_render_fill_regenerates_one_part_and_keeps_the_others(band, band_ts, tmp_path):
    seed, out = write_seed(band, tmp_path / "seed.mid", measures=3), tmp_path / "out.mid"
    part = band.parts - 1
    assert render(band_ts, seed, out, "--task", "fill", "--part", band.part_names[part].upper()) == 0
    got, before = read_parts(band, out), read_parts(band, seed)
    np.testing.assert_array_equal(got[got[:, 0] != part], before[before[:, 0] != part])
    rolls, shift = seed_rolls(band, seed)
    np.testing.assert_array_equal(got, notes_of(fill_part(band, rolls, part, 1.0, 0), shift))
    assert not np.array_equal(got[got[:, 0] == part], before[before[:, 0] == part])


def test_render_redo_regenerates_every_part_in_turn(band, band_ts, tmp_path):
    seed, out = write_seed(band, tmp_path / "seed.mid"), tmp_path / "out.mid"
    assert render(band_ts, seed, out, "--task", "redo", "--seed", "2", "--temperature", "0.5") == 0
    rolls, shift = seed_rolls(band, seed)
    for part in range(band.parts):
        rolls = fill_part(band, rolls, part, 0.5, 2 + part * len(rolls))
    got = read_parts(band, out)
    np.testing.assert_array_equal(got, notes_of(rolls, shift))
    assert len(mido.MidiFile(out).tracks) == band.parts + 1 and (got[:, 1] < 2 * STEPS).all()


def _one_part_midi(path: Path) -> Path:
    return write_band_midi(np.array([[0, 0, 4, 60], [0, 4, 4, 62]]), ["lonely"], path)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no model", "no such model file"),
        ("no seed", "seed MIDI file not found"),
        ("seed without the parts", "part(s) besides drums"),
        ("wrong part", "--part banjo: the model has no such part; use one of 0="),
        ("part out of range", "--part 17: the model has no such part"),
        ("fill without part", "--task fill needs --part"),
        ("no measures", "--measures 0"),
        ("negative temperature", "--temperature -1.0"),
        ("no out folder", "does not exist; create it"),
        ("not a model", "not a TorchScript file"),
    ],
)
def test_bad_render_input_gets_one_line_and_writes_nothing(case, expected, band, band_ts, tmp_path, capsys):
    seed, out = write_seed(band, tmp_path / "seed.mid"), tmp_path / "out.mid"
    model, task = band_ts, ["--task", "continue"]
    if case == "no model":
        model = tmp_path / "nope.ts"
    elif case == "no seed":
        seed = tmp_path / "nope.mid"
    elif case == "seed without the parts":
        seed = _one_part_midi(tmp_path / "one.mid")
    elif case == "wrong part":
        task = ["--task", "fill", "--part", "banjo"]
    elif case == "part out of range":
        task = ["--task", "fill", "--part", "17"]
    elif case == "fill without part":
        task = ["--task", "fill"]
    elif case == "no measures":
        task += ["--measures", "0"]
    elif case == "negative temperature":
        task += ["--temperature", "-1"]
    elif case == "no out folder":
        out = tmp_path / "missing" / "out.mid"
    elif case == "not a model":
        model = seed
    capsys.readouterr()
    assert render(model, seed, out, *task) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and err.startswith("latentlive: error: ")
    assert not out.exists()


# ---------------------------------------------------------------- playing


def played_roll(band: BandModel, measure: int, closed_at: int) -> np.ndarray:
    """The played part's roll of ``measure`` as the player records it when it closes the measure at step
    ``closed_at``: notes still held then last to the measure's end."""
    notes = [
        [0, s, min(d, closed_at - s) if s + d > closed_at else d, p] for s, d, p in MELODY if s < closed_at
    ]
    piece = BandPiece("played", "", sort_notes(np.array(notes)), measure + 1)
    return measure_rolls(piece, measure, 1, band.parts)[0].astype(np.float32)


def expected_steps(band: BandModel, ahead: int, measures: int, seed: int, temperature: float) -> dict:
    """Step -> the (channel, note) of every note on the player sends there, from its own predictions."""
    predictions, history = {}, band.history()
    for j in range(measures - 1):
        closed = predictions.get(j, band.empty_roll()).copy()
        closed[0] = played_roll(band, j, (j + 1) * STEPS)[0]
        history.push(closed, present=[p == 0 for p in range(band.parts)])  # read from the played part
        predictions[j + ahead] = history.next_measure(temperature, seed + j, ahead=ahead)
    steps = {}
    for measure in range(measures):
        lanes = band.lanes(predictions[measure]) if measure in predictions else None
        for s in range(STEPS):
            steps[measure * STEPS + s] = [
                (band.channels[part], int(lanes[lane, s]))
                for lane, part in enumerate(band.lane_parts)
                if part != 0 and lanes is not None and lanes[lane, s] >= 0
            ]
    return steps


def assert_released(band: BandModel, messages: list[mido.Message], part: int = 0) -> None:
    """Every note on ends before its note sounds again on its channel; nothing hangs; All Notes Off closes
    every part's channel; the played part's channel stays silent."""
    sounding: set[tuple[int, int]] = set()
    channels = {band.channels[p] for p in range(band.parts) if p != part}
    for msg in messages:
        if msg.type == "note_on" and msg.velocity > 0:
            assert msg.channel in channels
            assert (msg.channel, msg.note) not in sounding, f"{msg} again before its note off"
            sounding.add((msg.channel, msg.note))
        elif msg.type in ("note_off", "note_on"):
            sounding.discard((msg.channel, msg.note))
    assert not sounding, f"notes left hanging: {sorted(sounding)}"
    closing = [
        m for m in messages[-len(channels) :] if m.type == "control_change" and m.control == ALL_NOTES_OFF
    ]
    assert {m.channel for m in closing} == channels


@pytest.mark.parametrize("ahead", [1, 2])
def test_player_follows_midi_clock_and_answers_the_played_part_ahead(jack_server, band, ahead):
    bpm, measures, seed = 150.0, 2 + ahead, 3
    tick_s = 60.0 / (bpm * 24)
    expected = expected_steps(band, ahead, measures, seed, 1.0)
    assert any(expected[s] for s in expected), "the model predicts only silence: nothing to compare"
    name = f"ll band {os.getpid()} {ahead}"  # other test sessions may share the JACK server
    output = ports.open_output(f"{name} out", api=API)
    player = BandPlayer(band, output, part=0, follower=ClockFollower(), ahead=ahead, seed=seed)
    player_in = ports.open_input(f"{name} in", api=API, callback=player.handle_message)
    recorder = Recorder(f"{name} out")
    sender = sender_to(f"{name} in")
    thread = threading.Thread(target=player.play, kwargs={"bars": measures})
    thread.start()
    played: dict[int, list[tuple[int, int]]] = {}
    try:
        sender.send(mido.Message("start"))
        time.sleep(0.05)
        for step in range(measures * STEPS):
            before = len(recorder.note_ons())
            for tick in range(CLOCKS_PER_STEP):
                sender.send(mido.Message("clock"))
                if tick == 0:
                    for start, length, pitch in MELODY:  # the played part, on a channel of its own
                        if start + length == step:
                            sender.send(mido.Message("note_off", channel=15, note=pitch))
                        if start == step:
                            sender.send(mido.Message("note_on", channel=15, note=pitch, velocity=100))
                    recorder.wait_for_note_ons(before + len(expected[step]), timeout=5.0)
                time.sleep(tick_s)
            played[step] = [(m.channel, m.note) for _, m in recorder.note_ons()[before:]]
        thread.join(timeout=10)
        assert recorder.wait_for_all_notes_off(2 * (band.parts - 1))  # Start released them too
    finally:
        player.stop()
        thread.join(timeout=10)
        for port in (sender, recorder, player_in, output):
            port.close()
    assert played == expected
    assert all(not played[s] for s in range(ahead * STEPS))  # nothing before the first prediction
    assert_released(band, [m for _, m in recorder.messages])


class _ListOutput:
    """An output port that keeps what it is sent (and fails once, at the first ``fail_on`` message)."""

    name = "list"

    def __init__(self, fail_on: str | None = None) -> None:
        self.sent: list[mido.Message] = []
        self.fail_on = fail_on

    def send(self, msg: mido.Message) -> None:
        if msg.type == self.fail_on and msg.velocity > 0:
            self.fail_on = None
            raise OSError("device unplugged")
        self.sent.append(msg)


def test_free_running_player_plays_its_own_predictions_from_silence(band):
    output = _ListOutput()
    player = BandPlayer(band, output, part=band.parts - 1, bpm=480.0, seed=9, temperature=1.0)
    assert player.play(bars=3) == 3 * STEPS
    history, predicted, want = band.history(), [], []
    for j in range(2):
        closed = predicted[-1].copy() if predicted else band.empty_roll()
        closed[band.parts - 1] = 0.0  # nothing played
        history.push(closed, present=[p == band.parts - 1 for p in range(band.parts)])
        predicted.append(history.next_measure(1.0, 9 + j))
    for roll in predicted:
        lanes = band.lanes(roll)
        for s in range(STEPS):
            for lane, part in enumerate(band.lane_parts):
                if part != band.parts - 1 and lanes[lane, s] >= 0:
                    want.append((band.channels[part], int(lanes[lane, s])))
    got = [(m.channel, m.note) for m in output.sent if m.type == "note_on" and m.velocity > 0]
    assert got == want
    assert_released(band, output.sent, part=band.parts - 1)


def test_a_port_error_ends_the_player_with_notes_released(band):
    output = _ListOutput(fail_on="note_on")
    with pytest.raises(UserError, match="'list'.*failed while playing") as err:
        BandPlayer(band, output, part=0, bpm=900.0, temperature=2.0).play(bars=4)
    assert "\n" not in str(err.value)
    assert_released(band, output.sent)


def test_sigterm_stops_the_band_player_process_with_all_notes_released(jack_server, band_ts, band):
    command = [sys.executable, "-m", "latentlive.cli", "play", "band", "--model", str(band_ts)]
    name = f"ll band {os.getpid()} sigterm"
    command += ["--out", name, "--bpm", "300", "--api", "jack", "--part", band.part_names[0]]
    popen = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    with killed_if_running(popen) as process:
        status = process.stdout.readline()  # printed once the ports are open (torch loads first)
        assert status, process.communicate(timeout=20)[1]
        recorder = Recorder(name)
        time.sleep(2.0)  # a few measures at 300 bpm
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=20)
        stdout = status + stdout
        recorder.wait_for_all_notes_off(band.parts - 1)
        recorder.close()
    assert process.returncode == 0, stderr
    assert f"latentlive band: {band_ts.name}: play {band.part_names[0]}" in stdout and "300 bpm" in stdout
    assert_released(band, [m for _, m in recorder.messages])


def test_bad_player_settings_are_one_line_user_errors(band, band_ts, tmp_path):
    for kwargs, message in (
        ({"part": "banjo"}, "--part banjo"),
        ({"ahead": 3}, "--ahead 3"),
        ({"bpm": 0.0}, "--bpm 0"),
        ({"temperature": -0.5}, "--temperature -0.5"),
    ):
        with pytest.raises(UserError, match=message) as err:
            BandPlayer(band, _ListOutput(), **kwargs)
        assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="no such model file"):
        play_band(tmp_path / "nope.ts", api=API, stream=io.StringIO())
    with pytest.raises(UserError, match="--bars 0"):
        play_band(band, bars=0, api=API, stream=io.StringIO())


def test_bench_band_writes_the_prediction_times_and_the_jitter(jack_server, band_ts, tmp_path, monkeypatch):
    """A smoke test of ``latentlive bench band --model``: the figures are there (not their values)."""
    from latentlive.bench import band as bench

    monkeypatch.setattr(bench, "BAND_REPEATS", 20)
    monkeypatch.setattr(bench, "BAND_JITTER_MEASURES", 3)
    out = tmp_path / "band.json"
    assert main(["bench", "band", "--model", str(band_ts), "--out", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert assert_common_fields(figures) == 3  # per measure, whole history, the 512 buffer of a measure end
    live = figures["next_measure_per_measure_live_one_thread"]
    assert live["calls"] == 20 and live["buffer_period_ms"] is None
    # the goal: the interleaved p99
    assert figures["next_measure_interleaved_p99_over_goal"] == pytest.approx(
        live["interleaved"]["wall_ms_p99"] / 20.0
    )
    assert "goal" in figures["next_measure_goal"]
    boundary = figures["nn_next_buffer_512_with_a_measure_end_one_thread"]
    assert boundary["buffer_period_ms"] == pytest.approx(1e3 * 512 / 44100)
    jitter = figures["player_jitter_jack_dummy"]
    assert jitter["note_ons"] > 0 and 0 <= jitter["jitter_ms"]["p50"] <= jitter["jitter_ms"]["max"]

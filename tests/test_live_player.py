"""The standalone drum player on real rtmidi ports, through a JACK dummy server (no sound card, no ALSA seq).

A test input connects to the player's virtual output and checks the notes against ``DrumModel.pattern``;
a test output sends MIDI clock and CCs to the player's virtual input.
"""

import io
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
import torch
from cli_process import killed_if_running
from jack_midi import API, Recorder
from jack_midi import sender_to as _sender

from latentlive.core.errors import UserError
from latentlive.export.metadata import read_metadata
from latentlive.live import ports
from latentlive.live.drum_model import DrumModel, level_to_velocity, pattern_hits
from latentlive.live.drum_player import (
    ALL_NOTES_OFF,
    CC_STYLE,
    CC_Z_COUNT,
    CC_Z_FIRST,
    DRUM_CHANNEL,
    DrumPlayer,
    cc_to_latent,
    cc_to_style,
    latent_axis,
    play_drums,
)
from latentlive.live.render import TICKS_PER_STEP, render_drums_midi
from latentlive.live.scheduler import CLOCKS_PER_STEP, ClockFollower, TempoClock, sleep_until

REPO_ROOT = Path(__file__).resolve().parents[1]
# A note on may come this much off the step grid: JACK delivers MIDI once per 5.3 ms period, and the rest is
# thread wake-ups on a busy machine (a few ms measured). A third of a step at the tests' 160 bpm.
STEP_TOLERANCE_S = 0.03


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def drum_model(drums_ts) -> DrumModel:
    return DrumModel(drums_ts)


def _assert_released(messages: list[mido.Message], all_notes_off: bool = True) -> None:
    """Every note on is followed by its note off before that note sounds again, and nothing hangs at the end.

    ``all_notes_off``: the stream also ends with All Notes Off (CC 123), as the player's always does.
    """
    sounding: set[int] = set()
    for msg in messages:
        if msg.type == "note_on" and msg.velocity > 0:
            assert msg.channel == DRUM_CHANNEL
            assert msg.note not in sounding, f"note {msg.note} started again before its note off"
            sounding.add(msg.note)
        elif msg.type == "note_off" or (msg.type == "note_on" and msg.velocity == 0):
            sounding.discard(msg.note)
    assert not sounding, f"notes left hanging: {sorted(sounding)}"
    if all_notes_off:
        assert messages[-1].type == "control_change" and messages[-1].control == ALL_NOTES_OFF


def _expected_note_ons(hits: list[list[tuple[int, int]]], steps: range) -> list[tuple[int, int, int]]:
    """(step, note, velocity) of every note on of ``steps``, in the order the player sends them."""
    return [(step, note, vel) for step in steps for note, vel in hits[step % len(hits)]]


# ---------------------------------------------------------------- the model


def _latent(model: DrumModel, *values: float) -> list[float]:
    """A latent of the model's size D from a few values (repeated as needed): the tests work for any D."""
    return [float(values[i % len(values)]) for i in range(model.latent_size)]


def test_drum_model_decodes_a_pattern_as_the_encoding_says(drum_model, drums_ts):
    meta = read_metadata(drums_ts)
    d, s = meta["latent_size"], meta["steps"]
    assert (drum_model.latent_size, drum_model.steps) == (d, s)
    assert drum_model.style_names == meta["style_names"] and drum_model.gm_notes == meta["gm_notes"]
    z, style = _latent(drum_model, 0.5, -1.0, 2.0, 0.0), len(drum_model.style_names) - 1
    pattern, offsets = drum_model.groove(z, style)
    assert pattern.shape == offsets.shape == (9, s) and pattern.dtype == offsets.dtype == np.float32
    np.testing.assert_array_equal(drum_model.pattern(z, style), pattern)
    # decode reads the step per sample: a reversed step ramp gives the columns reversed.
    x = torch.zeros(1, d + 2, s)
    x[0, :d] = torch.tensor(z)[:, None]
    x[0, d] = torch.arange(s - 1, -1, -1)
    x[0, d + 1] = float(style)
    reversed_out = torch.jit.load(str(drums_ts)).decode(x)[0].detach().numpy()
    np.testing.assert_allclose(pattern, reversed_out[:9, ::-1], atol=1e-6)
    np.testing.assert_allclose(offsets, reversed_out[9:, ::-1], atol=1e-6)
    assert (offsets[pattern == 0] == 0).all() and (np.abs(offsets) <= 0.5).all()
    # Threshold and temperature go through the model's setters and stay set. The threshold knob moves the
    # run's per-class thresholds: 0 plays every cell, 1 none, and a higher knob plays a subset; the levels of
    # the cells played (their velocities) do not depend on it.
    everything = drum_model.pattern(z, style, threshold=0.0)
    assert drum_model.module.get_threshold()[0] == 0.0 and (everything > 0).all()
    played = [drum_model.pattern(z, style, threshold=knob) for knob in (0.3, 0.5, 0.7, 1.0)]
    assert drum_model.module.get_threshold()[0] == pytest.approx(1.0) and not played[-1].any()
    for lower, higher in zip([everything, *played], played, strict=False):
        assert ((higher > 0) <= (lower > 0)).all()
        np.testing.assert_array_equal(higher[higher > 0], everything[higher > 0])
    drum_model.pattern(z, style, temperature=3.0, threshold=0.0)
    assert drum_model.module.get_temperature()[0] == pytest.approx(3.0)
    drum_model.pattern(z, style, temperature=1.0, threshold=0.5)  # back to the defaults for the other tests
    assert level_to_velocity(1.0) == 127 and level_to_velocity(0.5) == 64 and level_to_velocity(0.001) == 1


def test_wrong_latent_size_and_style_are_one_line_user_errors(drum_model):
    d = drum_model.latent_size
    with pytest.raises(UserError, match=f"{d}-D latent") as err:
        drum_model.pattern([0.0] * (d + 1), style=0)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="--style 99"):
        DrumPlayer(drum_model, _FlakyOutput(fail_at=None), style=99)


# ---------------------------------------------------------------- timing


def test_latent_control_numbers_reach_sixteen_latents_and_leave_the_others():
    assert [latent_axis(c) for c in range(20, 28)] == list(range(8))
    assert [latent_axis(c) for c in range(102, 110)] == list(range(8, 16))
    assert {latent_axis(c) for c in (0, 19, 28, 29, 30, 31, 32, 64, 101, 110, 123)} == {-1}


def test_a_control_change_past_the_models_latents_moves_nothing(drum_model):
    player = DrumPlayer(
        drum_model, _FlakyOutput(fail_at=None), bpm=120.0, style=0, z=_latent(drum_model, 0.0)
    )
    beyond = 102 + drum_model.latent_size - 8 if drum_model.latent_size > 8 else 102
    player.handle_message(mido.Message("control_change", control=beyond, value=127))
    assert player.controls["z"] == _latent(drum_model, 0.0)
    player.handle_message(mido.Message("control_change", control=20 + drum_model.latent_size - 1, value=127))
    assert player.controls["z"][-1] == 3.0


def test_tempo_clock_places_steps_on_absolute_times():
    clock = TempoClock(120.0, start=100.0)
    assert clock.step_duration == pytest.approx(0.125)
    assert clock.time_of(0) == 100.0 and clock.time_of(32) == pytest.approx(104.0)
    clock.set_bpm(240.0, at=clock.time_of(8))  # tempo change at step 8: the count goes on from there
    assert clock.time_of(8) == pytest.approx(101.0)
    assert clock.time_of(12) == pytest.approx(101.25)
    deadline = time.perf_counter() + 0.01
    assert sleep_until(deadline) and time.perf_counter() >= deadline
    stopped = threading.Event()
    stopped.set()
    assert not sleep_until(time.perf_counter() + 10.0, stopped)


def _clock_messages(follower: ClockFollower, kind: str, t: float, **kwargs) -> None:
    follower.handle(mido.Message(kind, **kwargs), t)


def test_clock_follower_counts_steps_estimates_tempo_and_obeys_transport():
    follower = ClockFollower()
    tick = 60.0 / (150.0 * 24)
    t = 0.0
    _clock_messages(follower, "start", t)
    for _ in range(CLOCKS_PER_STEP * 3):
        t += tick
        _clock_messages(follower, "clock", t)
    assert follower.bpm == pytest.approx(150.0)
    events = [follower.next_event(0) for _ in range(3)]
    assert [(e.kind, e.step) for e in events] == [("step", 0), ("step", 1), ("step", 2)]
    assert events[0].time == pytest.approx(tick)  # the first clock after Start plays step 0
    _clock_messages(follower, "stop", t)
    assert follower.next_event(0).kind == "stop" and not follower.running
    _clock_messages(follower, "clock", t + tick)  # clocks while stopped do not move
    assert follower.next_event(0) is None
    _clock_messages(follower, "continue", t)
    for _ in range(CLOCKS_PER_STEP):
        t += tick
        _clock_messages(follower, "clock", t)
    assert follower.next_event(0).step == 3
    _clock_messages(follower, "stop", t)
    follower.next_event(0)
    _clock_messages(follower, "songpos", t, pos=9)
    _clock_messages(follower, "continue", t)
    _clock_messages(follower, "clock", t + tick)
    assert follower.next_event(0).step == 9


# ---------------------------------------------------------------- playing on real ports


def test_free_running_player_sends_the_pattern_on_the_step_grid(jack_server, drum_model):
    bpm, bars = 160.0, 2
    output = ports.open_output("ll test grid", api=API)
    recorder = Recorder("ll test grid")
    try:
        z = _latent(drum_model, 1.0, 0.0, -1.0, 0.5)
        player = DrumPlayer(drum_model, output, bpm=bpm, style=0, z=z, quantise=True)
        expected_hits = pattern_hits(drum_model.pattern(z, 0), drum_model.gm_notes)
        assert player.play(bars=bars) == bars * drum_model.steps
        assert recorder.wait_for_all_notes_off()  # the last messages may still be on their way through JACK
    finally:
        recorder.close()
        output.close()
    expected = _expected_note_ons(expected_hits, range(bars * drum_model.steps))
    assert expected
    received = recorder.note_ons()
    assert [(m.note, m.velocity) for _, m in received] == [(note, vel) for _, note, vel in expected]
    step_s = 60.0 / bpm / 4
    residuals = np.array([t - step * step_s for (t, _), (step, _, _) in zip(received, expected, strict=True)])
    assert np.abs(residuals - np.median(residuals)).max() < STEP_TOLERANCE_S
    _assert_released([m for _, m in recorder.messages])


def test_player_follows_midi_clock_start_stop_continue_and_song_position(jack_server, drum_model):
    tick_s = 60.0 / (150.0 * 24)
    output = ports.open_output("ll test clock out", api=API)
    style = len(drum_model.style_names) - 1
    player = DrumPlayer(drum_model, output, style=style, follower=ClockFollower(), quantise=True)
    player_in = ports.open_input("ll test clock in", api=API, callback=player.handle_message)
    recorder = Recorder("ll test clock out")
    sender = _sender("ll test clock in")
    hits = pattern_hits(player.pattern, drum_model.gm_notes)
    thread = threading.Thread(target=player.play)
    thread.start()
    played: dict[int, list[tuple[int, int]]] = {}  # song step -> the notes that came with its clocks

    def send_clocks(first_step: int, steps: int) -> None:
        for step in range(first_step, first_step + steps):
            before = len(recorder.note_ons())
            for tick in range(CLOCKS_PER_STEP):
                sender.send(mido.Message("clock"))
                time.sleep(tick_s)
                if (
                    tick == 0
                ):  # let the step's notes arrive before the next step's clocks, even on a busy machine
                    recorder.wait_for_note_ons(before + len(hits[step % drum_model.steps]), timeout=5.0)
            played[step] = [(m.note, m.velocity) for _, m in recorder.note_ons()[before:]]

    def assert_silent(seconds: float, clocks: bool) -> None:
        before = len(recorder.note_ons())
        for _ in range(int(seconds / tick_s)):
            if clocks:  # many masters keep sending clock while stopped
                sender.send(mido.Message("clock"))
            time.sleep(tick_s)
        assert len(recorder.note_ons()) == before

    try:
        sender.send(mido.Message("start"))
        assert_silent(0.1, clocks=False)  # the first step plays on the first clock after Start
        send_clocks(0, 8)
        sender.send(mido.Message("stop"))
        assert recorder.wait_for_all_notes_off(1)  # Stop releases the sounding notes
        assert_silent(0.2, clocks=True)
        sender.send(mido.Message("continue"))
        send_clocks(8, 4)  # resumes where it stopped
        sender.send(mido.Message("stop"))
        assert recorder.wait_for_all_notes_off(2)
        sender.send(mido.Message("songpos", pos=18))  # song step 18: step 2 of the 16-step pattern
        sender.send(mido.Message("continue"))
        send_clocks(18, 4)
        sender.send(mido.Message("stop"))
        assert recorder.wait_for_all_notes_off(3)
    finally:
        player.stop()
        thread.join(timeout=10)
        recorder.wait_for_all_notes_off(4)
        for port in (sender, recorder, player_in, output):
            port.close()
    assert sorted(played) == [*range(0, 12), *range(18, 22)]
    assert played == {step: hits[step % drum_model.steps] for step in played}
    assert sum(len(notes) for notes in played.values()) > 0
    _assert_released([m for _, m in recorder.messages])


def test_control_changes_move_the_latent_and_the_pattern_follows(jack_server, drum_model):
    output = ports.open_output("ll test cc out", api=API)
    player = DrumPlayer(drum_model, output, bpm=240.0, style=0, z=_latent(drum_model, 0.0), quantise=True)
    player_in = ports.open_input("ll test cc in", api=API, callback=player.handle_message)
    recorder = Recorder("ll test cc out")
    sender = _sender("ll test cc in")
    old_pattern = player.pattern
    thread = threading.Thread(target=player.play, kwargs={"bars": 3})
    thread.start()
    try:
        recorder.wait_for_note_ons(1)  # bar 1 is playing
        values = [[127, 0, 100, 30][axis % 4] for axis in range(min(drum_model.latent_size, CC_Z_COUNT))]
        for axis, value in enumerate(values):
            sender.send(mido.Message("control_change", channel=0, control=CC_Z_FIRST + axis, value=value))
        sender.send(mido.Message("control_change", channel=0, control=CC_STYLE, value=127))
        thread.join(timeout=10)
    finally:
        player.stop()
        thread.join(timeout=10)
        recorder.wait_for_all_notes_off()
        for port in (sender, recorder, player_in, output):
            port.close()
    new_z = [cc_to_latent(v) for v in values] + player.controls["z"][CC_Z_COUNT:]
    assert new_z[0] == 3.0 and new_z[1] == -3.0
    new_style = len(drum_model.style_names) - 1
    assert (
        player.controls["z"] == new_z
        and player.controls["style"] == cc_to_style(127, new_style + 1) == new_style
    )
    new_pattern = drum_model.pattern(new_z, new_style)
    assert not np.array_equal(new_pattern, old_pattern)
    np.testing.assert_array_equal(player.pattern, new_pattern)
    # The last bar (well after the CCs) plays the new pattern.
    new_bar = [
        (note, vel)
        for _, note, vel in _expected_note_ons(
            pattern_hits(new_pattern, drum_model.gm_notes), range(drum_model.steps)
        )
    ]
    assert new_bar
    received = [(m.note, m.velocity) for _, m in recorder.note_ons()]
    assert received[-len(new_bar) :] == new_bar
    _assert_released([m for _, m in recorder.messages])


def test_play_drums_connects_to_an_existing_port_named_by_port(jack_server, drums_ts, drum_model):
    """``port=NAME`` of a present destination (as on Windows, where there are no virtual ports) plays into it."""
    received: list[mido.Message] = []
    sink = ports.backend_for(API).open_input("ll test sink", virtual=True, callback=received.append)
    status = io.StringIO()
    try:
        steps = play_drums(
            drums_ts, port="ll test sink", bpm=200.0, bars=1, api=API, quantise=True, stream=status
        )
        deadline = time.monotonic() + 10.0
        while not any(m.type == "control_change" for m in received) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        sink.close()
    assert steps == drum_model.steps
    assert "RtMidiIn Client:ll test sink'" in status.getvalue() and "200 bpm" in status.getvalue()
    expected = _expected_note_ons(
        pattern_hits(drum_model.pattern(_latent(drum_model, 0.0), 0), drum_model.gm_notes),
        range(drum_model.steps),
    )
    assert [(m.note, m.velocity) for m in received if m.type == "note_on"] == [(n, v) for _, n, v in expected]
    _assert_released(received)


def test_sigterm_stops_a_player_process_with_all_notes_released(jack_server, drums_ts):
    code = (
        "from latentlive.live.drum_player import play_drums; "
        f"play_drums({str(drums_ts)!r}, port='ll test sigterm', bpm=240.0, api='jack')"
    )
    popen = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    with killed_if_running(popen) as process:
        recorder = Recorder("ll test sigterm")
        assert recorder.wait_for_note_ons(3, timeout=30.0)  # the process imports torch first
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=20)
        recorder.wait_for_all_notes_off()
        recorder.close()
    assert process.returncode == 0, stderr
    assert (
        f"latentlive drums: {drums_ts.name}" in stdout
        and "'ll test sigterm'" in stdout
        and "240 bpm" in stdout
    )
    _assert_released([m for _, m in recorder.messages])


# ---------------------------------------------------------------- errors


class _FlakyOutput:
    """An output whose port fails once, at the ``fail_at``-th message (as a vanished device does)."""

    name = "flaky"

    def __init__(self, fail_at: int | None) -> None:
        self.fail_at = fail_at
        self.sent: list[mido.Message] = []
        self.failed: mido.Message | None = None
        self.attempts = 0

    def send(self, msg: mido.Message) -> None:
        self.attempts += 1
        if self.attempts == self.fail_at:
            self.failed = msg
            raise OSError("device unplugged")
        self.sent.append(msg)


def test_a_port_error_ends_the_player_with_notes_released(drum_model):
    player = DrumPlayer(drum_model, _FlakyOutput(fail_at=None), bpm=600.0)
    messages_per_bar = 2 * sum(len(step) for step in pattern_hits(player.pattern, drum_model.gm_notes))
    assert messages_per_bar > 0
    failed_kinds = set()
    for fail_at in range(max(1, messages_per_bar - 3), messages_per_bar + 3):  # on note ons and on note offs
        output = _FlakyOutput(fail_at=fail_at)
        with pytest.raises(UserError, match="'flaky'.*failed while playing") as err:
            DrumPlayer(drum_model, output, bpm=600.0).play(bars=2)
        assert "\n" not in str(err.value)
        failed_kinds.add(output.failed.type)
        # The note whose note on failed may get a note off too (harmless); nothing that sounded is left on.
        _assert_released(output.sent)
    assert failed_kinds == {"note_on", "note_off"}


def test_no_midi_backend_is_a_one_line_user_error(drums_ts, monkeypatch):
    with pytest.raises(UserError, match="snd-seq") as err:  # no ALSA sequencer on these machines
        ports.choose_api("alsa")
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="'alsa'"):
        play_drums(drums_ts, api="alsa", bars=1)
    monkeypatch.setenv(ports.API_ENV, "alsa")
    with pytest.raises(UserError, match="LATENTLIVE_MIDI_API 'alsa'"):
        ports.choose_api()
    monkeypatch.delenv(ports.API_ENV)
    monkeypatch.setattr(ports, "api_usable", lambda api: False)  # neither ALSA nor JACK
    with pytest.raises(UserError, match=r"no MIDI backend.*jackd -d dummy -r 48000.*snd-seq") as err:
        ports.choose_api()
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="unknown MIDI API"):
        ports.choose_api("pipewire")


# ---------------------------------------------------------------- rendering


def test_render_writes_a_midi_loop_that_reads_back_to_the_pattern(drum_model, drums_ts, tmp_path):
    out = tmp_path / "loop.mid"
    out.write_bytes(b"old")  # replaced atomically, with force (without it, refused: tests/test_run_faults.py)
    z, style, bars, bpm = (
        _latent(drum_model, -1.0, 2.0, 0.0, 1.0),
        min(1, len(drum_model.style_names) - 1),
        2,
        132.0,
    )
    assert render_drums_midi(drums_ts, z, style, bars, bpm, out, force=True, quantise=True) == out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop.mid"]
    midi = mido.MidiFile(out)
    (track,) = midi.tracks
    tempos = [m.tempo for m in track if m.type == "set_tempo"]
    assert tempos == [mido.bpm2tempo(bpm)]
    ticks, now = [], 0
    for msg in track:
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            assert msg.channel == DRUM_CHANNEL
            ticks.append((now // TICKS_PER_STEP, msg.note, msg.velocity))
            assert now % TICKS_PER_STEP == 0
    hits = pattern_hits(drum_model.pattern(z, style), drum_model.gm_notes)
    assert ticks and ticks == _expected_note_ons(hits, range(bars * drum_model.steps))
    assert now == bars * drum_model.steps * TICKS_PER_STEP  # the loop is exactly `bars` bars long
    _assert_released([m for m in track if not m.is_meta], all_notes_off=False)
    assert os.path.getsize(out) > 0

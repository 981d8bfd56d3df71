"""Note ordering under any timing: the drum and band players keep at most one sounding note per channel and
pitch (a new note on of a sounding pitch first sends its note off), whatever the clock does.

The players run on a fake clock, deterministically: every wait returns at once with the clock moved to the
deadline plus a random late wake-up (up to several steps), and followed MIDI clock arrives in bursts (many
ticks at one instant, then gaps). Nothing sleeps on real time.
"""

import random
import threading
from types import SimpleNamespace

import mido
import pytest
from list_output import ListOutput

import latentlive.live.band_player
import latentlive.live.drum_player
import latentlive.live.playback
import latentlive.live.scheduler
from latentlive.live.band_model import BandModel
from latentlive.live.drum_model import DrumModel
from latentlive.live.drum_player import DrumPlayer
from latentlive.live.playback import NoteOutput
from latentlive.live.scheduler import CLOCKS_PER_STEP, ClockFollower


class FakeClock:
    """A ``perf_counter`` that moves 0.1 ms per reading (the code's own run time) and jumps when waited on:
    each wait ends ``lateness()`` after its deadline."""

    def __init__(self, seed: int, max_late_s: float) -> None:
        self.now = 1000.0
        self.rng = random.Random(seed)
        self.max_late_s = max_late_s

    def perf_counter(self) -> float:
        self.now += 1e-4
        return self.now

    def lateness(self) -> float:
        roll = self.rng.random()
        if roll < 0.5:
            return 0.0
        if roll < 0.9:
            return self.rng.uniform(0.0, 0.002)  # ordinary wake-up jitter
        return self.rng.uniform(0.0, self.max_late_s)  # a stall: several steps late

    def sleep_until(self, deadline: float, stop: threading.Event | None = None) -> bool:
        if stop is not None and stop.is_set():
            return False
        self.now = max(self.now, deadline) + self.lateness()
        return True

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Put this clock in place of real time in the players' modules."""
        fake_time = SimpleNamespace(perf_counter=self.perf_counter, time=self.perf_counter)
        for module in (
            latentlive.live.scheduler,
            latentlive.live.playback,
            latentlive.live.drum_player,
            latentlive.live.band_player,
        ):
            monkeypatch.setattr(module, "time", fake_time)
            if hasattr(module, "sleep_until"):
                monkeypatch.setattr(module, "sleep_until", self.sleep_until)


def assert_one_sounding_note_per_key(messages: list[mido.Message]) -> None:
    """No note on of a (channel, pitch) that sounds; nothing sounds at the end."""
    sounding: set[tuple[int, int]] = set()
    for i, msg in enumerate(messages):
        key = (getattr(msg, "channel", -1), getattr(msg, "note", -1))
        if msg.type == "note_on" and msg.velocity > 0:
            assert key not in sounding, f"message {i}: note on of channel/pitch {key} before its note off"
            sounding.add(key)
        elif msg.type in ("note_on", "note_off"):
            sounding.discard(key)
    assert not sounding, f"notes left sounding: {sorted(sounding)}"


def clock_bursts(follower: ClockFollower, clock: FakeClock, steps: int, seed: int) -> None:
    """Queue MIDI clock for ``steps`` steps on ``follower``: ticks alone, in bursts at one instant, and gaps."""
    rng = random.Random(seed)
    t = clock.now
    follower.handle(mido.Message("start"), t)
    tick = 0
    while tick < steps * CLOCKS_PER_STEP:
        burst = rng.choice([1, 1, 1, 6, 13, 30])  # up to 5 steps of ticks at the same instant
        for _ in range(min(burst, steps * CLOCKS_PER_STEP - tick)):
            follower.handle(mido.Message("clock"), t)
            tick += 1
        t += rng.choice([0.0, 0.004, 0.02, 0.3])


def test_the_check_fails_on_a_repeated_note_on_and_a_hanging_note():
    on, off = mido.Message("note_on", note=42, velocity=90), mido.Message("note_off", note=42)
    assert_one_sounding_note_per_key([on, off, on, off])
    with pytest.raises(AssertionError, match="before its note off"):
        assert_one_sounding_note_per_key([on, on, off])
    with pytest.raises(AssertionError, match="left sounding"):
        assert_one_sounding_note_per_key([on])
    assert_one_sounding_note_per_key([on, on.copy(channel=1), off, off.copy(channel=1)])  # two channels


@pytest.fixture(scope="module")
def drum_model(drums_ts) -> DrumModel:
    return DrumModel(drums_ts)


def _play_drums(drum_model, monkeypatch, seed: int, following: bool) -> list[mido.Message]:
    clock = FakeClock(seed, max_late_s=0.5)
    clock.install(monkeypatch)
    output = ListOutput()
    follower = ClockFollower() if following else None
    # threshold 0: every instrument hits every step, so a late or bursting step meets notes still sounding
    player = DrumPlayer(drum_model, output, bpm=300.0, threshold=0.0, follower=follower)
    bars = 4
    if follower is not None:
        clock_bursts(follower, clock, bars * drum_model.steps, seed)
    assert player.play(bars=bars) == bars * drum_model.steps
    return output.sent


@pytest.mark.parametrize("following", [False, True], ids=["own tempo", "midi clock bursts"])
@pytest.mark.parametrize("seed", range(4))
def test_drum_player_sends_the_note_off_before_the_next_note_on_of_a_pitch(
    drum_model, monkeypatch, seed, following
):
    sent = _play_drums(drum_model, monkeypatch, seed, following)
    note_ons = [m for m in sent if m.type == "note_on" and m.velocity > 0]
    assert len(note_ons) == 4 * drum_model.steps * len(set(drum_model.gm_notes))  # every hit was played
    assert_one_sounding_note_per_key(sent)


def test_the_drum_timing_cases_do_meet_sounding_notes(drum_model, monkeypatch):
    """Without the note off first, the same runs break the order: the cases above exercise it."""

    def note_on_without_off_first(self, note, velocity, off_time=None, channel=None):
        key = (self.channels[0] if channel is None else channel, note)
        self._sounding[key] = off_time
        self._send(mido.Message("note_on", channel=key[0], note=note, velocity=velocity))

    monkeypatch.setattr(NoteOutput, "note_on", note_on_without_off_first)
    with pytest.raises(AssertionError, match="before its note off"):
        assert_one_sounding_note_per_key(_play_drums(drum_model, monkeypatch, seed=0, following=True))


@pytest.mark.parametrize("following", [False, True], ids=["own tempo", "midi clock bursts"])
def test_band_player_keeps_one_sounding_note_per_channel_and_pitch(band_ts, monkeypatch, following):
    band = BandModel(band_ts)
    clock = FakeClock(seed=5, max_late_s=0.3)
    clock.install(monkeypatch)
    output = ListOutput()
    follower = ClockFollower() if following else None
    player = latentlive.live.band_player.BandPlayer(
        band, output, part=0, bpm=480.0, temperature=2.0, follower=follower
    )
    bars = 4
    if follower is not None:
        clock_bursts(follower, clock, bars * band.steps, seed=5)
    assert player.play(bars=bars) == bars * band.steps
    assert any(m.type == "note_on" for m in output.sent)
    assert_one_sounding_note_per_key(output.sent)

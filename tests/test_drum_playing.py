"""Drums played with feel: the model's velocities as MIDI velocities, its offsets (and the swing) as sub-step
timing that follows the tempo, the quantise switch, and two-bar patterns end to end.

The model is made by hand (tests/hand_made_drums.py): its offsets are +-0.42 of a step, so a note played on the
grid misses its time by far more than the timing tolerance, and the tests can tell feel from the grid.
"""

import json
import threading
import time
from pathlib import Path

import mido
import numpy as np
import pytest
import torch
from hand_made_drums import groove_grids, save_groove_ts, write_groove_run
from jack_midi import API, Recorder
from midi_files import drum_note_ons

from latentlive.core.errors import UserError
from latentlive.core.runs import load_checkpoint
from latentlive.export.exporter import export_run
from latentlive.export.metadata import METADATA_NAME, read_metadata
from latentlive.live import ports
from latentlive.live.drum_model import DrumModel, pattern_notes
from latentlive.live.drum_player import CC_QUANTISE, CC_SWING, DrumPlayer
from latentlive.live.render import TICKS_PER_STEP, render_drums_midi
from latentlive.live.scheduler import CLOCKS_PER_STEP, ClockFollower
from latentlive.models.drums import PatternVAE

# JACK delivers MIDI once per 5.3 ms period, plus thread wake-ups on a busy machine (tests/test_live_player.py).
# The hand-made model's offsets are +-0.42 of a step (63 ms at 100 bpm): a grid-timed note still fails.
TOLERANCE_S = 0.04
THRESHOLDS_32 = [0.3, 0.6, 0.5, 0.5, 0.4, 0.5, 0.5, 0.7, 0.5]


@pytest.fixture(scope="module")
def groove16(tmp_path_factory: pytest.TempPathFactory) -> DrumModel:
    return DrumModel(save_groove_ts(tmp_path_factory.mktemp("groove16")))


@pytest.fixture(scope="module")
def groove32_ts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-bar model exported by ``latentlive export`` (the nn~ contract checked in a fresh process)."""
    run = write_groove_run(tmp_path_factory.mktemp("runs") / "groove32", 32, THRESHOLDS_32)
    export_run(run)
    return run / "export" / "groove32.ts"


def _expected_ons(
    model: DrumModel, bars: int, swing: float, quantise: bool, style: int = 0
) -> list[tuple[int, int, int]]:
    """``(tick, note, velocity)`` of a rendered loop, computed from the model's output without the player's
    code: the velocity ``round(127 level)``, the tick ``(step + offset + swing) * TICKS_PER_STEP``."""
    levels, offsets = model.groove([0.0] * model.latent_size, style)
    steps = levels.shape[1]
    total = bars * 16 * TICKS_PER_STEP
    ons = []
    for repeat in range(bars * 16 // steps):
        for s in range(steps):
            for i in np.flatnonzero(levels[:, s] > 0):
                shift = 0.0 if quantise else float(offsets[i, s]) + (swing / 2 if s % 2 else 0.0)
                tick = round((repeat * steps + s + shift) * TICKS_PER_STEP) % total
                ons.append((tick, model.gm_notes[i], int(np.floor(127 * levels[i, s] + 0.5))))
    return sorted(ons)


def test_the_model_plays_the_velocities_and_offsets_it_was_made_with(groove16: DrumModel) -> None:
    hits, velocity, offset = groove_grids(16)
    levels, offsets = groove16.groove([0.0] * 4, 0)
    assert np.array_equal(levels > 0, hits)
    np.testing.assert_allclose(levels[hits], velocity[hits], atol=2e-3)
    np.testing.assert_allclose(offsets[hits], offset[hits], atol=2e-3)
    assert (offsets[~hits] == 0).all() and np.abs(offsets[hits]).min() > 0.4  # far off the grid


@pytest.mark.parametrize(("swing", "quantise"), [(0.0, False), (0.5, False), (0.5, True)])
def test_render_writes_the_models_velocities_and_sub_step_timing(
    groove16: DrumModel, tmp_path: Path, swing: float, quantise: bool
) -> None:
    out = render_drums_midi(
        groove16, None, 0, 2, 120.0, tmp_path / "loop.mid", swing=swing, quantise=quantise
    )
    ons, length = drum_note_ons(out)
    assert length == 2 * 16 * TICKS_PER_STEP
    assert sorted(ons) == _expected_ons(groove16, 2, swing, quantise)
    off_grid = [tick % TICKS_PER_STEP != 0 for tick, _, _ in ons]
    assert not any(off_grid) if quantise else all(off_grid)  # every note of this model is off the grid
    assert len({v for _, _, v in ons}) > 5  # velocities vary, as the model's do


def test_a_two_bar_model_exports_under_the_contract_and_renders_two_bars(
    groove32_ts: Path, tmp_path: Path
) -> None:
    metadata = read_metadata(groove32_ts)
    assert (metadata["steps"], metadata["bars"], metadata["class_thresholds"]) == (32, 2, THRESHOLDS_32)
    assert metadata["methods"]["decode"]["out_channels"] == 18
    model = DrumModel(groove32_ts)
    hits, velocity, _ = groove_grids(32)
    levels, _ = model.groove([0.0] * 4, 1)
    assert levels.shape == (9, 32) and np.array_equal(levels > 0, hits)
    out = render_drums_midi(model, None, 1, 4, 100.0, tmp_path / "two.mid")
    ons, length = drum_note_ons(out)
    assert length == 4 * 16 * TICKS_PER_STEP  # 4 bars: the 2-bar pattern twice
    levels_style0, _ = model.groove([0.0] * 4, 0)
    assert np.array_equal(levels_style0 > 0, hits)
    assert sorted(ons) == _expected_ons(model, 4, 0.0, False, style=1)


def test_the_threshold_knob_shifts_the_runs_class_thresholds(groove32_ts: Path) -> None:
    """A hit probability of 0.45 (logit -0.2): below 0.5 and the 0.6 / 0.7 of the snare and crash, above the
    0.3 / 0.4 of the kick and low tom, so at the knob's 0.5 the classes differ as the run chose."""
    module = torch.jit.load(str(groove32_ts))
    x = torch.zeros(1, 6, 32)
    x[0, 4] = torch.arange(32.0)
    probability = 0.45
    thresholds = torch.tensor(THRESHOLDS_32)
    with torch.no_grad():
        getattr(module.model.decoder, "1").bias[: 9 * 32] = torch.logit(torch.tensor(probability))
    for knob in (0.0, 0.25, 0.5, 0.75, 1.0):
        module.set_threshold(knob)
        played = (module.decode(x)[0, :9] > 0).all(1)
        shifted = (
            thresholds * knob / 0.5 if knob <= 0.5 else thresholds + (1 - thresholds) * (knob - 0.5) / 0.5
        )
        assert played.tolist() == (probability >= shifted).tolist(), knob
    module.set_threshold(0.5)
    assert (module.decode(x)[0, :9] > 0).all(1).tolist() == [t <= probability for t in THRESHOLDS_32]


def test_encode_takes_the_clips_style_or_infers_it(groove16: DrumModel) -> None:
    checkpoint = load_checkpoint(groove16.path.parent / "checkpoints" / "last.pt")
    eager = PatternVAE(**checkpoint["model_args"])
    eager.load_state_dict(checkpoint["model_state"])
    eager.eval()
    hits, velocity, _ = groove_grids(16)
    rng = np.random.default_rng(0)
    clips = torch.from_numpy(np.where(hits & (rng.random((4, 9, 16)) < 0.8), velocity, 0.0)).float()
    module = torch.jit.load(str(groove16.path))
    x = torch.zeros(4, 11, 16)
    x[:, :9] = clips
    x[:, 9] = torch.arange(16.0)
    x[:, 10] = torch.tensor([-2.0, -2.0, 1.0, -1.0]).unsqueeze(1)
    out = module.encode(x)[:, :, -1]
    pattern = (clips > 0).float()
    with torch.no_grad():
        inferred = eager.infer_style(pattern, clips, torch.zeros_like(clips))
        styles = torch.tensor([inferred[0], inferred[1], 1, -1])
        mean, _ = eager.encode(pattern, styles, clips, torch.zeros_like(clips))
    assert out[:, 4].long().tolist() == styles.tolist()
    assert torch.allclose(out[:, :4], mean, atol=1e-5)


# ---------------------------------------------------------------- the player


def _play_on_jack(
    model: DrumModel, name: str, bpm: float, quantise: bool
) -> list[tuple[float, mido.Message]]:
    output = ports.open_output(name, api=API)
    recorder = Recorder(name)
    try:
        player = DrumPlayer(model, output, bpm=bpm, style=0, quantise=quantise)
        assert player.play(bars=2) == 32
        assert recorder.wait_for_all_notes_off()
    finally:
        recorder.close()
        output.close()
    return recorder.note_ons()


def _timing_residuals(received, expected, step_s: float) -> np.ndarray:
    """Arrival time minus expected time (in steps) of each note on, less their median (the lead-in)."""
    residuals = np.array([t - when * step_s for (t, _), (when, _, _) in zip(received, expected, strict=True)])
    return np.abs(residuals - np.median(residuals))


@pytest.mark.parametrize("quantise", [False, True], ids=["feel", "quantised"])
def test_the_player_sends_velocities_and_sub_step_timing_on_real_ports(
    jack_server, groove32_ts: Path, quantise: bool
) -> None:
    """Two bars of a two-bar model at 100 bpm: each note on at (step + offset) steps, or on its step."""
    model, bpm = DrumModel(groove32_ts), 100.0
    levels, offsets = model.groove([0.0] * 4, 0)
    notes = pattern_notes(levels, offsets, model.gm_notes, 0.0, quantise)
    expected = sorted((s + shift, note, velocity) for s in range(32) for note, velocity, shift in notes[s])
    received = _play_on_jack(model, f"ll groove {int(quantise)}", bpm, quantise)
    assert [(m.note, m.velocity) for _, m in received] == [(n, v) for _, n, v in expected]
    step_s = 60.0 / bpm / 4
    assert _timing_residuals(received, expected, step_s).max() < TOLERANCE_S
    on_grid = [(float(np.floor(when + 0.5)), n, v) for when, n, v in expected]
    if not quantise:  # the same notes placed on their steps would miss by far more than the tolerance
        assert _timing_residuals(received, on_grid, step_s).max() > 2 * TOLERANCE_S


class _TimedOutput:
    """An output port that keeps what is sent, with the time."""

    name = "timed"

    def __init__(self) -> None:
        self.sent: list[tuple[float, mido.Message]] = []

    def send(self, msg: mido.Message) -> None:
        self.sent.append((time.perf_counter(), msg))


def test_the_clock_following_player_shifts_notes_at_the_clocks_tempo(groove16: DrumModel) -> None:
    """MIDI clock at 100 bpm: each note on comes its shift x the estimated step after its step's clock."""
    bpm, steps = 100.0, 16
    tick_s = 60.0 / (bpm * 24)
    output, follower = _TimedOutput(), ClockFollower()
    player = DrumPlayer(groove16, output, style=0, follower=follower)
    step_times: list[float] = []

    def send_clock() -> None:
        follower.handle(mido.Message("start"))
        start = time.perf_counter()
        for tick in range(steps * CLOCKS_PER_STEP):
            while time.perf_counter() < start + tick * tick_s:
                time.sleep(0.0005)
            if tick % CLOCKS_PER_STEP == 0:
                step_times.append(time.perf_counter())
            follower.handle(mido.Message("clock"))

    thread = threading.Thread(target=send_clock)
    thread.start()
    assert player.play(bars=1) == steps
    thread.join()
    received = [(t, m) for t, m in output.sent if m.type == "note_on" and m.velocity > 0]
    step_s = 60.0 / bpm / 4
    levels, offsets = groove16.groove([0.0] * 4, 0)
    expected = sorted(
        # after Start, step 0's early notes come with its clock: no step was before it to send them
        (
            step_times[s] + (max(float(offsets[i, s]), 0.0) if s == 0 else float(offsets[i, s])) * step_s,
            groove16.gm_notes[i],
            int(np.floor(127 * levels[i, s] + 0.5)),
        )
        for s in range(steps)
        for i in np.flatnonzero(levels[:, s] > 0)
    )
    assert [(m.note, m.velocity) for _, m in received] == [(n, v) for _, n, v in expected]
    errors = np.array([t - when for (t, _), (when, _, _) in zip(received, expected, strict=True)])
    assert np.abs(errors).max() < TOLERANCE_S


def test_swing_and_quantise_come_from_the_arguments_and_control_changes(groove16: DrumModel) -> None:
    player = DrumPlayer(groove16, _TimedOutput(), swing=0.5)
    levels, offsets = groove16.groove([0.0] * 4, 0)
    for s, step in enumerate(player.notes):  # hats on odd steps: none here; every second 16th gets the swing
        assert [shift for _, _, shift in step] == pytest.approx(
            [float(offsets[i, s]) + (0.25 if s % 2 else 0.0) for i in np.flatnonzero(levels[:, s] > 0)]
        )
    player.handle_message(mido.Message("control_change", control=CC_QUANTISE, value=127))
    player.handle_message(mido.Message("control_change", control=CC_SWING, value=127))
    assert (player.controls["quantise"], player.controls["swing"]) == (True, 1.0)
    player._decode()  # what the player does after the next step
    assert all(shift == 0.0 for step in player.notes for _, _, shift in step)
    player.handle_message(mido.Message("control_change", control=CC_QUANTISE, value=0))
    player._decode()
    assert player.notes[13][0][2] == pytest.approx(float(offsets[4, 13]) + 0.5)  # the tom on an odd 16th
    with pytest.raises(UserError, match="--swing 1.5"):
        DrumPlayer(groove16, _TimedOutput(), swing=1.5)


def test_an_export_from_before_offsets_is_refused_in_one_line(groove16: DrumModel, tmp_path: Path) -> None:
    extra = {METADATA_NAME: ""}
    module = torch.jit.load(str(groove16.path), _extra_files=extra)
    metadata = json.loads(extra[METADATA_NAME])
    metadata["methods"]["decode"]["out_channels"] = 9  # what drums.ts gave before velocities and offsets
    old = tmp_path / "old.ts"
    module.save(str(old), _extra_files={METADATA_NAME: json.dumps(metadata)})
    with pytest.raises(UserError, match="export the run again") as err:
        DrumModel(old)
    assert "\n" not in str(err.value)

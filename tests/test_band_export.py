"""Export of the band run: the nn~ contract, the signal encoding of ``next`` and ``fill`` (docs/band_encoding.md)
against the plain methods ``next_measure`` / ``fill_measure``, and those against the model itself."""

import json
from pathlib import Path

import pytest
import torch

from latentlive.core.runs import load_checkpoint
from latentlive.export.band import BandExport, build_band_export, uniform_noise
from latentlive.export.host import NNHost, load_ts, set_attribute
from latentlive.export.metadata import read_metadata
from latentlive.models.band import BandRMVAE, load_main_model, onsets_to_roll, tokens_to_roll

STEPS = 16
SAMPLES_PER_STEP = 300  # a measure (4800 samples) is longer than any buffer used here
REST, HOLD = 128, 129


@pytest.fixture(scope="module")
def checkpoint(band_run: Path) -> dict:
    return load_checkpoint(band_run / "checkpoints" / "last.pt")


@pytest.fixture(scope="module")
def module(band_ts: Path) -> torch.jit.ScriptModule:
    return load_ts(band_ts)


def melody(measures: int, seed: int, low: int = 55) -> torch.Tensor:
    """Mono tokens ``[measures * 16]``: notes of 1 to 4 steps with a few rests, pitches ``low .. low + 12``."""
    generator = torch.Generator().manual_seed(seed)
    tokens = []
    while len(tokens) < measures * STEPS:
        length = int(torch.randint(1, 5, (1,), generator=generator))
        if torch.rand(1, generator=generator) < 0.15:
            tokens += [REST] * length
        else:
            tokens += [low + int(torch.randint(0, 13, (1,), generator=generator))] + [HOLD] * (length - 1)
    return torch.tensor(tokens[: measures * STEPS])


def lane_signal(tokens: torch.Tensor) -> torch.Tensor:
    """Tokens ``[N]`` -> the sounding pitch per sample ``[N * SAMPLES_PER_STEP]`` as notein -> sig~ gives it:
    an onset drops to -1 for the step's first sample (so a repeated pitch is seen again)."""
    values, current = [], -1
    for token in tokens.tolist():
        current = token if token < 128 else (current if token == HOLD else -1)
        first = -1 if token < 128 else current
        values += [first] + [current] * (SAMPLES_PER_STEP - 1)
    return torch.tensor(values, dtype=torch.float32)


def signal(lane_tokens: torch.Tensor, ahead: float = 0.0) -> torch.Tensor:
    """Lane tokens ``[L, N]`` -> the nn~ input ``[1, L + 1, N * SAMPLES_PER_STEP]`` (lanes, position); the
    position runs ``ahead`` steps ahead of the notes (the device's is half a step ahead)."""
    lanes = torch.stack([lane_signal(t) for t in lane_tokens])
    position = torch.arange(lanes.shape[-1], dtype=torch.float32) / SAMPLES_PER_STEP + ahead
    return torch.cat([lanes, position[None]])[None]


def recorded_rolls(lane_tokens: torch.Tensor, voices: list[int]) -> torch.Tensor:
    """What the module records from ``lane_tokens [L, M * 16]``: ``[M, P, 3, 128, 16]``, a poly part the
    union of its voices, a HOLD at step 0 continuing the lane's pitch from the measure before."""
    measures = lane_tokens.shape[1] // STEPS
    whole = tokens_to_roll(
        lane_tokens.view(-1, 1, measures * STEPS), torch.full((lane_tokens.shape[0], 1), -1)
    )
    sounding = torch.where(whole[:, 0, 1] > 0, torch.arange(128).view(1, 128, 1), -1).amax(1)  # [L, N]
    rolls = []
    for m in range(measures):
        tokens = lane_tokens[:, m * STEPS : (m + 1) * STEPS]
        carry = sounding[:, m * STEPS - 1] if m else torch.full((lane_tokens.shape[0],), -1)
        lanes = tokens_to_roll(tokens, carry)
        parts, start = [], 0
        for count in voices:
            parts.append(lanes[start : start + count].amax(0))
            start += count
        rolls.append(torch.stack(parts))
    return torch.stack(rolls)


def expected_next(module, recorded: torch.Tensor, part: int, horizon: int, temperature: float) -> dict:
    """Measure number -> the roll ``next`` plays there: the prediction made when measure ``n - horizon``
    ended, from the history of the played part as recorded (its pitches held over the barline taken from the
    module's own predictions of the other parts)."""
    measures, parts = recorded.shape[0], recorded.shape[1]
    played = torch.zeros(1, parts, dtype=torch.bool)
    played[0, part if part >= 0 else slice(None)] = True
    module.set_ahead(horizon)
    predictions, encoded = {}, []
    for j in range(measures - 1):
        guess = predictions.get(j, torch.zeros_like(recorded[0:1]))
        closed = torch.where(played.view(1, parts, 1, 1, 1), recorded[j : j + 1], guess)
        encoded.append(module.encode_history(closed[:, None], played))
        mean, logvar, mask = (torch.cat(pieces, 1) for pieces in zip(*encoded, strict=True))
        predictions[j + horizon] = module.next_from_encoded(mean, logvar, mask, closed, temperature, j)
    return predictions


def expected_fill(module, recorded: torch.Tensor, part: int, temperature: float) -> dict:
    """Measure number -> the roll ``fill`` plays there: the measure before with the other parts filled."""
    measures, parts = recorded.shape[0], recorded.shape[1]
    present = torch.zeros(1, parts, dtype=torch.bool)
    present[0, part] = True
    predictions, history = {}, torch.zeros(1, 0, *recorded.shape[1:])
    for j in range(measures - 1):
        measure = torch.where(
            present.view(1, parts, 1, 1, 1), recorded[j : j + 1], torch.zeros_like(recorded[:1])
        )
        filled = module.fill_measure(history, measure, present, temperature, j)
        history = torch.cat([history, filled[:, None]], 1)
        predictions[j + 1] = filled
    return predictions


def played_lanes(module, method: str, x: torch.Tensor, buffer: int) -> torch.Tensor:
    """Run ``x`` through ``method`` as nn~ does and read every lane at each step's first sample: ``[L, N]``."""
    module.reset()
    out = NNHost(module, method, buffer_size=buffer).process(x)
    return out[0, :, ::SAMPLES_PER_STEP].long()


def assert_plays(module, lanes: torch.Tensor, predictions: dict) -> None:
    """``lanes [L, M * 16]`` hold ``measure_lanes`` of each prediction in its measure, silence elsewhere."""
    measures = lanes.shape[1] // STEPS
    for n in range(measures):
        got = lanes[:, n * STEPS : (n + 1) * STEPS]
        want = module.measure_lanes(predictions[n])[0] if n in predictions else torch.full_like(got, -1)
        assert torch.equal(got, want), f"measure {n}: played {got.tolist()}, predicted {want.tolist()}"


def band_input(meta: dict, measures: int) -> torch.Tensor:
    """Lane tokens ``[L, measures * 16]``: a melody per lane, voices of a part in separate registers."""
    return torch.stack([melody(measures, seed=lane, low=40 + 7 * lane % 40) for lane in range(meta["lanes"])])


# ---------------------------------------------------------------- the exported file


def test_export_keeps_the_contract_and_writes_the_metadata(band_run: Path, band_ts: Path, checkpoint: dict):
    report = json.loads((band_run / "export" / "report.json").read_text())
    assert report["contract"]["problems"] == [] and report["latency_samples"] == 0
    meta = read_metadata(band_ts)
    facts = checkpoint["metadata"]
    assert meta["model"] == "band" and meta["part_names"] == facts["part_names"]
    assert meta["part_kinds"] == facts["part_kinds"] and meta["voices"] == facts["voices"]
    assert meta["lanes"] == sum(meta["voices"]) == len(meta["lane_parts"])
    assert meta["steps"] == STEPS and meta["ahead"] == checkpoint["model_args"].get("ahead", 1)
    assert (
        meta["context"] == facts["context"] and meta["latent_size"] == checkpoint["model_args"]["latent_size"]
    )
    assert meta["attributes"] == {"temperature": 1.0, "part": 0, "ahead": meta["ahead"], "latency": 0}
    assert 10 not in meta["midi_channels"] and len(meta["midi_channels"]) == len(meta["part_names"])
    lanes = meta["lanes"]
    for method in ("next", "fill"):
        assert meta["methods"][method] == {
            "in_channels": lanes + 1,
            "in_ratio": 1,
            "out_channels": lanes,
            "out_ratio": 1,
        }
    module = load_ts(band_ts)
    assert module.next_input_labels[-1] == "(signal) position in sixteenths"
    assert module.get_latency()[0] == 0 and module.get_temperature()[0] == 1.0


def test_any_finite_input_gives_bounded_tokens_and_the_state_recovers(band_ts: Path):
    """Extreme inputs give whole tokens in range. After them and a few measures of other music, ``next`` and
    ``fill`` play what a freshly loaded module plays on the same input once the history has moved past them
    (``context`` measures, then ``ahead``), and not before (the other music is in the history). At
    temperature 0: the sampling noise follows a counter of the measures heard, which differs by design."""
    meta = read_metadata(band_ts)
    lanes, context = meta["lanes"], meta["context"]
    generator = torch.Generator().manual_seed(0)
    normal = signal(band_input(meta, context + 5))
    other = signal(
        torch.stack([melody(context, seed=10 + lane, low=40 + 7 * lane % 40) for lane in range(lanes)])
    )
    window = (context + 3) * STEPS * SAMPLES_PER_STEP  # past the state: the last two measures compared
    hurt, fresh = load_ts(band_ts), load_ts(band_ts)
    for m in (hurt, fresh):
        set_attribute(m, "temperature", ["0"])
    played = {}
    for method in ("next", "fill"):
        for batch in (1, 64):
            cases = [
                torch.full((batch, lanes + 1, 512), 1.0e6),
                torch.full((batch, lanes + 1, 512), -1.0e6),
                (torch.rand(batch, lanes + 1, 512, generator=generator) * 2 - 1) * 1.0e6,
                torch.randn(batch, lanes + 1, 512, generator=generator) * 100,
            ]
            hurt.reset()
            fresh.reset()
            for x in cases:
                y = getattr(hurt, method)(x)
                assert torch.isfinite(y).all() and y.min() >= -2 and y.max() <= 127
                assert torch.equal(y, y.round())
            NNHost(hurt, method, buffer_size=512).process(other.expand(batch, -1, -1).contiguous())
            x = normal.expand(batch, -1, -1).contiguous()
            got = NNHost(hurt, method, buffer_size=512).process(x)
            want = NNHost(fresh, method, buffer_size=512).process(x)
            assert torch.isfinite(got).all() and got.min() >= -2 and got.max() <= 127
            assert torch.equal(got[..., window:], want[..., window:]), f"{method}: the state did not recover"
            played[method] = got, want
    got, want = played["fill"]
    assert (want[..., window:] >= 0).any()  # notes are compared, not silences
    assert not torch.equal(got[..., :window], want[..., :window])  # the comparison sees the history


@pytest.mark.parametrize(("part", "ahead"), [(0, 1), (0, 2), (-1, 1), ("last", 1)])
def test_next_plays_in_each_measure_what_next_measure_predicted(module, band_ts: Path, part, ahead):
    meta = read_metadata(band_ts)
    part = len(meta["part_names"]) - 1 if part == "last" else part
    lane_tokens = band_input(meta, 5)
    recorded = recorded_rolls(lane_tokens, meta["voices"])
    module.set_part(part)
    predictions = expected_next(module, recorded, part, ahead, 1.0)
    module.set_ahead(ahead)
    try:
        lanes = played_lanes(module, "next", signal(lane_tokens), buffer=256)
    finally:
        module.set_part(0)
        module.set_ahead(meta["ahead"])
    assert_plays(module, lanes, predictions)
    assert (lanes[:, ahead * STEPS :] != -1).any(), "the predictions are all silence: nothing was compared"


def test_fill_keeps_the_played_part_and_fills_the_others(module, band_ts: Path):
    meta = read_metadata(band_ts)
    lane_tokens = band_input(meta, 4)
    recorded = recorded_rolls(lane_tokens, meta["voices"])
    module.set_part(1)
    try:
        predictions = expected_fill(module, recorded, 1, 1.0)
        lanes = played_lanes(module, "fill", signal(lane_tokens), buffer=2048)
    finally:
        module.set_part(0)
    assert_plays(module, lanes, predictions)
    for n in range(1, 4):  # the played part comes back one measure later, as it was played
        assert torch.equal(predictions[n][0, 1], recorded[n - 1, 1])
        assert not torch.equal(predictions[n][0, 0], recorded[n - 1, 0])


def test_notes_played_on_the_grid_keep_their_length_with_the_position_half_a_step_ahead(
    module, band_ts: Path
):
    """The device's position runs half a step ahead, so a note released on the grid still sounds in the first
    half of the next step: a step holds only if its last sample sounds, so the note is not one step longer."""
    meta = read_metadata(band_ts)
    lane_tokens = band_input(meta, 4)
    recorded = recorded_rolls(lane_tokens, meta["voices"])
    assert (lane_tokens[0] == REST).any(), "no note is released before a rest: nothing would be compared"
    predictions = expected_fill(module, recorded, 0, 1.0)
    lanes = played_lanes(module, "fill", signal(lane_tokens, ahead=0.5), buffer=1024)
    assert_plays(module, lanes, predictions)


def test_temperature_zero_is_deterministic_and_seeds_change_samples(module, band_ts: Path):
    meta = read_metadata(band_ts)
    history = recorded_rolls(band_input(meta, 3), meta["voices"])[None]
    cold = [module.next_measure(history, 0.0, seed) for seed in (0, 1)]
    assert torch.equal(cold[0], cold[1])
    hot = [module.next_measure(history, 1.5, seed) for seed in (0, 0, 1)]
    assert torch.equal(hot[0], hot[1]) and not torch.equal(hot[0], hot[2])
    batch = module.next_measure(history.expand(2, -1, -1, -1, -1, -1), 1.5, 0)  # row b draws with seed + b
    assert torch.equal(batch[1:], hot[2])


# ---------------------------------------------------------------- eager wrapper and model


def test_eager_and_scripted_modules_agree_and_batch_entries_are_independent(
    module, checkpoint, band_ts: Path
):
    meta = read_metadata(band_ts)
    eager, _ = build_band_export(checkpoint)
    x = torch.cat([signal(band_input(meta, 3)), signal(band_input(meta, 3).flip(0))])
    for method in ("next", "fill"):
        both = [played_lanes(m, method, x, buffer=512) for m in (eager, module)]
        assert torch.equal(both[0], both[1])
    alone = played_lanes(module, "next", x[1:], buffer=512)
    module.reset()
    batch = NNHost(module, "next", buffer_size=512).process(x)[1, :, ::SAMPLES_PER_STEP].long()
    assert torch.equal(alone, batch)


def test_cached_history_predicts_as_the_model_does(checkpoint, band_ts: Path):
    meta = read_metadata(band_ts)
    wrapper, _ = build_band_export(checkpoint)
    model = load_main_model(checkpoint["model_args"], checkpoint["model_state"])  # what the wrapper scripted
    rolls = recorded_rolls(band_input(meta, wrapper.context + 3), meta["voices"])
    parts = model.parts
    present = torch.zeros(2, parts, dtype=torch.bool)
    present[0, 0] = present[1, parts - 1] = True
    with torch.no_grad():
        for measures in (1, 2, wrapper.context + 1):
            history = torch.stack([rolls[:measures], rolls[1 : measures + 1]])
            noise = uniform_noise(torch.tensor([7, 8]), 0, [parts, 130, STEPS])
            trimmed = history[:, -wrapper.context :]
            assert torch.equal(wrapper.next_measure(history, 1.0, 7), model.predict_next(trimmed, 1.0, noise))
            encoded = wrapper.encode_history(history, present)  # each history read from one part
            from_parts = wrapper.next_from_encoded(*encoded, history[:, -1], 1.0, 7)
            assert torch.equal(from_parts, model.predict_next(trimmed, 1.0, noise, present))
            measure = rolls[measures : measures + 2]
            got = wrapper.fill_measure(history, measure, present, 1.0, 7)
            assert torch.equal(got, model.fill(trimmed, measure, present, 1.0, noise))


# ---------------------------------------------------------------- poly parts and voices


@pytest.fixture(scope="module")
def poly_wrapper() -> BandExport:
    """An untrained mono + poly model: the encoding does not depend on what was learned."""
    torch.manual_seed(0)
    model = BandRMVAE(["mono", "poly"], latent_size=4, hidden=16, recurrent_size=8)
    wrapper = BandExport(model, ["lead", "keys"], [1, 3], context=3)
    wrapper.finish()  # nn_tilde writes the attribute setters (set_part, ...) here, as scripting would
    return wrapper


def test_poly_onsets_take_free_voices_high_to_low_and_hold_for_their_length(poly_wrapper):
    onsets = torch.zeros(128, STEPS, dtype=torch.bool)
    durations = torch.zeros(128, STEPS)
    for step, pitch, length in [(0, 60, 4), (0, 64, 8), (0, 67, 2), (2, 72, 2), (4, 48, 2), (4, 50, 1)]:
        onsets[pitch, step], durations[pitch, step] = True, length
    onsets[[40, 41, 42, 43], 10] = True  # four onsets, three free voices: the lowest is dropped
    durations[[40, 41, 42, 43], 10] = 20.0  # held to the barline
    onsets[64, 6], durations[64, 6] = True, 1  # 64 starts again: its voice ends, a free one takes it
    poly = onsets_to_roll(onsets, durations)
    roll = torch.stack([torch.zeros_like(poly), poly])[None]
    lanes = poly_wrapper.measure_lanes(roll)[0]
    h, s = -2, -1
    assert lanes[0].tolist() == [s] * STEPS  # the silent mono part
    assert lanes[1].tolist() == [67, h, 72, h, 50, s, 64, s, s, s, 43, h, h, h, h, h]
    assert lanes[2].tolist() == [64, h, h, h, h, h, s, s, s, s, 42, h, h, h, h, h]
    assert lanes[3].tolist() == [60, h, h, h, 48, h, s, s, s, s, 41, h, h, h, h, h]


def test_poly_voice_lanes_are_recorded_as_one_part(poly_wrapper):
    lane_tokens = torch.stack([melody(4, 0, 70), melody(4, 1, 60), melody(4, 2, 50), melody(4, 3, 40)])
    recorded = recorded_rolls(lane_tokens, [1, 3])
    assert (recorded[:, 1, 0].sum((1, 2)) > recorded[:, 0, 0].sum((1, 2))).all()
    for part, method in ((1, "next"), (1, "fill"), (0, "fill")):
        poly_wrapper.set_part(part)
        if method == "next":
            predictions = expected_next(poly_wrapper, recorded, part, 1, 1.0)
        else:
            predictions = expected_fill(poly_wrapper, recorded, part, 1.0)
        with torch.no_grad():
            lanes = played_lanes(poly_wrapper, method, signal(lane_tokens), buffer=1024)
        assert_plays(poly_wrapper, lanes, predictions)
    poly_wrapper.set_part(0)


def test_a_loop_back_and_a_position_jump_each_end_a_measure(poly_wrapper):
    """Live's loop brace sends the position back: the measure ends there even without a new measure index."""
    lane_tokens = torch.stack([melody(2, 5, 60)] + [torch.full((32,), REST)] * 3)
    x = signal(lane_tokens)
    looped = torch.cat([x[..., : 8 * SAMPLES_PER_STEP]] * 3, -1)  # steps 0..7 three times over
    poly_wrapper.set_part(0)
    lanes = played_lanes(poly_wrapper, "next", looped, buffer=512)
    assert (lanes[:, :8] == -1).all()  # nothing predicted before the first pass ends
    assert int(poly_wrapper.engine.draws[0]) == 2 and int(poly_wrapper.engine.played[0]) == 2

"""The band training task: windows, losses, musical penalties, baselines, and a tiny run end to end."""

import json
from pathlib import Path

import gin
import numpy as np
import pytest
import torch

from latentlive.corpus.band_midi import BandCorpus, BandPiece
from latentlive.models.band import HOLD, REST, load_main_model, sounding_pitch, tokens_to_roll
from latentlive.models.band_objective import (
    clash_matrix,
    harmony_penalty,
    local_scale,
    onset_classes,
    pitch_classes,
    rare_steps,
    rhythm_penalty,
    scale_penalty,
    sounding_classes,
)
from latentlive.training.loop import weighted_total
from latentlive.training.tasks.band import BandTask
from latentlive.training.tasks.band_eval import (
    accompaniment_scores,
    frequent_pitch_baseline,
    note_correct,
    repeat_baseline,
    summarise,
    token_correct,
)

PARTS = ["soprano", "alto", "tenor", "bass"]
CHORDS = [(0, 4, 7), (5, 9, 0), (7, 11, 2), (9, 0, 4)]


def synthetic_piece(rng: np.random.Generator, name: str, measures: int = 10) -> BandPiece:
    """Four voices in quarter notes (some eighths) over chords of C major."""
    notes, tops = [], [72, 64, 55, 48]
    for m in range(measures):
        for beat in range(4):
            chord = CHORDS[rng.integers(len(CHORDS))] if beat else CHORDS[0]
            for part, top in enumerate(tops):
                pitch = top - top % 12 + chord[(part + m) % 3]
                pitch -= 12 if pitch > top + 6 else 0
                start = m * 16 + beat * 4
                if rng.random() < 0.2:
                    notes += [(part, start, 2, pitch), (part, start + 2, 2, pitch + 2)]
                else:
                    notes.append((part, start, 4, pitch))
    table = np.array(notes, np.int32)
    return BandPiece(name, name, table[np.lexsort((table[:, 3], table[:, 0], table[:, 1]))], measures)


def synthetic_corpus(pieces: int = 8) -> BandCorpus:
    rng = np.random.default_rng(0)
    split = {"train": list(range(pieces - 2)), "validation": [pieces - 2], "test": [pieces - 1]}
    return BandCorpus(
        PARTS,
        ["mono"] * 4,
        [synthetic_piece(rng, f"p{i}") for i in range(pieces)],
        split,
        {},
        "synthetic",
        "all",
    )


@pytest.fixture
def task() -> BandTask:
    """A task on the synthetic corpus with a tiny model and both ablations."""
    gin.clear_config()
    for name, value in (("latent_size", 8), ("hidden", 32), ("recurrent_size", 32)):
        gin.bind_parameter(f"BandRMVAE.{name}", value)
    task = BandTask(
        ablations=("no_poe", "no_music_losses"),
        warmup_steps=5,
        scale_weight=0.1,
        rhythm_weight=0.1,
        harmony_weight=0.1,
        eval_windows=16,
        eval_samples=2,
    )
    task.corpus = synthetic_corpus()
    task.part_names, task.part_kinds = PARTS, ["mono"] * 4
    yield task
    gin.clear_config()


def mono_roll(*lines: list[int]) -> torch.Tensor:
    """Rolls ``[1, P, 3, 128, 16]`` from one token list per part."""
    tokens = torch.tensor(lines).unsqueeze(0)
    return tokens_to_roll(tokens, torch.full((1, len(lines)), -1))


def test_windows_and_rolls(task: BandTask) -> None:
    train = task.windows("train")
    assert len(train) == 6 * (10 - task.window + 1)
    assert (train.tensors["shift_low"] <= 0).all() and (train.tensors["shift_high"] >= 0).all()
    validation = task.windows("validation")
    assert (validation.tensors["shift_low"] == 0).all() and (validation.tensors["shift_high"] == 0).all()
    batch = train.take(slice(0, 4))
    plain = task.rolls(batch, augment=False)
    assert plain.shape == (4, task.window, 4, 3, 128, 16) and plain.dtype == torch.float32
    torch.manual_seed(0)
    shifted = task.rolls(batch, augment=True)
    assert shifted.sum() == plain.sum()  # the same notes, moved
    low, high = task.pitch_ranges()[0]
    assert low <= 72 - 6 and high >= 79 + 5


def test_losses_are_finite_and_decrease(task: BandTask) -> None:
    torch.manual_seed(0)
    model, args = task.build_model()
    assert set(model) == {"main", "no_poe", "no_music_losses"} and args["fusion"] == "poe"
    assert model["no_poe"].fusion == "concat" and args["part_kinds"] == ["mono"] * 4
    losses = task.losses(model, task.windows("train").take(torch.arange(4)), 0)
    assert {"loss/scale", "loss/rhythm", "loss/harmony", "no_poe/loss/harmony"} <= set(losses)
    assert "no_music_losses/loss/scale" not in losses and "no_music_losses/loss/prediction" in losses
    assert all(torch.isfinite(value) for value in losses.values())
    # the main model alone, on one batch: every step lowers what it is trained on
    task.ablations = ()
    members = torch.nn.ModuleDict({"main": model["main"]})
    optimizer = torch.optim.Adam(members.parameters(), lr=5e-3)
    batch = task.windows("train").take(torch.arange(0, 36, 3))
    totals = []
    for step in range(15):
        losses = task.losses(members, batch, step)
        total = weighted_total(losses, task.loss_weights(step))
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(losses["loss/reconstruction"].item() + losses["loss/prediction"].item())
    assert np.mean(totals[-3:]) < 0.85 * np.mean(totals[:3])


def test_a_clash_costs_more_than_a_consonance() -> None:
    def sounding(upper: int) -> torch.Tensor:  # two parts, one note each, held over the measure
        roll = torch.zeros(1, 2, 128, 16)
        roll[0, 0, 60] = 1.0
        roll[0, 1, upper] = 1.0
        return pitch_classes(roll)

    for clash in (61, 62, 66, 71, 73):  # semitone, tone, tritone, major seventh, minor ninth
        for consonance in (64, 67, 72, 69):  # third, fifth, octave, sixth
            assert harmony_penalty(sounding(clash)) > harmony_penalty(sounding(consonance))
    assert harmony_penalty(sounding(67)) == 0 and harmony_penalty(sounding(61)) == 1.0
    assert clash_matrix().sum(1).tolist() == [5.0] * 12  # +-1, +-2, 6 semitones from each class


def test_expected_sounding_follows_the_tokens() -> None:
    """A mono part sure of C at step 0 then HOLD sounds C all measure; a poly onset lasts its duration."""
    logits = torch.full((1, 14, 16), -20.0)  # pitches 60..71, rest, hold
    logits[0, 0, 0] = 20.0
    logits[0, 13, 1:] = 20.0
    sounding = sounding_classes([logits], ["mono"], [60])
    assert torch.allclose(sounding[0, 0, 0], torch.ones(16), atol=1e-4) and sounding[0, 0, 1:].sum() < 1e-3
    onsets, totals = onset_classes([logits], ["mono"], [60])
    assert torch.allclose(totals[0, 0], torch.eye(16)[0], atol=1e-4) and onsets[0, 0, 0, 0] > 0.99
    poly = torch.stack([torch.full((1, 12, 16), -20.0), torch.full((1, 12, 16), 3.0)], 1)
    poly[0, 0, 4, 2] = 20.0  # E (60 + 4) at step 2 for 3 steps
    assert torch.allclose(
        sounding_classes([poly], ["poly"], [60])[0, 0, 4, 2:6], torch.tensor([1.0, 1, 1, 0]), atol=1e-4
    )


def test_out_of_scale_notes_and_rare_onsets_cost_more() -> None:
    counts = torch.tensor([[9.0, 0, 5, 0, 7, 4, 0, 8, 0, 3, 0, 2]])  # C major
    scale = local_scale(counts)
    assert scale[0].nonzero().flatten().tolist() == [0, 2, 4, 5, 7, 9, 11]
    assert local_scale(torch.zeros(1, 12)).all()  # no context: no penalty

    def onset(pitch: int, step: int) -> torch.Tensor:
        probs = torch.zeros(1, 1, 128, 16)
        probs[0, 0, pitch, step] = 1.0
        return probs

    assert (
        scale_penalty(pitch_classes(onset(61, 0)), scale)
        > scale_penalty(pitch_classes(onset(62, 0)), scale)
        == 0
    )
    rare = rare_steps(torch.tensor([[4.0, 0, 0, 0] * 4]), torch.tensor([4]), 0.2)
    assert rare[0, 1] and not rare[0, 0]
    assert rhythm_penalty(onset(60, 1).sum(2), rare) > rhythm_penalty(onset(60, 0).sum(2), rare) == 0
    assert not rare_steps(torch.zeros(1, 16), torch.tensor([0]), 0.2).any()  # empty history


def test_baselines_on_a_hand_made_example() -> None:
    first = [60, HOLD, HOLD, HOLD, 62, HOLD, HOLD, HOLD, 60, HOLD, HOLD, HOLD, 64, HOLD, HOLD, HOLD]
    second = [60, HOLD, HOLD, HOLD, HOLD, HOLD, HOLD, HOLD, 62, HOLD, HOLD, HOLD, REST, REST, REST, REST]
    silent = [REST] * 16
    history = torch.cat([mono_roll(first, silent), mono_roll(second, silent)]).unsqueeze(0)  # [1, 2, 2, ...]
    repeated = repeat_baseline(history)
    assert torch.equal(repeated, history[:, -1])
    frequent = frequent_pitch_baseline(history)
    # 60 sounds 8 + 8 steps, 62 4 + 4, 64 4: the first part holds 60; the silent part stays silent
    assert sounding_pitch(frequent)[0].tolist() == [[60] * 16, [-1] * 16]
    assert frequent[0, 0, 0, 60, 0] == 1 and frequent[0, 0, 2, 60, 0] == 16 and frequent[0, 0, 0].sum() == 1
    truth = mono_roll([60, HOLD] + [HOLD] * 6 + [67] + [HOLD] * 7, [55] + [HOLD] * 15)
    kinds = ["mono", "mono"]
    assert note_correct(frequent, truth, kinds).float().mean(-1).tolist() == [[0.5, 0.0]]
    assert note_correct(repeated, truth, kinds).float().mean(-1).tolist() == [[0.5, 0.0]]
    # tokens: the frequent pitch gets step 0 (60) and the holds of steps 1..7 and 9..15 right
    assert token_correct(frequent, truth, kinds)[0, 0].sum() == 15


def test_poly_steps_count_as_right_only_for_the_exact_set() -> None:
    truth = torch.zeros(1, 1, 3, 128, 16)
    truth[0, 0, 1, 60], truth[0, 0, 1, 64, :8] = 1, 1
    guess = truth.clone()
    guess[0, 0, 1, 67, 4:] = 1
    assert note_correct(guess, truth, ["poly"])[0, 0].tolist() == [True] * 4 + [False] * 12


def test_summary_says_whether_the_model_beats_the_baselines() -> None:
    sums = {
        "next/acc": torch.tensor([0.5, 0.4]),
        "next/baseline_repeat/acc": torch.tensor([0.3, 0.3]),
        "next/baseline_frequent/acc": torch.tensor([0.4, 0.45]),
        "fill/acc": torch.tensor([0.5, 0.5]),
        "fill/baseline_repeat/acc": torch.tensor([0.3, 0.3]),
        "fill/baseline_frequent/acc": torch.tensor([0.4, 0.45]),
    }
    metrics = summarise(sums, dict.fromkeys(sums, 1), ["a", "b"], [])
    assert metrics["eval/next/beats_baselines"] == 0.0 and metrics["eval/fill/beats_baselines"] == 1.0
    assert metrics["eval/next/acc/b"] == pytest.approx(0.4) and metrics["eval/next/acc"] == pytest.approx(
        0.45
    )
    assert (metrics["eval/next/beats_baselines/a"], metrics["eval/next/beats_baselines/b"]) == (1.0, 0.0)
    # fill is also judged against the baseline that hears the other parts, once it is measured
    sums["fill/baseline_nearest/acc"] = torch.tensor([0.6, 0.4])
    metrics = summarise(sums, dict.fromkeys(sums, 1), ["a", "b"], [])
    assert metrics["eval/fill/beats_baselines"] == 0.0
    assert (metrics["eval/fill/beats_baselines/a"], metrics["eval/fill/beats_baselines/b"]) == (0.0, 1.0)


def test_evaluate_reports_every_key(task: BandTask) -> None:
    torch.manual_seed(0)
    model, _ = task.build_model()
    metrics = task.evaluate(model.eval(), task.windows("validation"))
    for part in PARTS:
        for who in ("", "baseline_repeat/", "baseline_frequent/", "no_poe/", "no_music_losses/"):
            for mode in ("next", "fill"):
                assert 0.0 <= metrics[f"eval/{mode}/{who}acc/{part}"] <= 1.0
                assert 0.0 <= metrics[f"eval/{mode}/{who}token_acc/{part}"] <= 1.0
        assert metrics[f"eval/next/nll/{part}"] > 0 and metrics[f"eval/fill/no_poe/nll/{part}"] > 0
        assert 0.0 <= metrics[f"eval/accompany/acc/{part}"] <= 1.0
        assert 0.0 <= metrics[f"eval/accompany/no_poe/acc/{part}"] <= 1.0
    assert metrics["eval/next/beats_baselines"] in (0.0, 1.0)


def test_accompaniment_scores_each_part_from_every_other_part_alone(task: BandTask) -> None:
    """The accompaniment score of part q is the mean, over the other parts p, of q's note accuracy in the next
    measure predicted from p's history alone (as the device plays it)."""
    torch.manual_seed(1)
    model = task.build_model()[0]["main"].eval()
    rolls = task.rolls(task.windows("validation").take(torch.arange(6)), augment=False)
    history, truth = rolls[:, : task.context], rolls[:, -1]
    carry = sounding_pitch(history[:, -1])[..., -1]
    with torch.no_grad():
        got = accompaniment_scores(model, history, truth, carry)
        noise = torch.zeros(6, len(PARTS), 130, 16)
        want = torch.zeros_like(got)
        for played in range(len(PARTS)):
            alone = torch.zeros(6, len(PARTS), dtype=torch.bool)
            alone[:, played] = True
            right = note_correct(
                model.predict_next(history, 0.0, noise, alone), truth, model.part_kinds
            ).float()
            for part in range(len(PARTS)):
                if part != played:
                    want[:, part] += right[:, part] / (len(PARTS) - 1)
    torch.testing.assert_close(got, want)


def test_tiny_training_run_writes_every_metric(band_run: Path) -> None:
    metrics = json.loads((band_run / "metrics.json").read_text())
    assert metrics["step"] == 40
    evaluated = metrics["eval"]
    checkpoint = torch.load(band_run / "checkpoints" / "last.pt", weights_only=False)
    meta = checkpoint["metadata"]
    assert meta["part_names"] == PARTS and meta["part_kinds"] == ["mono"] * 4
    assert meta["voices"] == [1, 1, 1, 1] and meta["steps"] == 16 and meta["ahead"] == 1
    assert meta["context"] == 4 and meta["transpose"] == "all"
    for part in PARTS:
        for mode in ("next", "fill"):
            for who in ("", "baseline_repeat/", "baseline_frequent/", "no_poe/", "no_music_losses/"):
                assert f"eval/{mode}/{who}acc/{part}" in evaluated
            assert f"eval/{mode}/nll/{part}" in evaluated
    assert {"eval/next/beats_baselines", "eval/fill/beats_baselines"} <= set(evaluated)
    assert all(np.isfinite(value) for value in evaluated.values())
    assert {"loss/prediction", "no_poe/loss/kl"} <= set(metrics["train"])
    # the checkpoint rebuilds the main model alone, as export does
    model = load_main_model(checkpoint["model_args"], checkpoint["model_state"])
    assert model.fusion == "poe" and model.parts == 4
    events = b"".join(path.read_bytes() for path in band_run.glob("events.out.tfevents.*"))
    assert b"piano_rolls/window_0" in events

"""The band RMVAE (models/band.py): conversions, the product of experts, sampling, TorchScript."""

import pytest
import torch
from torch import Tensor, nn

import latentlive.corpus.band_rolls as rolls_module
from latentlive.models import band
from latentlive.models.band import (
    HOLD,
    REST,
    BandRMVAE,
    gaussian_product,
    load_main_model,
    onsets_to_roll,
    roll_to_tokens,
    sounding_pitch,
    tokens_to_roll,
)

KINDS = ["mono", "mono", "poly"]


def small_model(**overrides: object) -> BandRMVAE:
    args = dict(part_kinds=KINDS, latent_size=6, hidden=16, recurrent_size=12)
    args.update(overrides)
    return BandRMVAE(**args).eval()


def random_rolls(shape: tuple[int, ...], seed: int = 0) -> Tensor:
    """Rolls ``[*shape, P, 3, 128, 16]`` of random mono lines (one note or silence per step)."""
    generator = torch.Generator().manual_seed(seed)
    kind = torch.randint(0, 3, (*shape, len(KINDS), 16), generator=generator)
    pitch = torch.randint(40, 80, (*shape, len(KINDS), 16), generator=generator)
    tokens = torch.where(kind == 0, pitch, torch.where(kind == 1, REST, HOLD))
    return tokens_to_roll(tokens, torch.full((*shape, len(KINDS)), -1))


def reference_tokens_to_roll(tokens: list[int], carry: int) -> Tensor:
    """Step by step, as the spec says: HOLD continues the sounding pitch, durations count within the measure."""
    roll = torch.zeros(3, 128, len(tokens))
    current, start = carry, None
    for s, token in enumerate(tokens):
        if token < 128:
            current, start = token, s
            roll[0, token, s] = 1
        elif token == REST or current < 0:
            current, start = -1, None
        if current >= 0:
            roll[1, current, s] = 1
            if start is not None:
                roll[2, current, start] = s - start + 1
    return roll


def test_constants_agree_with_the_corpus_and_the_literals() -> None:
    assert (band.ONSET, band.SOUNDING, band.DURATION) == (0, 1, 2)
    assert (band.PITCHES, band.REST, band.HOLD, band.TOKENS, band.MAX_DURATION) == (128, 128, 129, 130, 32)
    for name in ("ONSET", "SOUNDING", "DURATION", "PITCHES", "MAX_DURATION", "STEPS"):
        assert getattr(band, name) == getattr(rolls_module, name)


def test_tokens_to_roll_matches_the_step_by_step_reference() -> None:
    generator = torch.Generator().manual_seed(1)
    for _ in range(50):
        kind = torch.randint(0, 3, (16,), generator=generator)
        pitch = torch.randint(0, 128, (16,), generator=generator)
        tokens = torch.where(kind == 0, pitch, torch.where(kind == 1, REST, HOLD))
        carry = int(torch.randint(-1, 128, (1,), generator=generator))
        got = tokens_to_roll(tokens, torch.tensor(carry))
        assert torch.equal(got, reference_tokens_to_roll(tokens.tolist(), carry))


def test_tokens_and_rolls_round_trip() -> None:
    tokens = torch.tensor(
        [[60, HOLD, HOLD, REST, 62, 64, HOLD, HOLD] * 2, [HOLD, HOLD, 55, HOLD] + [REST] * 12]
    )
    roll = tokens_to_roll(tokens, torch.tensor([-1, 50]))
    assert torch.equal(roll_to_tokens(roll), tokens)
    assert sounding_pitch(roll)[1, :2].tolist() == [50, 50]  # HOLD carries the pitch of the last measure
    assert roll[0, 2, 60, 0] == 3 and roll[0, 2, 64, 5] == 3  # durations within the measure
    # a roll of notes that end within the measure survives rolls -> tokens -> rolls
    rolls = random_rolls((4,))
    assert torch.equal(tokens_to_roll(roll_to_tokens(rolls), torch.full((4, 3), -1)), rolls)


def test_hold_without_a_sounding_note_is_silence() -> None:
    roll = tokens_to_roll(torch.tensor([HOLD, HOLD, 60, HOLD]), torch.tensor(-1))
    assert sounding_pitch(roll).tolist() == [-1, -1, 60, 60]
    assert roll_to_tokens(roll).tolist() == [REST, REST, 60, HOLD]


def test_onsets_to_roll_sounds_each_note_for_its_duration() -> None:
    onsets = torch.zeros(128, 16, dtype=torch.bool)
    onsets[60, 0] = onsets[64, 0] = onsets[67, 14] = True
    durations = torch.full((128, 16), 4.0)
    durations[67, 14] = 7.6  # rounded to 8, cut at the barline
    roll = onsets_to_roll(onsets, durations)
    assert roll[1, 60].tolist() == [1.0] * 4 + [0.0] * 12
    assert roll[1, 67, 14:].tolist() == [1.0, 1.0] and roll[2, 67, 14] == 8
    assert roll[0].sum() == 3


def test_gaussian_product_is_the_closed_form_and_ignores_absent_experts() -> None:
    generator = torch.Generator().manual_seed(0)
    means, logvars = torch.randn(2, 3, 5, generator=generator), torch.randn(2, 3, 5, generator=generator)
    prior_mean, prior_logvar = torch.randn(2, 5, generator=generator), torch.randn(2, 5, generator=generator)
    mask = torch.tensor([[True, False, True], [False, False, False]])
    mean, logvar = gaussian_product(means, logvars, mask, prior_mean, prior_logvar)
    precision = 1 / prior_logvar.exp() + 1 / logvars[0, 0].exp() + 1 / logvars[0, 2].exp()
    expected = (
        prior_mean[0] / prior_logvar[0].exp()
        + means[0, 0] / logvars[0, 0].exp()
        + means[0, 2] / logvars[0, 2].exp()
    ) / precision[0]
    assert torch.allclose(mean[0], expected, atol=1e-5)
    assert torch.allclose(logvar[0], -precision[0].log(), atol=1e-5)
    # no part present: the prior expert alone, counted once
    assert torch.allclose(mean[1], prior_mean[1]) and torch.allclose(logvar[1], prior_logvar[1], atol=1e-6)
    # absent experts may hold anything, even non-finite values
    spoiled = means.clone()
    spoiled[0, 1] = float("nan")
    again, _ = gaussian_product(spoiled, logvars, mask, prior_mean, prior_logvar)
    assert torch.allclose(again[0], mean[0])


def test_encode_multiplies_the_present_experts_with_the_prior() -> None:
    model = small_model()
    roll = random_rolls((2,))
    prior = model.prior(model.advance(model.initial_state(2), torch.randn(2, 6)))
    present = torch.tensor([[True, False, True], [False, True, False]])
    means, logvars, mask = model.experts_of(roll, present)
    assert means.shape == (2, 3, 6) and torch.equal(mask, present)
    mean, logvar = model.encode(roll, present, *prior)
    assert torch.allclose(mean, gaussian_product(means, logvars, present, *prior)[0])
    # changing an absent part changes nothing
    changed = roll.clone()
    changed[0, 1] = random_rolls((1,), seed=5)[0, 1]
    assert torch.allclose(model.encode(changed, present, *prior)[0], mean)
    assert not torch.allclose(model.encode(changed, torch.ones_like(present), *prior)[0][0], mean[0])


@pytest.mark.parametrize("encoder", ["conv", "lstm"])
@pytest.mark.parametrize("fusion", ["poe", "concat"])
def test_shapes(encoder: str, fusion: str) -> None:
    model = small_model(encoder=encoder, fusion=fusion)
    roll = random_rolls((5,))
    state = model.initial_state(5)
    assert state.shape == (5, 12)
    prior_mean, prior_logvar = model.prior(state)
    mean, logvar = model.encode(roll, torch.ones(5, 3, dtype=torch.bool), prior_mean, prior_logvar)
    assert mean.shape == logvar.shape == (5, 6)
    assert model.advance(state, mean).shape == (5, 12)
    params = model.decode(mean)
    assert params.shape == (5, 3, 2, 130, 16)
    assert (params[:, 2, 1, :128] >= 1.0).all()  # poly durations
    assert (
        model.sample_roll(params, 1.0, torch.rand(5, 3, 130, 16), torch.full((5, 3), -1)).shape == roll.shape
    )
    experts = model.experts_of(roll, torch.ones(5, 3, dtype=torch.bool))[0]
    assert experts.shape[1] == (3 if fusion == "poe" else 1)


def test_pitch_ranges_keep_notes_inside() -> None:
    model = small_model(pitch_ranges=[[60, 72], [48, 60], [36, 80]])
    params = model.decode(torch.randn(4, 6) * 3)
    assert (params[:, 0, 0, :60] == -1.0e4).all() and (params[:, 0, 0, 73:128] == -1.0e4).all()
    assert (params[:, 2, 0, 81:] == -1.0e4).all()
    drawn = model.sample_roll(params, 5.0, torch.rand(4, 3, 130, 16), torch.full((4, 3), -1))
    pitch = sounding_pitch(drawn[:, 0])
    assert ((pitch == -1) | ((pitch >= 60) & (pitch <= 72))).all()


def _silent_holds_as_rests(tokens: Tensor) -> Tensor:
    """Mono tokens ``[..., S]`` as a roll reads them back: a HOLD with nothing sounding (at step 0 with no
    carried pitch, or after a rest) is a rest."""
    out = tokens.clone()
    for step in range(out.shape[-1]):
        silent = out[..., step - 1] == REST if step > 0 else torch.ones_like(out[..., 0], dtype=torch.bool)
        out[..., step] = torch.where((out[..., step] == HOLD) & silent, REST, out[..., step])
    return out


@pytest.mark.parametrize("seed", [0, 1, 41])
def test_sampling_at_temperature_zero_is_the_argmax(seed: int) -> None:
    torch.manual_seed(seed)  # seed 41's argmax holds nothing at step 0 (unseeded, 1 run in 20 did)
    model = small_model()
    params = model.decode(torch.randn(3, 6))
    noise = torch.rand(3, 3, 130, 16)
    drawn = model.sample_roll(params, 0.0, noise, torch.full((3, 3), -1))
    assert torch.equal(drawn, model.most_likely_roll(params, torch.full((3, 3), -1)))
    assert torch.equal(roll_to_tokens(drawn[:, :2]), _silent_holds_as_rests(params[:, :2, 0].argmax(2)))
    assert torch.equal(drawn[:, 2, 0] > 0.5, params[:, 2, 0, :128] >= 0)


def test_gumbel_sampling_follows_the_softmax_and_the_noise() -> None:
    model = small_model(part_kinds=["mono"])
    logits = torch.full((1, 1, 2, 130, 16), -1.0e4)
    logits[:, :, 0, 60], logits[:, :, 0, 62] = 1.0, 0.0
    draws = 4000
    params = logits.expand(draws, -1, -1, -1, -1)
    noise = torch.rand(draws, 1, 130, 16, generator=torch.Generator().manual_seed(0))
    drawn = roll_to_tokens(model.sample_roll(params, 1.0, noise, torch.full((draws, 1), -1)))
    share = (drawn == 60).float().mean().item()
    assert abs(share - torch.sigmoid(torch.tensor(1.0)).item()) < 0.02  # softmax of (1, 0)
    again = roll_to_tokens(model.sample_roll(params, 1.0, noise, torch.full((draws, 1), -1)))
    assert torch.equal(drawn, again)  # the caller's noise decides


def test_ahead_two_prior_skips_a_measure() -> None:
    model = small_model(ahead=2)
    history = random_rolls((2, 3))
    states = model.history_states(history)
    assert states.shape == (2, 4, 12)
    everything = torch.ones(2, 3, dtype=torch.bool)
    # measure 3 (1-based) is encoded with the prior of the state after measure 1
    state = model.initial_state(2)
    fed = [state]
    for k in range(3):
        prior = model.prior(fed[max(0, k + 1 - 2)])
        mean, _ = model.encode(history[:, k], everything, *prior)
        fed.append(model.advance(fed[-1], mean))
    assert torch.allclose(states, torch.stack(fed, 1), atol=1e-6)
    noise = torch.rand(2, 3, 130, 16)
    predicted = model.predict_next(history, 0.0, noise)
    carry = sounding_pitch(history[:, -1])[..., -1]
    expected = model.most_likely_roll(model.decode(model.prior(states[:, -1])[0]), carry)
    assert torch.equal(predicted, expected)


def test_fill_keeps_the_present_parts() -> None:
    model = small_model()
    history, measure = random_rolls((2, 2)), random_rolls((2,), seed=3)
    present = torch.tensor([[True, False, True], [False, False, True]])
    filled = model.fill(history, measure, present, 1.0, torch.rand(2, 3, 130, 16))
    assert torch.equal(filled[0, 0], measure[0, 0]) and torch.equal(filled[1, 2], measure[1, 2])
    assert filled.shape == measure.shape
    empty = model.fill(history[:, :0], measure, present, 0.0, torch.rand(2, 3, 130, 16))
    assert empty.shape == measure.shape


class _Wrapper(nn.Module):
    """What an export calls: every scriptable method of the model."""

    def __init__(self, model: BandRMVAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, history: Tensor, measure: Tensor, present: Tensor, noise: Tensor) -> list[Tensor]:
        m = self.model
        state = m.initial_state(history.shape[0])
        prior_mean, prior_logvar = m.prior(state)
        means, logvars, mask = m.experts_of(measure, present)
        mean, _ = gaussian_product(means, logvars, mask, prior_mean, prior_logvar)
        encoded, _ = m.encode(measure, present, prior_mean, prior_logvar)
        params = m.decode(mean)
        carry = sounding_pitch(measure)[..., -1]
        return [
            m.sample_roll(params, 0.8, noise, carry),
            m.most_likely_roll(params, carry),
            m.predict_next(history, 1.0, noise),
            m.fill(history, measure, present, 0.5, noise),
            m.history_states(history),
            m.advance(state, encoded),
            tokens_to_roll(roll_to_tokens(measure), carry),
            onsets_to_roll(measure[:, :, 0] > 0.5, measure[:, :, 2]),
        ]


@pytest.mark.parametrize("encoder,fusion,ahead", [("conv", "poe", 1), ("lstm", "concat", 2)])
def test_the_methods_export_uses_script_and_match_eager(encoder: str, fusion: str, ahead: int) -> None:
    model = small_model(encoder=encoder, fusion=fusion, ahead=ahead, pitch_ranges=[[50, 80]] * 3)
    wrapper = _Wrapper(model).eval()
    scripted = torch.jit.script(wrapper)
    history, measure = random_rolls((2, 3)), random_rolls((2,), seed=7)
    present = torch.tensor([[True, False, False], [True, True, False]])
    noise = torch.rand(2, 3, 130, 16)
    with torch.no_grad():
        expected, got = wrapper(history, measure, present, noise), scripted(history, measure, present, noise)
        for eager, script in zip(expected, got, strict=True):
            assert torch.allclose(eager, script, atol=1e-5)


def test_load_main_model_takes_the_main_weights() -> None:
    main, other = small_model(), small_model()
    state = {f"main.{k}": v for k, v in main.state_dict().items()}
    state.update({f"no_poe.{k}": v for k, v in other.state_dict().items()})
    args = dict(part_kinds=KINDS, latent_size=6, hidden=16, recurrent_size=12)
    loaded = load_main_model(args, state)
    z = torch.randn(2, 6)
    assert torch.equal(loaded.decode(z), main.decode(z)) and not loaded.training


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="encoder"):
        BandRMVAE(["mono"], encoder="gru")
    with pytest.raises(ValueError, match="part_kinds"):
        BandRMVAE(["drums"])
    with pytest.raises(ValueError, match="ahead"):
        BandRMVAE(["mono"], ahead=3)
    with pytest.raises(ValueError, match="pitch_ranges"):
        BandRMVAE(["mono"], pitch_ranges=[[70, 60]])

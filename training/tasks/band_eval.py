"""Held-out evaluation of the band RMVAE: next-measure prediction and fill, against two baselines.

Rolls are ``[N, P, 3, 128, S]``, histories ``[N, M, P, 3, 128, S]``. Per-step scores are ``[N, P, S]``
(bool), likelihoods ``[N, P]``. A step of a mono part is right when its sounding pitch (or silence) is the
truth's; a step of a poly part when its set of sounding pitches is. Tokens: the mono token (a pitch starts,
rest, hold), or for a poly part the set of onsets.
"""

import math

import torch
from torch import Tensor

from latentlive.models.band import BandRMVAE, roll_to_tokens, sounding_pitch
from latentlive.models.band_objective import part_log_likelihood

BASELINES = ("baseline_repeat", "baseline_frequent")


def note_correct(predicted: Tensor, truth: Tensor, kinds: list[str]) -> Tensor:
    """Per-step note accuracy ``[N, P, S]`` (bool) of two rolls."""
    columns = []
    for i, kind in enumerate(kinds):
        if kind == "mono":
            columns.append(sounding_pitch(predicted[:, i]) == sounding_pitch(truth[:, i]))
        else:
            same = (predicted[:, i, 1] > 0.5) == (truth[:, i, 1] > 0.5)
            columns.append(same.all(-2))
    return torch.stack(columns, 1)


def token_correct(predicted: Tensor, truth: Tensor, kinds: list[str]) -> Tensor:
    """Per-step token accuracy ``[N, P, S]`` (bool) of two rolls."""
    columns = []
    for i, kind in enumerate(kinds):
        if kind == "mono":
            columns.append(roll_to_tokens(predicted[:, i]) == roll_to_tokens(truth[:, i]))
        else:
            same = (predicted[:, i, 0] > 0.5) == (truth[:, i, 0] > 0.5)
            columns.append(same.all(-2))
    return torch.stack(columns, 1)


def repeat_baseline(history: Tensor) -> Tensor:
    """Each part plays its last measure again: ``[N, M, P, ...]`` -> ``[N, P, ...]``."""
    return history[:, -1].clone()


def frequent_pitch_baseline(history: Tensor) -> Tensor:
    """Each part holds its most frequent sounding pitch of the history over the whole measure (silence for
    a part that never sounds): ``[N, M, P, 3, 128, S]`` -> ``[N, P, 3, 128, S]``."""
    counts = (history[:, :, :, 1] > 0.5).sum((1, 4))  # [N, P, 128]
    pitch = counts.argmax(-1)
    sounds = (counts.amax(-1) > 0).float()  # [N, P]
    steps = history.shape[-1]
    roll = torch.zeros_like(history[:, 0])
    one_hot = torch.nn.functional.one_hot(pitch, 128).float() * sounds.unsqueeze(-1)  # [N, P, 128]
    roll[:, :, 0, :, 0] = one_hot
    roll[:, :, 1] = one_hot.unsqueeze(-1).expand(-1, -1, -1, steps)
    roll[:, :, 2, :, 0] = one_hot * steps
    return roll


def sampled_nll(
    model: BandRMVAE, mean: Tensor, logvar: Tensor, truth: Tensor, samples: int, generator: torch.Generator
) -> Tensor:
    """-log p(truth) per step and part ``[N, P]``: log-mean-exp of the likelihood over ``samples`` draws of
    z from N(mean, exp(logvar)), divided by the steps."""
    std = torch.exp(0.5 * logvar)
    noise = torch.randn((samples, *mean.shape), generator=generator).to(mean.device)
    z = (mean.unsqueeze(0) + std.unsqueeze(0) * noise).flatten(0, 1)
    log_likelihood = part_log_likelihood(
        model.decode_parts(z), model.compact_rolls(truth), model.part_kinds, samples
    )
    per_sample = log_likelihood.view(samples, *truth.shape[:2])
    log_mean = torch.logsumexp(per_sample, 0) - math.log(samples)
    return -log_mean / truth.shape[-1]


def evaluate_windows(
    model: BandRMVAE, history: Tensor, next_truth: Tensor, fill_truth: Tensor, samples: int, seed: int = 0
) -> dict[str, Tensor]:
    """The model's predictions and scores on a batch of windows.

    ``history [N, M, P, ...]``; ``next_truth`` is the measure ``ahead`` after it, ``fill_truth`` the measure
    right after it. Next: the prior mean of the measure, decoded, most likely roll. Fill: for each part, the
    posterior mean from the other parts and the prior expert, decoded. Accompany (what the device's ``next``
    does while you play part p): the next measure from a history read from part p alone, scored on the other
    parts. Returns per-step bools ``[N, P, S]`` (``next/acc``, ``next/token_acc``, ``fill/...``), the
    accompaniment's share of right steps ``[N, P, S]`` over the played parts (``accompany/acc``, with two
    parts or more) and NLL per step ``[N, P]`` (``next/nll``, ``fill/nll``).
    """
    generator = torch.Generator().manual_seed(seed)
    kinds, parts, measures = model.part_kinds, model.parts, history.shape[1]
    states = model.history_states(history)
    carry = sounding_pitch(history[:, -1])[..., -1]
    mean, logvar = model.prior(states[:, -1])
    predicted = model.most_likely_roll(model.decode(mean), carry)
    out = {
        "next/acc": note_correct(predicted, next_truth, kinds),
        "next/token_acc": token_correct(predicted, next_truth, kinds),
        "next/nll": sampled_nll(model, mean, logvar, next_truth, samples, generator),
    }
    prior_mean, prior_logvar = model.prior(states[:, max(0, measures + 1 - model.ahead)])
    filled, nll = [], []
    for part in range(parts):
        present = torch.ones(history.shape[0], parts, dtype=torch.bool, device=history.device)
        present[:, part] = False
        mean, logvar = model.encode(fill_truth, present, prior_mean, prior_logvar)
        filled.append(model.most_likely_roll(model.decode(mean), carry)[:, part])
        nll.append(sampled_nll(model, mean, logvar, fill_truth, samples, generator)[:, part])
    filled_roll = torch.stack(filled, 1)
    out["fill/acc"] = note_correct(filled_roll, fill_truth, kinds)
    out["fill/token_acc"] = token_correct(filled_roll, fill_truth, kinds)
    out["fill/nll"] = torch.stack(nll, 1)
    out["next/roll"], out["fill/roll"] = predicted, filled_roll
    if parts > 1:
        out["accompany/acc"] = accompaniment_scores(model, history, next_truth, carry)
    return out


def accompaniment_scores(model: BandRMVAE, history: Tensor, truth: Tensor, carry: Tensor) -> Tensor:
    """For each part q, the share of the other parts p whose lone history predicts q's step right:
    ``[N, P, S]`` (float), each p's prediction the most likely next measure after ``history`` read from p."""
    parts = model.parts
    right = torch.zeros(truth.shape[0], parts, truth.shape[-1], device=truth.device)
    for played in range(parts):
        alone = torch.zeros(history.shape[0], parts, dtype=torch.bool, device=history.device)
        alone[:, played] = True
        mean, _ = model.prior(model.history_states(history, alone)[:, -1])
        scores = note_correct(
            model.most_likely_roll(model.decode(mean), carry), truth, model.part_kinds
        ).float()
        scores[:, played] = 0.0
        right = right + scores
    return right / (parts - 1)


def baseline_scores(
    history: Tensor, next_truth: Tensor, fill_truth: Tensor, kinds: list[str]
) -> dict[str, Tensor]:
    """Per-step bools ``[N, P, S]`` of both baselines for next and fill, keyed like
    ``next/baseline_repeat/acc``."""
    out = {}
    for name, roll in (
        ("baseline_repeat", repeat_baseline(history)),
        ("baseline_frequent", frequent_pitch_baseline(history)),
    ):
        for task, truth in (("next", next_truth), ("fill", fill_truth)):
            out[f"{task}/{name}/acc"] = note_correct(roll, truth, kinds)
            out[f"{task}/{name}/token_acc"] = token_correct(roll, truth, kinds)
    return out


def summarise(
    sums: dict[str, Tensor], counts: dict[str, int], part_names: list[str], ablations: list[str]
) -> dict[str, float]:
    """Metrics ``eval/<key>/<part>`` and ``eval/<key>`` (mean over parts) from per-part sums ``[P]`` and
    their counts, and ``eval/<task>/beats_baselines``: 1.0 when the model's note accuracy beats both
    baselines on every part."""
    metrics: dict[str, float] = {}
    for key, total in sums.items():
        per_part = (total / max(1, counts[key])).tolist()
        for name, value in zip(part_names, per_part, strict=True):
            metrics[f"eval/{key}/{name}"] = value
        metrics[f"eval/{key}"] = sum(per_part) / len(per_part)
    for task in ("next", "fill"):
        beats = all(
            metrics[f"eval/{task}/acc/{name}"] > metrics[f"eval/{task}/{baseline}/acc/{name}"]
            for name in part_names
            for baseline in BASELINES
        )
        metrics[f"eval/{task}/beats_baselines"] = float(beats)
        for ablation in ablations:
            metrics[f"eval/{task}/{ablation}/beats_baselines"] = float(
                all(
                    metrics[f"eval/{task}/{ablation}/acc/{name}"]
                    > metrics[f"eval/{task}/{baseline}/acc/{name}"]
                    for name in part_names
                    for baseline in BASELINES
                )
            )
    return metrics

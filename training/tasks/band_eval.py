"""Held-out evaluation of the band RMVAE: next-measure prediction and fill, against baselines that see what
the model sees: the part's own history (repeat the last measure, hold the most frequent pitch) and, for fill,
also the other parts of the measure (their pitches moved into the part's range, nearest its last pitch).

Rolls are ``[N, P, 3, 128, S]``, histories ``[N, M, P, 3, 128, S]``. Per-step scores are ``[N, P, S]``
(bool), likelihoods ``[N, P]``. A step of a mono part is right when its sounding pitch (or silence) is the
truth's; a step of a poly part when its set of sounding pitches is. Tokens: the mono token (a pitch starts,
rest, hold), or for a poly part the set of onsets.
"""

import math

import torch
from torch import Tensor

from latentlive.models.band import HOLD, REST, BandRMVAE, roll_to_tokens, sounding_pitch, tokens_to_roll
from latentlive.models.band_objective import part_log_likelihood

# The baselines each task is judged against (``eval/<task>/beats_baselines``).
BASELINES = {
    "next": ("baseline_repeat", "baseline_frequent"),
    "fill": ("baseline_repeat", "baseline_frequent", "baseline_nearest"),
}


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


def last_pitches(history: Tensor) -> Tensor:
    """The last sounding pitch of each part in ``history [N, M, P, 3, 128, S]``: ``[N, P]`` (long, -1 if none)."""
    pitches = sounding_pitch(history).permute(0, 2, 1, 3).flatten(2)  # [N, P, M * S]
    steps = torch.arange(pitches.shape[-1], device=history.device)
    last = torch.where(pitches >= 0, steps, torch.full_like(steps, -1)).amax(-1)  # [N, P]
    return torch.where(last >= 0, pitches.gather(-1, last.clamp(min=0).unsqueeze(-1)).squeeze(-1), -1)


def nearest_part_baseline(
    history: Tensor, truth: Tensor, kinds: list[str], ranges: list[tuple[int, int]]
) -> Tensor:
    """Each part filled from the other parts of ``truth [N, P, 3, 128, S]``, step by step: the pitch classes
    sounding in the other parts, moved by octaves into the part's ``ranges[p]`` (lowest, highest pitch in
    the training data), and of those the pitch nearest the part's last pitch in ``history`` (the middle of
    its range when it never sounded); a mono part plays that pitch, a poly part the nearest pitch of each
    class. Silent where the others are. Returns rolls ``[N, P, 3, 128, S]``."""
    count, parts, _, _, steps = truth.shape
    sounding = truth[:, :, 1] > 0.5  # [N, P, 128, S]
    onsets = truth[:, :, 0] > 0.5
    pitches = torch.arange(128, device=truth.device)
    last = last_pitches(history)
    out = torch.zeros_like(truth)
    for part, kind in enumerate(kinds):
        others = torch.arange(parts, device=truth.device) != part
        heard = torch.nn.functional.pad(sounding[:, others].any(1), (0, 0, 0, 4))  # [N, 132, S]
        classes = heard.view(count, 11, 12, steps).any(1)  # [N, 12, S]: the classes the others sound
        low, high = ranges[part]
        reference = torch.where(last[:, part] >= 0, last[:, part], (low + high) // 2)  # [N]
        distance = (pitches.view(1, 128) - reference.view(-1, 1)).abs().float()  # [N, 128]
        distance = distance.masked_fill((pitches < low) | (pitches > high), float("inf"))
        of_class = (pitches % 12).view(1, 1, 128) == torch.arange(12, device=truth.device).view(1, 12, 1)
        nearest = distance.unsqueeze(1).masked_fill(~of_class, float("inf")).argmin(-1)  # [N, 12]
        reachable = distance.gather(1, nearest).isfinite().unsqueeze(-1) & classes  # [N, 12, S]
        if kind == "mono":
            gap = (
                distance.gather(1, nearest).unsqueeze(-1).masked_fill(~reachable, float("inf"))
            )  # [N, 12, S]
            best = gap.argmin(1)  # [N, S]
            pitch = torch.where(reachable.any(1), nearest.gather(1, best), -1)  # [N, S]
            before = torch.cat([torch.full_like(pitch[:, :1], -1), pitch[:, :-1]], 1)
            starts = onsets[:, others].flatten(1, 2).any(1) | (pitch != before)
            tokens = torch.where(pitch < 0, REST, torch.where(starts, pitch, HOLD))
            out[:, part] = tokens_to_roll(tokens, torch.full_like(reference, -1)).to(truth.dtype)
        else:
            roll = torch.zeros(count, 128, steps, dtype=truth.dtype, device=truth.device)
            roll.scatter_add_(1, nearest.unsqueeze(-1).expand(-1, -1, steps), reachable.to(truth.dtype))
            out[:, part, 1] = roll.clamp(max=1)
            before = torch.cat([torch.zeros_like(roll[..., :1]), out[:, part, 1, :, :-1]], -1)
            out[:, part, 0] = (out[:, part, 1] > before).to(truth.dtype)
    return out


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
    history: Tensor,
    next_truth: Tensor,
    fill_truth: Tensor,
    kinds: list[str],
    ranges: list[tuple[int, int]] | None = None,
) -> dict[str, Tensor]:
    """Per-step bools ``[N, P, S]`` of the baselines of next and fill (``BASELINES``), keyed like
    ``next/baseline_repeat/acc``; the nearest-part fill baseline needs the parts' ``ranges``."""
    rolls = {
        "baseline_repeat": repeat_baseline(history),
        "baseline_frequent": frequent_pitch_baseline(history),
    }
    if ranges is not None:
        rolls["baseline_nearest"] = nearest_part_baseline(history, fill_truth, kinds, ranges)
    out = {}
    for task, truth in (("next", next_truth), ("fill", fill_truth)):
        for name in BASELINES[task]:
            if name in rolls:
                out[f"{task}/{name}/acc"] = note_correct(rolls[name], truth, kinds)
                out[f"{task}/{name}/token_acc"] = token_correct(rolls[name], truth, kinds)
    return out


def summarise(
    sums: dict[str, Tensor], counts: dict[str, int], part_names: list[str], ablations: list[str]
) -> dict[str, float]:
    """Metrics ``eval/<key>/<part>`` and ``eval/<key>`` (mean over parts) from per-part sums ``[P]`` and
    their counts, and the claims: ``eval/<task>/beats_baselines/<part>`` is 1.0 when the model's note
    accuracy on that part beats every baseline of the task (``BASELINES``, those measured) and
    ``eval/<task>/beats_baselines`` when it does on every part (likewise for each ablation)."""
    metrics: dict[str, float] = {}
    for key, total in sums.items():
        per_part = (total / max(1, counts[key])).tolist()
        for name, value in zip(part_names, per_part, strict=True):
            metrics[f"eval/{key}/{name}"] = value
        metrics[f"eval/{key}"] = sum(per_part) / len(per_part)
    for task, baselines in BASELINES.items():
        measured = [b for b in baselines if f"eval/{task}/{b}/acc" in metrics]
        for who in ("", *(f"{ablation}/" for ablation in ablations)):
            flags = [
                float(
                    all(
                        metrics[f"eval/{task}/{who}acc/{name}"] > metrics[f"eval/{task}/{b}/acc/{name}"]
                        for b in measured
                    )
                )
                for name in part_names
            ]
            for name, flag in zip(part_names, flags, strict=True):
                metrics[f"eval/{task}/{who}beats_baselines/{name}"] = flag
            metrics[f"eval/{task}/{who}beats_baselines"] = float(all(flags))
    return metrics

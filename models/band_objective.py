"""Likelihoods and musical penalties of the band RMVAE, as pure functions of decoder outputs and rolls.

Decoder outputs are the compact per-part list of :meth:`models.band.BandRMVAE.decode_parts` (each part over
its pitch range of n pitches: mono logits ``[N, n + 2, S]``, poly onset logits and durations
``[N, 2, n, S]``), scored against the matching rows of the rolls (``compact_rolls``); rolls are
``[N, P, 3, 128, S]``; ``kinds`` lists ``"mono"`` / ``"poly"`` per part. Per-part values are ``[N, P]``
(summed over steps and pitches), penalties ``[N]`` (per step, summed over parts).
"""

import torch
from torch import Tensor
from torch.nn import functional as F

from latentlive.models.band import DURATION, ONSET, PITCHES, SOUNDING

SCALE_SIZE = 7
# Interval classes that clash when two parts sound them together: semitone, tone, tritone.
CLASH_INTERVALS = (1, 2, 6)


def compact_tokens(roll: Tensor) -> Tensor:
    """Mono tokens of a part's compact roll ``[N, 3, n, S]`` -> ``[N, S]``: 0..n-1 the highest pitch that
    starts, n rest, n + 1 hold (the layout of a mono :class:`models.band.PartDecoder`)."""
    n = roll.shape[-2]
    pitches = torch.arange(n, device=roll.device).view(n, 1)
    highest = torch.where(roll[:, ONSET] > 0.5, pitches, -1).amax(-2)
    sounding = (roll[:, SOUNDING] > 0.5).any(-2)
    return torch.where(highest >= 0, highest, n + sounding.long())


def part_log_likelihood(
    outputs: list[Tensor], rolls: list[Tensor], kinds: list[str], repeats: int = 1
) -> Tensor:
    """log p(rolls | outputs) per part ``[N, P]``: the tokens of a mono part (categorical per step), the onsets
    of a poly part (Bernoulli per pitch and step); durations are not counted (see :func:`duration_error`).
    ``outputs`` and ``rolls`` are compact (:meth:`models.band.BandRMVAE.decode_parts`, ``compact_rolls``);
    ``outputs`` may hold ``repeats`` decodings per roll (``N = repeats * len(roll)``, repeat-major)."""
    columns = []
    for x, roll, kind in zip(outputs, rolls, kinds, strict=True):
        if kind == "mono":
            tokens = compact_tokens(roll).repeat(repeats, 1)
            columns.append(-F.cross_entropy(x, tokens, reduction="none").sum(-1))
        else:
            target = roll[:, ONSET].repeat(repeats, 1, 1)
            bce = F.binary_cross_entropy_with_logits(x[:, 0], target, reduction="none")
            columns.append(-bce.sum((1, 2)))
    return torch.stack(columns, 1)


def duration_error(outputs: list[Tensor], rolls: list[Tensor], kinds: list[str], repeats: int = 1) -> Tensor:
    """Squared error of log durations at the true onsets of poly parts, summed per part ``[N, P]``
    (0 for mono parts, whose durations follow from their tokens); arguments as in
    :func:`part_log_likelihood`."""
    columns = []
    for x, roll, kind in zip(outputs, rolls, kinds, strict=True):
        if kind == "mono":
            columns.append(x.new_zeros(x.shape[0]))
            continue
        onset = (roll[:, ONSET] > 0.5).repeat(repeats, 1, 1)
        truth = torch.log(roll[:, DURATION].clamp(min=1.0)).repeat(repeats, 1, 1)
        columns.append(((torch.log(x[:, 1]) - truth).pow(2) * onset).sum((1, 2)))
    return torch.stack(columns, 1)


def class_matrix(low: int, pitches: int, device: torch.device | None = None) -> Tensor:
    """``[n, 12]``: the pitch class of each pitch ``low .. low + n - 1`` (one-hot)."""
    classes = torch.arange(low, low + pitches, device=device).remainder(12)
    return F.one_hot(classes, 12).float()


def onset_classes(outputs: list[Tensor], kinds: list[str], lows: list[int]) -> tuple[Tensor, Tensor]:
    """Expected onsets per pitch class ``[N, P, 12, S]`` and in all ``[N, P, S]``, from compact outputs whose
    ranges start at ``lows``."""
    classes, totals = [], []
    for x, kind, low in zip(outputs, kinds, lows, strict=True):
        probs = torch.softmax(x, 1)[:, : x.shape[1] - 2] if kind == "mono" else torch.sigmoid(x[:, 0])
        folding = class_matrix(low, probs.shape[1], x.device).to(x.dtype)
        classes.append(torch.einsum("njs,jc->ncs", probs, folding))
        totals.append(probs.sum(1))
    return torch.stack(classes, 1), torch.stack(totals, 1)


def sounding_classes(outputs: list[Tensor], kinds: list[str], lows: list[int]) -> Tensor:
    """The probability that each pitch class sounds at each step ``[N, P, 12, S]``, steps taken as
    independent.

    Mono: ``sound[s] = onset[s] + hold[s] * sound[s - 1]`` (nothing carried into the measure), unrolled as
    ``sound[s] = sum_{r <= s} onset[r] * prod_{r < q <= s} hold[q]``. Poly: a note started at r covers the
    steps of its predicted duration (held fixed: no gradient through durations).
    """
    parts = []
    for x, kind, low in zip(outputs, kinds, lows, strict=True):
        steps = x.shape[-1]
        offsets = torch.arange(steps, device=x.device)
        later = offsets.view(1, steps) >= offsets.view(steps, 1)  # [r, s]: s at or after r
        if kind == "mono":
            probs = torch.softmax(x, 1)
            onset, hold = probs[:, :-2], probs[:, -1]  # [N, n, S], [N, S]
            held = torch.cumsum(torch.log(hold.clamp(min=1e-12)), -1)  # [N, S]
            span = (held.unsqueeze(1) - held.unsqueeze(2)).masked_fill(~later, float("-inf"))
            carry = torch.exp(span)  # [N, r, s]: onset at r still sounding at s
            folding = class_matrix(low, onset.shape[1], x.device).to(x.dtype)
            parts.append(torch.einsum("njr,jc,nrs->ncs", onset, folding, carry))
        else:
            onset, length = torch.sigmoid(x[:, 0]), torch.round(x[:, 1].detach())
            elapsed = (offsets.view(1, steps) - offsets.view(steps, 1)).to(x.dtype)  # [r, s]
            covers = (later & (length.unsqueeze(-1) > elapsed)).to(x.dtype)  # [N, n, r, s]
            sounding = 1.0 - torch.prod(1.0 - onset.unsqueeze(-1) * covers, dim=-2)  # [N, n, S]
            folding = class_matrix(low, onset.shape[1], x.device).to(x.dtype)
            parts.append(torch.einsum("njs,jc->ncs", sounding, folding))
    return torch.stack(parts, 1)


def pitch_classes(values: Tensor) -> Tensor:
    """Fold octaves: ``[..., 128, S]`` -> ``[..., 12, S]`` (sums over the pitches of each class)."""
    padded = F.pad(values.movedim(-2, -1), (0, 132 - PITCHES))  # [..., S, 132]
    return padded.unflatten(-1, (11, 12)).sum(-2).movedim(-1, -2)


def local_scale(pitch_class_counts: Tensor) -> Tensor:
    """The 7 most frequent pitch classes ``[N, 12]`` (bool) of counts ``[N, 12]``; all 12 where the counts
    are all 0 (no context, no penalty)."""
    top = pitch_class_counts.topk(SCALE_SIZE, dim=-1).indices
    scale = torch.zeros_like(pitch_class_counts, dtype=torch.bool).scatter(-1, top, True)
    empty = pitch_class_counts.sum(-1, keepdim=True) <= 0
    return scale | empty


def scale_penalty(onsets: Tensor, scale: Tensor) -> Tensor:
    """Expected onsets outside the ``scale [N, 12]`` (bool) per step, summed over parts: ``onsets
    [N, P, 12, S]`` (expected onsets per pitch class) -> ``[N]``."""
    outside = onsets * (~scale).to(onsets.dtype).view(scale.shape[0], 1, 12, 1)
    return outside.flatten(1).sum(1) / onsets.shape[-1]


def rare_steps(onset_counts: Tensor, measures: Tensor, threshold: float) -> Tensor:
    """Steps where the context rarely starts a note: ``onset_counts [N, S]`` (measures of the context with
    an onset of any part at the step), ``measures [N]`` -> bool ``[N, S]``, true where the share is below
    ``threshold``; false everywhere for an empty context."""
    share = onset_counts / measures.clamp(min=1).unsqueeze(-1).to(onset_counts.dtype)
    return (share < threshold) & (measures > 0).unsqueeze(-1)


def rhythm_penalty(onsets: Tensor, rare: Tensor) -> Tensor:
    """Expected onsets on the ``rare [N, S]`` steps, per step and summed over parts ``[N]``: ``onsets
    [N, P, S]`` (expected onsets of each part at each step)."""
    at_rare = onsets * rare.unsqueeze(1).to(onsets.dtype)
    return at_rare.flatten(1).sum(1) / onsets.shape[-1]


def clash_matrix(device: torch.device | None = None) -> Tensor:
    """``[12, 12]``: 1 where two pitch classes form a semitone, tone or tritone (either way round)."""
    classes = torch.arange(12, device=device)
    interval = (classes.view(12, 1) - classes.view(1, 12)).remainder(12)
    interval = torch.minimum(interval, 12 - interval)
    clashes = torch.zeros(12, 12, dtype=torch.bool, device=device)
    for step in CLASH_INTERVALS:
        clashes |= interval == step
    return clashes.float()


def harmony_penalty(classes: Tensor) -> Tensor:
    """Expected clashing pairs of notes between different parts per step ``[N]``: ``classes
    [N, P, 12, S]`` (the probability that each part sounds each pitch class; parts independent)."""
    clashes = clash_matrix(classes.device).to(classes.dtype)
    pairs = torch.einsum("nais,ij,nbjs->nab", classes, clashes, classes)  # [N, P, P]
    between = torch.triu(torch.ones_like(pairs[0]), diagonal=1)
    return (pairs * between).flatten(1).sum(1) / classes.shape[-1]

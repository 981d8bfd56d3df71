"""Held-out metrics as pure functions: spectral distances of audio and the disentanglement of latents.

Spectral metrics take magnitudes (any time-frequency transform, ``[..., F, M]``) and return one value per
example; latent metrics take numpy arrays ``latents [N, D]`` and ``factors [N, K]`` where NaN marks a factor
that is unknown for an example (e.g. a kick's pitch is unknown for a hi-hat) and return one value per factor.
"""

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor


def log_spectral_distance(reference: Tensor, estimate: Tensor, floor: float = 1e-5) -> Tensor:
    """Root mean square difference in dB of two magnitudes ``[..., F, M]`` -> ``[...]``.

    ``sqrt(mean((20 log10 max(|X|, floor) - 20 log10 max(|Y|, floor))^2))`` over the last two dimensions;
    the floor keeps silence from dominating (1e-5 is -100 dB).
    """
    difference = 20.0 * (torch.log10(reference.clamp_min(floor)) - torch.log10(estimate.clamp_min(floor)))
    return difference.pow(2).mean(dim=(-2, -1)).sqrt()


def spectral_convergence(reference: Tensor, estimate: Tensor) -> Tensor:
    """``||X - Y||_F / ||X||_F`` of two magnitudes ``[..., F, M]`` -> ``[...]`` (0 is perfect)."""
    error = (reference - estimate).flatten(-2).norm(dim=-1)
    return error / reference.flatten(-2).norm(dim=-1).clamp_min(1e-12)


def _with_intercept(latents: np.ndarray) -> np.ndarray:
    return np.concatenate([latents, np.ones((len(latents), 1))], axis=1)


def r2_per_factor(
    train_latents: np.ndarray,
    train_factors: np.ndarray,
    test_latents: np.ndarray,
    test_factors: np.ndarray,
    min_examples: int = 3,
) -> np.ndarray:
    """How well a linear map of the latents predicts each factor: ``R^2`` on the test set ``[K]``.

    For each factor, an affine least-squares regression from ``train_latents [N, D]`` to the factor is fitted
    on the training rows where it is known and scored on the test rows where it is known:
    ``1 - sum((y - y_hat)^2) / sum((y - mean(y))^2)`` (1 is perfect, 0 is no better than the test mean, and
    it can be negative). NaN where fewer than ``min_examples`` rows of either set know the factor, or the
    factor is constant on the test rows.
    """
    train_latents, test_latents = np.asarray(train_latents, float), np.asarray(test_latents, float)
    train_factors, test_factors = np.asarray(train_factors, float), np.asarray(test_factors, float)
    scores = np.full(train_factors.shape[1], np.nan)
    for k in range(train_factors.shape[1]):
        fit_rows, test_rows = ~np.isnan(train_factors[:, k]), ~np.isnan(test_factors[:, k])
        if fit_rows.sum() < min_examples or test_rows.sum() < min_examples:
            continue
        weights, *_ = np.linalg.lstsq(
            _with_intercept(train_latents[fit_rows]), train_factors[fit_rows, k], rcond=None
        )
        truth = test_factors[test_rows, k]
        predicted = _with_intercept(test_latents[test_rows]) @ weights
        total = np.sum((truth - truth.mean()) ** 2)
        if total > 0:
            scores[k] = 1.0 - np.sum((truth - predicted) ** 2) / total
    return scores


def _discretise(values: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bins of ``values [N]`` -> integer codes ``[N]``; a variable with few distinct values
    (a categorical factor) keeps one code per value."""
    distinct = np.unique(values)
    if len(distinct) <= bins:
        return np.searchsorted(distinct, values)
    edges = np.linspace(values.min(), values.max(), bins + 1)[1:-1]
    return np.digitize(values, edges)


def _entropy(codes: np.ndarray) -> float:
    counts = np.bincount(codes)
    p = counts[counts > 0] / len(codes)
    return float(-(p * np.log(p)).sum())


def _mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Plug-in MI (nats) of two integer code arrays ``[N]``."""
    joint = a * (b.max() + 1) + b
    return _entropy(a) + _entropy(b) - _entropy(joint)


def mutual_information_gap(
    latents: np.ndarray, factors: np.ndarray, bins: int = 20, min_examples: int = 10
) -> np.ndarray:
    """The mutual information gap of each factor ``[K]`` (Chen et al. 2018, with histogram estimates).

    Each latent and each factor is discretised into ``bins`` equal-width bins (a factor with at most
    ``bins`` distinct values keeps its values); for factor ``k``, ``MIG_k = (I(z_a; v_k) - I(z_b; v_k)) /
    H(v_k)`` where ``z_a`` and ``z_b`` are the two latents sharing the most information with ``v_k``.
    Rows where the factor is NaN are ignored; NaN where fewer than ``min_examples`` rows know the factor,
    the factor is constant, or there are fewer than two latents. 1 means one latent alone encodes the factor.
    """
    latents, factors = np.asarray(latents, float), np.asarray(factors, float)
    gaps = np.full(factors.shape[1], np.nan)
    if latents.shape[1] < 2:
        return gaps
    for k in range(factors.shape[1]):
        rows = ~np.isnan(factors[:, k])
        if rows.sum() < min_examples:
            continue
        factor = _discretise(factors[rows, k], bins)
        entropy = _entropy(factor)
        if entropy <= 0:
            continue
        information = sorted(
            (
                _mutual_information(_discretise(latents[rows, j], bins), factor)
                for j in range(latents.shape[1])
            ),
            reverse=True,
        )
        gaps[k] = (information[0] - information[1]) / entropy
    return gaps


def spearman_per_dimension(latents: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each latent dimension with a feature over frames: ``latents [N, D]``,
    ``feature [N]`` -> ``[D]`` (NaN for a constant column)."""
    from scipy.stats import spearmanr

    out = np.full(latents.shape[1], np.nan)
    for d in range(latents.shape[1]):
        if np.ptp(latents[:, d]) > 0 and np.ptp(feature) > 0:
            out[d] = spearmanr(latents[:, d], feature).statistic
    return out


def roughness(curve: np.ndarray) -> float:
    """Smoothness of a curve sampled at evenly spaced interpolation steps ``[S]`` (S >= 3): the mean absolute
    second difference divided by the curve's range (0 for a straight line, 2 for a zig-zag over its full
    range), so loudness in dB and centroid in Hz read on the same scale."""
    span = float(np.ptp(curve))
    if len(curve) < 3 or span == 0.0:
        return 0.0
    return float(np.abs(np.diff(curve, n=2)).mean() / span)


@torch.no_grad()
def latent_sensitivity(
    decode: Callable[[Tensor], Tensor],
    codes: Tensor,
    distance: Callable[[Tensor, Tensor], Tensor],
    step: float = 1.0,
) -> np.ndarray:
    """How far the decoded output moves per unit move of each latent dimension: ``[L]``.

    ``codes [B, L, ...]`` are held-out latent codes, ``decode`` maps codes to outputs and ``distance(moved,
    base)`` two outputs to a scalar (such as the spectral distance). Dimension ``l`` scores
    ``distance(decode(codes + step * e_l), decode(codes)) / step``: 0 for a dimension the decoder ignores.
    Read it beside the interpolation roughness: a decoder that ignores its latent interpolates perfectly
    smoothly (roughness 0) and scores ~0 here.
    """
    base = decode(codes)
    sensitivity = np.zeros(codes.shape[1])
    for dimension in range(codes.shape[1]):
        moved = codes.clone()
        moved[:, dimension] += step
        sensitivity[dimension] = float(distance(decode(moved), base)) / step
    return sensitivity


def headline(metrics: dict[str, float]) -> dict[str, float]:
    """The held-out metrics of at most two levels, unprefixed: ``eval/acc/kick`` yes (as ``acc/kick``),
    ``eval/next/acc/soprano`` no; what a summary line shows."""
    names = {key: key.removeprefix("eval/") for key in metrics}
    return {names[key]: value for key, value in metrics.items() if names[key].count("/") <= 1}

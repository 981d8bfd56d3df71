"""The VAE core that every model of the suite uses.

Posterior, likelihoods and divergences are small pure pieces: a model owns its encoder and decoder and
combines them here; the training task applies one dict of loss weights keyed by log names.
"""

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

LOG_2PI = math.log(2.0 * math.pi)


class GaussianPosterior(nn.Module):
    """Maps features to a diagonal Gaussian q(z|x) and samples it with the reparameterisation trick.

    Args:
        in_features: size of the features ``[B, in_features]`` (or channels of ``[B, C, T]`` when ``temporal``).
        latent_size: size of z.
        temporal: apply the projection per time step with a 1x1 convolution.
    """

    def __init__(self, in_features: int, latent_size: int, temporal: bool = False) -> None:
        super().__init__()
        self.temporal = temporal
        self.project = (
            nn.Conv1d(in_features, 2 * latent_size, 1)
            if temporal
            else nn.Linear(in_features, 2 * latent_size)
        )

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(mean, logvar)``, each ``[B, D]`` (or ``[B, D, T]``); logvar is clamped for stability."""
        mean, logvar = self.project(features).chunk(2, dim=1)
        return mean, logvar.clamp(-12.0, 8.0)


def reparameterize(mean: Tensor, logvar: Tensor, temperature: float = 1.0) -> Tensor:
    """Draw ``z = mean + temperature * sigma * eps`` (differentiable in mean and logvar)."""
    return mean + temperature * torch.exp(0.5 * logvar) * torch.randn_like(mean)


# Likelihoods: negative log-likelihoods summed over every dimension but the batch, shape [B].


def bernoulli_nll(logits: Tensor, target: Tensor) -> Tensor:
    """-log p(target | logits) for Bernoulli cells, summed per example: ``[B, ...] -> [B]``."""
    nll = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return nll.flatten(1).sum(1)


def gaussian_nll(mean: Tensor, logscale: Tensor, target: Tensor) -> Tensor:
    """-log N(target; mean, exp(logscale)^2) summed per example: ``[B, ...] -> [B]``."""
    nll = 0.5 * LOG_2PI + logscale + 0.5 * ((target - mean) * torch.exp(-logscale)) ** 2
    return nll.flatten(1).sum(1)


def categorical_nll(logits: Tensor, target: Tensor, dim: int = 1) -> Tensor:
    """-log p(target class) summed per example; ``logits [B, K, ...]``, integer ``target [B, ...]`` -> ``[B]``."""
    logits = logits.movedim(dim, -1)
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none")
    return nll.view(target.shape[0], -1).sum(1)


# Divergences, shape [B] (KL) or a scalar (MMD, which compares two sets).


def kl_standard_normal(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) summed per example: ``[B, ...] -> [B]``."""
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)
    return kl.flatten(1).sum(1)


def kl_gaussians(mean_q: Tensor, logvar_q: Tensor, mean_p: Tensor, logvar_p: Tensor) -> Tensor:
    """KL(N(mean_q, var_q) || N(mean_p, var_p)) summed per example: ``[B, ...] -> [B]``."""
    kl = 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mean_q - mean_p).pow(2)) / logvar_p.exp() - 1.0)
    return kl.flatten(1).sum(1)


def mmd_imq(
    z: Tensor, prior: Tensor, scales: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
) -> Tensor:
    """Maximum mean discrepancy between samples ``z [N, D]`` and ``prior [M, D]`` (WAE-MMD).

    Uses a sum of inverse multiquadratic kernels ``C / (C + |x - y|^2)`` with ``C = 2 * D * scale``,
    whose heavy tails keep gradients alive for far-away codes. Unbiased (diagonals excluded).
    """
    n, m, d = z.shape[0], prior.shape[0], z.shape[1]

    def kernel(a: Tensor, b: Tensor) -> Tensor:
        dist = torch.cdist(a, b).pow(2)
        return sum(2.0 * d * s / (2.0 * d * s + dist) for s in scales)

    k_zz, k_pp, k_zp = kernel(z, z), kernel(prior, prior), kernel(z, prior)
    off_zz = (k_zz.sum() - k_zz.diagonal().sum()) / (n * (n - 1))
    off_pp = (k_pp.sum() - k_pp.diagonal().sum()) / (m * (m - 1))
    return off_zz + off_pp - 2.0 * k_zp.mean()


class BetaSchedule:
    """The weight of the divergence over training steps.

    ``kind``: ``constant`` (always ``end``), ``linear`` (``start`` to ``end`` over ``warmup_steps``
    after ``delay_steps``) or ``cyclical`` (linear ramps repeated every ``warmup_steps``; the second half
    of each cycle holds ``end``), the usual remedies against posterior collapse.
    """

    def __init__(
        self,
        kind: str = "linear",
        start: float = 0.0,
        end: float = 1.0,
        warmup_steps: int = 1000,
        delay_steps: int = 0,
    ) -> None:
        if kind not in ("constant", "linear", "cyclical"):
            raise ValueError(f"unknown beta schedule {kind!r}; use constant, linear or cyclical")
        self.kind, self.start, self.end = kind, start, end
        self.warmup_steps, self.delay_steps = max(1, warmup_steps), delay_steps

    def __call__(self, step: int) -> float:
        if self.kind == "constant":
            return self.end
        t = max(0, step - self.delay_steps)
        if self.kind == "cyclical":
            t = t % self.warmup_steps
            progress = min(1.0, 2.0 * t / self.warmup_steps)
        else:
            progress = min(1.0, t / self.warmup_steps)
        return self.start + (self.end - self.start) * progress


class LabelConditioning(nn.Module):
    """A learned embedding of a class label (style, drum class, ...) for conditioning.

    A label outside ``0 .. num_labels - 1`` (e.g. -1) means "no label" and gets the mean of all
    embeddings, so a conditioned model can still be used unconditioned.
    """

    def __init__(self, num_labels: int, dim: int) -> None:
        super().__init__()
        self.num_labels = num_labels
        self.embedding = nn.Embedding(max(1, num_labels), dim)

    def forward(self, labels: Tensor) -> Tensor:
        """``labels [B]`` (int) -> ``[B, dim]``."""
        valid = (labels >= 0) & (labels < self.num_labels)
        emb = self.embedding(labels.clamp(0, max(0, self.num_labels - 1)))
        mean = self.embedding.weight.mean(0, keepdim=True).expand_as(emb)
        return torch.where(valid.unsqueeze(1), emb, mean)

"""The VAE core: likelihoods, divergences, schedules, conditioning, and the pattern VAE."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Bernoulli, Categorical, Independent, Normal, kl_divergence

from latentlive.models.drums import PatternVAE
from latentlive.models.vae import (
    BetaSchedule,
    GaussianPosterior,
    LabelConditioning,
    bernoulli_nll,
    categorical_nll,
    gaussian_nll,
    kl_gaussians,
    kl_standard_normal,
    mmd_imq,
    reparameterize,
)


def test_likelihoods_match_torch_distributions() -> None:
    torch.manual_seed(0)
    logits, target = torch.randn(3, 9, 16), (torch.rand(3, 9, 16) > 0.5).float()
    expected = -Independent(Bernoulli(logits=logits), 2).log_prob(target)
    assert torch.allclose(bernoulli_nll(logits, target), expected, atol=1e-4)

    mean, logscale, x = torch.randn(3, 5), torch.randn(3, 5) * 0.3, torch.randn(3, 5)
    expected = -Independent(Normal(mean, logscale.exp()), 1).log_prob(x)
    assert torch.allclose(gaussian_nll(mean, logscale, x), expected, atol=1e-4)

    cat_logits, classes = torch.randn(3, 7, 4), torch.randint(0, 7, (3, 4))
    expected = -Categorical(logits=cat_logits.transpose(1, 2)).log_prob(classes).sum(1)
    assert torch.allclose(categorical_nll(cat_logits, classes), expected, atol=1e-4)


def test_kl_divergences_match_torch() -> None:
    torch.manual_seed(1)
    mq, lq, mp, lp = (torch.randn(4, 6) for _ in range(4))
    q, p = Normal(mq, (0.5 * lq).exp()), Normal(mp, (0.5 * lp).exp())
    assert torch.allclose(kl_gaussians(mq, lq, mp, lp), kl_divergence(q, p).sum(1), atol=1e-4)
    zeros = torch.zeros_like(mq)
    assert torch.allclose(kl_standard_normal(mq, lq), kl_gaussians(mq, lq, zeros, zeros), atol=1e-5)


def test_mmd_separates_matching_from_shifted_samples() -> None:
    torch.manual_seed(2)
    prior = torch.randn(256, 4)
    same = mmd_imq(torch.randn(256, 4), prior)
    shifted = mmd_imq(torch.randn(256, 4) + 2.0, prior)
    assert abs(same.item()) < 0.05
    assert shifted.item() > 10 * abs(same.item())


def test_reparameterize_has_the_posterior_moments() -> None:
    torch.manual_seed(3)
    mean, logvar = torch.full((20000, 1), 1.5), torch.full((20000, 1), math.log(0.25))
    z = reparameterize(mean, logvar)
    assert abs(z.mean().item() - 1.5) < 0.02 and abs(z.std().item() - 0.5) < 0.02
    assert torch.equal(reparameterize(mean, logvar, temperature=0.0), mean)


def test_posterior_clamps_logvar() -> None:
    posterior = GaussianPosterior(8, 3)
    mean, logvar = posterior(torch.randn(5, 8) * 1e4)
    assert mean.shape == (5, 3) and logvar.min() >= -12 and logvar.max() <= 8


@settings(max_examples=30, deadline=None)
@given(step=st.integers(0, 50_000), warmup=st.integers(1, 5000), end=st.floats(0.01, 10))
def test_beta_schedules_stay_between_start_and_end(step: int, warmup: int, end: float) -> None:
    for kind in ("constant", "linear", "cyclical"):
        beta = BetaSchedule(kind, 0.0, end, warmup)(step)
        assert 0.0 <= beta <= end + 1e-9
    linear = BetaSchedule("linear", 0.0, end, warmup)
    assert linear(0) == 0.0 and linear(warmup) == pytest.approx(end)


def test_unknown_schedule_is_refused() -> None:
    with pytest.raises(ValueError, match="cyclical"):
        BetaSchedule("exponential")


def test_label_conditioning_maps_unknown_labels_to_the_mean_embedding() -> None:
    conditioning = LabelConditioning(4, 3)
    out = conditioning(torch.tensor([0, 3, -1, 7]))
    assert torch.allclose(out[0], conditioning.embedding.weight[0])
    assert torch.allclose(out[2], conditioning.embedding.weight.mean(0))
    assert torch.allclose(out[3], out[2])


def test_pattern_vae_shapes_sampling_and_conditioning() -> None:
    torch.manual_seed(4)
    model = PatternVAE(latent_size=3, hidden_sizes=(32, 16), num_styles=5, steps=32)
    pattern, style = (torch.rand(6, 9, 32) > 0.7).float(), torch.randint(0, 5, (6,))
    velocity, offset = pattern * torch.rand_like(pattern), pattern * (torch.rand_like(pattern) - 0.5)
    logits, velocity_out, offset_out, z, mean, logvar = model(pattern, style, velocity, offset)
    assert logits.shape == velocity_out.shape == offset_out.shape == (6, 9, 32)
    assert z.shape == mean.shape == logvar.shape == (6, 3)
    assert 0.0 <= velocity_out.min() and velocity_out.max() <= 1.0 and offset_out.abs().max() <= 0.5
    samples, sampled_velocity, sampled_offset = model.sample(4, torch.tensor([0, 1, 2, -1]), threshold=0.5)
    assert samples.shape == (4, 9, 32) and set(samples.unique().tolist()) <= {0.0, 1.0}
    assert torch.all(sampled_velocity[samples == 0] == 0) and torch.all(sampled_offset[samples == 0] == 0)
    unconditioned = PatternVAE(latent_size=2, hidden_sizes=(16,), num_styles=0)
    assert unconditioned.decode(torch.zeros(2, 2), torch.tensor([3, -1])).shape == (2, 9, 16)


def test_pattern_vae_learns_a_small_set_of_patterns() -> None:
    torch.manual_seed(5)
    patterns = (torch.rand(8, 9, 16) > 0.75).float()
    model = PatternVAE(latent_size=4, hidden_sizes=(64, 32), dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    style = torch.full((8,), -1)
    silent = torch.zeros_like(patterns)  # the hits alone: velocity and offset carry nothing here
    for _ in range(300):
        logits, _, _, _, mean, logvar = model(patterns, style, silent, silent)
        loss = (bernoulli_nll(logits, patterns) + 0.01 * kl_standard_normal(mean, logvar)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    mean, _ = model.encode(patterns, style, silent, silent)
    assert torch.equal((torch.sigmoid(model.decode(mean, style)) > 0.5).float(), patterns)

"""The trajectory VAE of techno_prior: shapes, circular wrapping, objectives, phase reading, scripting, learning."""

import math

import pytest
import torch
from torch import nn
from torch.distributions import Independent, Normal, kl_divergence

from latentlive.models.trajectory_vae import (
    CircularConv1d,
    TrajectoryVAE,
    TrajectoryVAEOutput,
    latent_high_band_power,
    posterior_kl,
    read_at_phase,
    trajectory_nll,
)
from latentlive.models.vae import gaussian_nll, kl_standard_normal

LATENT, FRAMES = 6, 32


def tiny_model(macro_frames: int = 1, frames: int = FRAMES) -> TrajectoryVAE:
    torch.manual_seed(0)
    return TrajectoryVAE(LATENT, frames, macro_size=4, macro_frames=macro_frames, channels=(8, 16, 16))


def output_with(mean: torch.Tensor, logscale: torch.Tensor) -> TrajectoryVAEOutput:
    """A model output whose decoded Gaussian is given (the macro parts are irrelevant to the objectives)."""
    macro = torch.zeros(mean.shape[0], 4, 1)
    return TrajectoryVAEOutput(mean, logscale, macro, macro, macro)


@pytest.mark.parametrize("macro_frames", [1, 2, 8])
def test_shapes_of_encode_decode_forward(macro_frames: int) -> None:
    model = tiny_model(macro_frames)
    trajectory = torch.randn(3, LATENT, FRAMES)
    mean, logvar = model.encode(trajectory)
    assert mean.shape == logvar.shape == (3, 4, macro_frames)
    decoded_mean, logscale = model.decode(mean)
    assert decoded_mean.shape == logscale.shape == (3, LATENT, FRAMES)
    assert torch.all(logscale >= math.log(model.min_scale))
    out = model(trajectory)
    assert out.mean.shape == out.logscale.shape == (3, LATENT, FRAMES)
    assert out.z.shape == out.posterior_mean.shape == out.posterior_logvar.shape == (3, 4, macro_frames)


def test_macro_frames_must_divide_frames() -> None:
    with pytest.raises(ValueError, match="must divide frames"):
        TrajectoryVAE(LATENT, 32, macro_frames=3)


def test_circular_conv_equals_convolution_of_the_repeated_loop() -> None:
    torch.manual_seed(1)
    layer = CircularConv1d(3, 5, kernel_size=4, stride=2)
    x = torch.randn(2, 3, 8)
    tiled = torch.cat([x, x, x], dim=-1)  # the loop played three times; read the middle pass
    expected = layer.conv(tiled[..., 8 - layer.left : 16 + layer.right])
    assert torch.allclose(layer(x), expected, atol=1e-6)
    assert layer(x).shape == (2, 5, 4)


def test_a_change_at_the_last_frame_reaches_the_first_output_frame() -> None:
    model = tiny_model(macro_frames=8)  # 4 frames per macro frame: frame K-1 is far outside the first group
    trajectory = torch.randn(1, LATENT, FRAMES)
    changed = trajectory.clone()
    changed[..., -1] += 1.0
    with torch.no_grad():
        before, after = model.encode(trajectory)[0], model.encode(changed)[0]
        assert not torch.allclose(before[..., 0], after[..., 0])
        macro = torch.randn(1, 4, 8)
        macro_changed = macro.clone()
        macro_changed[..., -1] += 1.0
        assert not torch.allclose(model.decode(macro)[0][..., 0], model.decode(macro_changed)[0][..., 0])


def test_shifting_the_loop_by_one_macro_frame_shifts_the_macro_latents() -> None:
    model = tiny_model(macro_frames=8)
    trajectory = torch.randn(2, LATENT, FRAMES)
    group = FRAMES // 8
    with torch.no_grad():
        mean = model.encode(trajectory)[0]
        shifted = model.encode(torch.roll(trajectory, group, dims=-1))[0]
        assert torch.allclose(shifted, torch.roll(mean, 1, dims=-1), atol=1e-5)
        decoded = model.decode(mean)[0]
        assert torch.allclose(
            model.decode(torch.roll(mean, 1, dims=-1))[0], torch.roll(decoded, group, -1), atol=1e-5
        )


def test_posterior_kl_matches_hand_computed_value() -> None:
    # q = N(1, 1), p = N(0, 2^2): KL = log 2 + (1 + 1) / 8 - 1/2 per element
    stage1_mean, stage1_logvar = torch.ones(2, LATENT, FRAMES), torch.zeros(2, LATENT, FRAMES)
    out = output_with(torch.zeros(2, LATENT, FRAMES), torch.full((2, LATENT, FRAMES), math.log(2.0)))
    per_element = math.log(2.0) + 2.0 / 8.0 - 0.5
    expected = torch.full((2,), per_element * LATENT * FRAMES)
    assert torch.allclose(posterior_kl(out, stage1_mean, stage1_logvar), expected, atol=1e-4)


def test_posterior_kl_matches_torch_and_is_zero_when_decoder_reproduces_q() -> None:
    torch.manual_seed(2)
    stage1_mean, stage1_logvar = torch.randn(3, LATENT, FRAMES), torch.randn(3, LATENT, FRAMES)
    out = output_with(torch.randn(3, LATENT, FRAMES), 0.3 * torch.randn(3, LATENT, FRAMES))
    q = Independent(Normal(stage1_mean, torch.exp(0.5 * stage1_logvar)), 2)
    p = Independent(Normal(out.mean, out.logscale.exp()), 2)
    assert torch.allclose(posterior_kl(out, stage1_mean, stage1_logvar), kl_divergence(q, p), rtol=1e-4)

    exact = output_with(stage1_mean, 0.5 * stage1_logvar)
    assert torch.allclose(posterior_kl(exact, stage1_mean, stage1_logvar), torch.zeros(3), atol=1e-3)


def test_trajectory_nll_matches_gaussian_nll() -> None:
    torch.manual_seed(3)
    model = tiny_model()
    target = torch.randn(2, LATENT, FRAMES)
    out = model(target)
    assert torch.equal(trajectory_nll(out, target), gaussian_nll(out.mean, out.logscale, target))
    expected = -Independent(Normal(out.mean, out.logscale.exp()), 2).log_prob(target)
    assert torch.allclose(trajectory_nll(out, target), expected, rtol=1e-4)


def test_read_at_phase_hits_frames_and_interpolates() -> None:
    torch.manual_seed(4)
    trajectory = torch.randn(2, LATENT, 8)
    frames = torch.arange(8) / 8.0
    assert torch.allclose(read_at_phase(trajectory, frames.expand(2, 8)), trajectory, atol=1e-6)
    # a quarter of the way from frame 2 to frame 3
    value = read_at_phase(trajectory, torch.full((2, 1), 2.25 / 8.0))
    assert torch.allclose(value[..., 0], 0.75 * trajectory[..., 2] + 0.25 * trajectory[..., 3], atol=1e-6)


def test_read_at_phase_wraps_at_one_and_below_zero() -> None:
    torch.manual_seed(5)
    trajectory = torch.randn(1, LATENT, 8)
    at = lambda phase: read_at_phase(trajectory, torch.tensor([[phase]]))[..., 0]  # noqa: E731
    assert torch.allclose(at(1.0), trajectory[..., 0], atol=1e-6)
    assert torch.allclose(at(3.0 + 2.0 / 8.0), trajectory[..., 2], atol=1e-5)
    # between the last frame and the first (the loop's seam)
    assert torch.allclose(at(7.5 / 8.0), 0.5 * (trajectory[..., 7] + trajectory[..., 0]), atol=1e-6)
    assert torch.allclose(at(-0.5 / 8.0), 0.5 * (trajectory[..., 7] + trajectory[..., 0]), atol=1e-6)
    assert torch.allclose(at(-1.0 / 8.0), trajectory[..., 7], atol=1e-6)
    assert torch.allclose(at(-1e-9), trajectory[..., 0], atol=1e-5)  # rounds to phase 1.0 in float32
    assert torch.all(torch.isfinite(at(float("nan"))))


def test_trajectory_at_phase_reads_the_decoded_mean() -> None:
    model = tiny_model(macro_frames=2)
    macro, phase = torch.randn(2, 4, 2), torch.rand(2, 5) * 3.0 - 1.0
    with torch.no_grad():
        expected = read_at_phase(model.decode(macro)[0], phase)
        assert torch.allclose(model.trajectory_at_phase(macro, phase), expected)


def test_scripted_model_matches_eager() -> None:
    model = tiny_model(macro_frames=2).eval()
    scripted = torch.jit.script(model)
    trajectory, macro, phase = torch.randn(2, LATENT, FRAMES), torch.randn(2, 4, 2), torch.rand(2, 7)
    with torch.no_grad():
        for eager_part, scripted_part in zip(
            model.encode(trajectory), scripted.encode(trajectory), strict=True
        ):
            assert torch.allclose(eager_part, scripted_part, atol=1e-6)
        for eager_part, scripted_part in zip(model.decode(macro), scripted.decode(macro), strict=True):
            assert torch.allclose(eager_part, scripted_part, atol=1e-6)
        expected = model.trajectory_at_phase(macro, phase)
        assert torch.allclose(scripted.trajectory_at_phase(macro, phase), expected, atol=1e-6)
        torch.manual_seed(6)
        eager_out = model(trajectory)
        torch.manual_seed(6)
        scripted_out = scripted(trajectory)
        for eager_part, scripted_part in zip(eager_out, scripted_out, strict=True):
            assert torch.allclose(eager_part, scripted_part, atol=1e-6)
    scripted_read = torch.jit.script(read_at_phase)
    trajectory_loop = torch.randn(2, LATENT, FRAMES)
    wild = torch.tensor([[-1.3, 0.0, 0.5, 1.0, 2.75, 1e6, float("inf")]]).expand(2, 7)
    assert torch.allclose(scripted_read(trajectory_loop, wild), read_at_phase(trajectory_loop, wild))


def smooth_trajectories(count: int) -> torch.Tensor:
    """Loops of low-frequency sines with random phases and amplitudes: ``[count, L, K]``."""
    generator = torch.Generator().manual_seed(7)
    t = torch.arange(FRAMES) / FRAMES
    phase = 2.0 * math.pi * torch.rand(count, LATENT, 1, generator=generator)
    amplitude = 0.5 + torch.rand(count, LATENT, 1, generator=generator)
    cycles = torch.randint(1, 3, (count, LATENT, 1), generator=generator)
    return amplitude * torch.sin(2.0 * math.pi * cycles * t + phase)


def test_a_few_optimisation_steps_reduce_the_loss() -> None:
    model = tiny_model(macro_frames=1)
    data = smooth_trajectories(8)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def deterministic_loss(module: nn.Module) -> float:
        with torch.no_grad():
            mean, logvar = module.encode(data)
            decoded_mean, logscale = module.decode(mean)
            nll = gaussian_nll(decoded_mean, logscale, data)
            return float((nll + kl_standard_normal(mean, logvar)).mean())

    before = deterministic_loss(model)
    torch.manual_seed(8)
    for _ in range(60):
        out = model(data)
        loss = (
            trajectory_nll(out, data) + kl_standard_normal(out.posterior_mean, out.posterior_logvar)
        ).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # the zero-mean, fitted-scale baseline is about where training starts; 60 steps go well below it
    assert deterministic_loss(model) < before - 0.08 * abs(before)


def test_sample_at_phase_is_the_mean_plus_the_decoded_scale_times_the_noise() -> None:
    model = tiny_model(macro_frames=2).eval()
    macro, phase = torch.randn(2, 4, 2), torch.rand(2, 9) * 2.0
    noise = torch.randn(2, LATENT, 9)
    with torch.no_grad():
        mean, logscale = model.decode(macro)
        expected = read_at_phase(mean, phase) + read_at_phase(logscale, phase).exp() * noise
        assert torch.allclose(model.sample_at_phase(macro, phase, noise), expected, atol=1e-6)
        zero = torch.zeros_like(noise)
        assert torch.allclose(
            model.sample_at_phase(macro, phase, zero), model.trajectory_at_phase(macro, phase)
        )
        scripted = torch.jit.script(model)
        assert torch.allclose(scripted.sample_at_phase(macro, phase, noise), expected, atol=1e-6)


def test_latent_high_band_power_is_near_zero_for_smooth_latents_only() -> None:
    t = torch.arange(256.0)
    smooth = torch.sin(2.0 * math.pi * 3.0 * t / 256.0).expand(1, 2, 256)  # 3 cycles: far below Nyquist
    fast = torch.sin(2.0 * math.pi * 0.4 * t).expand(1, 2, 256)  # 0.8 of the Nyquist frequency
    white = torch.randn(4, 2, 256, generator=torch.Generator().manual_seed(0))
    assert latent_high_band_power(smooth) < 1e-6
    assert latent_high_band_power(fast) == pytest.approx(0.5 * 256 / 2, rel=0.05)  # all of a sine's power
    assert latent_high_band_power(white) == pytest.approx(256 / 4, rel=0.15)  # half of white noise's


def test_training_tracks_where_the_codes_lie_and_new_macros_are_drawn_there() -> None:
    """New loops draw their macros from the training codes' mean and spread (docs/techno.md: N(0, 1) covered only
    the middle of them); evaluation leaves the statistics alone."""
    model = tiny_model(macro_frames=2)
    codes = 3.0 + 2.0 * torch.randn(512, 4, 2)  # what the encoder gives, posterior spread exp(-4)
    model.encode = lambda trajectory: (
        codes[torch.randint(0, len(codes), (32,))],
        torch.full((32, 4, 2), -4.0),
    )
    model.train()
    for _ in range(1000):
        model(torch.randn(32, LATENT, FRAMES))
    assert model.code_mean == pytest.approx(torch.full((1, 4, 2), 3.0), abs=0.3)
    assert model.code_std == pytest.approx(torch.full((1, 4, 2), 2.0), abs=0.3)
    model.eval()
    before = model.code_std.clone()
    model(torch.randn(32, LATENT, FRAMES))
    assert torch.equal(model.code_std, before)

    drawn = model.draw_macros(4000, temperature=0.5, generator=torch.Generator().manual_seed(0))
    assert drawn.shape == (4000, 4, 2)
    assert drawn.mean(0) == pytest.approx(model.code_mean[0], abs=0.1)
    assert drawn.std(0) == pytest.approx(0.5 * model.code_std[0], rel=0.1)
    again = model.draw_macros(4000, temperature=0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(drawn, again)


def test_a_model_saved_before_the_code_statistics_draws_from_the_standard_normal() -> None:
    model = tiny_model()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("code_")}
    model.code_mean.fill_(2.0)
    model.code_std.fill_(5.0)
    model.load_state_dict(state)  # strict: the missing statistics are filled, not refused
    assert torch.equal(model.code_mean, torch.zeros(1, 4, 1))
    assert torch.equal(model.code_std, torch.ones(1, 4, 1))

"""The techno_prior model: a VAE over stage-1 latent trajectories of whole loops.

A loop's stage-1 latent trajectory is resampled to ``K`` frames per loop, ``[B, L, K]`` (frame ``k`` sits at
bar phase ``k / K``). Because a loop repeats, every convolution pads circularly: the frame after the last
is the first. The encoder strides down to ``macro_frames`` macro latent frames (``K / 8`` ... one point per
loop, the last reduction by a layer that sees a whole group of frames at once); the decoder mirrors it and
returns a Gaussian per stage-1 latent frame, ``(mean, logscale)``, with the scale floored.

Two objectives fit the decoder to stage 1 (the training task picks one):

- ``trajectory_nll``: Gaussian NLL of fixed stage-1 latents (posterior samples or means);
- ``posterior_kl``: KL(q_stage1 || p_decoder) per frame, i.e. the NLL expected under the stage-1 posterior
  minus its (constant) entropy, which teaches the decoder the stage-1 uncertainty too.

For playback, ``read_at_phase`` reads a decoded loop at any bar phase with wrapping linear interpolation;
the export decodes a loop once per macro change and reads it every buffer. Everything here is scriptable.

A sampled loop must be played as a *sample* of the decoded Gaussian, drawn at every stage-1 frame
(``sample_at_phase``), not as its mean. The stage-1 latents of real loops change from frame to frame: in the
demo run about half their power lies above half the latent Nyquist frequency (the phase of low tones, aliased).
A macro latent cannot say where those fast changes fall, so the decoded mean is smooth (its power there is
well under 1 % of the corpus's), and a stage-1 decoder given near-constant latents repeats one waveform every frame:
a buzz at the latent frame rate (issue #18). The decoded scale carries that frame-to-frame spread (it is fitted
to it), and one independent draw per stage-1 frame puts it back.
"""

from typing import NamedTuple

import gin
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from latentlive.models.vae import (
    GaussianPosterior,
    gaussian_nll,
    kl_gaussians,
    kl_standard_normal,
    reparameterize,
)


class TrajectoryVAEOutput(NamedTuple):
    """What ``TrajectoryVAE.forward`` returns.

    ``mean``, ``logscale``: the decoded Gaussian over stage-1 latents ``[B, L, K]``; ``z``: the sampled macro
    latent, ``posterior_mean``, ``posterior_logvar``: its posterior, each ``[B, macro_size, macro_frames]``.
    """

    mean: Tensor
    logscale: Tensor
    z: Tensor
    posterior_mean: Tensor
    posterior_logvar: Tensor


def wrap_pad(x: Tensor, left: int, right: int) -> Tensor:
    """Pad the time axis of ``[B, C, T]`` circularly: ``[B, C, left + T + right]``.

    Unlike ``F.pad(mode="circular")`` the padding may exceed ``T`` (it wraps as often as needed), so short
    macro sequences (down to one frame) still work.
    """
    length = x.shape[-1]
    index = torch.arange(-left, length + right, device=x.device).remainder(length)
    return x.index_select(-1, index)


class CircularConv1d(nn.Module):
    """A 1-D convolution over a loop: ``[B, C_in, T] -> [B, C_out, T / stride]`` (``T`` divisible by stride).

    The input is padded circularly by ``kernel_size - stride`` frames, split around it, so the output is
    equivariant to circular shifts by multiples of ``stride``.
    """

    def __init__(self, channels_in: int, channels_out: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        if kernel_size < stride:
            raise ValueError(f"CircularConv1d: kernel_size {kernel_size} is smaller than stride {stride}")
        padding = kernel_size - stride
        self.left, self.right = padding // 2, padding - padding // 2
        self.conv = nn.Conv1d(channels_in, channels_out, kernel_size, stride=stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(wrap_pad(x, self.left, self.right))


class ResidualUnit(nn.Module):
    """``x + conv1x1(act(conv_k(act(x))))`` with a circular ``k``-frame convolution: ``[B, C, T]``."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = CircularConv1d(channels, channels, kernel_size)
        self.mix = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mix(F.leaky_relu(self.conv(F.leaky_relu(x, 0.2)), 0.2))


class Upsample(nn.Module):
    """Repeat each frame ``stride`` times, then a circular convolution: ``[B, C_in, T] -> [B, C_out, T * s]``.

    (A transposed convolution would need its overlap wrapped by hand; repeat + conv wraps for free.)
    """

    def __init__(self, channels_in: int, channels_out: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv = CircularConv1d(channels_in, channels_out, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x.repeat_interleave(self.stride, dim=-1))


def stage_strides(frames: int, macro_frames: int, stages: int) -> tuple[list[int], int]:
    """Strides of the convolution stages (2 while the remaining reduction stays even, else 1) and the
    factor left for the final grouping layer: ``frames == macro_frames * prod(strides) * group``."""
    if frames < 1 or macro_frames < 1 or frames % macro_frames != 0:
        raise ValueError(
            f"TrajectoryVAE: macro_frames ({macro_frames}) must divide frames ({frames}); "
            "use frames / 8, frames / 16, ... or 1"
        )
    remaining = frames // macro_frames
    strides: list[int] = []
    for _ in range(stages):
        stride = 2 if remaining % 2 == 0 else 1
        strides.append(stride)
        remaining //= stride
    return strides, remaining


CODE_MOMENTUM = 0.01  # per training step: the code statistics follow the last few hundred batches


@gin.configurable
class TrajectoryVAE(nn.Module):
    """VAE over loops of stage-1 latent trajectories ``[B, L, K]`` with macro latents ``[B, M, F]``.

    Args:
        latent_size: ``L``, the stage-1 latent size (8-32).
        frames: ``K``, frames per loop (e.g. 64 per bar).
        macro_size: ``M``, the size of each macro latent frame.
        macro_frames: ``F``, macro frames per loop (must divide ``K``; 1 = one point per loop).
        channels: widths of the stages; each stage halves the time axis while the remaining reduction
            ``K / F`` is even, and a final layer over groups of frames does the rest.
        kernel_size: kernel of the residual and upsampling convolutions (odd).
        min_scale: floor of the decoded scale, so the likelihood cannot grow without bound.

    New loops draw their macros where the training loops' codes lie (:meth:`draw_macros`): the buffers
    ``code_mean`` and ``code_std`` ``[1, M, F]`` follow the posterior means and spreads of the training batches
    (a moving average, as batch norm keeps its statistics). N(0, 1) alone covers only the middle of them: in the
    demo run the codes spread about 1.5 per macro (docs/techno.md).
    """

    def __init__(
        self,
        latent_size: int = 16,
        frames: int = 64,
        macro_size: int = 8,
        macro_frames: int = 1,
        channels: tuple[int, ...] = (64, 128, 256),
        kernel_size: int = 5,
        min_scale: float = 1e-2,
    ) -> None:
        super().__init__()
        if len(channels) == 0:
            raise ValueError("TrajectoryVAE: channels needs at least one stage")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"TrajectoryVAE: kernel_size must be odd, got {kernel_size}")
        if min_scale <= 0.0:
            raise ValueError(f"TrajectoryVAE: min_scale must be positive, got {min_scale}")
        self.latent_size, self.frames = latent_size, frames
        self.macro_size, self.macro_frames = macro_size, macro_frames
        self.min_scale = min_scale
        strides, group = stage_strides(frames, macro_frames, len(channels))
        widths = list(channels) + [channels[-1]]

        encoder: list[nn.Module] = [CircularConv1d(latent_size, widths[0], kernel_size)]
        for i, stride in enumerate(strides):
            encoder.append(ResidualUnit(widths[i], kernel_size))
            encoder.append(nn.LeakyReLU(0.2))
            # kernel 2 * stride overlaps neighbouring windows; stride 1 keeps kernel_size
            encoder.append(
                CircularConv1d(widths[i], widths[i + 1], 2 * stride if stride > 1 else kernel_size, stride)
            )
        # one layer sees a whole group of frames: with macro_frames = 1 it is a linear layer over the loop
        encoder += [
            nn.LeakyReLU(0.2),
            nn.Conv1d(widths[-1], widths[-1], group, stride=group),
            nn.LeakyReLU(0.2),
        ]
        self.encoder = nn.Sequential(*encoder)
        self.posterior = GaussianPosterior(widths[-1], macro_size, temporal=True)

        decoder: list[nn.Module] = [
            nn.Conv1d(macro_size, widths[-1], 1),
            nn.LeakyReLU(0.2),
            nn.ConvTranspose1d(widths[-1], widths[-1], group, stride=group),
        ]
        for i in reversed(range(len(strides))):
            decoder.append(nn.LeakyReLU(0.2))
            decoder.append(Upsample(widths[i + 1], widths[i], kernel_size, strides[i]))
            decoder.append(ResidualUnit(widths[i], kernel_size))
        decoder += [nn.LeakyReLU(0.2), CircularConv1d(widths[0], 2 * latent_size, kernel_size)]
        self.decoder = nn.Sequential(*decoder)
        self.register_buffer("code_mean", torch.zeros(1, macro_size, macro_frames))
        self.register_buffer("code_std", torch.ones(1, macro_size, macro_frames))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # noqa: ANN001
        # runs trained before the code statistics existed drew from N(0, 1): they keep doing so
        state_dict.setdefault(prefix + "code_mean", torch.zeros_like(self.code_mean))
        state_dict.setdefault(prefix + "code_std", torch.ones_like(self.code_std))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.jit.unused
    def track_codes(self, mean: Tensor, logvar: Tensor) -> None:
        """Move ``code_mean`` / ``code_std`` towards a training batch's macro posteriors ``[B, M, F]``: the mean
        of their means, and the spread of the mixture (variance of the means plus mean variance)."""
        with torch.no_grad():
            variance = logvar.exp().mean(0, keepdim=True)
            if mean.shape[0] > 1:
                variance = variance + mean.var(0, keepdim=True)
            self.code_mean.lerp_(mean.mean(0, keepdim=True), CODE_MOMENTUM)
            self.code_std.copy_(self.code_std.square().lerp(variance, CODE_MOMENTUM).sqrt())

    def draw_macros(
        self, count: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """``count`` macros ``[count, M, F]`` of new loops: ``code_mean + temperature * code_std * N(0, I)``, the
        noise drawn on the CPU from ``generator`` when given (repeatable), returned on the model's device."""
        shape = (count, self.macro_size, self.macro_frames)
        noise = torch.randn(shape, generator=generator) if generator is not None else torch.randn(shape)
        noise = noise.to(self.code_mean.device)
        return self.code_mean + temperature * self.code_std * noise

    @torch.jit.export
    def encode(self, trajectory: Tensor) -> tuple[Tensor, Tensor]:
        """``trajectory [B, L, K]`` -> macro posterior ``(mean, logvar)``, each ``[B, M, F]``."""
        return self.posterior(self.encoder(trajectory))

    @torch.jit.export
    def decode(self, macro: Tensor) -> tuple[Tensor, Tensor]:
        """``macro [B, M, F]`` -> stage-1 latent Gaussian ``(mean, logscale)``, each ``[B, L, K]``;
        the scale is ``softplus(raw) + min_scale`` (smooth, never below the floor)."""
        mean, raw = self.decoder(macro).chunk(2, dim=1)
        return mean, torch.log(F.softplus(raw) + self.min_scale)

    def forward(self, trajectory: Tensor) -> TrajectoryVAEOutput:
        """Encode, sample the macro latent, decode: ``[B, L, K]`` -> ``TrajectoryVAEOutput``."""
        posterior_mean, posterior_logvar = self.encode(trajectory)
        if self.training:
            self.track_codes(posterior_mean, posterior_logvar)
        z = reparameterize(posterior_mean, posterior_logvar)
        mean, logscale = self.decode(z)
        return TrajectoryVAEOutput(mean, logscale, z, posterior_mean, posterior_logvar)

    @torch.jit.export
    def trajectory_at_phase(self, macro: Tensor, phase: Tensor) -> Tensor:
        """Decode the loop of ``macro [B, M, F]`` (its mean) and read it at bar phases ``phase [B, N]``
        (wrapping, see ``read_at_phase``): ``[B, L, N]``."""
        mean, _ = self.decode(macro)
        return read_at_phase(mean, phase)

    @torch.jit.export
    def sample_at_phase(self, macro: Tensor, phase: Tensor, noise: Tensor) -> Tensor:
        """Stage-1 latents ``[B, L, N]`` sampled from the decoded loop of ``macro [B, M, F]`` at bar phases
        ``phase [B, N]``, one per stage-1 frame: ``sample_frames`` with the caller's ``noise [B, L, N]``
        (``temperature * N(0, I)``, drawn afresh for every frame; zeros give the mean)."""
        mean, logscale = self.decode(macro)
        return sample_frames(mean, logscale, phase, noise)


def read_at_phase(trajectory: Tensor, phase: Tensor) -> Tensor:
    """Read a loop ``trajectory [B, L, K]`` at bar phases ``phase [B, N]`` -> ``[B, L, N]``.

    Frame ``k`` sits at phase ``k / K``; between frames the value is interpolated linearly, and from the
    last frame back to the first, so phase 1.0 reads frame 0. Any phase wraps (``phase mod 1``), negative
    ones included; non-finite phases read phase 0 so that a bad input can never index out of range.
    A batch of 1 on either side is broadcast to the other.
    """
    batch = max(trajectory.shape[0], phase.shape[0])
    channels, frames = trajectory.shape[1], trajectory.shape[2]
    trajectory = trajectory.expand(batch, channels, frames)
    phase = torch.nan_to_num(phase, nan=0.0, posinf=0.0, neginf=0.0).expand(batch, phase.shape[1])
    position = (phase - torch.floor(phase)) * frames
    start = torch.floor(position)
    weight = (position - start).unsqueeze(1)
    # phase - floor(phase) can round up to exactly 1.0 for tiny negative phases: wrap the index as well
    first = start.long().remainder(frames)
    second = (first + 1).remainder(frames)
    shape = [batch, channels, phase.shape[1]]
    before = trajectory.gather(2, first.unsqueeze(1).expand(shape))
    after = trajectory.gather(2, second.unsqueeze(1).expand(shape))
    return before + weight.to(trajectory.dtype) * (after - before)


def sample_frames(mean: Tensor, logscale: Tensor, phase: Tensor, noise: Tensor) -> Tensor:
    """A sample of the decoded loop ``(mean, logscale) [B, L, K]`` at the stage-1 frames of bar phases
    ``phase [B, N]``: ``mean + exp(logscale) * noise``, both read with ``read_at_phase`` -> ``[B, L, N]``.

    ``noise [B, L, N]`` holds one independent draw per stage-1 frame: a draw per trajectory frame, read with
    interpolation, would be smooth again, and smooth latents are what the stage-1 decoder turns into a buzz.
    """
    return read_at_phase(mean, phase) + torch.exp(read_at_phase(logscale, phase)) * noise


def latent_high_band_power(latents: Tensor) -> Tensor:
    """Mean power per latent and frame above half the latent Nyquist frequency of ``latents [B, L, T]``
    (each sequence's own mean removed; periodogram over the whole sequence) -> a scalar tensor.

    Smooth latents, which the stage-1 decoder turns into a buzz at the frame rate, read near zero;
    the stage-1 posteriors of real loops do not."""
    centred = latents - latents.mean(-1, keepdim=True)
    power = torch.fft.rfft(centred, dim=-1).abs().square() / latents.shape[-1]
    bins = power.shape[-1]
    return power[..., bins // 2 :].sum(-1).mean()


# Objectives: a value per example, shape [B].


@gin.register
def trajectory_nll(model_out: TrajectoryVAEOutput, target: Tensor) -> Tensor:
    """-log p_decoder(target) of fixed stage-1 latents (samples or means) ``target [B, L, K]`` -> ``[B]``."""
    return gaussian_nll(model_out.mean, model_out.logscale, target)


@gin.register
def posterior_kl(model_out: TrajectoryVAEOutput, stage1_mean: Tensor, stage1_logvar: Tensor) -> Tensor:
    """KL(q_stage1 || p_decoder) between diagonal Gaussians, summed over dims and frames: ``[B, L, K]`` -> ``[B]``.

    Zero exactly when the decoder reproduces the stage-1 posterior (mean and ``logscale = logvar / 2``).
    """
    return kl_gaussians(stage1_mean, stage1_logvar, model_out.mean, 2.0 * model_out.logscale)


OBJECTIVES = ("nll", "kl")
TARGETS = ("mean", "sample")


def objective_terms(
    model: nn.Module, mean: Tensor, logvar: Tensor, objective: str, target: str
) -> tuple[Tensor, Tensor]:
    """The prior's objective and the macro KL, each ``[B]``, for first-level posteriors ``mean``,
    ``logvar [B, L, K]``: ``kl`` fits the decoded Gaussian to the posterior (``posterior_kl``); ``nll`` fits the
    posterior ``mean`` or one fresh ``sample`` of it, encoded and scored on the same draw (``trajectory_nll``)."""
    if objective == "kl":
        out = model(mean)
        fit = posterior_kl(out, mean, logvar)
    else:
        fixed = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean) if target == "sample" else mean
        out = model(fixed)
        fit = trajectory_nll(out, fixed)
    return fit, kl_standard_normal(out.posterior_mean, out.posterior_logvar)

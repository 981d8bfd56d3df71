"""Discriminators and adversarial losses for the decoder-only fine-tuning of the waveform VAE (training
code only: never exported, never scripted).

A discriminator returns, for each of its sub-discriminators, the list of its feature maps with the score
map last: ``list[list[Tensor]]``. :func:`split_scores` separates scores from features for the losses.
"""

import math

import gin
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm


class ScaleDiscriminator(nn.Module):
    """Strided grouped 1-D convolutions over a waveform ``[B, 1, T]`` (MelGAN style).

    Returns the feature maps ``[B, C_i, T_i]`` of every layer, the score map ``[B, 1, T_last]`` last.
    """

    def __init__(self, capacity: int = 16, layers: int = 4, max_channels: int = 512) -> None:
        super().__init__()
        convs = [weight_norm(nn.Conv1d(1, capacity, 15, padding=7))]
        channels = capacity
        for _ in range(layers):
            out = min(channels * 4, max_channels)
            # grouped, so that the wide layers stay cheap
            groups = math.gcd(math.gcd(channels, out), max(1, channels // 4))
            convs.append(weight_norm(nn.Conv1d(channels, out, 41, stride=4, padding=20, groups=groups)))
            channels = out
        convs.append(weight_norm(nn.Conv1d(channels, channels, 5, padding=2)))
        self.convs = nn.ModuleList(convs)
        self.score = weight_norm(nn.Conv1d(channels, 1, 3, padding=1))

    def forward(self, audio: Tensor) -> list[Tensor]:
        features = []
        x = audio
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            features.append(x)
        features.append(self.score(x))
        return features


class PeriodDiscriminator(nn.Module):
    """2-D convolutions over the waveform folded by ``period``: ``[B, 1, T] -> [B, 1, T / period, period]``
    (HiFi-GAN style), sensitive to periodic structure. Feature maps ``[B, C_i, H_i, period]``, score last."""

    def __init__(self, period: int, capacity: int = 16, layers: int = 4, max_channels: int = 512) -> None:
        super().__init__()
        self.period = period
        convs = []
        channels = 1
        for index in range(layers):
            out = min(capacity * 4**index, max_channels)
            convs.append(weight_norm(nn.Conv2d(channels, out, (5, 1), stride=(3, 1), padding=(2, 0))))
            channels = out
        convs.append(weight_norm(nn.Conv2d(channels, channels, (5, 1), padding=(2, 0))))
        self.convs = nn.ModuleList(convs)
        self.score = weight_norm(nn.Conv2d(channels, 1, (3, 1), padding=(1, 0)))

    def forward(self, audio: Tensor) -> list[Tensor]:
        length = audio.shape[-1]
        pad = (self.period - length % self.period) % self.period
        x = F.pad(audio, (0, pad), mode="reflect" if pad < length else "constant")
        x = x.view(x.shape[0], 1, -1, self.period)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            features.append(x)
        features.append(self.score(x))
        return features


@gin.configurable
class MultiDiscriminator(nn.Module):
    """Scale discriminators on the waveform average-pooled by each of ``scales`` (1 = as is) and period
    discriminators for each of ``periods`` (empty: none). ``[B, 1, T]`` -> one feature list per
    sub-discriminator, the score map last in each."""

    def __init__(
        self,
        scales: tuple[int, ...] = (1, 2, 4),
        periods: tuple[int, ...] = (2, 3, 5, 7, 11),
        capacity: int = 16,
        layers: int = 4,
        max_channels: int = 512,
    ) -> None:
        super().__init__()
        if not scales and not periods:
            raise ValueError("MultiDiscriminator needs at least one scale or one period")
        self.scales = tuple(scales)
        self.scale_discriminators = nn.ModuleList(
            ScaleDiscriminator(capacity, layers, max_channels) for _ in scales
        )
        self.period_discriminators = nn.ModuleList(
            PeriodDiscriminator(period, capacity, layers, max_channels) for period in periods
        )

    def forward(self, audio: Tensor) -> list[list[Tensor]]:
        outputs = []
        for scale, discriminator in zip(self.scales, self.scale_discriminators, strict=True):
            pooled = audio if scale == 1 else F.avg_pool1d(audio, scale, scale, ceil_mode=True)
            outputs.append(discriminator(pooled))
        for discriminator in self.period_discriminators:
            outputs.append(discriminator(audio))
        return outputs


class MultiScaleDiscriminator(MultiDiscriminator):
    """Scale discriminators only, on the waveform average-pooled by 1, 2, 4, ... (``scales`` of them)."""

    def __init__(self, scales: int = 3, capacity: int = 16, layers: int = 4, max_channels: int = 512) -> None:
        super().__init__(tuple(2**i for i in range(scales)), (), capacity, layers, max_channels)


def split_scores(outputs: list[list[Tensor]]) -> tuple[list[list[Tensor]], list[Tensor]]:
    """``outputs`` of a discriminator -> ``(features, scores)``: the feature maps of each
    sub-discriminator without its score, and the score map of each."""
    return [output[:-1] for output in outputs], [output[-1] for output in outputs]


def hinge_discriminator_loss(real_scores: list[Tensor], fake_scores: list[Tensor]) -> Tensor:
    """``sum_d mean(relu(1 - real_d)) + mean(relu(1 + fake_d))`` over sub-discriminators ``d`` (a scalar)."""
    total = real_scores[0].new_zeros(())
    for real, fake in zip(real_scores, fake_scores, strict=True):
        total = total + F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    return total


def hinge_generator_loss(fake_scores: list[Tensor]) -> Tensor:
    """``sum_d -mean(fake_d)`` over sub-discriminators ``d`` (a scalar)."""
    total = fake_scores[0].new_zeros(())
    for fake in fake_scores:
        total = total - fake.mean()
    return total


def feature_matching_loss(
    real_features: list[list[Tensor]], fake_features: list[list[Tensor]], eps: float = 1e-7
) -> Tensor:
    """L1 distance of feature maps, each layer normalised by the mean magnitude of its real map:
    ``sum_d mean_l mean|real - fake| / (mean|real| + eps)`` (a scalar). Real features are detached, so
    only the generator learns from it."""
    total = real_features[0][0].new_zeros(())
    for real_maps, fake_maps in zip(real_features, fake_features, strict=True):
        layer_losses = [
            (real.detach() - fake).abs().mean() / (real.detach().abs().mean() + eps)
            for real, fake in zip(real_maps, fake_maps, strict=True)
        ]
        total = total + torch.stack(layer_losses).mean()
    return total

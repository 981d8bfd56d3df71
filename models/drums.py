"""The drum pattern VAE: MLPs over the flattened instruments x steps grid with a Bernoulli output."""

import gin
import torch
from torch import Tensor, nn

from latentlive.models.vae import GaussianPosterior, LabelConditioning, reparameterize


def _mlp(sizes: list[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for size_in, size_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(size_in, size_out), nn.LayerNorm(size_out), nn.GELU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


@gin.configurable
class PatternVAE(nn.Module):
    """VAE over drum grids ``[B, instruments, steps]`` of hits (0/1), optionally conditioned on a style.

    Args:
        instruments: rows of the grid (9 for the GM drum classes).
        steps: columns of the grid (16 per bar).
        latent_size: size of z (2 to 8 for a playable space).
        hidden_sizes: widths of the encoder MLP (the decoder mirrors them).
        num_styles: number of style labels; 0 for an unconditioned model.
        style_dim: size of the style embedding.
        dropout: dropout inside the MLPs.
    """

    def __init__(
        self,
        instruments: int = 9,
        steps: int = 16,
        latent_size: int = 8,
        hidden_sizes: tuple[int, ...] = (512, 256),
        num_styles: int = 0,
        style_dim: int = 16,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if latent_size < 1:
            raise ValueError(
                f"PatternVAE.latent_size must be at least 1 (2 to 8 play best), got {latent_size}"
            )
        if not hidden_sizes or min(hidden_sizes) < 1:
            raise ValueError(f"PatternVAE.hidden_sizes needs widths of at least 1, got {hidden_sizes}")
        self.instruments, self.steps, self.latent_size = instruments, steps, latent_size
        self.num_styles = num_styles
        cond = style_dim if num_styles > 0 else 0
        self.style = LabelConditioning(num_styles, style_dim) if num_styles > 0 else None
        self.encoder = _mlp([instruments * steps + cond, *hidden_sizes], dropout)
        self.posterior = GaussianPosterior(hidden_sizes[-1], latent_size)
        self.decoder = nn.Sequential(
            _mlp([latent_size + cond, *reversed(hidden_sizes)], dropout),
            nn.Linear(hidden_sizes[0], instruments * steps),
        )

    def _condition(self, features: Tensor, style: Tensor) -> Tensor:
        if self.style is None:
            return features
        return torch.cat([features, self.style(style)], dim=1)

    def encode(self, pattern: Tensor, style: Tensor) -> tuple[Tensor, Tensor]:
        """``pattern [B, I, S]`` (0..1), ``style [B]`` (int; -1 = none) -> ``(mean, logvar)`` each ``[B, D]``."""
        features = self._condition(pattern.flatten(1), style)
        return self.posterior(self.encoder(features))

    def decode(self, z: Tensor, style: Tensor) -> Tensor:
        """``z [B, D]``, ``style [B]`` -> hit logits ``[B, I, S]``."""
        logits = self.decoder(self._condition(z, style))
        return logits.view(-1, self.instruments, self.steps)

    def forward(self, pattern: Tensor, style: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Encode, sample, decode: returns ``(logits [B, I, S], z, mean, logvar)``."""
        mean, logvar = self.encode(pattern, style)
        z = reparameterize(mean, logvar)
        return self.decode(z, style), z, mean, logvar

    @torch.no_grad()
    def sample(
        self,
        count: int,
        style: Tensor,
        z_temperature: float = 1.0,
        temperature: float = 1.0,
        threshold: float | None = 0.5,
    ) -> Tensor:
        """Draw ``count`` patterns from the prior: z ~ N(0, z_temperature^2), hits by threshold
        (or Bernoulli draws when ``threshold`` is None) on ``sigmoid(logits / temperature)``.
        Returns ``[count, I, S]`` in {0, 1}."""
        z = z_temperature * torch.randn(count, self.latent_size, device=style.device)
        probs = torch.sigmoid(self.decode(z, style) / temperature)
        if threshold is None:
            return torch.bernoulli(probs)
        return (probs >= threshold).float()

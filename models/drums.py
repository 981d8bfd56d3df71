"""The drum pattern VAE: MLPs over the flattened instruments x steps grid; per cell a hit (Bernoulli), and with
``groove`` a velocity (0..1) and a timing offset (fraction of a step, -0.5..0.5) as GrooVAE models them."""

import gin
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from latentlive.models.vae import GaussianPosterior, LabelConditioning, reparameterize


def _mlp(sizes: list[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for size_in, size_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(size_in, size_out), nn.LayerNorm(size_out), nn.GELU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


@gin.configurable
class PatternVAE(nn.Module):
    """VAE over drum grids ``[B, instruments, steps]`` of hits (0/1), optionally conditioned on a style.

    With ``groove`` the encoder also reads each cell's velocity and offset, and the decoder also gives them
    (:meth:`decode_groove`); without it they are ignored on the way in and come out as 1 and 0.

    Args:
        instruments: rows of the grid (9 for the GM drum classes).
        steps: columns of the grid (16 per bar).
        latent_size: size of z (2 to 16: the dials LatentDrums shows).
        hidden_sizes: widths of the encoder MLP (the decoder mirrors them).
        num_styles: number of style labels; 0 for an unconditioned model.
        style_dim: size of the style embedding.
        dropout: dropout inside the MLPs.
        groove: model velocities and timing offsets beside the hits.
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
        groove: bool = True,
    ) -> None:
        super().__init__()
        if latent_size < 1:
            raise ValueError(
                f"PatternVAE.latent_size must be at least 1 (LatentDrums shows 2 to 16), got {latent_size}"
            )
        if not hidden_sizes or min(hidden_sizes) < 1:
            raise ValueError(f"PatternVAE.hidden_sizes needs widths of at least 1, got {hidden_sizes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"PatternVAE.dropout must be from 0 to below 1 (e.g. 0.1), got {dropout}")
        self.instruments, self.steps, self.latent_size = instruments, steps, latent_size
        self.num_styles = num_styles
        self.groove = groove
        planes = 3 if groove else 1  # hits, velocities, offsets
        cond = style_dim if num_styles > 0 else 0
        self.style = LabelConditioning(num_styles, style_dim) if num_styles > 0 else None
        self.encoder = _mlp([planes * instruments * steps + cond, *hidden_sizes], dropout)
        self.posterior = GaussianPosterior(hidden_sizes[-1], latent_size)
        self.decoder = nn.Sequential(
            _mlp([latent_size + cond, *reversed(hidden_sizes)], dropout),
            nn.Linear(hidden_sizes[0], planes * instruments * steps),
        )

    def _condition(self, features: Tensor, style: Tensor) -> Tensor:
        if self.style is None:
            return features
        return torch.cat([features, self.style(style)], dim=1)

    def encode(
        self, pattern: Tensor, style: Tensor, velocity: Tensor, offset: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``pattern [B, I, S]`` (hits 0..1), ``style [B]`` (int; -1 = none), ``velocity [B, I, S]`` (0..1, 0 where
        no hit) and ``offset [B, I, S]`` (-0.5..0.5 of a step) -> ``(mean, logvar)`` each ``[B, D]``."""
        features = pattern.flatten(1)
        if self.groove:
            features = torch.cat([features, velocity.flatten(1), offset.flatten(1)], dim=1)
        return self.posterior(self.encoder(self._condition(features, style)))

    def decode(self, z: Tensor, style: Tensor) -> Tensor:
        """``z [B, D]``, ``style [B]`` -> hit logits ``[B, I, S]``."""
        return self.decode_groove(z, style)[0]

    def decode_groove(self, z: Tensor, style: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``z [B, D]``, ``style [B]`` -> ``(hit logits, velocity 0..1, offset -0.5..0.5)``, each ``[B, I, S]``
        (without ``groove``: velocity 1 and offset 0 everywhere)."""
        out = self.decoder(self._condition(z, style))
        planes = out.view(z.shape[0], -1, self.instruments, self.steps)
        logits = planes[:, 0]
        if not self.groove:
            return logits, torch.ones_like(logits), torch.zeros_like(logits)
        return logits, torch.sigmoid(planes[:, 1]), 0.5 * torch.tanh(planes[:, 2])

    def forward(
        self, pattern: Tensor, style: Tensor, velocity: Tensor, offset: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Encode, sample, decode: returns ``(logits, velocity, offset [B, I, S], z, mean, logvar)``."""
        mean, logvar = self.encode(pattern, style, velocity, offset)
        z = reparameterize(mean, logvar)
        logits, velocity_out, offset_out = self.decode_groove(z, style)
        return logits, velocity_out, offset_out, z, mean, logvar

    @torch.jit.export
    def infer_style(self, pattern: Tensor, velocity: Tensor, offset: Tensor) -> Tensor:
        """The style of each clip ``[B, I, S]`` (hits, velocity, offset): the one under which its posterior mean
        decodes back to it best (hit cross-entropy plus squared velocity and offset errors on its hits), all
        styles tried in one batch. ``[B]`` int64; -1 everywhere for a model without styles; a cost that is not
        a number counts as 0."""
        count, n = pattern.shape[0], self.num_styles
        if n == 0:
            return torch.full((count,), -1, dtype=torch.long, device=pattern.device)
        candidates = torch.arange(n, device=pattern.device).repeat(count)  # [B * N]
        hits, velocity, offset = (t.repeat_interleave(n, 0) for t in (pattern, velocity, offset))
        mean, _ = self.encode(hits, candidates, velocity, offset)
        logits, velocity_out, offset_out = self.decode_groove(mean, candidates)
        groove = ((velocity_out - velocity) ** 2 + (offset_out - offset) ** 2) * hits
        cost = F.binary_cross_entropy_with_logits(logits, hits, reduction="none") + groove
        return torch.argmin(cost.flatten(1).sum(1).view(count, n).nan_to_num(0.0), dim=1)

    @torch.no_grad()
    def sample(
        self,
        count: int,
        style: Tensor,
        z_temperature: float = 1.0,
        temperature: float = 1.0,
        threshold: float | Tensor | None = 0.5,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Draw ``count`` patterns from the prior: z ~ N(0, z_temperature^2), hits by threshold (one for all
        cells, or ``[I]`` one per drum class; Bernoulli draws when ``threshold`` is None) on
        ``sigmoid(logits / temperature)``. Returns ``(hits {0, 1}, velocity 0..1, offset -0.5..0.5)``, each
        ``[count, I, S]``; velocity and offset are 0 where there is no hit."""
        z = z_temperature * torch.randn(count, self.latent_size, device=style.device)
        logits, velocity, offset = self.decode_groove(z, style)
        probs = torch.sigmoid(logits / temperature)
        if threshold is None:
            hits = torch.bernoulli(probs)
        else:
            level = torch.as_tensor(threshold, dtype=probs.dtype, device=probs.device)
            hits = (probs >= (level[:, None] if level.dim() == 1 else level)).float()
        return hits, velocity * hits, offset * hits

"""Training task of the latent drum sequencer: the pattern VAE on drum grids."""

from pathlib import Path
from typing import Any

import gin
import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.tensorboard import SummaryWriter

from latentlive.core.cache import cache_dir
from latentlive.corpus.drum_corpus import load_drum_corpus, split_unseen_patterns
from latentlive.corpus.drum_map import DEFAULT_NOTES, INSTRUMENT_NAMES
from latentlive.models.drums import PatternVAE
from latentlive.models.vae import BetaSchedule, bernoulli_nll, kl_standard_normal, mmd_imq
from latentlive.training.config import configured_arguments
from latentlive.training.plots import grid_rows_figure, latent_map_figure
from latentlive.training.tasks.base import TensorData, require_enough_data

DIVERGENCES = ("kl", "mmd")


@gin.configurable
class DrumsTask:
    """The pattern VAE on one- or several-bar drum grids (9 instruments x 16 steps per bar).

    Args:
        bars_per_example: bars per pattern (the model's grid has ``16 * bars_per_example`` steps).
        val_fraction: share of the corpus held out for evaluation (patterns never seen in training; at least one
            example as soon as there are two, so one file trains; see ``split_unseen_patterns``).
        divergence: ``kl`` (VAE) or ``mmd`` (WAE-MMD against the N(0, 1) prior).
        beta: final weight of the divergence, reached by the warm-up schedule.
        beta_schedule: ``constant``, ``linear`` or ``cyclical`` (see ``models.vae.BetaSchedule``).
        warmup_steps: steps of the beta warm-up.
        style_conditioning: condition encoder and decoder on the style label.
        style_dropout: share of training examples seen without their label, so "no style" works.
        examples_per_style: size of each style of the built-in corpus.
    """

    name = "drums"

    def __init__(
        self,
        bars_per_example: int = 1,
        val_fraction: float = 0.1,
        divergence: str = "kl",
        beta: float = 0.5,
        beta_schedule: str = "linear",
        warmup_steps: int = 2000,
        style_conditioning: bool = True,
        style_dropout: float = 0.1,
        examples_per_style: int = 1000,
    ) -> None:
        if divergence not in DIVERGENCES:
            raise ValueError(f"DrumsTask.divergence must be one of {DIVERGENCES}, got {divergence!r}")
        self.bars_per_example, self.val_fraction = bars_per_example, val_fraction
        self.divergence, self.style_conditioning = divergence, style_conditioning
        self.style_dropout, self.examples_per_style = style_dropout, examples_per_style
        self.beta = BetaSchedule(beta_schedule, 0.0, beta, warmup_steps)
        self.style_names: list[str] = []

    def load_data(self, db: Path | None, seed: int, log: Any = print) -> tuple[TensorData, TensorData]:
        corpus = load_drum_corpus(
            db,
            bars_per_example=self.bars_per_example,
            cache_dir=cache_dir(),
            builtin_examples_per_style=self.examples_per_style,
            seed=seed,
            log=log,
        )
        self.style_names = list(corpus.style_names)
        data = TensorData(
            {
                "pattern": torch.from_numpy(corpus.grids.astype(np.float32)),
                "style": torch.from_numpy(corpus.styles.astype(np.int64)),
            }
        )
        train_idx, val_idx = split_unseen_patterns(corpus.grids, self.val_fraction, seed)
        train = TensorData(data.take(torch.as_tensor(train_idx)))
        val = TensorData(data.take(torch.as_tensor(val_idx)))
        require_enough_data(
            corpus.source,
            train,
            val,
            f"examples of {self.bars_per_example} bar(s)",
            "add drum MIDI files with more 4/4 bars (two bars make one example to train and one to evaluate)"
            + (", or lower DrumsTask.bars_per_example" if self.bars_per_example > 1 else ""),
        )
        return train, val

    def build_model(self) -> tuple[PatternVAE, dict[str, Any]]:
        args = configured_arguments(PatternVAE)
        args.update(
            instruments=len(INSTRUMENT_NAMES),
            steps=16 * self.bars_per_example,
            num_styles=len(self.style_names) if self.style_conditioning else 0,
        )
        return PatternVAE(**args), args

    def metadata(self) -> dict[str, Any]:
        return {
            "style_names": self.style_names,
            "instrument_names": list(INSTRUMENT_NAMES),
            "gm_notes": list(DEFAULT_NOTES),
            "steps": 16 * self.bars_per_example,
        }

    def _training_styles(self, style: Tensor) -> Tensor:
        dropped = torch.rand(style.shape, device=style.device) < self.style_dropout
        return torch.where(dropped, torch.full_like(style, -1), style)

    def losses(self, model: nn.Module, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        pattern = batch["pattern"]
        logits, z, mean, logvar = model(pattern, self._training_styles(batch["style"]))
        losses = {"loss/reconstruction": bernoulli_nll(logits, pattern).mean()}
        if self.divergence == "kl":
            losses["loss/divergence"] = kl_standard_normal(mean, logvar).mean()
        else:
            losses["loss/divergence"] = mmd_imq(z, torch.randn_like(z)) * pattern[0].numel()
        return losses

    def loss_weights(self, step: int) -> dict[str, float]:
        return {"loss/reconstruction": 1.0, "loss/divergence": self.beta(step)}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: TensorData) -> dict[str, float]:
        """Hit precision, recall and F1 of posterior-mean reconstructions (threshold 0.5); the ELBO (nats
        per pattern) with its reconstruction and KL terms, from one posterior sample."""
        batch = data.take(slice(None), next(model.parameters()).device)
        pattern, style = batch["pattern"], batch["style"]
        mean, logvar = model.encode(pattern, style)
        hits = torch.sigmoid(model.decode(mean, style)) >= 0.5
        truth = pattern > 0.5
        true_pos = (hits & truth).sum().item()
        precision = true_pos / max(1, hits.sum().item())
        recall = true_pos / max(1, truth.sum().item())
        f1 = 2 * precision * recall / max(1e-9, precision + recall)
        sampled_logits = model.decode(mean + torch.exp(0.5 * logvar) * torch.randn_like(mean), style)
        kl = kl_standard_normal(mean, logvar)
        reconstruction = bernoulli_nll(sampled_logits, pattern)
        elbo = -(reconstruction + kl)
        return {
            "eval/reconstruction": reconstruction.mean().item(),
            "eval/precision": precision,
            "eval/recall": recall,
            "eval/f1": f1,
            "eval/elbo": elbo.mean().item(),
            "eval/kl": kl.mean().item(),
            # a variance needs two codes: one held-out pattern has no spread to count
            "eval/active_units": int((mean.var(0) > 0.01).sum().item()) if len(mean) > 1 else 0,
        }

    @torch.no_grad()
    def log_media(self, writer: SummaryWriter, model: nn.Module, data: TensorData, step: int) -> None:
        device = next(model.parameters()).device
        shown = data.take(slice(0, 8), device)
        mean, _ = model.encode(shown["pattern"], shown["style"])
        recon = torch.sigmoid(model.decode(mean, shown["style"]))
        rows = [
            ("input", list(shown["pattern"].cpu().numpy())),
            ("reconstruction", list(recon.cpu().numpy())),
        ]
        writer.add_figure(
            "patterns/input_vs_reconstruction", grid_rows_figure(rows, list(INSTRUMENT_NAMES)), step
        )

        styles = torch.arange(len(self.style_names), device=device)[:8] if self.style_names else None
        if styles is not None and len(styles):
            sampled = model.sample(len(styles), styles if model.num_styles else torch.full_like(styles, -1))
            names = [self.style_names[int(s)] for s in styles]
            figure = grid_rows_figure([("sampled: " + ", ".join(names), list(sampled.cpu().numpy()))])
            writer.add_figure("patterns/samples_by_style", figure, step)

        everything = data.take(slice(0, 2000), device)
        codes, _ = model.encode(everything["pattern"], everything["style"])
        figure = latent_map_figure(codes.cpu().numpy(), everything["style"].cpu().numpy(), self.style_names)
        writer.add_figure("latent/map_by_style", figure, step)

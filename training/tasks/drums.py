"""Training task of the latent drum sequencer: the pattern VAE on drum grids."""

from pathlib import Path
from typing import Any

import gin
import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.tensorboard import SummaryWriter

from latentlive.core.cache import cache_dir
from latentlive.corpus.drum_corpus import DrumCorpus, load_drum_corpus, patterns_seen_in_training
from latentlive.corpus.drum_map import DEFAULT_NOTES, INSTRUMENT_NAMES
from latentlive.corpus.splits import SIDES, split_examples
from latentlive.models.drums import PatternVAE
from latentlive.models.vae import BetaSchedule, bernoulli_nll, kl_standard_normal, mmd_imq
from latentlive.training.config import configured_arguments
from latentlive.training.plots import grid_rows_figure, latent_map_figure
from latentlive.training.tasks.base import (
    SplitData,
    TensorData,
    require_enough_data,
    split_fractions,
    take_sides,
)

DIVERGENCES = ("kl", "mmd")


@gin.configurable
class DrumsTask:
    """The pattern VAE on one- or several-bar drum grids (9 instruments x 16 steps per bar).

    Args:
        bars_per_example: bars per pattern (the model's grid has ``16 * bars_per_example`` steps).
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
        self.bars_per_example = bars_per_example
        self.divergence, self.style_conditioning = divergence, style_conditioning
        self.style_dropout, self.examples_per_style = style_dropout, examples_per_style
        self.beta = BetaSchedule(beta_schedule, 0.0, beta, warmup_steps)
        self.style_names: list[str] = []

    def load_data(self, db: Path | None, seed: int, log: Any = print) -> SplitData:
        """The drum corpus of ``db`` (or the built-in styles), dealt to train / validation / test by performance
        (a folder's files, the built-in seeds; a folder of one file is split in time) with the run's seed."""
        corpus = self._read(db, seed, log)
        self.style_names = list(corpus.style_names)
        split, indices = split_examples(corpus.groups, corpus.starts, 1, split_fractions(), seed)
        sides = take_sides(self._tensors(corpus, corpus.styles), indices, split)
        held = {side: len(indices[side]) for side in SIDES}
        counts = ", ".join(f"{held[side]} {side} ({len(split.groups[side])} groups)" for side in SIDES)
        how = "in time (one file)" if split.by_time else f"by performance (seed {seed})"
        log(f"drum corpus {corpus.source}: split {how}: {counts}")
        seen = ", ".join(
            f"{patterns_seen_in_training(corpus.grids, indices, side)} of {held[side]} {side}"
            for side in SIDES[1:]
        )
        log(f"drum corpus {corpus.source}: held-out patterns that also occur verbatim in training: {seen}")
        require_enough_data(
            corpus.source,
            sides.train,
            sides.validation,
            f"examples of {self.bars_per_example} bar(s)",
            "add drum MIDI files with more 4/4 bars (two bars make one example to train and one to evaluate)"
            + (", or lower DrumsTask.bars_per_example" if self.bars_per_example > 1 else ""),
        )
        return sides

    def load_held_out(self, db: Path, log: Any = print) -> TensorData:
        """Every example of the drum MIDI folder ``db`` (the run's bars per example); a style sub-folder the
        run knows keeps its style, any other plays without one (as the style dropout trained)."""
        corpus = self._read(db, 0, log)
        known = {name: index for index, name in enumerate(self.style_names)}
        unknown = sorted(set(corpus.style_names) - set(known))
        if unknown:
            log(f"drum corpus {db}: style(s) {', '.join(unknown)} not in the run: scored without a style")
        to_run = np.array([known.get(name, -1) for name in corpus.style_names], dtype=np.int64)
        return self._tensors(corpus, to_run[corpus.styles])

    def _read(self, db: Path | None, seed: int, log: Any) -> DrumCorpus:
        return load_drum_corpus(
            db,
            bars_per_example=self.bars_per_example,
            cache_dir=cache_dir(),
            builtin_examples_per_style=self.examples_per_style,
            seed=seed,
            log=log,
        )

    @staticmethod
    def _tensors(corpus: DrumCorpus, styles: np.ndarray) -> TensorData:
        return TensorData(
            {
                "pattern": torch.from_numpy(corpus.grids.astype(np.float32)),
                "style": torch.from_numpy(styles.astype(np.int64)),
            }
        )

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
        precision, recall, f1 = hit_scores(hits, pattern > 0.5)
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
    def evaluate_held_out(self, model: nn.Module, held_out: TensorData, data: SplitData) -> dict[str, float]:
        """:meth:`evaluate` on ``held_out``, with precision, recall and F1 per drum class (``eval/f1/kick``), and
        beside them the same scores of a lookup: each held-out example answered by the training example at the
        smallest Hamming distance (``eval/baseline_nearest_bar/...``). ``eval/beats_nearest_bar`` is 1.0 when
        the model's F1 is above the lookup's: a model below it has learnt nothing a table would not."""
        metrics = self.evaluate(model, held_out)
        batch = held_out.take(slice(None), next(model.parameters()).device)
        mean, _ = model.encode(batch["pattern"], batch["style"])
        hits = (torch.sigmoid(model.decode(mean, batch["style"])) >= 0.5).cpu()
        truth = held_out.tensors["pattern"] > 0.5
        training = data.train.tensors["pattern"] > 0.5
        lookup = training[nearest_by_hamming(truth, training)]
        metrics |= hit_report(hits, truth, "eval")
        metrics |= hit_report(lookup, truth, "eval/baseline_nearest_bar")
        metrics["eval/beats_nearest_bar"] = float(
            metrics["eval/f1"] > metrics["eval/baseline_nearest_bar/f1"]
        )
        return metrics

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


def hit_scores(hits: Tensor, truth: Tensor) -> tuple[float, float, float]:
    """Precision, recall and F1 of the hits ``hits`` (bool, any shape) against ``truth`` (bool, same shape);
    0 where nothing was predicted or nothing was there to find."""
    true_pos = (hits & truth).sum().item()
    precision = true_pos / max(1, hits.sum().item())
    recall = true_pos / max(1, truth.sum().item())
    return precision, recall, 2 * precision * recall / max(1e-9, precision + recall)


def hit_report(hits: Tensor, truth: Tensor, prefix: str) -> dict[str, float]:
    """``{prefix}/precision``, ``/recall`` and ``/f1`` of ``hits`` against ``truth`` (bool [N, 9, S]) over all
    cells, and per drum class of ``INSTRUMENT_NAMES`` (``{prefix}/f1/kick``)."""
    report = dict(
        zip((f"{prefix}/{n}" for n in ("precision", "recall", "f1")), hit_scores(hits, truth), strict=True)
    )
    for index, name in enumerate(INSTRUMENT_NAMES):
        precision, recall, f1 = hit_scores(hits[:, index], truth[:, index])
        report |= {f"{prefix}/precision/{name}": precision, f"{prefix}/recall/{name}": recall}
        report[f"{prefix}/f1/{name}"] = f1
    return report


def nearest_by_hamming(queries: Tensor, table: Tensor, chunk: int = 512) -> Tensor:
    """For each of ``queries`` (bool [N, ...]) the index (int64 [N]) of the row of ``table`` (bool [M, ...])
    with the fewest differing cells, the first such row on ties; ``chunk`` queries at a time, so the
    [chunk, M] distances stay small for training sets of ~10k patterns."""
    table = table.reshape(len(table), -1).float()
    table_hits = table.sum(1)
    nearest = []
    for start in range(0, len(queries), chunk):
        part = queries[start : start + chunk].reshape(-1, table.shape[1]).float()
        # |a xor b| = |a| + |b| - 2 a.b, exact in float32 for grids of fewer than 2**24 cells
        distance = part.sum(1, keepdim=True) + table_hits[None] - 2 * part @ table.T
        nearest.append(distance.argmin(1))
    return torch.cat(nearest) if nearest else torch.zeros(0, dtype=torch.long)

"""Training task of the latent drum sequencer: the pattern VAE on drum grids of hits, velocities and offsets."""

from pathlib import Path
from typing import Any

import gin
import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
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
HIT_LOSSES = ("weighted", "focal")
GROOVE_LOSSES = ("absolute", "squared")
STEP_MS_AT_120_BPM = 125.0  # one 16th at 120 bpm: offsets (fractions of a step) are reported in these ms
RARE_SHARE = 0.01  # a class played in at least this share of the cells is held to F1 >= 0.5


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
        hit_loss: ``weighted`` (binary cross-entropy whose hits of class c weigh ``((1 - p_c) / p_c) **
            pos_weight_power``, p_c the share of training cells class c plays: rare drums are not drowned by the
            silence around them) or ``focal`` (focal loss with ``focal_gamma``).
        pos_weight_power: 0 gives plain cross-entropy, 1 balances hits and rests of each class.
        focal_gamma: focusing exponent of the focal loss.
        groove_loss: ``absolute`` (the median velocity and offset: what the mean absolute errors of
            :meth:`evaluate` reward) or ``squared`` (the mean) error of velocities and offsets on the true hits.
        velocity_weight: weight of the velocity loss (summed per pattern over the true hits).
        offset_weight: weight of the offset loss (in steps, summed per pattern over the true hits).
    """

    name = "drums"

    def __init__(
        self,
        bars_per_example: int = 1,
        divergence: str = "kl",
        beta: float = 0.1,
        beta_schedule: str = "linear",
        warmup_steps: int = 2000,
        style_conditioning: bool = True,
        style_dropout: float = 0.1,
        examples_per_style: int = 1000,
        hit_loss: str = "weighted",
        pos_weight_power: float = 0.5,
        focal_gamma: float = 2.0,
        groove_loss: str = "absolute",
        velocity_weight: float = 10.0,
        offset_weight: float = 10.0,
    ) -> None:
        if divergence not in DIVERGENCES:
            raise ValueError(f"DrumsTask.divergence must be one of {DIVERGENCES}, got {divergence!r}")
        if hit_loss not in HIT_LOSSES:
            raise ValueError(f"DrumsTask.hit_loss must be one of {HIT_LOSSES}, got {hit_loss!r}")
        if groove_loss not in GROOVE_LOSSES:
            raise ValueError(f"DrumsTask.groove_loss must be one of {GROOVE_LOSSES}, got {groove_loss!r}")
        self.groove_loss = groove_loss
        self.hit_loss, self.pos_weight_power, self.focal_gamma = hit_loss, pos_weight_power, focal_gamma
        self.velocity_weight, self.offset_weight = velocity_weight, offset_weight
        self.bars_per_example = bars_per_example
        self.divergence, self.style_conditioning = divergence, style_conditioning
        self.style_dropout, self.examples_per_style = style_dropout, examples_per_style
        self.beta = BetaSchedule(beta_schedule, 0.0, beta, warmup_steps)
        self.style_names: list[str] = []
        instruments = len(INSTRUMENT_NAMES)
        # from the training side (load_data): share of cells each class plays, its mean velocity
        self.class_share = torch.full((instruments,), 0.1)
        self.class_mean_velocity = torch.full((instruments,), 0.7)
        # hit probability threshold per class, chosen on the validation side at every evaluation
        self.class_thresholds = [0.5] * instruments
        self.groove = True
        self._validation: TensorData | None = None

    def load_data(self, db: Path | None, seed: int, log: Any = print) -> SplitData:
        """The drum corpus of ``db`` (or the built-in styles), dealt to train / validation / test by performance
        (a folder's files, the built-in seeds; a folder of one file is split in time) with the run's seed."""
        corpus = self._read(db, seed, log)
        self.style_names = list(corpus.style_names)
        split, indices = split_examples(corpus.groups, corpus.starts, 1, split_fractions(), seed)
        sides = take_sides(self._tensors(corpus, corpus.styles), indices, split)
        self._fit_class_statistics(sides.train)
        self._validation = sides.validation
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
        hits = corpus.grids > 0
        return TensorData(
            {
                "pattern": torch.from_numpy(hits.astype(np.float32)),
                "style": torch.from_numpy(styles.astype(np.int64)),
                "velocity": torch.from_numpy(np.where(hits, corpus.velocities, 0).astype(np.float32)),
                "offset": torch.from_numpy(np.where(hits, corpus.offsets, 0).astype(np.float32)),
            }
        )

    def _fit_class_statistics(self, train: TensorData) -> None:
        """Share of cells each class plays and its mean velocity, on the training side."""
        pattern, velocity = train.tensors["pattern"], train.tensors["velocity"]
        played = pattern.transpose(0, 1).flatten(1)  # [I, N * S]
        self.class_share = played.mean(1)
        loud = (velocity * pattern).transpose(0, 1).flatten(1).sum(1)
        self.class_mean_velocity = torch.where(
            played.sum(1) > 0, loud / played.sum(1).clamp(min=1), torch.full_like(loud, 0.7)
        )

    def build_model(self) -> tuple[PatternVAE, dict[str, Any]]:
        args = configured_arguments(PatternVAE)
        args.update(
            instruments=len(INSTRUMENT_NAMES),
            steps=16 * self.bars_per_example,
            num_styles=len(self.style_names) if self.style_conditioning else 0,
        )
        self.groove = bool(args.get("groove", True))
        return PatternVAE(**args), args

    def restore_metadata(self, metadata: dict[str, Any]) -> None:
        """On resume: the class thresholds the checkpoint's last evaluation chose, until the next one."""
        self.class_thresholds = [float(t) for t in metadata.get("class_thresholds", self.class_thresholds)]

    def metadata(self) -> dict[str, Any]:
        return {
            "style_names": self.style_names,
            "instrument_names": list(INSTRUMENT_NAMES),
            "gm_notes": list(DEFAULT_NOTES),
            "steps": 16 * self.bars_per_example,
            "class_thresholds": [float(t) for t in self.class_thresholds],
            "groove": self.groove,
        }

    def _training_styles(self, style: Tensor) -> Tensor:
        dropped = torch.rand(style.shape, device=style.device) < self.style_dropout
        return torch.where(dropped, torch.full_like(style, -1), style)

    def losses(self, model: nn.Module, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        pattern, velocity, offset = batch["pattern"], batch["velocity"], batch["offset"]
        style = self._training_styles(batch["style"])
        logits, velocity_out, offset_out, z, mean, logvar = model(pattern, style, velocity, offset)
        losses = {"loss/reconstruction": self._hit_nll(logits, pattern).mean()}
        if self.groove:
            # velocity and offset exist only where a drum was played: rests teach them nothing
            losses["loss/velocity"] = self._groove_error(velocity_out, velocity, pattern)
            losses["loss/offset"] = self._groove_error(offset_out, offset, pattern)
        if self.divergence == "kl":
            losses["loss/divergence"] = kl_standard_normal(mean, logvar).mean()
        else:
            losses["loss/divergence"] = mmd_imq(z, torch.randn_like(z)) * pattern[0].numel()
        return losses

    def _groove_error(self, output: Tensor, target: Tensor, pattern: Tensor) -> Tensor:
        """Absolute or squared error of ``output`` on the hits of ``pattern`` ``[B, I, S]``, summed per pattern
        and averaged over the batch."""
        error = (output - target).abs() if self.groove_loss == "absolute" else (output - target) ** 2
        return (error * pattern).flatten(1).sum(1).mean()

    def _hit_nll(self, logits: Tensor, pattern: Tensor) -> Tensor:
        """The hit loss of ``logits`` against ``pattern`` ``[B, I, S]``, summed per pattern: ``[B]``."""
        if self.hit_loss == "focal":
            return focal_loss(logits, pattern, self.focal_gamma)
        share = self.class_share.to(logits.device).clamp(1e-4, 1 - 1e-4)
        pos_weight = ((1 - share) / share) ** self.pos_weight_power
        nll = F.binary_cross_entropy_with_logits(
            logits, pattern, pos_weight=pos_weight[:, None].expand_as(logits[0]), reduction="none"
        )
        return nll.flatten(1).sum(1)

    def loss_weights(self, step: int) -> dict[str, float]:
        return {
            "loss/reconstruction": 1.0,
            "loss/velocity": self.velocity_weight,
            "loss/offset": self.offset_weight,
            "loss/divergence": self.beta(step),
        }

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: TensorData) -> dict[str, float]:
        """Scores of posterior-mean reconstructions: hit precision, recall and F1 overall and per class (each
        class at its threshold, chosen here when ``data`` is the validation side), velocity error (mean absolute,
        on the true hits) and offset error (ms at 120 bpm, on the true hits) beside the "mean velocity of the
        class" and "zero offset" baselines; the ELBO (nats per pattern) with its reconstruction and KL terms,
        from one posterior sample; the number of classes played in >= 1 % of the cells whose F1 is below 0.5."""
        batch = data.take(slice(None), next(model.parameters()).device)
        pattern, style = batch["pattern"], batch["style"]
        mean, logvar = model.encode(pattern, style, batch["velocity"], batch["offset"])
        logits, velocity, offset = model.decode_groove(mean, style)
        probs, truth = torch.sigmoid(logits).cpu(), pattern.cpu() > 0.5
        if data is self._validation:
            self.class_thresholds = choose_class_thresholds(probs, truth)
        hits = probs >= torch.tensor(self.class_thresholds)[:, None]
        metrics = hit_report(hits, truth, "eval")
        metrics["eval/f1_at_half"] = hit_scores(probs >= 0.5, truth)[2]
        metrics |= groove_errors(
            velocity.cpu(), offset.cpu(), batch["velocity"].cpu(), batch["offset"].cpu(), truth
        )
        baseline = groove_errors(
            self.class_mean_velocity[None, :, None].expand_as(probs),
            torch.zeros_like(probs),
            batch["velocity"].cpu(),
            batch["offset"].cpu(),
            truth,
        )
        metrics["eval/baseline_mean_velocity/velocity_error"] = baseline["eval/velocity_error"]
        metrics["eval/baseline_zero_offset/offset_error_ms"] = baseline["eval/offset_error_ms"]
        metrics["eval/classes_below_goal"] = float(classes_below_goal(metrics, truth, "eval"))
        sampled_logits = model.decode(mean + torch.exp(0.5 * logvar) * torch.randn_like(mean), style)
        kl = kl_standard_normal(mean, logvar)
        reconstruction = bernoulli_nll(sampled_logits, pattern)
        elbo = -(reconstruction + kl)
        return metrics | {
            "eval/reconstruction": reconstruction.mean().item(),
            "eval/elbo": elbo.mean().item(),
            "eval/kl": kl.mean().item(),
            # a variance needs two codes: one held-out pattern has no spread to count
            "eval/active_units": int((mean.var(0) > 0.01).sum().item()) if len(mean) > 1 else 0,
        }

    @torch.no_grad()
    def evaluate_held_out(self, model: nn.Module, held_out: TensorData, data: SplitData) -> dict[str, float]:
        """:meth:`evaluate` on ``held_out`` (class thresholds chosen anew on the run's validation side, as at
        training), and beside it the same scores of a lookup: each held-out example answered by the training
        example at the smallest Hamming distance of hits, with that example's velocities and offsets where both
        have a hit (else the class's mean velocity and no offset): ``eval/baseline_nearest_bar/...``.
        ``eval/beats_nearest_bar`` is 1.0 when the model's F1 is above the lookup's: a model below it has learnt
        nothing a table would not."""
        saved, self._validation = self._validation, data.validation
        try:
            if len(data.validation):  # the thresholds of the validation side, as at training
                self.evaluate(model, data.validation)
            self._validation = None  # held_out never moves them
            metrics = self.evaluate(model, held_out)
        finally:
            self._validation = saved
        truth = held_out.tensors["pattern"] > 0.5
        train = data.train.tensors
        nearest = nearest_by_hamming(truth, train["pattern"] > 0.5)
        lookup = train["pattern"][nearest] > 0.5
        both = lookup & truth
        mean_velocity = self.class_mean_velocity[None, :, None].expand_as(truth)
        lookup_velocity = torch.where(both, train["velocity"][nearest], mean_velocity)
        lookup_offset = torch.where(both, train["offset"][nearest], torch.zeros_like(mean_velocity))
        prefix = "eval/baseline_nearest_bar"
        metrics |= hit_report(lookup, truth, prefix)
        groove = groove_errors(
            lookup_velocity, lookup_offset, held_out.tensors["velocity"], held_out.tensors["offset"], truth
        )
        metrics |= {key.replace("eval/", prefix + "/"): value for key, value in groove.items()}
        metrics["eval/beats_nearest_bar"] = float(metrics["eval/f1"] > metrics[f"{prefix}/f1"])
        return metrics

    @torch.no_grad()
    def log_media(self, writer: SummaryWriter, model: nn.Module, data: TensorData, step: int) -> None:
        device = next(model.parameters()).device
        shown = data.take(slice(0, 8), device)
        mean, _ = model.encode(shown["pattern"], shown["style"], shown["velocity"], shown["offset"])
        logits, velocity, _ = model.decode_groove(mean, shown["style"])
        recon = torch.sigmoid(logits) * velocity
        rows = [
            ("input (velocity)", list(shown["velocity"].cpu().numpy())),
            ("reconstruction (hit probability x velocity)", list(recon.cpu().numpy())),
        ]
        writer.add_figure(
            "patterns/input_vs_reconstruction", grid_rows_figure(rows, list(INSTRUMENT_NAMES)), step
        )

        styles = torch.arange(len(self.style_names), device=device)[:8] if self.style_names else None
        if styles is not None and len(styles):
            thresholds = torch.tensor(self.class_thresholds, device=device)
            conditioning = styles if model.num_styles else torch.full_like(styles, -1)
            _, sampled, _ = model.sample(len(styles), conditioning, threshold=thresholds)
            names = [self.style_names[int(s)] for s in styles]
            figure = grid_rows_figure([("sampled: " + ", ".join(names), list(sampled.cpu().numpy()))])
            writer.add_figure("patterns/samples_by_style", figure, step)

        everything = data.take(slice(0, 2000), device)
        codes, _ = model.encode(
            everything["pattern"], everything["style"], everything["velocity"], everything["offset"]
        )
        figure = latent_map_figure(codes.cpu().numpy(), everything["style"].cpu().numpy(), self.style_names)
        writer.add_figure("latent/map_by_style", figure, step)


@torch.no_grad()
@torch.no_grad()
def learn_clip(
    model: PatternVAE, pattern: Tensor, velocity: Tensor, offset: Tensor, style: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The latent of each clip ``[B, I, S]`` (the posterior mean, ``[B, D]``) and the style it was encoded with
    (``style`` when given, else ``PatternVAE.infer_style``), so that ``decode_groove(z, style)`` plays the clip
    back."""
    if style is None:
        style = model.infer_style(pattern, velocity, offset)
    mean, _ = model.encode(pattern, style, velocity, offset)
    return mean, style


def focal_loss(logits: Tensor, target: Tensor, gamma: float) -> Tensor:
    """Focal loss (Lin et al. 2017) of Bernoulli cells, summed per example: ``[B, ...] -> [B]``; cells the model
    already gets right weigh ``(1 - p_true) ** gamma`` of their cross-entropy, so the rare hits it misses lead."""
    nll = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_true = torch.exp(-nll)
    return ((1 - p_true) ** gamma * nll).flatten(1).sum(1)


def choose_class_thresholds(
    probs: Tensor, truth: Tensor, candidates: Tensor | None = None, min_hits: int = 10
) -> list[float]:
    """For each drum class (dim 1 of ``probs`` ``[N, I, S]`` and bool ``truth``), the hit-probability threshold
    among ``candidates`` (0.05 .. 0.95) with the highest F1 of that class (the one nearest 0.5 on ties); 0.5 for
    a class played fewer than ``min_hits`` times in ``truth`` (a few hits would choose a threshold by chance)."""
    candidates = torch.linspace(0.05, 0.95, 19) if candidates is None else candidates
    order = torch.argsort((candidates - 0.5).abs(), stable=True)  # ties go to the threshold nearest 0.5
    chosen = []
    for index in range(probs.shape[1]):
        played = truth[:, index]
        if int(played.sum()) < min_hits:
            chosen.append(0.5)
            continue
        scores = torch.tensor([hit_scores(probs[:, index] >= t, played)[2] for t in candidates[order]])
        chosen.append(round(float(candidates[order][int(scores.argmax())]), 4))
    return chosen


def groove_errors(
    velocity: Tensor, offset: Tensor, true_velocity: Tensor, true_offset: Tensor, truth: Tensor
) -> dict[str, float]:
    """Mean absolute velocity error (0..1) and offset error (ms at 120 bpm) over the true hits (bool ``truth``),
    all ``[N, I, S]``: ``eval/velocity_error``, ``eval/offset_error_ms``; 0 when nothing was played."""
    count = max(1, int(truth.sum()))
    velocity_error = ((velocity - true_velocity).abs() * truth).sum().item() / count
    offset_error = ((offset - true_offset).abs() * truth).sum().item() / count
    return {"eval/velocity_error": velocity_error, "eval/offset_error_ms": offset_error * STEP_MS_AT_120_BPM}


def classes_below_goal(metrics: dict[str, float], truth: Tensor, prefix: str) -> int:
    """Drum classes played in at least 1 % of the cells of ``truth`` ``[N, I, S]`` whose ``{prefix}/f1/NAME``
    is below 0.5: the classes a model lets vanish (issue 19's goal is none)."""
    share = truth.transpose(0, 1).flatten(1).float().mean(1)
    return sum(
        1
        for index, name in enumerate(INSTRUMENT_NAMES)
        if share[index] >= RARE_SHARE and metrics[f"{prefix}/f1/{name}"] < 0.5
    )


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

"""Training task of the band player: the RMVAE over windows of measures of a multi-part corpus.

An example is a window of ``W = context + ahead`` consecutive measures of one piece (a piece index, a
start measure and, for ``transpose="all"``, the range of shifts into every key). Windows become rolls
``[B, W, P, 3, 128, 16]`` batch by batch (``corpus.band_rolls.window_rolls``), so memory stays small.

The objective per window (the sub-sampled multimodal ELBO): each measure is encoded with all parts, with
each single part and with random subsets; every posterior reconstructs all parts of its measure and pays
KL to the recurrent prior; the recurrence is fed the all-parts posterior samples. A prediction term decodes
the prior mean of each measure that has history and scores it against the truth: that is what next-measure
prediction uses. Optional musical penalties act on these predictions. Ablations (``"no_poe"``: one joint
encoder; ``"no_music_losses"``) are trained beside the main model on the same batches; the trainer sees
one module (:class:`BandModels`) and stores the main model's arguments.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gin
import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.tensorboard import SummaryWriter

from latentlive.core.cache import cache_dir
from latentlive.core.errors import UserError
from latentlive.corpus.band_midi import (
    KEY_SPAN,
    BandCorpus,
    BandPiece,
    load_band_corpus,
    read_held_out_pieces,
    window_rolls,
)
from latentlive.corpus.splits import SIDES, Split, split_in_time
from latentlive.models.band import STEPS, BandRMVAE, gaussian_product
from latentlive.models.band_objective import (
    duration_error,
    harmony_penalty,
    local_scale,
    onset_classes,
    part_log_likelihood,
    pitch_classes,
    rare_steps,
    rhythm_penalty,
    scale_penalty,
    sounding_classes,
)
from latentlive.models.vae import BetaSchedule, kl_gaussians, reparameterize
from latentlive.training.config import configured_arguments
from latentlive.training.plots import piano_roll_figure
from latentlive.training.tasks.band_eval import baseline_scores, evaluate_windows, summarise
from latentlive.training.tasks.base import SplitData, TensorData, require_enough_data, split_fractions

ABLATIONS = ("no_poe", "no_music_losses")
MUSIC_LOSSES = ("scale", "rhythm", "harmony")
PITCH_MARGIN = 3  # semitones beyond the corpus (and its shifts) that the decoders can still play


class BandModels(nn.ModuleDict):
    """The main RMVAE (key ``main``) and its ablations, trained together as one module."""


@gin.configurable
class BandTask:
    """The RMVAE band player on windows of measures.

    Args:
        parts: part names to take from each piece (track, program or ``channel N``); empty: ``busiest``.
        busiest: without names, the N parts with the most notes.
        kinds: ``"auto"``, ``"mono"``, ``"poly"`` or one per part.
        transpose: ``"all"`` (random shifts into every key while training), ``"normalise"`` (pieces moved
            to C major / A minor when read) or ``"none"``.
        max_pieces: read at most this many pieces (0: all).
        context: measures of history per window (the window holds ``context + ahead`` measures).
        ahead: the prior predicts the measure 1 or 2 after the last one it was fed.
        poly_voices: output lanes of a poly part in the export (metadata only).
        beta: final weight of the KL to the recurrent prior, reached by a linear warm-up.
        warmup_steps: steps of the warm-up.
        prediction_weight: weight of the NLL of each measure decoded from its prior mean.
        single_parts: encodings of one part alone per window, each of a part drawn at random (P or more:
            each part once).
        random_subsets: random non-empty subsets of parts encoded per window.
        scale_weight, rhythm_weight, harmony_weight: weights of the musical penalties on the predictions.
        rhythm_threshold: a step is rare when fewer than this share of the history's measures start a note there.
        ablations: sibling models trained in the same run: ``"no_poe"``, ``"no_music_losses"``.
        eval_windows: held-out windows evaluated (evenly spread over the held-out set).
        eval_samples: prior / posterior samples of the NLL's log-mean-exp.
    """

    name = "band"

    def __init__(
        self,
        parts: tuple[str, ...] = (),
        busiest: int = 4,
        kinds: str | tuple[str, ...] = "auto",
        transpose: str = "all",
        max_pieces: int = 0,
        context: int = 4,
        ahead: int = 1,
        poly_voices: int = 4,
        beta: float = 0.5,
        warmup_steps: int = 2000,
        prediction_weight: float = 1.0,
        single_parts: int = 1,
        random_subsets: int = 1,
        scale_weight: float = 0.0,
        rhythm_weight: float = 0.0,
        harmony_weight: float = 0.0,
        rhythm_threshold: float = 0.2,
        ablations: tuple[str, ...] = (),
        eval_windows: int = 256,
        eval_samples: int = 8,
    ) -> None:
        unknown = [name for name in ablations if name not in ABLATIONS]
        if unknown:
            raise UserError(
                f"BandTask.ablations = {list(ablations)}: unknown {unknown}; use {', '.join(ABLATIONS)}"
            )
        if ahead not in (1, 2) or context < 1:
            raise UserError(
                f"BandTask: ahead = {ahead}, context = {context}; use ahead 1 or 2 and context >= 1"
            )
        self.parts, self.busiest, self.kinds = tuple(parts), busiest, kinds
        self.transpose, self.max_pieces = transpose, max_pieces
        self.context, self.ahead, self.poly_voices = context, ahead, poly_voices
        self.beta = BetaSchedule("linear", 0.0, beta, warmup_steps)
        self.prediction_weight = prediction_weight
        self.single_parts, self.random_subsets = single_parts, random_subsets
        self.music_weights = {"scale": scale_weight, "rhythm": rhythm_weight, "harmony": harmony_weight}
        self.rhythm_threshold = rhythm_threshold
        self.ablations = tuple(ablations)
        self.eval_windows, self.eval_samples = eval_windows, eval_samples
        self.corpus: BandCorpus | None = None
        self.held_out_pieces: list[BandPiece] = []  # a user's folder read by load_held_out, after the corpus
        self.part_names: list[str] = []
        self.part_kinds: list[str] = []

    @property
    def window(self) -> int:
        return self.context + self.ahead

    # Data.

    def load_data(self, db: Path | None, seed: int, log: Any = print) -> SplitData:
        """The corpus's windows dealt to train / validation / test by groups of pieces (versions of one tune
        together); a corpus of one group is split in time (:meth:`split_one_group`)."""
        fractions = split_fractions()
        self.corpus = load_band_corpus(
            db,
            parts=list(self.parts) or None,
            busiest=self.busiest,
            kinds=self.kinds if isinstance(self.kinds, str) else list(self.kinds),
            transpose=self.transpose,
            max_pieces=self.max_pieces or None,
            cache_dir=cache_dir(),
            seed=seed,
            fractions=fractions,
            log=log,
        )
        self.part_names, self.part_kinds = list(self.corpus.part_names), list(self.corpus.part_kinds)
        groups = self.corpus.piece_groups()
        if len(set(groups)) >= 2 and self.corpus.split_record is not None:
            sides = [self.windows(side) for side in SIDES]
            data = SplitData(*sides, split=self.corpus.split_record)
        else:
            data = self.split_one_group(groups[0], fractions, seed)
        require_enough_data(
            self.corpus.source,
            data.train,
            data.validation,
            f"windows of {self.window} measures",
            f"add pieces (two or more, of {self.window} measures or more), or lower BandTask.context",
        )
        log(
            f"band: {len(data.train)} training windows, {len(data.validation)} validation windows, "
            f"{len(data.test)} test windows of {self.window} measures"
            + (" (one group, split in time)" if data.split.by_time else "")
        )
        return data

    def windows(self, split: str) -> TensorData:
        """Every window of ``W`` measures of the pieces of ``split``: piece, start, shift range (train only)."""
        assert self.corpus is not None
        return self._windows(self.corpus.split[split], shifted=split == "train")

    def _piece(self, index: int) -> BandPiece:
        """Piece ``index`` of the corpus, or of the held-out folder after it (see :meth:`load_held_out`)."""
        assert self.corpus is not None
        pieces = self.corpus.pieces
        return pieces[index] if index < len(pieces) else self.held_out_pieces[index - len(pieces)]

    def _windows(
        self, indices: Sequence[int], shifted: bool, bounds: dict[int, tuple[int, int]] | None = None
    ) -> TensorData:
        """The windows of the pieces ``indices`` (within the measures ``bounds[piece]`` when given), with the
        augmentation's shift range when ``shifted`` (else 0, 0)."""
        assert self.corpus is not None
        shift_ranges = self.corpus.shift_ranges() if shifted else None
        rows = []
        for index in indices:
            low, high = (0, 0) if shift_ranges is None else shift_ranges[index]
            begin, end = (bounds or {}).get(index, (0, self._piece(index).measures))
            for start in range(begin, end - self.window + 1):
                rows.append((index, start, low, high))
        table = torch.as_tensor(np.array(rows, np.int64).reshape(-1, 4))
        names = ("piece", "start", "shift_low", "shift_high")
        return TensorData({name: table[:, i].contiguous() for i, name in enumerate(names)})

    def split_one_group(self, group: str, fractions: tuple[float, float, float], seed: int) -> SplitData:
        """A corpus of one group (one piece, or versions of one tune) is split in time: each piece is cut
        into blocks of ``W`` measures ending at its last measure, ``corpus.splits.split_in_time`` deals the
        blocks (the last to test, those before to validation), and each side takes the windows within its
        measures, so no held-out measure is trained on. Held-out windows are not transposed. (The token
        frequencies that weigh the losses are a property of the corpus and still count every piece.)"""
        assert self.corpus is not None
        bounds: dict[str, dict[int, tuple[int, int]]] = {side: {} for side in SIDES}
        for index, piece in enumerate(self.corpus.pieces):
            blocks = np.arange(piece.measures % self.window, piece.measures - self.window + 1, self.window)
            dealt = split_in_time(blocks, self.window, fractions)
            firsts = [int(blocks[dealt[side]].min()) if len(dealt[side]) else None for side in SIDES]
            firsts[0] = 0
            for i, side in enumerate(SIDES):
                if firsts[i] is not None:
                    end = next((f for f in firsts[i + 1 :] if f is not None), piece.measures)
                    bounds[side][index] = (firsts[i], end)
        sides = [
            self._windows(list(bounds[side]), shifted=side == "train", bounds=bounds[side]) for side in SIDES
        ]
        return SplitData(
            *sides, split=Split(seed, fractions, {side: (group,) for side in SIDES}, by_time=True)
        )

    def load_held_out(self, db: Path, log: Any = print) -> TensorData:
        """Every window of the pieces of folder ``db`` with the model's parts (named as the run's, else the
        busiest), moved to C major / A minor when the run normalised keys; never transposed at random."""
        if self.corpus is None or not self.part_names:
            raise UserError("BandTask.load_held_out: load the run's corpus first (load_data)")
        transpose = "normalise" if self.transpose == "normalise" else "none"
        self.held_out_pieces = read_held_out_pieces(
            db, self.part_names, self.part_kinds, transpose=transpose, cache_dir=cache_dir(), log=log
        )
        first = len(self.corpus.pieces)
        held_out = self._windows(range(first, first + len(self.held_out_pieces)), shifted=False)
        if len(held_out) == 0:
            raise UserError(
                f"{db}: no piece of {self.window} measures or more to evaluate; hold out longer pieces"
            )
        log(f"band held out {db}: {len(held_out)} windows of {len(self.held_out_pieces)} pieces")
        return held_out

    def rolls(self, batch: dict[str, Tensor], augment: bool) -> Tensor:
        """The windows of ``batch`` as float rolls ``[B, W, P, 3, 128, 16]``, shifted at random within each
        window's range when ``augment``."""
        assert self.corpus is not None
        low, high = batch["shift_low"].cpu(), batch["shift_high"].cpu()
        shifts = torch.zeros_like(low)
        if augment:
            shifts = torch.minimum(low + (torch.rand(low.shape) * (high - low + 1)).long(), high)
        pieces = [self._piece(int(i)) for i in batch["piece"].cpu()]
        rolls = window_rolls(
            pieces, batch["start"].cpu().numpy(), self.window, len(self.part_names), shifts.numpy()
        )
        return torch.from_numpy(rolls).to(batch["piece"].device).float()

    # Models.

    def build_model(self) -> tuple[BandModels, dict[str, Any]]:
        if not self.part_kinds:
            raise UserError("BandTask.build_model: load the corpus first (the parts decide the model)")
        taken = {"part_kinds": "the corpus", "steps": "the corpus", "ahead": "BandTask.ahead"}
        taken["pitch_ranges"] = "the corpus"
        for name in sorted(set(gin.get_bindings(BandRMVAE)) & set(taken)):
            raise UserError(
                f"BandRMVAE.{name}: set by {taken[name]}, not by a binding of the model; remove the binding"
                + (" and bind BandTask.ahead" if name == "ahead" else "")
            )
        args = configured_arguments(BandRMVAE)
        args.update(
            part_kinds=list(self.part_kinds), steps=STEPS, ahead=self.ahead, pitch_ranges=self.pitch_ranges()
        )
        members = {"main": BandRMVAE(**args)}
        for name in self.ablations:
            members[name] = BandRMVAE(**{**args, "fusion": "concat"} if name == "no_poe" else args)
        frequencies = self.token_frequencies()
        for member in members.values():
            member.initialise_outputs(frequencies)
        return BandModels(members), args

    def pitch_ranges(self) -> list[list[int]]:
        """``[low, high]`` per part: the pitches of the whole corpus (all splits: the range is a vocabulary,
        not a fit), widened by the augmentation's shifts and ``PITCH_MARGIN``."""
        assert self.corpus is not None
        notes = np.concatenate([piece.notes for piece in self.corpus.pieces])
        span = KEY_SPAN if self.transpose == "all" else (0, 0)
        ranges = []
        for part in range(len(self.part_names)):
            pitches = notes[notes[:, 0] == part, 3]
            low, high = (int(pitches.min()), int(pitches.max())) if len(pitches) else (60, 60)
            low, high = low + span[0] - PITCH_MARGIN, high + span[1] + PITCH_MARGIN
            ranges.append([max(0, low), min(127, high)])
        return ranges

    def token_frequencies(self) -> list[Tensor]:
        """The share of each token per step ``[130]`` per part in the training pieces, from their notes: a
        mono part's onsets per pitch, HOLD and REST; a poly part's onsets per pitch (rows 0..127). Pitch shares
        are averaged over the augmentation's shifts."""
        assert self.corpus is not None
        pieces = [self.corpus.pieces[i] for i in self.corpus.split["train"]]
        notes = np.concatenate([piece.notes for piece in pieces])
        steps = STEPS * sum(piece.measures for piece in pieces)
        low, high = KEY_SPAN if self.transpose == "all" else (0, 0)
        shares = []
        for part in range(len(self.part_names)):
            mine = notes[notes[:, 0] == part]
            onsets = np.bincount(mine[:, 3], minlength=128).astype(np.float64)
            onsets = np.convolve(onsets, np.ones(high - low + 1) / (high - low + 1), mode="same")
            sounding = float(mine[:, 2].sum())
            rest_hold = [max(steps - sounding, 1.0), max(sounding - len(mine), 1.0)]
            shares.append(torch.tensor(np.concatenate([onsets, rest_hold]) / steps, dtype=torch.float32))
        return shares

    def metadata(self) -> dict[str, Any]:
        return {
            "part_names": self.part_names,
            "part_kinds": self.part_kinds,
            "voices": [1 if kind == "mono" else self.poly_voices for kind in self.part_kinds],
            "steps": STEPS,
            "ahead": self.ahead,
            "context": self.context,
            "transpose": self.transpose,
            "ablations": list(self.ablations),
        }

    # Losses.

    def _subsets(self, batch: int, parts: int, device: torch.device) -> list[Tensor]:
        """Masks ``[B, P]`` of the parts encoded: all, each single part, random non-empty subsets."""
        everything = torch.ones(batch, parts, dtype=torch.bool, device=device)
        masks = [everything]
        if self.single_parts >= parts > 1:
            masks += [
                torch.eye(parts, dtype=torch.bool, device=device)[p].expand(batch, -1) for p in range(parts)
            ]
        elif parts > 1:
            for _ in range(self.single_parts):
                part = torch.randint(parts, (batch,), device=device)
                masks.append(nn.functional.one_hot(part, parts).bool())
        for _ in range(self.random_subsets if parts > 1 else 0):
            subset = torch.rand(batch, parts, device=device) < 0.5
            keep = torch.randint(parts, (batch,), device=device)
            masks.append(subset | nn.functional.one_hot(keep, parts).bool())
        return masks

    def _filter(self, model: BandRMVAE, flat: Tensor, masks: list[Tensor], batch: int) -> tuple[Tensor, ...]:
        """Run the recurrence over the measures of the windows ``flat [B * W, P, ...]`` (example-major).

        Returns the posteriors of every subset ``(mean, logvar)`` ``[K, B, W, D]``, the priors ``[B, W, D]``
        and the all-parts samples ``[B, W, D]`` fed to the recurrence.
        """
        window = flat.shape[0] // batch
        per_measure = [m.repeat_interleave(window, 0) for m in masks]  # [B * W, P]
        features = model.part_features(flat)
        if model.fusion == "poe":  # the experts do not depend on the subset: encode once
            means, logvars, _ = model.experts_from_features(features, per_measure[0])
            experts = [(means, logvars, mask) for mask in per_measure]
        else:
            experts = [model.experts_from_features(features, mask) for mask in per_measure]
        experts = [tuple(x.unflatten(0, (batch, window)) for x in triple) for triple in experts]
        states = [model.initial_state(batch)]
        priors, posteriors, samples = [], [], []
        for t in range(window):
            prior = model.prior(states[max(0, t + 1 - self.ahead)])
            products = [gaussian_product(m[:, t], lv[:, t], mask[:, t], *prior) for m, lv, mask in experts]
            samples.append(reparameterize(*products[0]))
            states.append(model.advance(states[-1], samples[-1]))
            priors.append(prior)
            posteriors.append(products)
        post_mean = torch.stack([torch.stack([p[k][0] for p in posteriors], 1) for k in range(len(masks))])
        post_logvar = torch.stack([torch.stack([p[k][1] for p in posteriors], 1) for k in range(len(masks))])
        prior_mean = torch.stack([p[0] for p in priors], 1)
        prior_logvar = torch.stack([p[1] for p in priors], 1)
        return post_mean, post_logvar, prior_mean, prior_logvar, torch.stack(samples, 1)

    def _member_losses(self, model: BandRMVAE, rolls: Tensor, music: bool) -> dict[str, Tensor]:
        """The losses of one model on windows ``rolls [B, W, P, 3, 128, S]``.

        The all-parts posterior reconstructs every measure; each other subset one measure per window drawn at
        random (an unbiased estimate of its ELBO at a fraction of the decoding). KL terms match. Every
        measure with history (t >= ahead) is also decoded from its prior mean (the prediction term).
        """
        batch, window, parts = rolls.shape[:3]
        flat = rolls.flatten(0, 1)
        masks = self._subsets(batch, parts, rolls.device)
        post_mean, post_logvar, prior_mean, prior_logvar, z_all = self._filter(model, flat, masks, batch)
        others = len(masks) - 1
        rows = torch.arange(batch, device=rolls.device)
        drawn = torch.randint(window, (others, batch), device=rolls.device)  # the measure of each subset
        subset = torch.arange(others, device=rolls.device).unsqueeze(1)
        picked_mean = post_mean[1:][subset, rows, drawn]  # [K - 1, B, D]
        picked_logvar = post_logvar[1:][subset, rows, drawn]
        z = torch.cat(
            [
                z_all.flatten(0, 1),
                reparameterize(picked_mean, picked_logvar).flatten(0, 1),
                prior_mean[:, self.ahead :].flatten(0, 1),
            ]
        )
        measure_index = torch.cat(
            [
                torch.arange(batch * window, device=rolls.device),
                (rows * window + drawn).flatten(),
                (
                    rows.unsqueeze(1) * window + torch.arange(self.ahead, window, device=rolls.device)
                ).flatten(),
            ]
        )
        outputs = model.decode_parts(z)
        targets = [roll.index_select(0, measure_index) for roll in model.compact_rolls(flat)]
        kinds = model.part_kinds
        nll = (-part_log_likelihood(outputs, targets, kinds) + duration_error(outputs, targets, kinds)).sum(1)
        full, subsets, prediction = nll.split([batch * window, others * batch, batch * (window - self.ahead)])
        kl_full = kl_gaussians(post_mean[0], post_logvar[0], prior_mean, prior_logvar) / window
        picked_prior = (prior_mean[rows, drawn], prior_logvar[rows, drawn])
        kl_subsets = kl_gaussians(
            picked_mean.flatten(0, 1), picked_logvar.flatten(0, 1), *(p.flatten(0, 1) for p in picked_prior)
        )
        losses = {
            "loss/reconstruction": (full.mean() + subsets.view(others, batch).mean(1).sum()) / len(masks),
            "loss/kl": (kl_full.mean() + kl_subsets.view(others, batch).mean(1).sum()) / len(masks),
            "loss/prediction": prediction.mean(),
        }
        if music:
            predicted = [x[-batch * (window - self.ahead) :] for x in outputs]
            lows = [decoder.low for decoder in model.decoders]
            losses.update(self._music_losses(predicted, rolls, kinds, lows))
        return losses

    def _music_losses(
        self, params: list[Tensor], rolls: Tensor, kinds: list[str], lows: list[int]
    ) -> dict[str, Tensor]:
        """The musical penalties on the predictions (raw outputs of ``B * (W - ahead)`` measures), each measure judged
        against its history (the measures up to ``ahead`` before it)."""
        wanted = [name for name in MUSIC_LOSSES if self.music_weights[name] > 0]
        if not wanted:
            return {}
        ahead = self.ahead
        sounding = rolls[:, :, :, 1]  # [B, W, P, 128, S]
        classes = pitch_classes(sounding).sum((2, 4)).cumsum(1)  # [B, W, 12]: up to each measure
        onsets_any = (rolls[:, :, :, 0].amax((2, 3)) > 0.5).float().cumsum(1)  # [B, W, S]
        history = slice(0, rolls.shape[1] - ahead)  # measure t - ahead is the last history of measure t
        scale = local_scale(classes[:, history].flatten(0, 1))
        measures = torch.arange(1, rolls.shape[1] - ahead + 1, device=rolls.device).repeat(rolls.shape[0])
        rare = rare_steps(onsets_any[:, history].flatten(0, 1), measures, self.rhythm_threshold)
        onsets, onset_totals = onset_classes(params, kinds, lows)
        losses = {}
        if "scale" in wanted:
            losses["loss/scale"] = scale_penalty(onsets, scale).mean()
        if "rhythm" in wanted:
            losses["loss/rhythm"] = rhythm_penalty(onset_totals, rare).mean()
        if "harmony" in wanted:
            losses["loss/harmony"] = harmony_penalty(sounding_classes(params, kinds, lows)).mean()
        return losses

    def losses(self, model: nn.Module, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        members = getattr(model, "module", model)
        rolls = self.rolls(batch, augment=self.transpose == "all")
        losses = {}
        for name, member in members.items():
            terms = self._member_losses(member, rolls, music=name != "no_music_losses")
            losses.update({(k if name == "main" else f"{name}/{k}"): v for k, v in terms.items()})
        return losses

    def loss_weights(self, step: int) -> dict[str, float]:
        main = {
            "loss/reconstruction": 1.0,
            "loss/kl": self.beta(step),
            "loss/prediction": self.prediction_weight,
            **{f"loss/{name}": weight for name, weight in self.music_weights.items()},
        }
        weights = dict(main)
        for name in self.ablations:
            weights.update({f"{name}/{key}": value for key, value in main.items()})
        return weights

    # Evaluation.

    def _eval_rows(self, data: TensorData) -> Tensor:
        count = min(len(data), self.eval_windows)
        return torch.linspace(0, len(data) - 1, count).round().long().unique()

    def training_ranges(self) -> list[tuple[int, int]]:
        """The lowest and highest pitch of each part in the training pieces, as read (what a baseline may
        know of a part's range)."""
        assert self.corpus is not None
        pieces = [self.corpus.pieces[i] for i in self.corpus.split["train"]]
        notes = np.concatenate([piece.notes for piece in pieces]) if pieces else np.zeros((0, 4), np.int32)
        ranges = []
        for part in range(len(self.part_names)):
            pitches = notes[notes[:, 0] == part, 3]
            ranges.append((int(pitches.min()), int(pitches.max())) if len(pitches) else (0, 127))
        return ranges

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: TensorData) -> dict[str, float]:
        """Note and token accuracy per part and NLL per step on held-out windows (``eval_windows`` of them,
        evenly spread), for next-measure prediction and fill, for the main model (``eval/next/acc/soprano``),
        the baselines (``eval/next/baseline_repeat/acc/soprano``, ``eval/fill/baseline_nearest/...``) and the
        ablations (``eval/next/no_poe/acc/soprano``)."""
        return self._scores(model, data, self._eval_rows(data))

    @torch.no_grad()
    def evaluate_held_out(self, model: nn.Module, held_out: TensorData, data: SplitData) -> dict[str, float]:
        """The metrics of :meth:`evaluate` on every window of ``held_out`` (a test split or a user's folder),
        and ``eval/windows``; the fill baselines take the parts' ranges from the training side."""
        if len(held_out) == 0:
            raise UserError(
                f"band: no held-out window of {self.window} measures to evaluate; hold out longer pieces "
                "(or more of them: a split of fewer than three groups has no test side)"
            )
        metrics = self._scores(model, held_out, torch.arange(len(held_out)))
        return {**metrics, "eval/windows": float(len(held_out))}

    def _scores(self, model: nn.Module, data: TensorData, rows: Tensor) -> dict[str, float]:
        members = getattr(model, "module", model)
        device = next(members.parameters()).device
        ranges = self.training_ranges()
        sums: dict[str, Tensor] = {}
        counts: dict[str, int] = {}

        def add(prefix: str, scores: dict[str, Tensor]) -> None:
            for key, value in scores.items():
                if key.endswith("/roll"):
                    continue
                task, metric = key.split("/", 1)
                name = f"{task}/{prefix}{metric}"
                reduce = (0, 2) if value.dim() == 3 else (0,)
                sums[name] = sums.get(name, 0) + value.float().sum(reduce).cpu()
                counts[name] = counts.get(name, 0) + value.shape[0] * (
                    value.shape[2] if value.dim() == 3 else 1
                )

        for chunk in rows.split(64):
            rolls = self.rolls(data.take(chunk, device), augment=False)
            history, next_truth, fill_truth = rolls[:, : self.context], rolls[:, -1], rolls[:, self.context]
            add("", baseline_scores(history, next_truth, fill_truth, self.part_kinds, ranges))
            for name, member in members.items():
                scores = evaluate_windows(member, history, next_truth, fill_truth, self.eval_samples)
                add("" if name == "main" else f"{name}/", scores)
        return summarise(sums, counts, self.part_names, list(self.ablations))

    @torch.no_grad()
    def log_media(self, writer: SummaryWriter, model: nn.Module, data: TensorData, step: int) -> None:
        """Piano rolls of a few held-out windows: the history with the truth, the next-measure prediction and
        each part filled from the others."""
        members = getattr(model, "module", model)
        main = members["main"]
        device = next(main.parameters()).device
        rows = self._eval_rows(data)[:: max(1, len(self._eval_rows(data)) // 4)][:4]
        rolls = self.rolls(data.take(rows, device), augment=False)
        history, next_truth, fill_truth = rolls[:, : self.context], rolls[:, -1], rolls[:, self.context]
        scores = evaluate_windows(main, history, next_truth, fill_truth, samples=1)

        def timeline(measures: Tensor) -> np.ndarray:  # [M, P, 3, 128, S] -> sounding [P, 128, M * S]
            return measures[:, :, 1].permute(1, 2, 0, 3).flatten(2).cpu().numpy()

        for i in range(len(rows)):
            figure = piano_roll_figure(
                [
                    ("history + truth", timeline(rolls[i])),
                    ("history + next", timeline(torch.cat([history[i], scores["next/roll"][i : i + 1]]))),
                    ("history + fill", timeline(torch.cat([history[i], scores["fill/roll"][i : i + 1]]))),
                ],
                self.part_names,
            )
            writer.add_figure(f"piano_rolls/window_{i}", figure, step)

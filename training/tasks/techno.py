"""Training task of the techno model, stage 1: a streaming waveform VAE on loops (16 kHz by default).

Each step trains on a random crop of every loop in the batch (``crop`` samples, a multiple of the model's
ratio). The reconstruction loss is the multi-scale spectral distance; the divergence is KL or WAE-MMD over
the latent frames, with warm-up. From ``adversarial_after`` on (0: never) the encoder is frozen and the
decoder is fine-tuned against a multi-scale discriminator (hinge loss and feature matching).

Held out: whole files of a ``--db`` folder (every crop of a file on one side), or whole built-in loops (each
its own procedural seed), dealt to train / validation / test by ``split_fractions`` and the run's seed; a
folder of one file is split in time. techno_prior and ``render techno`` read the run's ``split.json``.
"""

from pathlib import Path
from typing import Any

import gin
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn
from torch.utils.tensorboard import SummaryWriter

from latentlive.core.cache import cache_dir
from latentlive.core.errors import UserError
from latentlive.corpus.splits import SIDES, Split, split_examples, split_in_time
from latentlive.models.discriminator import (
    MultiScaleDiscriminator,
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
)
from latentlive.models.spectral import loudness, multiscale_spectral_distance, spectral_centroid
from latentlive.models.vae import BetaSchedule, kl_standard_normal, mmd_imq, reparameterize
from latentlive.models.waveform_vae import WaveformVAE
from latentlive.training.config import configured_arguments
from latentlive.training.metrics import latent_sensitivity, roughness, spearman_per_dimension
from latentlive.training.plots import latent_sensitivity_figure
from latentlive.training.sample_quality import sample_quality
from latentlive.training.tasks.base import (
    SplitData,
    TensorData,
    require_enough_data,
    split_fractions,
    take_sides,
)

DIVERGENCES = ("kl", "mmd")


def latent_frames_mmd(z: Tensor, frames: int = 512) -> Tensor:
    """WAE divergence over time: ``mmd_imq`` between up to ``frames`` latent frames of ``z [B, L, T]`` (each
    frame a sample of the aggregate posterior) and as many N(0, I) samples."""
    codes = z.transpose(1, 2).reshape(-1, z.shape[1])
    if len(codes) > frames:
        codes = codes[torch.randperm(len(codes), device=z.device)[:frames]]
    return mmd_imq(codes, torch.randn_like(codes))


def frame_features(audio: Tensor, sample_rate: int, hop: int, frames: int) -> tuple[Tensor, Tensor]:
    """Loudness (dB) and spectral centroid (Hz) of ``audio [B, T]`` at the latent rate, ``[B, frames]`` each
    (one value per ``hop`` samples, centred on the latent frame)."""
    level = loudness(audio, 4 * hop, hop)[:, :frames]
    centroid = spectral_centroid(audio, sample_rate, 4 * hop, hop)[:, :frames]
    return level, centroid


def curves_figure(steps: np.ndarray, curves: dict[str, np.ndarray]) -> Figure:
    """One panel per feature; one line per interpolated pair ``[P, S]`` against the interpolation step."""
    figure = Figure(figsize=(4.0 * len(curves), 3.0))
    axes = figure.subplots(1, len(curves), squeeze=False)[0]
    for ax, (name, values) in zip(axes, curves.items(), strict=True):
        for line in values:
            ax.plot(steps, line, marker="o", ms=3)
        ax.set_xlabel("interpolation step (0: loop A, 1: loop B)")
        ax.set_title(name, fontsize=9)
    figure.tight_layout()
    return figure


def correlation_figure(rho: dict[str, np.ndarray]) -> Figure:
    """Bars of the Spearman correlation of each latent dimension with each feature."""
    figure = Figure(figsize=(6.0, 3.0))
    ax = figure.subplots()
    width = 0.8 / len(rho)
    for i, (name, values) in enumerate(rho.items()):
        ax.bar(np.arange(len(values)) + i * width, values, width, label=name)
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("Spearman rho")
    ax.set_ylim(-1, 1)
    ax.legend(fontsize=7)
    figure.tight_layout()
    return figure


@gin.configurable
class TechnoTask:
    """Stage 1 of the techno model on loops (built-in procedural techno, or a folder given with ``--db``).

    Args:
        sample_rate: rate of the model's audio (Hz).
        length: samples per loop example (crops of ``bars`` bars start on a downbeat when the tempo is known).
        bars: bars per loop (1, 2 or 4).
        examples: loops in the built-in corpus (a cap for ``--db`` folders).
        crop: samples of each loop seen per training step (a multiple of the model's ratio).
        divergence: ``kl`` or ``mmd`` (WAE: MMD between latent frames and N(0, I)).
        beta: final weight of the divergence, reached by the warm-up.
        beta_schedule: ``constant``, ``linear`` or ``cyclical``.
        warmup_steps: steps of the warm-up.
        adversarial_after: first step of the adversarial phase (encoder frozen); 0 disables it.
        adversarial_weight, feature_matching_weight: weights of the generator's adversarial terms.
        discriminator_scales: waveform scales seen by the discriminator.
        discriminator_capacity: width of its first layer.
        interpolation_pairs, interpolation_steps: held-out loop pairs and steps of the smoothness metric.
        media_examples: held-out loops played in TensorBoard.
        quality_samples: loops decoded from N(0, I) latents for the sample-quality metrics of ``evaluate``
            (0 leaves the metrics out). On the demo runs the Fréchet distance of 10 new loops ranged 62-122
            over six draws, that of 128 70-75 (scripts/techno_frechet_draws.py, docs/sample_quality.md).
    """

    name = "techno"

    def __init__(
        self,
        sample_rate: int = 16000,
        length: int = 65536,
        bars: int = 2,
        examples: int = 512,
        crop: int = 16384,
        divergence: str = "kl",
        beta: float = 0.1,
        beta_schedule: str = "linear",
        warmup_steps: int = 20000,
        adversarial_after: int = 0,
        adversarial_weight: float = 1.0,
        feature_matching_weight: float = 10.0,
        discriminator_scales: int = 3,
        discriminator_capacity: int = 16,
        interpolation_pairs: int = 4,
        interpolation_steps: int = 9,
        media_examples: int = 4,
        quality_samples: int = 128,
    ) -> None:
        if divergence not in DIVERGENCES:
            raise ValueError(f"TechnoTask.divergence must be one of {DIVERGENCES}, got {divergence!r}")
        if bars not in (1, 2, 4):
            raise ValueError(f"TechnoTask.bars must be 1, 2 or 4, got {bars}")
        self.sample_rate, self.length, self.bars, self.examples = sample_rate, length, bars, examples
        self.crop, self.divergence = crop, divergence
        self.beta = BetaSchedule(beta_schedule, 0.0, beta, warmup_steps)
        self.adversarial_after = adversarial_after
        self.adversarial_weight, self.feature_matching_weight = adversarial_weight, feature_matching_weight
        self.discriminator_scales, self.discriminator_capacity = discriminator_scales, discriminator_capacity
        self.interpolation_pairs, self.interpolation_steps = interpolation_pairs, interpolation_steps
        self.media_examples, self.quality_samples = media_examples, quality_samples
        self.db: str | None = None
        self._model: WaveformVAE | None = None
        self._discriminator: nn.Module | None = None

    # -- data and model ------------------------------------------------------------------------------

    def corpus_settings(self) -> dict[str, Any]:
        """What selects the corpus; techno_prior reloads the same loops with it."""
        return {
            "sample_rate": self.sample_rate,
            "length": self.length,
            "bars": self.bars,
            "examples": self.examples,
        }

    def load_data(self, db: Path | None, seed: int, log: Any = print) -> SplitData:
        data, groups = load_loop_tensors(db, self.corpus_settings(), log)
        self.db = str(db) if db is not None else None
        split, indices = split_loops(data, groups, self.length, split_fractions(), seed)
        sides = take_sides(data, indices, split)
        source = f"{len(set(groups))} {'files' if db is not None else 'built-in loops'}"
        log(
            f"loops: {len(sides.train)} for training, {len(sides.validation)} for validation, "
            f"{len(sides.test)} for test ({'one file split in time' if split.by_time else source})"
        )
        require_enough_data(
            str(db) if db is not None else "built-in loops",
            sides.train,
            sides.validation,
            f"loops of {self.length} samples",
            "add loops or tracks (a folder of one recording is split in time: at the default split_fractions "
            "it needs about a minute)",
        )
        return sides

    def load_held_out(self, db: Path, log: Any = print) -> TensorData:
        """Every loop of the folder ``db``, cut with this run's settings."""
        return load_loop_tensors(db, self.corpus_settings(), log)[0]

    def build_model(self) -> tuple[WaveformVAE, dict[str, Any]]:
        args = configured_arguments(WaveformVAE)
        if args.pop("streaming"):  # how the layers run, not what they learn: checkpoints leave it out
            raise ValueError(
                "WaveformVAE.streaming: training runs the offline layers; export builds streaming ones"
            )
        self._model = WaveformVAE(**args)
        ratio = self._model.ratio
        if self.crop % ratio or self.length % ratio:
            raise UserError(
                f"TechnoTask.crop = {self.crop} and .length = {self.length} must be multiples of the model's "
                f"ratio {ratio} (WaveformVAE.strides times .bands); bind them to multiples, e.g. TechnoTask.crop "
                f"= {max(ratio, self.crop // ratio * ratio)}, TechnoTask.length = {max(ratio, self.length // ratio * ratio)}"
            )
        return self._model, args

    def build_discriminator(self) -> nn.Module | None:
        if self.adversarial_after <= 0:
            return None
        self._discriminator = MultiScaleDiscriminator(
            scales=self.discriminator_scales, capacity=self.discriminator_capacity
        )
        return self._discriminator

    def adversarial(self, step: int) -> bool:
        return 0 < self.adversarial_after <= step

    # -- losses ----------------------------------------------------------------------------------

    def _crops(self, audio: Tensor) -> Tensor:
        """A random ``crop`` of each loop ``[B, T] -> [B, 1, crop]`` (offsets from the checkpointed RNG)."""
        if self.crop >= audio.shape[1]:
            return audio.unsqueeze(1)
        offsets = torch.randint(0, audio.shape[1] - self.crop + 1, (len(audio),))
        index = offsets[:, None].to(audio.device) + torch.arange(self.crop, device=audio.device)
        return audio.gather(1, index).unsqueeze(1)

    def losses(self, model: nn.Module, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        x = self._crops(batch["audio"])
        if self.adversarial(step):  # the encoder is frozen: only the decoder learns from here on
            core = model.module if hasattr(model, "module") else model
            with torch.no_grad():
                mean, logvar = core.encode(x)
            z = reparameterize(mean, logvar)
            audio = core.decode(z)
        else:
            audio, mean, logvar, z = model(x)
        losses = {"loss/spectral_distance": multiscale_spectral_distance(audio, x)}
        if self.adversarial(step):
            assert self._discriminator is not None
            real = [[f.detach() for f in scale] for scale in self._discriminator(x)]
            fake = self._discriminator(audio)
            losses["loss/adversarial"] = hinge_generator_loss([scale[-1] for scale in fake])
            losses["loss/feature_matching"] = feature_matching_loss(real, fake)
        elif self.divergence == "kl":
            losses["loss/divergence"] = (
                kl_standard_normal(mean.transpose(1, 2), logvar.transpose(1, 2)).mean() / (mean.shape[2])
            )
        else:
            losses["loss/divergence"] = latent_frames_mmd(z)
        return losses

    def discriminator_losses(
        self, model: nn.Module, discriminator: nn.Module, batch: dict[str, Tensor], step: int
    ) -> dict[str, Tensor]:
        x = self._crops(batch["audio"])
        core = model.module if hasattr(model, "module") else model
        with torch.no_grad():
            mean, logvar = core.encode(x)
            fake = core.decode(reparameterize(mean, logvar))
        real_scores = [scale[-1] for scale in discriminator(x)]
        fake_scores = [scale[-1] for scale in discriminator(fake)]
        return {"loss/discriminator": hinge_discriminator_loss(real_scores, fake_scores)}

    def loss_weights(self, step: int) -> dict[str, float]:
        return {
            "loss/spectral_distance": 1.0,
            "loss/divergence": self.beta(step),
            "loss/adversarial": self.adversarial_weight,
            "loss/feature_matching": self.feature_matching_weight,
            "loss/discriminator": 1.0,
        }

    # -- evaluation ------------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: TensorData) -> dict[str, float]:
        """Held-out multi-scale spectral distance of reconstructions from the posterior mean, the KL per latent
        frame, the Spearman correlation of each latent dimension with loudness and spectral centroid (the
        best dimension's |rho|, and each dimension's rho under ``eval/per_dimension/``), the roughness of
        loudness and centroid along linear interpolations between pairs of held-out loops (0 for a straight
        line), and the latent sensitivity: the spectral distance the decoded loops move per unit move of each
        latent dimension (mean and per dimension; ~0 for a decoder that ignores its latent, whose
        interpolations are also perfectly smooth). Beside them, under ``eval/quality/``, the sample quality
        (``training.sample_quality``) of loops decoded from the prior against the held-out loops:
        :meth:`prior_sample_quality`."""
        device = next(model.parameters()).device
        x = data.tensors["audio"].to(device).unsqueeze(1)
        mean, logvar, recon = self._reconstruct(model, x)
        metrics = {
            "eval/spectral_distance": float(
                np.mean([multiscale_spectral_distance(r, t).item() for r, t in zip(recon, x, strict=True)])
            ),
            "eval/kl_per_frame": (kl_standard_normal(mean, logvar) / mean.shape[2]).mean().item(),
            "eval/active_units": int((mean.transpose(1, 2).reshape(-1, mean.shape[1]).var(0) > 0.01).sum()),
        }
        rho = self.latent_correlations(mean, x[:, 0])
        for name, values in rho.items():
            metrics[f"eval/spearman_{name}"] = (
                float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.0
            )
            for dimension, value in enumerate(values):  # NaN (a constant dimension) reads as no correlation
                metrics[f"eval/per_dimension/spearman_{name}/z{dimension}"] = float(np.nan_to_num(value))
        sensitivity = self.latent_sensitivity(model, mean)
        metrics["eval/latent_sensitivity"] = float(sensitivity.mean())
        for dimension, value in enumerate(sensitivity):
            metrics[f"eval/per_dimension/latent_sensitivity/z{dimension}"] = float(value)
        curves = self.interpolation_curves(model, mean)
        for name, values in curves.items():
            if len(values):  # pairs need at least two held-out loops
                metrics[f"eval/interpolation_roughness_{name}"] = float(
                    np.mean([roughness(c) for c in values])
                )
        metrics.update(self.prior_sample_quality(model, x, mean.shape[1:]))
        return metrics

    def sample_latents(self, count: int, shape: tuple[int, int], seed: int = 0) -> Tensor:
        """``count`` latent trajectories ``[count, L, T]`` (``shape = (L, T)``) from the prior N(0, I), drawn
        on the CPU from a generator seeded with ``seed``: the same ones at every evaluation."""
        return torch.randn(count, *shape, generator=torch.Generator().manual_seed(seed))

    def prior_sample_quality(self, model: nn.Module, x: Tensor, shape: torch.Size) -> dict[str, float]:
        """``training.sample_quality`` under ``eval/quality/`` of ``quality_samples`` loops decoded from N(0, I)
        latents of the held-out loops' ``shape`` ``(L, T)`` against the held-out loops ``x [B, 1, S]``; the
        frame share at the latent frame rate (``frame``: sample rate / ratio, 125 Hz at 16 kHz / 128)."""
        count = self.quality_samples
        if count < 1 or len(x) == 0:
            return {}
        z = self.sample_latents(count, (int(shape[0]), int(shape[1]))).to(x.device)
        generated = torch.cat([model.decode(part) for part in z.split(8)])[:, 0].cpu().numpy()
        ratio = x.shape[-1] // int(shape[1])  # the model's ratio: samples per latent frame
        return sample_quality(
            generated,
            x[:, 0].cpu().numpy(),
            self.sample_rate,
            {"frame": self.sample_rate / ratio},
            prefix="eval/quality/",
        )

    def _reconstruct(self, model: nn.Module, x: Tensor, chunk: int = 16) -> tuple[Tensor, Tensor, Tensor]:
        means, logvars, recons = [], [], []
        for part in x.split(chunk):
            mean, logvar = model.encode(part)
            means.append(mean)
            logvars.append(logvar)
            recons.append(model.decode(mean))
        return torch.cat(means), torch.cat(logvars), torch.cat(recons)

    def latent_correlations(self, mean: Tensor, audio: Tensor) -> dict[str, np.ndarray]:
        """Spearman rho ``[L]`` of each latent dimension with loudness and with centroid over held-out frames."""
        frames = mean.shape[2]
        ratio = audio.shape[1] // frames
        level, centroid = frame_features(audio, self.sample_rate, ratio, frames)
        frames = min(frames, level.shape[1])
        codes = mean[:, :, :frames].transpose(1, 2).reshape(-1, mean.shape[1]).cpu().numpy()
        return {
            "loudness": spearman_per_dimension(codes, level[:, :frames].reshape(-1).cpu().numpy()),
            "centroid": spearman_per_dimension(codes, centroid[:, :frames].reshape(-1).cpu().numpy()),
        }

    def latent_sensitivity(self, model: nn.Module, mean: Tensor) -> np.ndarray:
        """Spectral distance per unit move of each latent dimension ``[L]`` (``training.metrics.latent_sensitivity``),
        every frame of the posterior means ``mean [B, L, T]`` of up to ``interpolation_pairs`` (at least 2)
        held-out loops moved together (a decode of them per dimension: the cost of the metric)."""
        codes = mean[: max(self.interpolation_pairs, 2)]
        return latent_sensitivity(
            lambda z: torch.cat([model.decode(part) for part in z.split(8)]),
            codes,
            lambda moved, base: torch.stack(
                [multiscale_spectral_distance(m[None], b[None]) for m, b in zip(moved, base, strict=True)]
            ).mean(),
        )

    def _pairs(self, count: int) -> list[tuple[int, int]]:
        half = count // 2
        return [(i, half + i) for i in range(min(self.interpolation_pairs, half))]

    @torch.no_grad()
    def interpolation_curves(self, model: nn.Module, mean: Tensor) -> dict[str, np.ndarray]:
        """Mean loudness (dB) and centroid (Hz) of the loops decoded along ``(1 - a) z_A + a z_B``, ``[P, S]``."""
        steps = torch.linspace(0, 1, self.interpolation_steps, device=mean.device)
        level_curves, centroid_curves = [], []
        for a, b in self._pairs(len(mean)):
            path = (1 - steps)[:, None, None] * mean[a] + steps[:, None, None] * mean[b]
            audio = torch.cat([model.decode(part) for part in path.split(8)])[:, 0]
            ratio = audio.shape[1] // mean.shape[2]
            level, centroid = frame_features(audio, self.sample_rate, ratio, mean.shape[2])
            level_curves.append(level.mean(1).cpu().numpy())
            centroid_curves.append(centroid.mean(1).cpu().numpy())
        empty = np.zeros((0, self.interpolation_steps))
        return {
            "loudness": np.array(level_curves) if level_curves else empty,
            "centroid": np.array(centroid_curves) if centroid_curves else empty,
        }

    @torch.no_grad()
    def log_media(self, writer: SummaryWriter, model: nn.Module, data: TensorData, step: int) -> None:
        device = next(model.parameters()).device
        x = data.tensors["audio"].to(device).unsqueeze(1)
        mean, _, recon = self._reconstruct(model, x[: max(self.media_examples, 2 * self.interpolation_pairs)])
        for i in range(min(self.media_examples, len(x))):
            writer.add_audio(f"audio/input/{i}", x[i].cpu().clamp(-1, 1), step, sample_rate=self.sample_rate)
            writer.add_audio(
                f"audio/reconstruction/{i}", recon[i].cpu().clamp(-1, 1), step, sample_rate=self.sample_rate
            )
        all_mean = self._reconstruct(model, x)[0]
        writer.add_figure(
            "latent/spearman", correlation_figure(self.latent_correlations(all_mean, x[:, 0])), step
        )
        curves = self.interpolation_curves(model, mean)
        steps = np.linspace(0, 1, self.interpolation_steps)
        writer.add_figure("interpolation/features", curves_figure(steps, curves), step)
        rough = {name: float(np.mean([roughness(c) for c in v])) for name, v in curves.items() if len(v)}
        writer.add_figure(
            "latent/sensitivity", latent_sensitivity_figure(self.latent_sensitivity(model, mean), rough), step
        )
        pairs = self._pairs(len(mean))
        if pairs:
            a, b = pairs[0]
            path = [(1 - s) * mean[a] + s * mean[b] for s in np.linspace(0, 1, 5)]
            clip = torch.cat([model.decode(z[None])[0, 0] for z in path]).cpu().clamp(-1, 1)
            writer.add_audio("audio/interpolation", clip[None], step, sample_rate=self.sample_rate)

    def metadata(self) -> dict[str, Any]:
        """What export and techno_prior need: the corpus settings and the model's rate and ratio."""
        meta: dict[str, Any] = {**self.corpus_settings(), "db": self.db}
        if self._model is not None:
            meta.update(ratio=self._model.ratio, latent_size=self._model.latent_size)
        return meta


def split_loops(
    data: TensorData, groups: list[str], length: int, fractions: tuple[float, float, float], seed: int
) -> tuple[Split, dict[str, np.ndarray]]:
    """A new split of the loops ``data`` (of :func:`load_loop_tensors`) and the example indices of each side:
    whole groups (files, built-in seeds) to train / validation / test; a folder of one file is split in time
    (``start``): a crop that overlaps a later side's first crop is left out of its side."""
    return split_examples(groups, data.tensors["start"].numpy(), length, fractions, seed)


def loop_sides(
    data: TensorData, groups: list[str], split: Split, length: int, split_file: Path
) -> dict[str, np.ndarray]:
    """The example indices of each side of a recorded ``split`` (a stage-1 run's ``split_file``) in the loops
    ``data``; one UserError line when a loop's group is on no side (the folder changed since the split)."""
    unknown = sorted({g for g in groups if split.side_of(g) is None})
    if unknown:
        raise UserError(
            f"{split_file}: {len(unknown)} file(s) of the corpus (such as {unknown[0]!r}) were not in the "
            "run's split; restore the run's folder or train stage 1 again on this one"
        )
    if split.by_time:
        return split_in_time(data.tensors["start"].numpy(), length, split.fractions)
    return {side: split.indices(groups, side) for side in SIDES}


def load_loop_tensors(
    db: Path | None, settings: dict[str, Any], log: Any = print
) -> tuple[TensorData, list[str]]:
    """The loop corpus (``db`` or the built-in one, read with ``settings``, see ``corpus_settings``) as
    tensors: ``audio [N, T]``, ``bpm [N]`` (NaN when unknown), ``loop_samples [N]``, ``group [N]`` (an index
    into the group names) and ``start [N]`` (the crop's first sample in its file); with the group name of
    each loop (its file relative to the folder, or ``builtin/seed<N>``)."""
    from latentlive.corpus.loops import load_loops

    corpus = load_loops(db, seed=0, cache_dir=cache_dir(), log=log, **settings)
    groups = [str(g) for g in corpus.groups]
    data = TensorData(
        {
            "audio": torch.from_numpy(np.asarray(corpus.audio, dtype=np.float32)),
            "bpm": torch.from_numpy(np.asarray(corpus.bpm, dtype=np.float32)),
            "loop_samples": torch.from_numpy(np.asarray(corpus.loop_samples, dtype=np.int64)),
            "group": torch.from_numpy(np.unique(groups, return_inverse=True)[1].reshape(-1).astype(np.int64)),
            "start": torch.from_numpy(np.asarray(corpus.starts, dtype=np.int64)),
        }
    )
    return data, groups

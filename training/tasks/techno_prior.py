"""Training task of techno_prior, the prior of the techno model: a VAE over the stage-1 latent trajectories of whole loops.

Every loop of the corpus is encoded once by the trained stage-1 model (``stage1_run``); the posterior over
exactly one loop (``bars`` bars at the loop's tempo, from its downbeat) is resampled to ``frames_per_bar``
frames per bar, so that frame ``k`` of ``K`` sits at bar phase ``k / K`` whatever the tempo. techno_prior learns
those trajectories with a macro latent per loop (or a few per loop) and one of two objectives:

* ``nll``: the Gaussian log-likelihood of fixed stage-1 latents (``target = 'mean'`` or a fresh
  ``'sample'`` of the stage-1 posterior each step);
* ``kl``: the KL divergence from the stage-1 posterior to the decoded Gaussian.

The stage-1 weights travel in this run's checkpoint, so export and rendering need this run alone. The loops
are dealt to train / validation / test exactly as the stage-1 run dealt them: its ``split.json`` is read, never
drawn again, so no loop stage 1 trained on is held out here.
"""

from pathlib import Path
from typing import Any

import gin
import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.tensorboard import SummaryWriter

from latentlive.models.spectral import multiscale_spectral_distance
from latentlive.models.trajectory_vae import (
    TrajectoryVAE,
    latent_high_band_power,
    read_at_phase,
    sample_frames,
)
from latentlive.models.waveform_vae import WaveformVAE
from latentlive.training.plots import trajectory_rows_figure
from latentlive.training.sample_quality import sample_quality
from latentlive.training.tasks.base import SplitData, TensorData, require_enough_data, take_sides
from latentlive.training.tasks.techno import load_loop_tensors, loop_sides
from latentlive.training.tasks.trajectory_prior import (
    TrajectoryPriorTask,
    first_level_split,
    load_first_level,
)


def load_stage1(run_path: str | Path) -> tuple[WaveformVAE, dict[str, Any], dict[str, Any]]:
    """The trained stage-1 model of ``run_path`` (eval mode, CPU), its constructor arguments and metadata."""
    model, checkpoint = load_first_level(
        run_path,
        "techno",
        WaveformVAE,
        "TechnoPriorTask.stage1_run must be a stage-1 techno run (gin/techno.gin), not a {found} run",
    )
    return model, checkpoint["model_args"], checkpoint["metadata"]


def loop_positions(loop_samples: Tensor, ratio: int, frames: int) -> Tensor:
    """Stage-1 frame positions (fractional) of ``frames`` evenly spaced bar phases of each loop:
    ``loop_samples [N]`` -> ``[N, frames]``."""
    phase = torch.arange(frames, dtype=torch.float64) / frames
    return (loop_samples.double()[:, None] / ratio) * phase


def resample_frames(sequence: Tensor, positions: Tensor) -> Tensor:
    """Read ``sequence [N, L, T]`` at fractional frame ``positions [N, K]`` (linear) -> ``[N, L, K]``."""
    start = positions.floor().long().clamp(0, sequence.shape[2] - 1)
    end = (start + 1).clamp(max=sequence.shape[2] - 1)
    weight = (positions - start.double()).clamp(0, 1).float().unsqueeze(1)
    shape = (sequence.shape[0], sequence.shape[1], positions.shape[1])
    before = sequence.gather(2, start.unsqueeze(1).expand(shape))
    after = sequence.gather(2, end.unsqueeze(1).expand(shape))
    return before + weight * (after - before)


def frame_phases(trajectory: Tensor, ratio: int, loop_samples: int) -> Tensor:
    """The bar phases ``[B, frames]`` of the stage-1 frames of one loop of ``loop_samples`` samples (the loop
    of ``trajectory [B, L, K]``, whose device and dtype they take)."""
    frames = -(-loop_samples // ratio)
    phase = torch.arange(frames, device=trajectory.device, dtype=trajectory.dtype) * ratio / loop_samples
    return phase[None].expand(len(trajectory), frames)


def decoded_loop(stage1: WaveformVAE, trajectory: Tensor, loop_samples: int) -> Tensor:
    """Audio ``[B, loop_samples]`` of one loop from its phase-indexed trajectory ``[B, L, K]``: the trajectory
    is read at the stage-1 frame times of the loop (wrapping) and decoded."""
    latents = read_at_phase(trajectory, frame_phases(trajectory, stage1.ratio, loop_samples))
    return stage1.decode(latents)[:, 0, :loop_samples]


def sampled_latents(
    mean: Tensor,
    logscale: Tensor,
    ratio: int,
    loop_samples: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Stage-1 latents ``[B, L, frames]`` of one loop drawn from the decoded Gaussian ``(mean, logscale)
    [B, L, K]`` at every stage-1 frame (``trajectory_vae.sample_frames``, noise ``temperature * N(0, I)``, from
    ``generator`` on the CPU when given); ``temperature = 0`` reads the mean alone."""
    phase = frame_phases(mean, ratio, loop_samples)
    shape = (mean.shape[0], mean.shape[1], phase.shape[1])
    noise = torch.randn(shape, generator=generator)  # None: torch's global generator
    return sample_frames(mean, logscale, phase, temperature * noise.to(mean))


def sampled_loop(
    stage1: WaveformVAE,
    mean: Tensor,
    logscale: Tensor,
    loop_samples: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Audio ``[B, loop_samples]`` of one loop sampled from the decoded Gaussian ``(mean, logscale) [B, L, K]``
    one stage-1 frame at a time (:func:`sampled_latents`), as a new loop is played."""
    latents = sampled_latents(mean, logscale, stage1.ratio, loop_samples, temperature, generator)
    return stage1.decode(latents)[:, 0, :loop_samples]


@gin.configurable
class TechnoPriorTask(TrajectoryPriorTask):
    """techno_prior, the prior of the techno model: loops of stage-1 latents -> a macro latent per loop.

    Args:
        stage1_run: the trained stage-1 run (``gin/techno.gin``).
        frames_per_bar: trajectory frames per bar (``K = frames_per_bar * bars``).
        objective: ``nll`` or ``kl`` (see the module docstring).
        target: with ``nll``, fit the stage-1 posterior ``mean`` or a fresh ``sample`` of it.
        beta, beta_schedule, warmup_steps: the weight of the macro KL and its warm-up.
        media_examples: sampled and reconstructed loops played in TensorBoard.
        quality_samples: loops sampled through both stages for the sample-quality metrics of ``evaluate``
            (0 leaves the metrics out). On the demo runs the Fréchet distance of 10 new loops ranged 62-122
            over six draws, that of 128 70-75 (scripts/techno_frechet_draws.py, docs/sample_quality.md).
        frame_temperature: the scale of the per-frame draw from the decoded Gaussian when a new loop is
            sampled (:func:`sampled_loop`): 1 as fitted; 0 plays the decoded mean alone, which buzzes at the
            latent frame rate (issue #18).
    """

    name = "techno_prior"

    def __init__(
        self,
        stage1_run: str = "runs/techno",
        frames_per_bar: int = 64,
        objective: str = "kl",
        target: str = "mean",
        beta: float = 1.0,
        beta_schedule: str = "linear",
        warmup_steps: int = 2000,
        media_examples: int = 4,
        quality_samples: int = 128,
        frame_temperature: float = 1.0,
    ) -> None:
        if not frame_temperature >= 0.0:
            raise ValueError(f"TechnoPriorTask.frame_temperature must be 0 or more, got {frame_temperature}")
        self._set_objective(objective, target, beta, beta_schedule, warmup_steps)
        self.frame_temperature = frame_temperature
        self.stage1_run, self.frames_per_bar = stage1_run, frames_per_bar
        self.media_examples, self.quality_samples = media_examples, quality_samples
        self.stage1, self.stage1_args, self.stage1_meta = load_stage1(stage1_run)
        self.source_latent_size = self.stage1.latent_size
        self.bars = int(self.stage1_meta["bars"])
        self.frames = frames_per_bar * self.bars
        self.sample_rate = int(self.stage1_meta["sample_rate"])

    def _settings(self) -> dict[str, Any]:
        return {key: self.stage1_meta[key] for key in ("sample_rate", "length", "bars", "examples")}

    @torch.no_grad()
    def _trajectories(self, corpus: TensorData, log: Any) -> TensorData:
        """The loops ``corpus`` (of ``load_loop_tensors``) with their stage-1 posteriors read at ``frames`` bar
        phases: ``mean``, ``logvar`` ``[N, L, K]`` beside ``audio``, ``loop_samples``, ``group``, ``start``."""
        audio, loop_samples = corpus.tensors["audio"], corpus.tensors["loop_samples"]
        log(f"encoding {len(audio)} loops with the stage-1 model of {self.stage1_run}")
        means, logvars = [], []
        for part in audio.split(16):
            mean, logvar = self.stage1.encode(part.unsqueeze(1))
            means.append(mean)
            logvars.append(logvar)
        positions = loop_positions(loop_samples, self.stage1.ratio, self.frames)
        return TensorData(
            {
                "mean": resample_frames(torch.cat(means), positions),
                "logvar": resample_frames(torch.cat(logvars), positions),
                **{key: corpus.tensors[key] for key in ("audio", "loop_samples", "group", "start")},
            }
        )

    def load_data(self, db: Path | None, seed: int, log: Any = print, train_audio: bool = False) -> SplitData:
        """The stage-1 run's loops, on the sides of its ``split.json`` (``seed`` does not apply); the training
        side keeps its audio only with ``train_audio`` (scripts/techno_decoder_finetune.py)."""
        split, split_file = first_level_split(self.stage1_run)
        settings = self._settings()
        if db is None and self.stage1_meta.get("db"):
            db = Path(self.stage1_meta["db"])
        corpus, groups = load_loop_tensors(db, settings, log)
        indices = loop_sides(corpus, groups, split, int(settings["length"]), split_file)
        sides = take_sides(self._trajectories(corpus, log), indices, split)
        log(
            f"loops of {split_file}: {len(sides.train)} for training, {len(sides.validation)} for validation, "
            f"{len(sides.test)} for test"
        )
        require_enough_data(
            str(db) if db is not None else "built-in loops",
            sides.train,
            sides.validation,
            "loops",
            "train stage 1 on more loops (more files, or a longer recording)",
        )
        if not train_audio:
            del sides.train.tensors["audio"]  # only held-out loops are listened to
        return sides

    def load_held_out(self, db: Path, log: Any = print) -> TensorData:
        """Every loop of the folder ``db`` (cut with the stage-1 run's settings) as stage-1 trajectories."""
        return self._trajectories(load_loop_tensors(db, self._settings(), log)[0], log)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: TensorData) -> dict[str, float]:
        """Held-out objective and macro KL, the ELBO-like total, the RMS error of the decoded trajectory mean
        against the stage-1 means, and the multi-scale spectral distance between each held-out loop and its
        resynthesis through both stages (macro mean -> trajectory -> stage-1 decoder); beside them, under
        ``eval/quality/``, the sample quality of new loops through both stages: :meth:`prior_sample_quality`."""
        device = next(model.parameters()).device
        self.stage1.to(device)
        batch = data.take(slice(None), device)
        metrics, decoded = self._fit_metrics(model, batch, "trajectory_rmse")
        distances = []
        for i in range(len(decoded)):
            samples = int(batch["loop_samples"][i])
            audio = decoded_loop(self.stage1, decoded[i : i + 1], samples)
            distances.append(multiscale_spectral_distance(audio, batch["audio"][i : i + 1, :samples]).item())
        metrics["eval/loop_spectral_distance"] = float(np.mean(distances)) if distances else 0.0
        metrics.update(self.prior_sample_quality(model, batch["audio"], batch["loop_samples"]))
        return metrics

    @torch.no_grad()
    def prior_sample_quality(
        self, model: TrajectoryVAE, audio: Tensor, loop_samples: Tensor, seed: int = 0
    ) -> dict[str, float]:
        """``training.sample_quality`` under ``eval/quality/`` of ``quality_samples`` loops sampled through both
        stages (macro draws seeded as ``render techno --seed SEED`` seeds them, then :meth:`sample_trajectories`,
        a draw per stage-1 frame at ``frame_temperature`` and the stage-1 decoder) against the held-out loops
        ``audio [B, T]``, each cut to its own ``loop_samples [B]``; sample ``i`` is as long as held-out loop
        ``i % B`` (the macro prior has no tempo: the corpus's tempi are borrowed). The frame share is at the
        stage-1 latent frame rate (``frame``: sample rate / ratio, 125 Hz at 16 kHz / 128). Beside them,
        ``eval/latent_high_band`` and ``..._corpus``: the ``latent_high_band_power`` of the sampled stage-1
        latents and of the held-out loops' posterior means (the corpus's is far above that of smooth latents,
        which buzz)."""
        if self.quality_samples < 1 or len(audio) == 0:
            return {}
        lengths = [int(n) for n in loop_samples.cpu()]
        sampled, generated = self.new_loops(model, lengths, seed)
        reference = [loop[:length].cpu().numpy() for loop, length in zip(audio, lengths, strict=True)]
        metrics = sample_quality(
            generated,
            reference,
            self.sample_rate,
            {"frame": self.sample_rate / self.stage1.ratio},
            prefix="eval/quality/",
        )
        posterior = torch.cat([self.stage1.encode(part[:, None])[0] for part in audio.split(16)])
        corpus = [z[None, :, : n // self.stage1.ratio] for z, n in zip(posterior, lengths, strict=True)]
        metrics["eval/latent_high_band"] = float(np.mean([latent_high_band_power(z) for z in sampled]))
        metrics["eval/latent_high_band_corpus"] = float(np.mean([latent_high_band_power(z) for z in corpus]))
        return metrics

    @torch.no_grad()
    def new_loops(
        self, model: TrajectoryVAE, lengths: list[int], seed: int = 0
    ) -> tuple[list[Tensor], list[np.ndarray]]:
        """The ``quality_samples`` new loops :meth:`prior_sample_quality` scores, loop ``i`` as long as
        ``lengths[i % len(lengths)]``: their stage-1 latents ``[1, L, frames]`` and their audio."""
        count = self.quality_samples
        loop_lengths = [lengths[i % len(lengths)] for i in range(count)]
        generator = torch.Generator().manual_seed(seed)
        means, logscales = self.sample_trajectories(model, count, generator=generator)
        sampled = [
            sampled_latents(
                mean[None], logscale[None], self.stage1.ratio, length, self.frame_temperature, generator
            )
            for mean, logscale, length in zip(means, logscales, loop_lengths, strict=True)
        ]
        audio = [
            self.stage1.decode(z)[0, 0, :n].cpu().numpy() for z, n in zip(sampled, loop_lengths, strict=True)
        ]
        return sampled, audio

    @torch.no_grad()
    def sample_trajectories(
        self,
        model: TrajectoryVAE,
        count: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``count`` phase-indexed loops, the decoded Gaussians ``(mean, logscale)``, each ``[count, L, K]``,
        of macros drawn where the training loops' codes lie (``TrajectoryVAE.draw_macros``, their spread times
        ``temperature``); with a ``generator`` the noise is drawn on the CPU from it (repeatable). Play them with
        :func:`sampled_loop`, never by their mean alone."""
        return model.decode(model.draw_macros(count, temperature, generator))

    @torch.no_grad()
    def sample_loops(
        self, model: TrajectoryVAE, count: int, loop_samples: int, temperature: float = 1.0
    ) -> Tensor:
        """``count`` new loops from the macro prior (a draw per stage-1 frame at ``frame_temperature``):
        audio ``[count, loop_samples]``."""
        device = next(model.parameters()).device
        mean, logscale = self.sample_trajectories(model, count, temperature)
        return sampled_loop(self.stage1.to(device), mean, logscale, loop_samples, self.frame_temperature)

    @torch.no_grad()
    def log_media(self, writer: SummaryWriter, model: nn.Module, data: TensorData, step: int) -> None:
        device = next(model.parameters()).device
        batch = data.take(slice(0, self.media_examples), device)
        samples = int(data.tensors["loop_samples"].median())
        for i, loop in enumerate(self.sample_loops(model, self.media_examples, samples).cpu()):
            tiled = loop.repeat(2).clamp(-1, 1)[None]  # twice, to hear the seam
            writer.add_audio(f"audio/sampled_loop/{i}", tiled, step, sample_rate=self.sample_rate)
        macro, _ = model.encode(batch["mean"])
        decoded, _ = model.decode(macro)
        for i in range(len(decoded)):
            own = int(batch["loop_samples"][i])
            audio = decoded_loop(self.stage1.to(device), decoded[i : i + 1], own)[0].cpu().clamp(-1, 1)
            writer.add_audio(
                f"audio/through_both_stages/{i}", audio[None], step, sample_rate=self.sample_rate
            )
        if len(decoded):
            rows = {"stage 1 (loop 0)": batch["mean"][0], "techno_prior decode": decoded[0]}
            figure = trajectory_rows_figure(
                {title: row.cpu().numpy() for title, row in rows.items()},
                "frame (bar phase)",
                "stage-1 latent",
            )
            writer.add_figure("trajectory/loop_0", figure, step)

    def metadata(self) -> dict[str, Any]:
        """What export and rendering need: the loop settings and the whole stage-1 model."""
        return {
            "bars": self.bars,
            "frames": self.frames,
            "sample_rate": self.sample_rate,
            "stage1_run": str(self.stage1_run),
            "stage1_args": self.stage1_args,
            "stage1_metadata": self.stage1_meta,
            "stage1_state": self.stage1.state_dict(),
        }

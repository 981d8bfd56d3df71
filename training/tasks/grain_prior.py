"""Training task of the grain VAE's optional prior, grain_prior: a VAE over sequences of grain latents.

Every sound of the grain corpus is cut into all its grains, in order (:func:`corpus.grains.frame_sound`, the
analysis hop of the grain run), and each grain is encoded once by the trained grain VAE (``grain_run``):
posterior mean and log-variance, ``[D]`` per grain. A sound's latent sequence is cut into windows of
``frames`` consecutive grains every ``window_hop`` grains (64 grains is 0.74 s at hop 256 and 22.05 kHz),
plus one window ending at the sound's last grain so that endings are learned. A sound shorter than one
window gets one window, padded by repeating its last latent (its last grain reaches past the sound's end,
so it is near silence: the padding continues the fade-out). Windows whose grains are all silent (under the
corpus threshold :data:`corpus.grains.SILENT_GRAIN_RMS`) are dropped, as the grain corpus drops silent grains.

The windows are learned by techno_prior's model, :class:`models.trajectory_vae.TrajectoryVAE`, with a
macro latent per window and the objectives of :mod:`latentlive.training.tasks.techno_prior` (``kl``: KL from the grain
posterior to the decoded Gaussian; ``nll``: likelihood of the posterior means or of a fresh sample). Its
convolutions are circular, made for loops: here the grain after a window's last grain is taken to be its
first. The frames near both ends of a window are therefore shaped by the other end as well (a one-shot's
attack sits next to its tail), and sequences sampled from the macro prior tend to end where they start: they
loop smoothly, which suits a texture played in a loop more than a one-shot.

The split is the grain run's own, read from its ``split.json`` and never drawn anew: the grain run's corpus is
read again with its settings (and its ``--db``), and a window is on the side of its sound's group, so the
metrics score sounds neither level heard. When the grain run split its one sound in time, a window is on the
side whose span of samples holds all of its grains' samples (the grain run's boundaries, recomputed from its
corpus and the recorded fractions); a window across a boundary is left out. A window is re-synthesised through
both levels (macro posterior mean -> latent sequence -> grain decoder -> :func:`corpus.grains.overlap_add` at
the analysis hop) and compared, as log-spectral distance, with the original audio of the samples that all its
grains cover. The grain run's weights travel in this run's
checkpoint. The sequences are in the grain VAE's own latent space, not in knob units: the knob PCA is in
``grain_metadata`` for a later export.
"""

import ast
import inspect
from pathlib import Path
from typing import Any

import gin
import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.tensorboard import SummaryWriter

from latentlive.core.cache import cache_dir
from latentlive.core.errors import UserError
from latentlive.core.runs import RunFolder
from latentlive.corpus.splits import SIDES, split_in_time
from latentlive.models.grain_vae import GrainVAE
from latentlive.models.spectral import stft_magnitude
from latentlive.models.trajectory_vae import TrajectoryVAE
from latentlive.training.metrics import log_spectral_distance
from latentlive.training.plots import trajectory_rows_figure
from latentlive.training.tasks.base import SplitData, TensorData, take_sides
from latentlive.training.tasks.grain import LSD_FLOOR, SOUND_FFT, GrainTask
from latentlive.training.tasks.trajectory_prior import (
    TrajectoryPriorTask,
    first_level_split,
    load_first_level,
)

# Settings of the grain corpus read back from the grain run, so the same sounds come back (its split: split.json).
CORPUS_SETTINGS = ("sample_rate", "grain_size", "hop", "max_grains", "sounds")
ENCODE_BATCH = 1024  # grains encoded at once


def grain_run_settings(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The grain-corpus settings of a grain run's checkpoint (:data:`CORPUS_SETTINGS`): from its metadata,
    else its bound ``GrainTask`` parameters (operative config text), else ``GrainTask``'s defaults."""
    defaults = {
        name: p.default
        for name, p in inspect.signature(GrainTask.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    bound: dict[str, Any] = {}
    for line in str(checkpoint.get("config", "")).splitlines():
        name, equals, value = line.partition("=")
        if equals and name.strip().startswith("GrainTask."):
            try:
                bound[name.strip().removeprefix("GrainTask.")] = ast.literal_eval(value.strip())
            except (ValueError, SyntaxError):
                continue  # not a plain literal (a gin reference): not one of the corpus settings
    meta = checkpoint.get("metadata", {})
    settings = {key: meta.get(key, bound.get(key, defaults[key])) for key in CORPUS_SETTINGS}
    settings["hop"] = settings["hop"] or settings["grain_size"] // 4
    settings["db"] = (checkpoint.get("run") or {}).get("db")  # the folder the grain run trained on, or None
    return settings


def load_grain_run(run_path: str | Path) -> tuple[GrainVAE, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The trained grain VAE of ``run_path`` (eval mode, CPU), its constructor arguments, its metadata and its
    corpus settings (:func:`grain_run_settings`, with ``db``)."""
    model, checkpoint = load_first_level(
        run_path,
        "grain",
        GrainVAE,
        "GrainPriorTask.grain_run must be a grain VAE run (gin/grain.gin), not a {found} run; "
        "train one with `latentlive train --gin gin/grain.gin`",
    )
    return model, checkpoint["model_args"], checkpoint["metadata"], grain_run_settings(checkpoint)


def window_starts(count: int, frames: int, window_hop: int) -> np.ndarray:
    """First grains (int64) of the windows of a sound of ``count`` grains: every ``window_hop`` grains, plus
    one window ending at the last grain; ``[0]`` when the sound is shorter than one window."""
    last = max(0, count - frames)
    starts = list(range(0, last + 1, window_hop))
    if starts[-1] != last:
        starts.append(last)
    return np.asarray(starts, dtype=np.int64)


def cut_windows(sequence: Tensor, starts: np.ndarray, frames: int) -> Tensor:
    """Windows ``[W, D, frames]`` of a latent sequence ``[D, P]`` at grains ``starts [W]``; past the end of
    the sequence the last latent is repeated."""
    index = torch.as_tensor(starts)[:, None] + torch.arange(frames)[None]
    return sequence[:, index.clamp(max=sequence.shape[1] - 1)].permute(1, 0, 2)


def window_samples(frames: int, grain_size: int, hop: int) -> int:
    """Samples of a window of ``frames`` grains that all its grains cover: ``(frames + 1) * hop - grain_size``
    (grain ``p`` covers sound samples ``p * hop - (grain_size - hop)`` to ``p * hop + hop``)."""
    return (frames + 1) * hop - grain_size


def window_audio(sound: np.ndarray, start: int, frames: int, grain_size: int, hop: int) -> np.ndarray:
    """The original audio float32 ``[window_samples]`` of the window of ``frames`` grains from grain ``start``
    of ``sound [T]``: samples ``start * hop`` onwards (zeros past the end of the sound), exactly what
    ``overlap_add`` of those grains gives back."""
    length = window_samples(frames, grain_size, hop)
    part = sound[start * hop : start * hop + length]
    return np.pad(part, (0, length - len(part))).astype(np.float32)


@torch.no_grad()
def sequence_audio(grain_vae: GrainVAE, latents: Tensor, hop: int) -> Tensor:
    """Decode latent sequences ``[B, D, K]`` grain by grain (Gaussian means) and overlap-add them at ``hop``:
    audio ``[B, window_samples(K, grain_size, hop)]`` on the CPU, aligned with :func:`window_audio`."""
    from latentlive.corpus.grains import overlap_add

    batch, size, frames = latents.shape
    grains, _ = grain_vae.decode(latents.permute(0, 2, 1).reshape(batch * frames, size))
    grains = grains.reshape(batch, frames, -1).cpu().numpy()
    length = window_samples(frames, grain_vae.grain_size, hop)
    return torch.from_numpy(np.stack([overlap_add(g, hop, length) for g in grains]))


def window_lsd(reference: Tensor, estimate: Tensor) -> Tensor:
    """Log-spectral distance in dB ``[B]`` of audio ``[B, T]`` pairs, with the grain task's STFT
    (``SOUND_FFT``, hop a quarter of it) and floor (``LSD_FLOOR``)."""
    spectra = [stft_magnitude(x, SOUND_FFT, SOUND_FFT // 4) for x in (reference, estimate)]
    return log_spectral_distance(*spectra, LSD_FLOOR)


@gin.configurable
class GrainPriorTask(TrajectoryPriorTask):
    """grain_prior, the prior of the grain VAE: windows of consecutive grain latents -> a macro latent per window.

    Args:
        grain_run: the trained grain VAE run (``gin/grain.gin``).
        frames: grains per window (``K``); more than ``grain_size / hop`` so a window covers some audio whole.
        window_hop: grains between the starts of two windows of a sound (default ``frames // 2``).
        objective: ``nll`` or ``kl`` (see :mod:`latentlive.training.tasks.techno_prior`).
        target: with ``nll``, fit the grain posterior ``mean`` or a fresh ``sample`` of it.
        beta, beta_schedule, warmup_steps: the weight of the macro KL and its warm-up.
        max_windows: windows kept of the corpus (spread evenly), to bound memory with folders of long sounds.
        eval_windows: held-out windows re-synthesised for the spectral metric (spread evenly).
        media_examples: sampled and re-synthesised sequences played in TensorBoard.
    """

    name = "grain_prior"

    def __init__(
        self,
        grain_run: str = "runs/grain",
        frames: int = 64,
        window_hop: int | None = None,
        objective: str = "kl",
        target: str = "mean",
        beta: float = 1.0,
        beta_schedule: str = "linear",
        warmup_steps: int = 2000,
        max_windows: int = 20000,
        eval_windows: int = 64,
        media_examples: int = 4,
    ) -> None:
        self._set_objective(objective, target, beta, beta_schedule, warmup_steps)
        self.grain_run, self.frames = grain_run, frames
        self.window_hop = window_hop or max(1, frames // 2)
        self.max_windows, self.eval_windows = max_windows, eval_windows
        self.media_examples = media_examples
        self.grain_vae, self.grain_args, self.grain_meta, self.settings = load_grain_run(grain_run)
        self.source_latent_size = self.grain_vae.latent_size
        self.split, _ = first_level_split(grain_run)
        self.sample_rate = int(self.settings["sample_rate"])
        self.grain_size, self.hop = int(self.settings["grain_size"]), int(self.settings["hop"])
        if window_samples(frames, self.grain_size, self.hop) <= 0 or self.window_hop < 1:
            raise UserError(
                f"GrainPriorTask.frames = {frames}, window_hop = {window_hop}: a window must span more than "
                f"one grain ({self.grain_size // self.hop} grains at hop {self.hop}) and windows must move; "
                "use e.g. frames = 64, window_hop = 32"
            )
        self._sounds: dict[int, np.ndarray] = {}  # the held-out sounds, for the audio of their windows
        self._sound_count = 0  # sounds read so far: the "sound" index of a held-out folder's first sound

    def _corpus(self, db: Path | None, log: Any) -> Any:
        from latentlive.corpus.grains import load_grains

        settings = {key: self.settings[key] for key in ("sample_rate", "grain_size", "hop", "max_grains")}
        return load_grains(
            db, sounds=self.settings["sounds"], seed=0, cache_dir=cache_dir(), log=log, **settings
        )

    @torch.no_grad()
    def _windows(self, corpus: Any, log: Any) -> dict[str, Tensor]:
        """Every window of every sound of ``corpus`` (:meth:`_sound_windows`, at most ``max_windows``), the
        sounds numbered from ``self._sound_count`` on."""
        log(f"encoding every grain of {len(corpus.sounds)} sounds with the grain VAE of {self.grain_run}")
        parts: dict[str, list[Tensor]] = {"mean": [], "logvar": [], "sound": [], "start": []}
        for index, sound in enumerate(corpus.sounds):
            for key, value in self._sound_windows(sound, self._sound_count + index).items():
                parts[key].append(value)
        self._sound_count += len(corpus.sounds)
        data = {key: torch.cat(value) for key, value in parts.items()}
        if len(data["sound"]) > self.max_windows:
            keep = torch.linspace(0, len(data["sound"]) - 1, self.max_windows).round().long()
            data = {key: value[keep] for key, value in data.items()}
        return data

    def _window_sides(self, corpus: Any, data: dict[str, Tensor], source: str) -> np.ndarray:
        """The side (str, ``""`` for none) of each window: its sound's group's side in the grain run's split,
        or for a split in time the side whose samples hold the window's (see the module docstring)."""
        groups = np.asarray(corpus.groups, dtype=object)
        unknown = sorted({g for g in corpus.groups if self.split.side_of(g) is None})
        if unknown or (self.split.by_time and len(groups) != 1):
            why = (
                f"{unknown[0]!r} is not in its split.json"
                if unknown
                else f"it split one sound, not {len(groups)}"
            )
            raise UserError(
                f"{source}: not the sounds the grain run {self.grain_run} split ({why}); "
                "train grain_prior on the grain run's own data (no --db)"
            )
        sound = data["sound"].numpy()
        if not self.split.by_time:
            return np.array([self.split.side_of(g) for g in groups[sound]], dtype=object)
        # the grain run's sides in time (grain starts at position * hop, as GrainTask.load_data)
        starts = np.asarray(corpus.position) * self.hop
        sides = split_in_time(starts, self.grain_size, self.split.fractions)
        firsts = [int(starts[sides[side]].min()) if len(sides[side]) else None for side in SIDES]
        first = data["start"].numpy() * self.hop
        last = (data["start"].numpy() + self.frames - 1) * self.hop + self.grain_size
        result = np.full(len(first), "", dtype=object)
        for k, side in enumerate(SIDES):
            if firsts[k] is None:
                continue
            begin = 0 if k == 0 else firsts[k]
            end = next((f for f in firsts[k + 1 :] if f is not None), None)
            inside = (first >= begin) & ((last <= end) if end is not None else True)
            result[inside] = side
        return result

    @torch.no_grad()
    def load_data(self, db: Path | None, seed: int, log: Any = print) -> SplitData:
        """The windows of the grain run's corpus on the sides of the grain run's split (``seed`` is not used:
        the split is the grain run's)."""
        if db is None and self.settings.get("db"):
            db = Path(self.settings["db"])
        source = str(db) if db is not None else "built-in corpus"
        corpus = self._corpus(db, log)
        self._sound_count, self._sounds = 0, {}
        data = self._windows(corpus, log)
        window_side = self._window_sides(corpus, data, source)
        indices = {side: np.flatnonzero(window_side == side) for side in SIDES}
        if not len(indices["train"]) or not len(indices["validation"]):
            raise UserError(
                f"{source}: no windows of {self.frames} grains on the "
                f"{'train' if not len(indices['train']) else 'validation'} side of the grain run's split "
                f"({', '.join(f'{len(indices[side])} {side}' for side in SIDES)}); use more sounds or fewer frames"
            )
        held_out = set(
            data["sound"][torch.as_tensor(np.concatenate([indices["validation"], indices["test"]]))].tolist()
        )
        self._sounds = {i: corpus.sounds[i] for i in held_out}
        split_data = take_sides(TensorData(data), indices, self.split)
        log(
            f"grain sequences: windows of {self.frames} grains, "
            + ", ".join(f"{len(indices[side])} {side}" for side in SIDES)
            + f" (the split of {RunFolder(Path(self.grain_run)).split_file})"
        )
        return split_data

    def load_held_out(self, db: Path, log: Any = print) -> TensorData:
        """The windows of every sound of the folder ``db``, encoded by the grain run's VAE."""
        corpus = self._corpus(db, log)
        first = self._sound_count
        data = self._windows(corpus, log)
        self._sounds.update({first + i: sound for i, sound in enumerate(corpus.sounds)})
        return TensorData(data)

    def _sound_windows(self, sound: np.ndarray, index: int) -> dict[str, Tensor]:
        """The windows of one sound: ``mean``, ``logvar`` ``[W, D, K]``, ``sound``, ``start`` ``[W]``."""
        from latentlive.corpus.grains import SILENT_GRAIN_RMS, frame_sound

        grains = torch.from_numpy(frame_sound(sound, self.grain_size, self.hop))
        posterior = [self.grain_vae.encode(g.unsqueeze(1)) for g in grains.split(ENCODE_BATCH)]
        mean = torch.cat([m for m, _ in posterior]).T  # [D, P]
        logvar = torch.cat([v for _, v in posterior]).T
        starts = window_starts(len(grains), self.frames, self.window_hop)
        loud = grains.pow(2).mean(1).sqrt() >= SILENT_GRAIN_RMS
        starts = starts[[bool(loud[s : s + self.frames].any()) for s in starts]]
        return {
            "mean": cut_windows(mean, starts, self.frames),
            "logvar": cut_windows(logvar, starts, self.frames),
            "sound": torch.full((len(starts),), index, dtype=torch.int64),
            "start": torch.from_numpy(starts),
        }

    def _original_audio(self, batch: dict[str, Tensor]) -> Tensor:
        """The original audio ``[B, window_samples]`` of held-out windows."""
        rows = [
            window_audio(self._sounds[int(s)], int(p), self.frames, self.grain_size, self.hop)
            for s, p in zip(batch["sound"], batch["start"], strict=True)
        ]
        return torch.from_numpy(np.stack(rows))

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: TensorData) -> dict[str, float]:
        """Held-out objective and macro KL, their total, the RMS error of the decoded sequence mean against the
        grain posterior means, and the log-spectral distance (dB) between held-out windows and their
        re-synthesis through both levels; ``eval/window_lsd_grain_only`` decodes the grain posterior means
        directly: the part of the distance the grain VAE alone leaves."""
        device = next(model.parameters()).device
        self.grain_vae.to(device)
        batch = data.take(slice(None), device)
        metrics, decoded = self._fit_metrics(model, batch, "sequence_rmse")
        if len(data) == 0:
            return metrics
        index = torch.linspace(0, len(data) - 1, min(len(data), self.eval_windows)).round().long().unique()
        chosen = {key: value[index.to(device)] for key, value in batch.items()}
        original = self._original_audio(chosen)
        both = sequence_audio(self.grain_vae, decoded[index.to(device)], self.hop)
        grain_only = sequence_audio(self.grain_vae, chosen["mean"], self.hop)
        metrics["eval/window_lsd"] = window_lsd(original, both).mean().item()
        metrics["eval/window_lsd_grain_only"] = window_lsd(original, grain_only).mean().item()
        return metrics

    @torch.no_grad()
    def sample_sequences(self, model: TrajectoryVAE, count: int, temperature: float = 1.0) -> Tensor:
        """``count`` new sequences from the macro prior, re-synthesised: audio ``[count, window_samples]``."""
        device = next(model.parameters()).device
        macro = model.draw_macros(count, temperature)  # where the training windows' codes lie
        return sequence_audio(self.grain_vae.to(device), model.decode(macro)[0], self.hop)

    @torch.no_grad()
    def log_media(self, writer: SummaryWriter, model: nn.Module, data: TensorData, step: int) -> None:
        device = next(model.parameters()).device
        rate = self.sample_rate
        for i, audio in enumerate(self.sample_sequences(model, self.media_examples)):
            writer.add_audio(f"audio/sampled_sequence/{i}", audio.clamp(-1, 1)[None], step, sample_rate=rate)
        index = torch.linspace(0, len(data) - 1, min(len(data), self.media_examples)).round().long().unique()
        batch = data.take(index, device)
        if len(index) == 0:
            return
        macro, _ = model.encode(batch["mean"])
        decoded, _ = model.decode(macro)
        both = sequence_audio(self.grain_vae.to(device), decoded, self.hop)
        for i, (original, rebuilt) in enumerate(zip(self._original_audio(batch), both, strict=True)):
            writer.add_audio(f"audio/input/{i}", original[None], step, sample_rate=rate)
            writer.add_audio(
                f"audio/through_both_levels/{i}", rebuilt.clamp(-1, 1)[None], step, sample_rate=rate
            )
        rows = {"grain latents (window 0)": batch["mean"][0], "grain_prior": decoded[0]}
        figure = trajectory_rows_figure(
            {title: row.cpu().numpy() for title, row in rows.items()}, "grain", "grain latent"
        )
        writer.add_figure("sequence/window_0", figure, step)

    def metadata(self) -> dict[str, Any]:
        """What export and rendering need: the window settings and the whole grain VAE (its knob PCA too)."""
        return {
            "frames": self.frames,
            "window_hop": self.window_hop,
            "window_samples": window_samples(self.frames, self.grain_size, self.hop),
            "sample_rate": self.sample_rate,
            "grain_size": self.grain_size,
            "hop": self.hop,
            "grain_run": str(self.grain_run),
            "grain_args": self.grain_args,
            "grain_metadata": self.grain_meta,
            "grain_state": {key: value.cpu() for key, value in self.grain_vae.state_dict().items()},
        }

"""Training task of the grain VAE: windowed waveform grains of any sounds (22.05 kHz by default).

The loss is a Gaussian negative log-likelihood of the grain's samples plus a multi-scale spectral distance
(weights in gin) and the KL divergence with warm-up. Sounds, not grains, are held out: each grain's group is its
source (a file of the folder, a built-in texture's seed, a soundfont sample and all its variants), and the groups
are dealt to train / validation / test (``corpus.splits``, the run's ``split.json``); a folder of one sound is
split in time. The held-out metrics score sounds the model never heard: log-spectral distance and spectral
convergence of grain reconstructions, and of whole held-out sounds re-synthesised by encoding every grain,
decoding it and overlap-adding. The latents are
ordered by a PCA of the training codes, stored with the model: the instrument's knobs are its axes.

``evaluate`` also scores what the instrument makes from its prior (issue #18, ``training.sample_quality``): a
texture of the granular engine along a latent walk drawn from N(0, 1), and single grains decoded from N(0, 1)
latents, each against held-out audio (see :meth:`GrainTask.sample_quality`).
"""

import math
from pathlib import Path
from typing import Any

import gin
import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.tensorboard import SummaryWriter

from latentlive.core.cache import cache_dir
from latentlive.corpus.splits import SIDES, split_examples
from latentlive.models.grain_vae import GrainVAE
from latentlive.models.granular import GranularEngine
from latentlive.models.spectral import multiscale_spectral_distance, stft_magnitude
from latentlive.models.vae import BetaSchedule, gaussian_nll, kl_standard_normal
from latentlive.training.config import configured_arguments
from latentlive.training.metrics import log_spectral_distance, spectral_convergence
from latentlive.training.plots import latent_map_figure
from latentlive.training.sample_quality import frame_rate_share, sample_quality
from latentlive.training.tasks.base import (
    SplitData,
    TensorData,
    require_enough_data,
    split_fractions,
    take_sides,
)

METRIC_FFT = 256  # STFT of the grain metrics: 11.6 ms windows at 22.05 kHz
SOUND_FFT = 1024  # STFT of the whole-sound metrics
# Log-spectral distances floor magnitudes at -60 dB (full scale 1): windowed grains are mostly near-silent
# bins, and at the default -100 dB floor the metric would mostly measure noise 60 dB below the sound.
LSD_FLOOR = 1e-3
QUALITY_SEED = 0  # of the prior draws of the sample-quality measures: evaluate is repeatable
WALK_SECONDS = 1.0  # time constant of the texture's latent walk: it drifts across the prior in about this
# synchronous grains at the old default rate: the drone that a model of alike grains makes of them
SYNC_SETTINGS = {"density": 40.0, "jitter": 0.0, "spray": 0.0}
ENGINE_BLOCK_FRAMES = 32  # path frames per engine call: whole frames, a few grains a call, like nn~


def principal_axes(codes: np.ndarray) -> dict[str, list]:
    """PCA of codes ``[N, D]``: ``pca_mean [D]``, ``pca_components [D, D]`` (rows by decreasing variance, each
    row's largest entry positive) and ``pca_std [D]``. Knob ``k`` moves the code along axis ``k`` in units of its
    spread: ``z = pca_mean + sum_k knob_k * pca_std[k] * pca_components[k]``."""
    codes = codes.astype(np.float64)
    mean = codes.mean(0)
    # D axes from N codes: the thin SVD when N >= D (the full one would build an N x N matrix: 3 GB for 20k codes)
    _, singular, axes = np.linalg.svd(codes - mean, full_matrices=len(codes) < codes.shape[1])
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(1)])
    std = np.zeros(codes.shape[1])
    std[: len(singular)] = singular / np.sqrt(max(1, len(codes) - 1))
    return {
        "pca_mean": mean.tolist(),
        "pca_components": (axes * signs[:, None]).tolist(),
        "pca_std": std.tolist(),
    }


def grain_spectra(grains: Tensor) -> Tensor:
    """Magnitudes ``[N, F, M]`` of grains ``[N, 1, G]`` or ``[N, G]`` for the held-out metrics."""
    return stft_magnitude(grains.reshape(len(grains), -1), METRIC_FFT, METRIC_FFT // 4)


class _HeldOutGrains(nn.Module):
    """A stand-in decoder for ``GranularEngine``: ``decode_mean(z [N, 1])`` is the held-out grain number ``z``
    (``[N, 1, G]``), so the engine plays real grains exactly as it plays decoded ones."""

    def __init__(self, grains: Tensor) -> None:
        super().__init__()
        self.grains = grains  # [N, G]

    def decode_mean(self, z: Tensor) -> Tensor:
        return self.grains[z[:, 0].round().long()].unsqueeze(1)


def _configured(engine: GranularEngine, settings: dict[str, float] | None) -> GranularEngine:
    """``engine`` with the attributes ``settings`` set (None: its defaults)."""
    for name, value in (settings or {}).items():
        setattr(engine, name, value)
    return engine


def _spread_runs(total: int, count: int, run: int) -> Tensor:
    """``count`` of ``range(total)`` in runs of up to ``run`` consecutive indices whose starts are spread evenly."""
    if count >= total:
        return torch.arange(total)
    run = max(1, min(run, count))
    runs = -(-count // run)
    starts = torch.linspace(0, total - run, runs).round().long()
    return (starts[:, None] + torch.arange(run)).flatten()[:count]


@gin.configurable
class GrainTask:
    """The grain VAE on grains of sounds (built-in one-shots and textures, or a folder given with ``--db``).

    Args:
        sample_rate: rate of the model's audio (Hz).
        grain_size: samples per grain (1024; 2048 as an option).
        hop: analysis hop (default a quarter grain).
        max_grains: grains kept of the corpus (spread evenly).
        sounds: sounds in the built-in corpus (held out by group with ``split_fractions``).
        gaussian_weight, spectral_weight: weights of the Gaussian likelihood and the spectral distance.
        spectral_scales: FFT sizes of the spectral distance.
        spectral_floor: magnitude floor of its log term. Windowed grains are mostly quiet bins; a floor far
            below the level of the sound (1e-7) rewards a silent decoder, one near -60 dB does not.
        beta, beta_schedule, warmup_steps: the KL weight and its warm-up.
        eval_sounds: held-out sounds re-synthesised whole for the metrics and TensorBoard.
        pca_examples: training grains encoded for the PCA of the knobs.
        quality_seconds: length of the texture the sample-quality measures render from the prior (0: none).
        quality_grains: grains decoded from N(0, 1) latents for the sample-quality measures (0: none).
    """

    name = "grain"

    def __init__(
        self,
        sample_rate: int = 22050,
        grain_size: int = 1024,
        hop: int | None = None,
        max_grains: int = 50000,
        sounds: int = 512,
        gaussian_weight: float = 1.0,
        spectral_weight: float = 1.0,
        spectral_scales: tuple[int, ...] = (1024, 512, 256, 128, 64),
        spectral_floor: float = 1e-3,
        beta: float = 1.0,
        beta_schedule: str = "linear",
        warmup_steps: int = 5000,
        eval_sounds: int = 8,
        pca_examples: int = 4096,
        quality_seconds: float = 4.0,
        quality_grains: int = 256,
    ) -> None:
        self.sample_rate, self.grain_size = sample_rate, grain_size
        self.hop = hop or grain_size // 4
        self.max_grains, self.sounds = max_grains, sounds
        self.gaussian_weight, self.spectral_weight = gaussian_weight, spectral_weight
        self.spectral_scales = tuple(s for s in spectral_scales if s <= grain_size)
        self.spectral_floor = spectral_floor
        self.beta = BetaSchedule(beta_schedule, 0.0, beta, warmup_steps)
        self.eval_sounds, self.pca_examples = eval_sounds, pca_examples
        self.quality_seconds, self.quality_grains = quality_seconds, quality_grains
        self._train: TensorData | None = None
        self._model: GrainVAE | None = None
        # the sounds no training grain came from, by the data's "sound" index: re-synthesised whole
        self._held_out_sounds: dict[int, np.ndarray] = {}
        self._sound_count = 0  # sounds read so far: the "sound" index of the next corpus's first sound
        self.db: str | None = None

    def _corpus(self, db: Path | None, log: Any) -> Any:
        from latentlive.corpus.grains import load_grains

        return load_grains(
            db,
            sample_rate=self.sample_rate,
            grain_size=self.grain_size,
            hop=self.hop,
            max_grains=self.max_grains,
            sounds=self.sounds,
            seed=0,  # one built-in corpus for every training seed; the seed varies the split
            cache_dir=cache_dir(),
            log=log,
        )

    def _tensors(self, corpus: Any) -> TensorData:
        """``grain [N, G]``, ``sound [N]`` (the corpus's sounds numbered on from earlier corpora) and ``position
        [N]`` (the grain's index in its sound: it covers samples from ``(position + 1) * hop - grain_size`` on)."""
        offset, self._sound_count = self._sound_count, self._sound_count + len(corpus.sounds)
        return TensorData(
            {
                "grain": torch.from_numpy(np.asarray(corpus.grains, dtype=np.float32)),
                "sound": torch.from_numpy(np.asarray(corpus.sound, dtype=np.int64) + offset),
                "position": torch.from_numpy(np.asarray(corpus.position, dtype=np.int64)),
            }
        )

    def load_data(self, db: Path | None, seed: int, log: Any = print) -> SplitData:
        """The grains of ``db`` (or the built-in sounds), their sounds' groups dealt to the sides with ``seed``."""
        corpus = self._corpus(db, log)
        self.db = str(db) if db is not None else None
        self._held_out_sounds, self._sound_count = {}, 0
        # grain p covers samples p * hop - (grain_size - hop) onwards: one sound alone is split in time at
        # sample boundaries, so no sample of a held-out grain lies in a training grain
        starts = np.asarray(corpus.position) * self.hop
        split, sides = split_examples(corpus.grain_groups(), starts, self.grain_size, split_fractions(), seed)
        data = take_sides(self._tensors(corpus), sides, split)
        if not split.by_time:
            self._held_out_sounds = {
                i: sound
                for i, (sound, group) in enumerate(zip(corpus.sounds, corpus.groups, strict=True))
                if split.side_of(group) != "train"
            }
        self._train = data.train
        counts = ", ".join(f"{len(data.side(side))} {side}" for side in SIDES)
        how = "/".join(str(len(split.groups[side])) for side in SIDES) + " sounds held out whole"
        log(f"grains: {counts} ({'one sound split in time' if split.by_time else how})")
        require_enough_data(
            str(db) if db is not None else "built-in sounds",
            data.train,
            data.validation,
            "grains",
            f"add sounds (one of {4 * self.grain_size / self.sample_rate:.1f} s or more is enough)",
        )
        return data

    def load_held_out(self, db: Path, log: Any = print) -> TensorData:
        """Every grain of the folder ``db`` (at most ``max_grains``, spread evenly), its sounds re-synthesised whole
        by :meth:`evaluate`."""
        corpus = self._corpus(db, log)
        first = self._sound_count
        self._held_out_sounds.update({first + i: sound for i, sound in enumerate(corpus.sounds)})
        return self._tensors(corpus)

    def _whole_sounds(self, data: TensorData, count: int) -> list[np.ndarray]:
        """Up to ``count`` sounds of ``data`` held out whole (none of a sound split in time)."""
        present = sorted(set(data.tensors["sound"].tolist()) & set(self._held_out_sounds))
        return [self._held_out_sounds[int(i)] for i in present[:count]]

    def build_model(self) -> tuple[GrainVAE, dict[str, Any]]:
        args = configured_arguments(GrainVAE)
        args.update(grain_size=self.grain_size)
        self._model = GrainVAE(**args)
        return self._model, args

    def losses(self, model: nn.Module, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        grains = batch["grain"].unsqueeze(1)
        mean, logscale, _, mu, logvar = model(grains)
        return {
            # nats per grain: with the KL in nats per grain too, beta = 1 is the ELBO
            "loss/gaussian": gaussian_nll(mean, logscale, grains).mean(),
            "loss/spectral_distance": multiscale_spectral_distance(
                mean, grains, scales=self.spectral_scales, eps=self.spectral_floor
            ),
            "loss/divergence": kl_standard_normal(mu, logvar).mean(),
        }

    def loss_weights(self, step: int) -> dict[str, float]:
        return {
            "loss/gaussian": self.gaussian_weight,
            "loss/spectral_distance": self.spectral_weight,
            "loss/divergence": self.beta(step),
        }

    @torch.no_grad()
    def resynthesise(self, model: nn.Module, sound: np.ndarray) -> np.ndarray:
        """A whole sound through the model: every grain encoded (posterior mean), decoded, overlap-added."""
        from latentlive.corpus.grains import frame_sound, overlap_add

        device = next(model.parameters()).device
        grains = torch.from_numpy(frame_sound(sound, self.grain_size, self.hop)).to(device)
        decoded = torch.cat([model.decode(model.encode(g.unsqueeze(1))[0])[0] for g in grains.split(512)])
        # corpus.grains.overlap_add already drops the leading pad of frame_sound: no second crop
        return overlap_add(decoded[:, 0].cpu().numpy(), self.hop, len(sound))

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: TensorData) -> dict[str, float]:
        """Held-out grains reconstructed from the posterior mean (LSD in dB, SC, the likelihood and KL terms) and
        held-out sounds re-synthesised grain by grain (LSD, SC of their STFT magnitudes), and the sample quality
        of what the instrument makes from its prior (:meth:`sample_quality`)."""
        device = next(model.parameters()).device
        lsd, sc, nll, kl = [], [], [], []
        for index in torch.arange(len(data)).split(1024):
            grains = data.take(index, device)["grain"].unsqueeze(1)
            mu, logvar = model.encode(grains)
            mean, logscale = model.decode(mu)
            reference, estimate = grain_spectra(grains), grain_spectra(mean)
            lsd.append(log_spectral_distance(reference, estimate, LSD_FLOOR))
            sc.append(spectral_convergence(reference, estimate))
            nll.append(gaussian_nll(mean, logscale, grains) / self.grain_size)
            kl.append(kl_standard_normal(mu, logvar))
        metrics = {
            "eval/lsd": torch.cat(lsd).mean().item(),
            "eval/sc": torch.cat(sc).mean().item(),
            "eval/gaussian": torch.cat(nll).mean().item(),
            "eval/kl": torch.cat(kl).mean().item(),
        }
        sound_lsd, sound_sc = [], []
        for sound in self._whole_sounds(data, self.eval_sounds):
            original = torch.from_numpy(sound)[None]
            rebuilt = torch.from_numpy(self.resynthesise(model, sound))[None]
            reference = stft_magnitude(original, SOUND_FFT, SOUND_FFT // 4)
            estimate = stft_magnitude(rebuilt, SOUND_FFT, SOUND_FFT // 4)
            sound_lsd.append(log_spectral_distance(reference, estimate, LSD_FLOOR).item())
            sound_sc.append(spectral_convergence(reference, estimate).item())
        if sound_lsd:
            metrics["eval/sound_lsd"] = float(np.mean(sound_lsd))
            metrics["eval/sound_sc"] = float(np.mean(sound_sc))
        metrics.update(self.sample_quality(model, data))
        return metrics

    @torch.no_grad()
    def sample_quality(self, model: nn.Module, data: TensorData) -> dict[str, float]:
        """``training.sample_quality`` of two generated sets against held-out grains of ``data``, drawn with a
        fixed seed (the global RNG is left as it was):

        * ``eval/quality/...``: a texture of ``quality_seconds`` from the granular engine as the instrument
          plays it (``GranularEngine`` at its default settings, those of the export's ``DEFAULT_SETTINGS``:
          a cloud of 100 grains/s at random intervals, jitter 1, no spray, whole grains), along a latent path
          drawn from the prior: a slow walk whose every frame is N(0, 1) (an Ornstein-Uhlenbeck path, time
          constant ``WALK_SECONDS``, a frame every ``hop`` samples). The corpus side is the same engine at the
          same settings playing held-out grains instead of decoded ones (one grain per path frame, in the
          order of their sounds, runs of a second from sounds spread over the side: the way the instrument
          re-plays a followed sound), so that the grain-rate share (``frame_share/grain``, rate = the
          density) compares the model's texture with what the same schedule makes of real grains.
          ``frame_share/grain_sync`` (and ``..._corpus``): the same share for synchronous grains
          (``SYNC_SETTINGS``: 40 evenly spaced grains a second), where a model whose grains sound alike
          turns the grain rate into a pitch.
        * ``eval/quality/grains/...``: ``quality_grains`` grains decoded from N(0, 1) latents against as many
          held-out grains spread over ``data``, each grain one clip (no frame-rate share: a grain is shorter
          than a period of the rates worth measuring).

        A model with nothing to sample from (no ``decode_mean`` and ``latent_size``: a stand-in that only
        reconstructs) reports none.
        """
        if len(data) == 0 or not hasattr(model, "decode_mean") or not hasattr(model, "latent_size"):
            return {}
        metrics: dict[str, float] = {}
        if self._quality_frames() > 0:
            texture, corpus = self.prior_texture(model), self.corpus_texture(data)
            rates = {"grain": float(GranularEngine(model, self.grain_size, self.sample_rate, 1).density)}
            metrics.update(
                sample_quality([texture], [corpus], self.sample_rate, rates, prefix="eval/quality/")
            )
            sync = (self.prior_texture(model, SYNC_SETTINGS), self.corpus_texture(data, SYNC_SETTINGS))
            for side, clip in zip(("", "_corpus"), sync, strict=True):
                metrics[f"eval/quality/frame_share/grain_sync{side}"] = frame_rate_share(
                    [clip], self.sample_rate, SYNC_SETTINGS["density"]
                )
        if self.quality_grains > 0:
            metrics.update(
                sample_quality(
                    list(self.prior_grains(model)),
                    list(self.corpus_grains(data)),
                    self.sample_rate,
                    {},
                    prefix="eval/quality/grains/",
                )
            )
        return metrics

    def _quality_frames(self) -> int:
        return int(round(self.quality_seconds * self.sample_rate / self.hop))

    @torch.no_grad()
    def prior_texture(self, model: nn.Module, settings: dict[str, float] | None = None) -> np.ndarray:
        """The generated texture of :meth:`sample_quality`: ``[quality frames * hop]`` at the model rate, the
        engine at its defaults or at ``settings`` (engine attributes, e.g. ``SYNC_SETTINGS``)."""
        generator = torch.Generator().manual_seed(QUALITY_SEED)
        walk = self._prior_walk(model.latent_size, self._quality_frames(), generator)
        device = next(model.parameters()).device
        engine = GranularEngine(model, self.grain_size, self.sample_rate, model.latent_size).to(device)
        return self._play(_configured(engine, settings), walk.to(device))

    def corpus_texture(self, data: TensorData, settings: dict[str, float] | None = None) -> np.ndarray:
        """The corpus side of the texture of :meth:`sample_quality`: the held-out grains of ``data`` played by the
        same engine (at the same ``settings``), ``[min(quality frames, len(data)) * hop]``."""
        order = self._held_out_order(data)
        frames = min(self._quality_frames(), len(order))
        index = order[_spread_runs(len(order), frames, int(round(self.sample_rate / self.hop)))]
        engine = GranularEngine(
            _HeldOutGrains(data.tensors["grain"][index]), self.grain_size, self.sample_rate, 1
        )
        path = torch.arange(frames, dtype=torch.float32)[None, None]
        return self._play(_configured(engine, settings), path)

    @torch.no_grad()
    def prior_grains(self, model: nn.Module) -> np.ndarray:
        """``quality_grains`` grains ``[N, G]`` decoded from N(0, 1) latents (seeded)."""
        generator = torch.Generator().manual_seed(QUALITY_SEED)
        z = torch.randn(self.quality_grains, model.latent_size, generator=generator)
        device = next(model.parameters()).device
        decoded = torch.cat([model.decode_mean(part.to(device)) for part in z.split(1024)])
        return decoded[:, 0].cpu().numpy().astype(np.float64)

    def corpus_grains(self, data: TensorData) -> np.ndarray:
        """Up to ``quality_grains`` grains ``[N, G]`` of ``data``, spread evenly over it."""
        grains = data.tensors["grain"]
        count = min(self.quality_grains, len(grains))
        return grains[torch.linspace(0, len(grains) - 1, count).round().long()].numpy().astype(np.float64)

    def _held_out_order(self, data: TensorData) -> Tensor:
        """Indices of ``data``'s grains ordered by sound, then by position in it."""
        sound, position = data.tensors["sound"], data.tensors["position"]
        if len(sound) == 0:
            return torch.zeros(0, dtype=torch.long)
        return torch.argsort(sound * (int(position.max()) + 1) + position)

    def _prior_walk(self, latent_size: int, frames: int, generator: torch.Generator) -> Tensor:
        """Latent path ``[1, D, frames]``: every frame N(0, 1), neighbours correlated over ``WALK_SECONDS``."""
        keep = math.exp(-self.hop / (WALK_SECONDS * self.sample_rate))
        noise = torch.randn(latent_size, frames, generator=generator)
        path = torch.empty(latent_size, frames)
        path[:, 0] = noise[:, 0]
        for i in range(1, frames):
            path[:, i] = keep * path[:, i - 1] + math.sqrt(1.0 - keep**2) * noise[:, i]
        return path[None]

    def _play(self, engine: GranularEngine, path: Tensor) -> np.ndarray:
        """Audio ``[frames * hop]`` of ``engine`` along ``path [1, D, frames]`` (a frame per ``hop`` samples),
        in calls of ``ENGINE_BLOCK_FRAMES`` frames as a stream; the engine's own random draws (none at the
        default settings) seeded and the global RNG restored."""
        out = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(QUALITY_SEED)
            for block in path.split(ENGINE_BLOCK_FRAMES, dim=2):
                out.append(engine(block, self.hop, block.shape[2] * self.hop))
        return torch.cat(out, dim=2)[0, 0].cpu().numpy().astype(np.float64)

    @torch.no_grad()
    def log_media(self, writer: SummaryWriter, model: nn.Module, data: TensorData, step: int) -> None:
        for i, sound in enumerate(self._whole_sounds(data, 4)):
            writer.add_audio(
                f"audio/input/{i}", torch.from_numpy(sound)[None], step, sample_rate=self.sample_rate
            )
            rebuilt = np.clip(self.resynthesise(model, sound), -1, 1)
            writer.add_audio(
                f"audio/resynthesis/{i}", torch.from_numpy(rebuilt)[None], step, sample_rate=self.sample_rate
            )
        device = next(model.parameters()).device
        index = torch.linspace(0, len(data) - 1, min(len(data), 2000)).long()
        batch = data.take(index, device)
        codes = model.encode(batch["grain"].unsqueeze(1))[0].cpu().numpy()
        sounds = batch["sound"].cpu().numpy()
        labels = (
            np.unique(sounds, return_inverse=True)[1] % 10
        )  # colour by sound (cycling), to see sounds as paths
        figure = latent_map_figure(codes, labels, [f"sounds mod 10 = {k}" for k in range(10)])
        writer.add_figure("latent/map_by_sound", figure, step)

    def metadata(self) -> dict[str, Any]:
        """What export needs: the grain settings and the PCA of the training codes (the knobs)."""
        meta: dict[str, Any] = {
            "sample_rate": self.sample_rate,
            "grain_size": self.grain_size,
            "hop": self.hop,
        }
        if self._model is not None and self._train is not None:
            meta.update(self._pca(self._model))
        return meta

    @torch.no_grad()
    def _pca(self, model: GrainVAE) -> dict[str, list]:
        assert self._train is not None
        device = next(model.parameters()).device
        index = torch.linspace(0, len(self._train) - 1, min(len(self._train), self.pca_examples)).long()
        was_training = model.training
        model.eval()
        grains = self._train.take(index, device)["grain"].unsqueeze(1)
        codes = torch.cat([model.encode(g)[0] for g in grains.split(512)]).cpu().numpy()
        model.train(was_training)
        return principal_axes(codes)

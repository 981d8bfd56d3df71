"""Training task of the drum synth: a class-conditional VAE over NSGT log-magnitudes of drum one-shots.

The signal path, shared by training, evaluation and the metadata that export reads:

* analysis: audio ``[N, T]`` -> NSGT magnitudes ``[N, F, M_full]`` (octave scale, ``M_full`` the smallest
  fast frame count >= the widest window that is a multiple of ``16 * time_pool``) -> RMS-pooled over
  ``time_pool`` frames (energy is kept, so levels survive the round trip) -> ``log(max(., log_floor))``
  ``[N, 1, F, M]`` with ``M = M_full / time_pool``;
* synthesis: log-magnitudes -> ``exp`` -> linear interpolation back to ``M_full`` frames -> bands above
  ``noise_from_hz`` given the fine structure of a fixed noise and its phase as the start
  (``models.drumsynth.NoiseFineStructure``: no comb of band-centre sinusoids in hats and snares) -> fast
  Griffin-Lim through the same NSGT (iterations and momentum are task options).

``evaluate`` also reports the sample quality of issue #18 (``training.sample_quality``) on one-shots made the
way the instrument makes them (random knobs -> decoder -> Griffin-Lim -> peak-normalised), against the held-out
sounds.
"""

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gin
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.tensorboard import SummaryWriter

from latentlive.core.cache import cache_dir
from latentlive.core.errors import UserError
from latentlive.corpus.drum_synth import PEAK
from latentlive.corpus.splits import SIDES
from latentlive.models.drum_classifier import DrumClassifier, classify
from latentlive.models.drumsynth import DrumSynthVAE, NoiseFineStructure
from latentlive.models.nsgt import NSGT, fast_length, make_scale
from latentlive.models.vae import BetaSchedule, gaussian_nll, kl_standard_normal, mmd_imq
from latentlive.training.config import configured_arguments
from latentlive.training.drum_classifier_fit import train_classifier
from latentlive.training.metrics import (
    log_spectral_distance,
    mutual_information_gap,
    r2_per_factor,
    spectral_convergence,
)
from latentlive.training.plots import latent_map_figure
from latentlive.training.sample_quality import band_statistics, line_at_db, new_line_db, sample_quality
from latentlive.training.tasks.base import (
    SplitData,
    TensorData,
    require_enough_data,
    split_fractions,
    take_sides,
)

if TYPE_CHECKING:
    from latentlive.corpus.one_shots import OneShotCorpus

DIVERGENCES = ("kl", "mmd")
QUALITY_LATENTS = ("knobs", "prior")
KNOB_LIMIT = 4.0  # as export.drumsynth.KNOB_LIMIT: the instrument clamps its knobs there
QUALITY_SEED = 0  # the knobs drawn for the sample-quality one-shots: the same at every evaluation


def per_class_mmd(z: Tensor, classes: Tensor, prior_samples: int = 32) -> Tensor:
    """WAE divergence of a conditional model: ``mmd_imq`` between the codes of each class present in the
    batch (at least 2 of them) and fresh N(0, 1) samples, averaged over those classes. ``z [B, D]``."""
    terms = []
    for label in torch.unique(classes):
        codes = z[classes == label]
        if len(codes) >= 2:
            terms.append(mmd_imq(codes, torch.randn(prior_samples, z.shape[1], device=z.device)))
    return torch.stack(terms).mean() if terms else z.sum() * 0.0


def pca_by_class(codes: np.ndarray, classes: np.ndarray, num_classes: int) -> dict[str, list]:
    """Principal axes of the codes ``[N, D]`` of each class: ``pca_mean [C, D]``, ``pca_components
    [C, D, D]`` (rows are axes, by decreasing variance; each axis's largest entry is positive) and
    ``pca_std [C, D]`` (standard deviation along each axis). A class without codes gets the prior
    (mean 0, identity, std 1). Knob ``k`` of class ``c`` then moves the code along axis ``k`` in units of
    its spread: ``z = pca_mean[c] + sum_k knob_k * pca_std[c, k] * pca_components[c, k]``."""
    dim = codes.shape[1]
    means = np.zeros((num_classes, dim))
    components = np.tile(np.eye(dim), (num_classes, 1, 1))
    stds = np.ones((num_classes, dim))
    for c in range(num_classes):
        own = codes[classes == c].astype(np.float64)
        if len(own) == 0:
            continue
        means[c] = own.mean(0)
        _, singular, axes = np.linalg.svd(own - means[c], full_matrices=True)
        signs = np.sign(axes[np.arange(dim), np.abs(axes).argmax(1)])
        components[c] = axes * signs[:, None]
        stds[c] = 0.0
        stds[c, : len(singular)] = singular / np.sqrt(max(1, len(own) - 1))
    return {"pca_mean": means.tolist(), "pca_components": components.tolist(), "pca_std": stds.tolist()}


def _spectrogram_figure(rows: list[tuple[str, list[np.ndarray]]], titles: list[str]) -> Figure:
    """One row per ``(label, images)``; each image a log-magnitude ``[F, M]`` (low frequencies at the bottom)."""
    columns = max(len(images) for _, images in rows)
    figure = Figure(figsize=(2.2 * columns + 0.6, 1.8 * len(rows) + 0.4))
    axes = figure.subplots(len(rows), columns, squeeze=False)
    top = max(float(np.max(image)) for _, images in rows for image in images)
    for r, (label, images) in enumerate(rows):
        for c in range(columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(images):
                ax.axis("off")
                continue
            ax.imshow(images[c], aspect="auto", origin="lower", cmap="magma", vmin=top - 12.0, vmax=top)
            if r == 0 and c < len(titles):
                ax.set_title(titles[c], fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    figure.tight_layout()
    return figure


def _evenly(count: int, limit: int) -> Tensor:
    """At most ``limit`` indices spread evenly over ``range(count)``."""
    return torch.linspace(0, count - 1, min(count, limit)).round().long().unique()


@gin.configurable
class DrumSynthTask:
    """The drum synth VAE on drum one-shots (built-in procedural corpus, or a folder given with ``--db``).

    Args:
        sample_rate: rate of the model's audio (Hz).
        length: samples per one-shot.
        examples_per_class: size of each class of the built-in corpus (procedural and soundfont sounds each).
        scale: NSGT frequency scale, ``octave``, ``log`` or ``mel`` (see ``models.nsgt.make_scale``).
        fmin, fmax: range of the scale (Hz).
        scale_bins: bands per octave (``octave``) or in all (``log``, ``mel``).
        time_pool: NSGT frames pooled (RMS) into one model frame.
        log_floor: magnitude floor before the log.
        divergence: ``kl`` (VAE) or ``mmd`` (WAE: MMD to N(0, 1) within each class of the batch).
        beta: final weight of the divergence, reached by the warm-up.
        beta_schedule: ``constant``, ``linear`` or ``cyclical`` (``models.vae.BetaSchedule``).
        warmup_steps: steps of the warm-up.
        class_dropout: share of training examples seen without their class, so class -1 works.
        griffin_lim_iterations, griffin_lim_momentum: phase reconstruction of audio examples.
        noise_from_hz, noise_full_hz: bands above ``noise_from_hz`` get a noise fine structure and phase before
            Griffin-Lim, fully from ``noise_full_hz`` (``models.drumsynth.NoiseFineStructure``).
        classifier_steps: training steps of the judge of the class metric (trained once per run).
        classifier_channels: its widths.
        prior_samples_per_class: sounds drawn from the prior per class for the class metric.
        eval_through_audio: judge prior samples and reconstructions after Griffin-Lim and re-analysis
            (what a listener hears; costly on a CPU), else on the decoded log-magnitudes.
        media_examples: held-out sounds shown and played in TensorBoard.
        pca_examples_per_class: training sounds per class encoded for the PCA of the knobs.
        quality_samples_per_class: one-shots made per class for the sample-quality metrics (each costs a
            Griffin-Lim render); 0 leaves them out.
        quality_latents: where those one-shots come from: ``knobs`` (the instrument's knobs drawn from
            N(0, 1), mapped by the class's PCA as ``export.drumsynth`` does) or ``prior`` (z ~ N(0, 1)).
    """

    name = "drumsynth"

    def __init__(
        self,
        sample_rate: int = 22050,
        length: int = 16384,
        examples_per_class: int = 200,
        scale: str = "octave",
        fmin: float = 40.0,
        fmax: float = 10000.0,
        scale_bins: int = 12,
        time_pool: int = 12,
        log_floor: float = 1e-5,
        divergence: str = "kl",
        beta: float = 1.0,
        beta_schedule: str = "linear",
        warmup_steps: int = 5000,
        class_dropout: float = 0.1,
        griffin_lim_iterations: int = 32,
        griffin_lim_momentum: float = 0.99,
        noise_from_hz: float = 1500.0,
        noise_full_hz: float = 3000.0,
        classifier_steps: int = 300,
        classifier_channels: tuple[int, ...] = (64, 64, 64),
        prior_samples_per_class: int = 32,
        eval_through_audio: bool = False,
        media_examples: int = 4,
        pca_examples_per_class: int = 256,
        quality_samples_per_class: int = 4,
        quality_latents: str = "knobs",
    ) -> None:
        if divergence not in DIVERGENCES:
            raise ValueError(f"DrumSynthTask.divergence must be one of {DIVERGENCES}, got {divergence!r}")
        if quality_latents not in QUALITY_LATENTS:
            raise ValueError(
                f"DrumSynthTask.quality_latents must be one of {QUALITY_LATENTS}, got {quality_latents!r}"
            )
        self.sample_rate, self.length, self.examples_per_class = sample_rate, length, examples_per_class
        self.divergence, self.class_dropout = divergence, class_dropout
        self.scale_settings = {"scale": scale, "fmin": fmin, "fmax": fmax, "scale_bins": scale_bins}
        self.time_pool, self.log_floor = time_pool, log_floor
        self.beta = BetaSchedule(beta_schedule, 0.0, beta, warmup_steps)
        self.griffin_lim_iterations, self.griffin_lim_momentum = griffin_lim_iterations, griffin_lim_momentum
        self.classifier_steps, self.classifier_channels = classifier_steps, tuple(classifier_channels)
        self.prior_samples_per_class, self.eval_through_audio = prior_samples_per_class, eval_through_audio
        self.media_examples, self.pca_examples_per_class = media_examples, pca_examples_per_class
        self.quality_samples_per_class, self.quality_latents = quality_samples_per_class, quality_latents

        frequency_scale = make_scale(scale, fmin, fmax, scale_bins)
        widest = NSGT(length, sample_rate, frequency_scale).min_frames
        self.nsgt = NSGT(length, sample_rate, frequency_scale, frames=fast_length(widest, 16 * time_pool))
        self.bins, self.frames = self.nsgt.num_bins, self.nsgt.num_frames // time_pool
        self.noise_settings = {"from_hz": float(noise_from_hz), "full_hz": float(noise_full_hz), "seed": 0}
        self.fine_structure = NoiseFineStructure(self.nsgt, time_pool, noise_from_hz, noise_full_hz)
        self.class_names: list[str] = []
        self.factor_names: list[str] = []
        self.logmag_mean, self.logmag_std = 0.0, 1.0
        self._train: TensorData | None = None
        self._model: DrumSynthVAE | None = None
        self._classifier: DrumClassifier | None = None

    # -- the signal path ---------------------------------------------------------------------------

    @torch.no_grad()
    def analyse(self, audio: Tensor, chunk: int = 64) -> Tensor:
        """``audio [N, T]`` -> pooled log-magnitudes ``[N, 1, F, M]`` (nats), on ``audio``'s device."""
        nsgt = self.nsgt.to(audio.device)
        out = []
        for part in audio.split(chunk):
            power = nsgt.magnitude(part).pow(2)
            pooled = F.avg_pool1d(power, self.time_pool).sqrt()
            out.append(torch.log(pooled.clamp_min(self.log_floor)).unsqueeze(1))
        return torch.cat(out) if out else audio.new_zeros(0, 1, self.bins, self.frames)

    @torch.no_grad()
    def synthesise(self, logmag: Tensor, chunk: int = 64) -> Tensor:
        """Log-magnitudes ``[N, 1, F, M]`` -> audio ``[N, T]`` by Griffin-Lim at the full NSGT frame rate, noisy
        bands with the fine structure and starting phase of ``NoiseFineStructure``."""
        nsgt, fine = self.nsgt.to(logmag.device), self.fine_structure.to(logmag.device)
        out = []
        for part in logmag.split(chunk):
            audio = nsgt.griffin_lim(
                fine.magnitude(part), self.griffin_lim_iterations, self.griffin_lim_momentum, fine.start_phase
            )
            out.append(audio)
        return torch.cat(out) if out else logmag.new_zeros(0, self.length)

    @torch.no_grad()
    def render(self, logmag: Tensor) -> Tensor:
        """Log-magnitudes ``[N, 1, F, M]`` -> one-shots ``[N, T]`` as the instrument plays them
        (``export.drumsynth.DrumKit.render``): :meth:`synthesise`, then finite and peak-normalised to ``PEAK``,
        the level of the corpus sounds."""
        audio = torch.nan_to_num(self.synthesise(logmag), 0.0, 0.0, 0.0)
        return audio * (PEAK / audio.abs().amax(-1, keepdim=True).clamp_min(1e-6))

    # -- the Task protocol -------------------------------------------------------------------------

    def load_data(self, db: Path | None, seed: int, log: Any = print) -> SplitData:
        """The one-shots of ``db`` (or the built-in ones), dealt by group (file, soundfont sample, procedural
        voice; ``corpus.one_shots.split_one_shots``) with the run's seed; the level statistics, the judge and
        the PCA of the knobs come from the training side only."""
        from latentlive.corpus.one_shots import split_one_shots

        corpus = self._read(db, log)
        self.class_names, self.factor_names = list(corpus.class_names), list(corpus.factor_names)
        split, indices = split_one_shots(corpus, split_fractions(), seed, log)
        data, audio = self._prepare(corpus, log)
        sides = take_sides(data, indices, split)
        for side in ("validation", "test"):  # audio only where media are drawn from
            sides.side(side).tensors["audio"] = audio[torch.as_tensor(indices[side], dtype=torch.long)]
        counts = ", ".join(
            f"{len(sides.side(side))} {side} ({len(split.groups[side])} sources)" for side in SIDES
        )
        log(f"one-shots {corpus.source}: split by source (seed {seed}): {counts}")
        require_enough_data(
            corpus.source,
            sides.train,
            sides.validation,
            "one-shots",
            "add sounds to the class sub-folders (two files or more in all)",
        )
        train = sides.train
        self.logmag_mean = float(train.tensors["logmag"].mean())
        self.logmag_std = float(train.tensors["logmag"].std())
        self._train, self._classifier = train, None
        return sides

    def load_held_out(self, db: Path, log: Any = print) -> TensorData:
        """Every one-shot of the folder ``db`` whose class sub-folder names a class of the model (others are
        left out, and said so), prepared like the training sounds."""
        corpus = self._read(db, log)
        known = [name for name in corpus.class_names if name in self.class_names]
        if not known:
            raise UserError(
                f"{db}: no sub-folder names a class of this model ({', '.join(corpus.class_names)}); "
                f"name the class folders after its classes: {', '.join(self.class_names)}"
            )
        unknown = sorted(set(corpus.class_names) - set(known))
        if unknown:
            log(f"one-shots {db}: left out sub-folder(s) {', '.join(unknown)}: not classes of this model")
        data, audio = self._prepare(corpus, log)
        to_model = torch.tensor([self.class_names.index(n) if n in known else -1 for n in corpus.class_names])
        mapped = to_model[data.tensors["cls"]]
        keep = mapped >= 0
        held_out = TensorData({key: value[keep] for key, value in data.tensors.items()})
        held_out.tensors["cls"], held_out.tensors["audio"] = mapped[keep], audio[keep]
        return held_out

    def _read(self, db: Path | None, log: Any) -> "OneShotCorpus":
        from latentlive.corpus.one_shots import load_one_shots

        return load_one_shots(
            db,
            sample_rate=self.sample_rate,
            length=self.length,
            examples_per_class=self.examples_per_class,
            seed=0,  # one built-in corpus (and one cache file) for every training seed; the seed varies the split
            cache_dir=cache_dir(),
            log=log,
        )

    def _prepare(self, corpus: "OneShotCorpus", log: Any) -> tuple[TensorData, Tensor]:
        """The model's view of ``corpus``: log-magnitudes, classes (the corpus's own) and factors; and the audio."""
        audio = torch.from_numpy(np.asarray(corpus.audio, dtype=np.float32))
        log(f"analysing {len(audio)} one-shots: NSGT {self.bins} bands x {self.frames} frames")
        data = {
            "logmag": self.analyse(audio),
            "cls": torch.from_numpy(np.asarray(corpus.classes, dtype=np.int64)),
            "factors": torch.from_numpy(np.asarray(corpus.factors, dtype=np.float32).reshape(len(audio), -1)),
        }
        return TensorData(data), audio

    def build_model(self) -> tuple[DrumSynthVAE, dict[str, Any]]:
        args = configured_arguments(DrumSynthVAE)
        args.update(
            num_classes=len(self.class_names),
            bins=self.bins,
            frames=self.frames,
            logmag_mean=self.logmag_mean,
            logmag_std=self.logmag_std,
        )
        self._model = DrumSynthVAE(**args)
        return self._model, args

    def losses(self, model: nn.Module, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        logmag, cls = batch["logmag"], batch["cls"]
        dropped = torch.rand(cls.shape, device=cls.device) < self.class_dropout
        mean, logscale, z, mu, logvar = model(logmag, torch.where(dropped, torch.full_like(cls, -1), cls))
        losses = {"loss/reconstruction": gaussian_nll(mean, logscale, logmag).mean()}
        if self.divergence == "kl":
            losses["loss/divergence"] = kl_standard_normal(mu, logvar).mean()
        else:  # scaled like a per-example sum, so that beta means the same across image sizes
            losses["loss/divergence"] = per_class_mmd(z, cls) * logmag[0].numel()
        return losses

    def loss_weights(self, step: int) -> dict[str, float]:
        return {"loss/reconstruction": 1.0, "loss/divergence": self.beta(step)}

    def _judge(self, device: torch.device) -> DrumClassifier:
        """The class judge, trained once per run on the training sounds (deterministic seed)."""
        if self._classifier is None:
            assert self._train is not None, "load_data must run before evaluate"
            self._classifier = train_classifier(
                self._train.tensors["logmag"].to(device),
                self._train.tensors["cls"].to(device),
                len(self.class_names),
                steps=self.classifier_steps,
                logmag_mean=self.logmag_mean,
                logmag_std=self.logmag_std,
                channels=self.classifier_channels,
            )
        return self._classifier.to(device)

    @torch.no_grad()
    def _encode_means(
        self, model: DrumSynthVAE, data: TensorData, index: Tensor, device: torch.device
    ) -> Tensor:
        batch = data.take(index, device)
        return torch.cat(
            [
                model.encode(x, c)[0]
                for x, c in zip(batch["logmag"].split(256), batch["cls"].split(256), strict=True)
            ]
        )

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: TensorData) -> dict[str, float]:
        """Reconstructions of held-out sounds from the posterior mean (log-spectral distance in dB and spectral
        convergence of the pooled magnitudes), the ELBO (nats per sound, one posterior sample) with its terms,
        the class accuracy of prior samples judged by a classifier trained on the training sounds (and that
        classifier's own held-out accuracy), for factors of the procedural sounds the R^2 of a linear
        read-out of the latents (fitted on training sounds) and the mutual information gap, and the sample
        quality (``eval/quality/...``, :meth:`sample_quality_metrics`) of one-shots made by
        :meth:`generate_one_shots` against the held-out sounds' audio (``data["audio"]``; data without audio
        gets its log-magnitudes rendered by :meth:`render`, a reference through the same phase path)."""
        device = next(model.parameters()).device
        batch = data.take(slice(None), device)
        logmag, cls = batch["logmag"], batch["cls"]
        mu, logvar = model.encode(logmag, cls)
        recon = model.decode(mu, cls)[0]
        sampled_mean, sampled_logscale = model.decode(
            mu + torch.exp(0.5 * logvar) * torch.randn_like(mu), cls
        )
        reconstruction = gaussian_nll(sampled_mean, sampled_logscale, logmag)
        kl = kl_standard_normal(mu, logvar)
        metrics = {
            "eval/lsd": log_spectral_distance(logmag.exp(), recon.exp(), self.log_floor).mean().item(),
            "eval/sc": spectral_convergence(logmag.exp(), recon.exp()).mean().item(),
            "eval/reconstruction": reconstruction.mean().item(),
            "eval/kl": kl.mean().item(),
            "eval/elbo": -(reconstruction + kl).mean().item(),
            "eval/active_units": int((mu.var(0) > 0.01).sum().item()) if len(mu) > 1 else 0,
        }
        if self.eval_through_audio:
            heard = self.analyse(self.synthesise(recon))
            metrics["eval/lsd_audio"] = (
                log_spectral_distance(logmag.exp(), heard.exp(), self.log_floor).mean().item()
            )
            metrics["eval/sc_audio"] = spectral_convergence(logmag.exp(), heard.exp()).mean().item()
        pca = self._pca_tensors(model, device) if self.class_names else {}
        metrics.update(self._class_metrics(model, logmag, cls, pca, device))
        metrics.update(self._factor_metrics(model, mu, batch, device))
        if self.quality_samples_per_class > 0 and self.class_names:
            metrics.update(self._quality_metrics(model, batch, pca))
        return metrics

    def _quality_metrics(
        self, model: nn.Module, batch: dict[str, Tensor], pca: dict[str, Tensor]
    ) -> dict[str, float]:
        """:meth:`sample_quality_metrics` of :meth:`generate_one_shots` against the held-out audio, and the
        same figures (suffix ``_resynthesis``) of as many held-out sounds per class rendered from their own
        pooled log-magnitudes by :meth:`render`: what the signal path alone (time pooling, Griffin-Lim) does
        to real sounds, beside what the model does. Data without audio is rendered the same way to serve as
        the reference (then there is no separate resynthesis)."""
        logmag, cls, count = batch["logmag"], batch["cls"], self.quality_samples_per_class
        generated, generated_cls = self.generate_one_shots(model, count, pca)
        reference = batch["audio"] if "audio" in batch else self.render(logmag)
        metrics = self.sample_quality_metrics(generated, generated_cls, reference, cls)
        if "audio" in batch:
            chosen = torch.cat(
                [(cls == c).nonzero()[:, 0][_evenly(int((cls == c).sum()), count)] for c in cls.unique()]
            )
            resynthesised = self.render(logmag[chosen])
            metrics.update(
                self.sample_quality_metrics(resynthesised, cls[chosen], reference, cls, "_resynthesis")
            )
        return metrics

    def _pca_tensors(self, model: DrumSynthVAE, device: torch.device) -> dict[str, Tensor]:
        """:meth:`_pca` under the current model as float32 tensors on ``device``."""
        return {
            key: torch.tensor(value, dtype=torch.float32, device=device)
            for key, value in self._pca(model).items()
        }

    @staticmethod
    def _knob_latents(pca: dict[str, Tensor], labels: Tensor, knobs: Tensor) -> Tensor:
        """Codes ``[B, D]`` of ``knobs [B, D]`` (standard deviations along the PCA axes of the class of each
        entry of ``labels [B]``, clamped at ``KNOB_LIMIT``): what the instrument decodes
        (``export.drumsynth.DrumKit``)."""
        spread = (knobs.clamp(-KNOB_LIMIT, KNOB_LIMIT) * pca["pca_std"][labels]).unsqueeze(1)  # [B, 1, D]
        return pca["pca_mean"][labels] + (spread @ pca["pca_components"][labels]).squeeze(1)

    @torch.no_grad()
    def generate_one_shots(
        self,
        model: nn.Module,
        count_per_class: int,
        pca: dict[str, Tensor] | None = None,
        seed: int = QUALITY_SEED,
    ) -> tuple[Tensor, Tensor]:
        """``count_per_class`` new one-shots of every class, made as a musician gets them from the instrument:
        knobs drawn from N(0, 1) with a fixed ``seed`` (so every evaluation hears the same knobs), mapped by
        the class's PCA (``pca``: :meth:`_pca_tensors`, computed when not given; with ``quality_latents =
        'prior'`` the draws are the codes), decoded and rendered by :meth:`render`. Returns audio ``[C * n, T]``
        and classes ``[C * n]`` (long), on the CPU."""
        device = next(model.parameters()).device
        labels = torch.arange(len(self.class_names)).repeat_interleave(count_per_class)
        draws = torch.randn(len(labels), model.latent_size, generator=torch.Generator().manual_seed(seed))
        labels, z = labels.to(device), draws.to(device)
        if self.quality_latents == "knobs":
            z = self._knob_latents(pca if pca is not None else self._pca_tensors(model, device), labels, z)
        audio = self.render(model.decode(z, labels)[0])
        return audio.cpu(), labels.cpu()

    def quality_rates(self) -> dict[str, float]:
        """The rates (Hz) whose harmonics a frame-wise buzz would sit on: ``frame``, the model's
        magnitude frames (what the decoder makes, ``time_pool`` NSGT frames each), and ``nsgt_frame``, the
        NSGT frames that Griffin-Lim works on (``sample_rate / hop``)."""
        nsgt_rate = self.sample_rate / self.nsgt.hop
        return {"frame": nsgt_rate / self.time_pool, "nsgt_frame": nsgt_rate}

    def nyquist_line(self) -> tuple[float, tuple[float, float]]:
        """Where issue #18 looks for the line at the Nyquist frequency of the model rate: the frequency, and the
        band whose median power it is measured against (as 11 025 Hz against 9-10.9 kHz at 22.05 kHz)."""
        nyquist = self.sample_rate / 2.0
        return nyquist, (nyquist * 9000.0 / 11025.0, nyquist * 10900.0 / 11025.0)

    def sample_quality_metrics(
        self,
        generated: Tensor,
        generated_cls: Tensor,
        reference: Tensor,
        reference_cls: Tensor,
        suffix: str = "",
    ) -> dict[str, float]:
        """``training.sample_quality.sample_quality`` of ``generated [N, T]`` against ``reference [R, T]``
        (prefix ``eval/quality/``, rates :meth:`quality_rates`), and for each class with clips on both sides
        (``generated_cls [N]``, ``reference_cls [R]``) the flatness of every band,
        ``eval/quality/<class>/flatness/<band>`` with ``..._corpus`` beside (metallic hats read low), the line at
        the Nyquist frequency ``eval/quality/<class>/nyquist_line_db`` (median over clips of ``sample_quality.line_at_db``,
        with ``..._corpus``) and ``eval/quality/<class>/new_line_db`` (median of ``sample_quality.new_line_db``: the
        strongest line above 2 kHz that the class's corpus clips lack; about 12 dB for noise).
        With a ``suffix``, only the keys of the generated side, each ending with it."""
        made, held = generated.cpu().double().numpy(), reference.cpu().double().numpy()
        made_cls, held_cls = generated_cls.cpu().numpy(), reference_cls.cpu().numpy()
        metrics = sample_quality(made, held, self.sample_rate, self.quality_rates(), prefix="eval/quality/")
        for c, name in enumerate(self.class_names):
            if not ((made_cls == c).any() and (held_cls == c).any()):
                continue
            for side, clips in (("", made[made_cls == c]), ("_corpus", held[held_cls == c])):
                for band, stats in band_statistics(clips, self.sample_rate).items():
                    metrics[f"eval/quality/{name}/flatness/{band}{side}"] = float(
                        np.nan_to_num(stats["flatness"])
                    )
                metrics[f"eval/quality/{name}/nyquist_line_db{side}"] = float(
                    np.median([line_at_db(c, self.sample_rate, *self.nyquist_line()) for c in clips])
                )
            metrics[f"eval/quality/{name}/new_line_db"] = float(
                np.median(new_line_db(made[made_cls == c], held[held_cls == c], self.sample_rate))
            )
        if suffix:
            return {key + suffix: value for key, value in metrics.items() if not key.endswith("_corpus")}
        return metrics

    def _class_metrics(
        self, model: nn.Module, logmag: Tensor, cls: Tensor, pca: dict[str, Tensor], device: torch.device
    ) -> dict[str, float]:
        """Accuracy of the judge on held-out sounds; class accuracy of sounds drawn from the prior N(0, I)
        (overall and per class) and from the knob space (the per-class PCA Gaussian of the training codes,
        what the instrument's knobs span)."""
        judge = self._judge(device)
        metrics = {"eval/classifier_accuracy": (classify(judge, logmag) == cls).float().mean().item()}
        classes, count = len(self.class_names), self.prior_samples_per_class
        if classes == 0 or count == 0:
            return metrics
        labels = torch.arange(classes, device=device).repeat_interleave(count)
        prior_z = torch.randn(len(labels), model.latent_size, device=device)
        knob_z = self._knob_latents(pca, labels, prior_z)
        for key, z in (("prior_accuracy", prior_z), ("knob_accuracy", knob_z)):
            sounds = model.decode(z, labels)[0]
            if self.eval_through_audio:
                sounds = self.analyse(self.synthesise(sounds))
            correct = (classify(judge, sounds) == labels).float().view(classes, count).mean(1)
            metrics[f"eval/{key}"] = correct.mean().item()
            if key == "prior_accuracy":
                for name, value in zip(self.class_names, correct.tolist(), strict=True):
                    metrics[f"eval/prior_accuracy/{name}"] = value
        return metrics

    def _factor_metrics(
        self, model: nn.Module, mu: Tensor, data: dict[str, Tensor], device: torch.device
    ) -> dict[str, float]:
        """Per factor, the mean over the classes that have it of the within-class R^2 and MIG: a conditional
        model may use one latent direction for different things in different classes."""
        factors, cls = data["factors"].cpu().numpy(), data["cls"].cpu().numpy()
        if self._train is None or factors.shape[1] == 0 or np.isnan(factors).all():
            return {}
        train_index = _evenly(len(self._train), 4096)
        train_mu = self._encode_means(model, self._train, train_index, device).cpu().numpy()
        train_factors = self._train.tensors["factors"][train_index].numpy()
        train_cls = self._train.tensors["cls"][train_index].numpy()
        codes = mu.cpu().numpy()
        r2, mig = [], []
        for c in np.unique(cls):
            fit, held = train_cls == c, cls == c
            r2.append(r2_per_factor(train_mu[fit], train_factors[fit], codes[held], factors[held]))
            # about sqrt(n) histogram bins: the plug-in MI of a few sounds in many bins is all bias
            bins = int(np.clip(round(np.sqrt(held.sum())), 2, 20))
            mig.append(mutual_information_gap(codes[held], factors[held], bins=bins, min_examples=5))
        metrics = {}
        with warnings.catch_warnings():  # factors that no class can score are all-NaN columns
            warnings.simplefilter("ignore", RuntimeWarning)
            r2_by_factor, mig_by_factor = np.nanmean(r2, axis=0), np.nanmean(mig, axis=0)
        for name, value in zip(self.factor_names, r2_by_factor.tolist(), strict=True):
            if not np.isnan(value):
                metrics[f"eval/r2/{name}"] = value
        if not np.isnan(r2_by_factor).all():
            metrics["eval/r2_mean"] = float(np.nanmean(r2_by_factor))
        if not np.isnan(mig_by_factor).all():
            metrics["eval/mig"] = float(np.nanmean(mig_by_factor))
        return metrics

    @torch.no_grad()
    def log_media(self, writer: SummaryWriter, model: nn.Module, data: TensorData, step: int) -> None:
        device = next(model.parameters()).device
        classes = data.tensors["cls"]
        firsts = [
            int((classes == c).nonzero()[0]) for c in range(len(self.class_names)) if (classes == c).any()
        ]
        shown = data.take(torch.as_tensor(firsts[: self.media_examples], dtype=torch.long), device)
        names = [self.class_names[int(c)] for c in shown["cls"]]
        recon = model.decode(model.encode(shown["logmag"], shown["cls"])[0], shown["cls"])[0]
        rows = [
            ("input", list(shown["logmag"][:, 0].cpu().numpy())),
            ("reconstruction", list(recon[:, 0].cpu().numpy())),
        ]
        writer.add_figure("spectrograms/input_vs_reconstruction", _spectrogram_figure(rows, names), step)

        labels = torch.arange(len(self.class_names), device=device)
        prior = model.sample(labels)
        figure = _spectrogram_figure([("prior sample", list(prior[:, 0].cpu().numpy()))], self.class_names)
        writer.add_figure("spectrograms/prior_by_class", figure, step)

        sounds = self.synthesise(torch.cat([recon, prior])).cpu()
        sounds = sounds / sounds.abs().amax(1, keepdim=True).clamp_min(1.0)  # only ever turned down
        tagged = [f"audio/input/{n}" for n in names] + [f"audio/reconstruction/{n}" for n in names]
        tagged += [f"audio/prior/{n}" for n in self.class_names]
        clips = torch.cat([shown["audio"].cpu().clamp(-1.0, 1.0), sounds])
        for tag, clip in zip(tagged, clips, strict=True):
            writer.add_audio(tag, clip.unsqueeze(0), step, sample_rate=self.sample_rate)

        index = _evenly(len(data), 2000)
        codes = self._encode_means(model, data, index, device).cpu().numpy()
        map_figure = latent_map_figure(codes, classes[index].numpy(), self.class_names)
        writer.add_figure("latent/map_by_class", map_figure, step)

    def metadata(self) -> dict[str, Any]:
        """What export needs: classes, factors, the signal path and its settings, and the per-class PCA of the
        training codes (posterior means) under the current model, which orders the knobs of each class."""
        meta: dict[str, Any] = {
            "class_names": self.class_names,
            "factor_names": self.factor_names,
            "sample_rate": self.sample_rate,
            "length": self.length,
            "nsgt": {
                **self.scale_settings,
                "bins": self.bins,
                "frames": self.nsgt.num_frames,
                "time_pool": self.time_pool,
                "model_frames": self.frames,
            },
            "log_floor": self.log_floor,
            "logmag_mean": self.logmag_mean,
            "logmag_std": self.logmag_std,
            "griffin_lim": {"iterations": self.griffin_lim_iterations, "momentum": self.griffin_lim_momentum},
            "noise": dict(self.noise_settings),
        }
        if self._model is not None and self._train is not None:
            meta.update(self._pca(self._model))
        return meta

    @torch.no_grad()
    def _pca(self, model: DrumSynthVAE) -> dict[str, list]:
        assert self._train is not None
        device = next(model.parameters()).device
        classes = self._train.tensors["cls"]
        index = torch.cat(
            [
                (classes == c).nonzero()[:, 0][
                    _evenly(int((classes == c).sum()), self.pca_examples_per_class)
                ]
                for c in range(len(self.class_names))
                if (classes == c).any()
            ]
        )
        was_training = model.training
        model.eval()
        codes = self._encode_means(model, self._train, index, device).cpu().numpy()
        model.train(was_training)
        return pca_by_class(codes, classes[index].numpy(), len(self.class_names))

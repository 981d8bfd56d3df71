"""Fine-tune a techno stage-1 decoder on the latents new loops are made of (docs/techno.md, issue #18).

New loops reach the stage-1 decoder as a trajectory read at bar phases plus a draw per frame
(``TechnoPriorTask.frame_temperature``), not as the fast-changing posterior it was trained on, and a decoder
trained on the posterior alone turns them into a buzz at its frame rate. :func:`finetune_decoder` freezes the
encoder of a stage-1 run and trains its decoder on random crops of the training loops: a share ``prior_share``
of the batches decode what techno_prior would make of the loop (the posterior resampled to ``frames_per_bar``
frames a bar, read back at the loop's frames, plus the posterior's spread times white noise per frame), the
others a posterior sample as before. The loss is the multi-scale spectral distance to the loop's audio
(phase-free, so the decoder may make its own fine structure), with ``adversarial`` > 0 also a discriminator's
hinge loss (that weight) and feature matching (10 times it). The ``frame`` critic folds the waveform at the
frame period, where a buzz at the frame rate is a column that repeats, at a tenth of the cost of the
``scales`` one (MelGAN).

The result is a copy of the stage-1 run with the new decoder: train techno_prior on it
(``TechnoPriorTask.stage1_run``); ``make demo`` does.
"""

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from latentlive.core.errors import UserError
from latentlive.core.runs import RunFolder, atomic_torch_save, load_checkpoint
from latentlive.models.discriminator import (
    MultiDiscriminator,
    MultiScaleDiscriminator,
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    split_scores,
)
from latentlive.models.spectral import multiscale_spectral_distance
from latentlive.models.trajectory_vae import read_at_phase
from latentlive.models.vae import reparameterize
from latentlive.training.tasks.techno_prior import TechnoPriorTask, frame_phases

CROP_FRAMES, BATCH = 64, 8  # 8192 samples at the demo's ratio of 128, as gin/techno_demo.gin trains
CRITICS = ("scales", "frame")


@dataclass(frozen=True)
class FinetuneSettings:
    """What :func:`finetune_decoder` trains: ``steps`` at ``learning_rate``; ``adversarial`` the weight of the
    hinge loss (0: the spectral distance alone) with ``critic`` one of :data:`CRITICS`; ``frames_per_bar`` as
    the prior that will read it; ``prior_share`` the share of batches that decode what the prior makes (0.5
    until ``make demo`` took 0.75: docs/techno.md); ``threads`` torch threads (1: a run repeats on one
    machine); ``seed``."""

    steps: int = 1500
    adversarial: float = 0.0
    critic: str = "scales"
    learning_rate: float = 3e-4
    frames_per_bar: int = 64
    prior_share: float = 0.5
    threads: int = 1
    seed: int = 0


def prior_like_latents(
    train: dict[str, torch.Tensor],
    index: int,
    start: int,
    ratio: int,
    frames: int = CROP_FRAMES,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``[1, L, frames]`` latents from frame ``start`` of loop ``index`` as techno_prior renders it: the
    posterior at bar phases, read back at the loop's frames, plus its spread times a draw per frame (from
    ``generator`` when given)."""
    mean, logvar = train["mean"][index : index + 1], train["logvar"][index : index + 1]
    phase = frame_phases(mean, ratio, int(train["loop_samples"][index]))[:, start : start + frames]
    noise = torch.randn(1, mean.shape[1], phase.shape[1], generator=generator)
    return read_at_phase(mean, phase) + read_at_phase((0.5 * logvar).exp(), phase) * noise


def _critic(settings: FinetuneSettings, ratio: int) -> torch.nn.Module | None:
    if settings.adversarial <= 0:
        return None
    if settings.critic == "scales":
        return MultiScaleDiscriminator(3, 16)
    return MultiDiscriminator((), (ratio,), capacity=16, layers=4, max_channels=128)


def _check(stage1_run: Path, out: Path, settings: FinetuneSettings) -> None:
    if out.exists():
        raise UserError(f"{out}: exists; choose another name (nothing was overwritten)")
    RunFolder(stage1_run).require_trained()
    if settings.steps < 1:
        raise UserError(f"steps {settings.steps}: train at least 1 step")
    if settings.critic not in CRITICS:
        raise UserError(f"critic {settings.critic!r}: use one of {', '.join(CRITICS)}")
    if settings.adversarial < 0:
        raise UserError(f"adversarial {settings.adversarial}: the weight is 0 (none) or more")
    if not 0.0 <= settings.prior_share <= 1.0:
        raise UserError(f"prior share {settings.prior_share}: a share of the batches, from 0 to 1")
    if settings.threads < 1:
        raise UserError(f"threads {settings.threads}: use 1 or more")


def finetune_decoder(
    stage1_run: Path, out: Path, settings: FinetuneSettings, log: Callable[[str], None] = print
) -> Path:
    """Train the decoder of ``stage1_run`` as the module docstring says and write the run to ``out`` (a new
    folder, written beside it and renamed: an interrupted fine-tune leaves no run that holds the old
    decoder). Returns ``out``; UserError when ``out`` exists or the settings are off."""
    stage1_run, out = Path(stage1_run), Path(out)
    _check(stage1_run, out, settings)
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        model = _train(stage1_run, settings, log)
    finally:
        torch.set_num_threads(threads)
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(stage1_run, partial, ignore=shutil.ignore_patterns("export", "events.*", "eval_*"))
    checkpoint = load_checkpoint(partial / "checkpoints" / "last.pt")
    checkpoint["model_state"] = {key: value.detach().clone() for key, value in model.state_dict().items()}
    atomic_torch_save(checkpoint, partial / "checkpoints" / "last.pt")
    record = {"stage1_run": str(stage1_run), **asdict(settings)}
    (partial / "finetune.json").write_text(json.dumps(record, indent=1))
    partial.rename(out)
    log(f"wrote {out}")
    return out


def _train(stage1_run: Path, settings: FinetuneSettings, log: Callable[[str], None]) -> torch.nn.Module:
    torch.manual_seed(settings.seed)
    task = TechnoPriorTask(stage1_run=str(stage1_run), frames_per_bar=settings.frames_per_bar)
    train = task.load_data(None, settings.seed, log=log, train_audio=True).train.tensors
    model, ratio = task.stage1, task.stage1.ratio
    model.requires_grad_(False).train()
    decoder = list(model.decoder.parameters())
    for parameter in decoder:
        parameter.requires_grad_(True)
    optimizer = torch.optim.Adam(decoder, lr=settings.learning_rate)
    critic = _critic(settings, ratio)
    critic_optimizer = (
        torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.5, 0.9)) if critic is not None else None
    )
    weight = settings.adversarial
    began = time.monotonic()
    for step in range(1, settings.steps + 1):
        loops = torch.randint(0, len(train["audio"]), (BATCH,)).tolist()
        prior_like = bool(torch.rand(()) < settings.prior_share)
        crops, latents = [], []
        for i in loops:
            start = int(torch.randint(0, int(train["loop_samples"][i]) // ratio - CROP_FRAMES + 1, ()))
            crops.append(train["audio"][i, start * ratio : (start + CROP_FRAMES) * ratio])
            if prior_like:
                latents.append(prior_like_latents(train, i, start, ratio))
        audio = torch.stack(crops).unsqueeze(1)
        if prior_like:
            z = torch.cat(latents)
        else:
            with torch.no_grad():
                z = reparameterize(*model.encode(audio))
        decoded = model.decode(z)
        loss = multiscale_spectral_distance(decoded, audio)
        if critic is not None:
            real_features, _ = split_scores([[f.detach() for f in scale] for scale in critic(audio)])
            fake_features, fake_scores = split_scores(critic(decoded))
            loss = (
                loss
                + weight * hinge_generator_loss(fake_scores)
                + 10.0 * weight * feature_matching_loss(real_features, fake_features)
            )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if critic is not None:
            _, real_scores = split_scores(critic(audio))
            _, fake_scores = split_scores(critic(decoded.detach()))
            critic_loss = hinge_discriminator_loss(real_scores, fake_scores)
            critic_optimizer.zero_grad()
            critic_loss.backward()
            critic_optimizer.step()
        if step % 500 == 0 or step == settings.steps:
            log(
                f"decoder fine-tune step {step}/{settings.steps}: loss {float(loss):.3f} "
                f"({time.monotonic() - began:.0f} s)"
            )
    return model

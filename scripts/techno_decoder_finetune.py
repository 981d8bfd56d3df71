"""Fine-tune a techno stage-1 decoder on the latents new loops are made of (docs/techno.md, issue #18).

    .venv/bin/python scripts/techno_decoder_finetune.py --run runs/techno_demo --name techno_ft [--adversarial 1]

New loops reach the stage-1 decoder as a trajectory read at bar phases plus a draw per frame
(``TechnoPriorTask.frame_temperature``), not as the fast-changing posterior it was trained on. This script
freezes the encoder of ``--run`` and trains its decoder for ``--steps`` steps on random crops of the
training loops: half the batches decode what techno_prior would make of the loop (the posterior resampled to
``--frames-per-bar`` frames a bar, read back at the loop's frames, plus the posterior's spread times white
noise per frame), the other half a posterior sample as before. The loss is the multi-scale spectral distance
to the loop's audio (phase-free, so the decoder may make its own fine structure), with ``--adversarial W``
also the hinge loss of a multi-scale discriminator (weight ``W``) and feature matching (``10 * W``).

It writes a copy of the stage-1 run as ``runs/NAME`` with the new decoder. Then train a prior on it and
score both:

    .venv/bin/python train.py --gin gin/techno_prior_demo.gin --name NAME_prior \\
        --bind "TechnoPriorTask.stage1_run = 'runs/NAME'"
    .venv/bin/latentlive evaluate --run runs/NAME_prior   # new loops: eval/quality/...
    .venv/bin/latentlive evaluate --run runs/NAME         # stage-1 reconstructions

One thread and seed 0: a run repeats on the same machine.
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from latentlive.core.runs import atomic_torch_save, load_checkpoint
from latentlive.models.discriminator import (
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


def prior_like_latents(train: dict[str, torch.Tensor], index: int, start: int, ratio: int) -> torch.Tensor:
    """``[1, L, CROP_FRAMES]`` latents from frame ``start`` of loop ``index`` as techno_prior renders it: the
    posterior at bar phases, read back at the loop's frames, plus its spread times a draw per frame."""
    mean, logvar = train["mean"][index : index + 1], train["logvar"][index : index + 1]
    phase = frame_phases(mean, ratio, int(train["loop_samples"][index]))[:, start : start + CROP_FRAMES]
    noise = torch.randn(1, mean.shape[1], CROP_FRAMES)
    return read_at_phase(mean, phase) + read_at_phase((0.5 * logvar).exp(), phase) * noise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a trained techno stage-1 run")
    parser.add_argument("--name", required=True, help="the new run, written as runs/NAME")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--adversarial", type=float, default=0.0, help="weight of the hinge loss; 0: none")
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--frames-per-bar", type=int, default=32, help="as gin/techno_prior_demo.gin")
    args = parser.parse_args()
    out = Path("runs") / args.name
    if out.exists():
        parser.error(f"{out} exists; choose another --name")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    task = TechnoPriorTask(stage1_run=str(args.run), frames_per_bar=args.frames_per_bar)
    train = task.load_data(None, 0, train_audio=True).train.tensors
    model, ratio = task.stage1, task.stage1.ratio
    model.requires_grad_(False).train()
    decoder = list(model.decoder.parameters())
    for parameter in decoder:
        parameter.requires_grad_(True)
    optimizer = torch.optim.Adam(decoder, lr=args.learning_rate)
    critic = MultiScaleDiscriminator(3, 16) if args.adversarial > 0 else None
    critic_optimizer = (
        torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.5, 0.9)) if critic is not None else None
    )
    began = time.time()
    for step in range(1, args.steps + 1):
        loops = torch.randint(0, len(train["audio"]), (BATCH,)).tolist()
        prior_like = bool(torch.rand(()) < 0.5)
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
                + args.adversarial * hinge_generator_loss(fake_scores)
                + 10.0 * args.adversarial * feature_matching_loss(real_features, fake_features)
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
        if step % 100 == 0:
            print(f"step {step}: loss {float(loss):.3f} ({time.time() - began:.0f} s)", flush=True)
    # written beside it, then renamed: an interrupted script leaves no run that holds the old decoder
    partial = out.with_name(f".{args.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(args.run, partial, ignore=shutil.ignore_patterns("export", "events.*", "eval_*"))
    checkpoint = load_checkpoint(partial / "checkpoints" / "last.pt")
    checkpoint["model_state"] = {key: value.detach().clone() for key, value in model.state_dict().items()}
    atomic_torch_save(checkpoint, partial / "checkpoints" / "last.pt")
    (partial / "finetune.json").write_text(json.dumps(vars(args), default=str, indent=1))
    partial.rename(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

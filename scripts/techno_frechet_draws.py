"""How much the Fréchet distance of new techno loops depends on the draw, and where it comes from (docs/techno.md).

    .venv/bin/python scripts/techno_frechet_draws.py --run runs/techno_prior_demo [--split test] [--draws 20]

For a techno_prior run, the Fréchet log-mel distance of new loops (``prior_sample_quality``, as ``latentlive
evaluate`` reports it) to the held-out loops of ``--split``, drawn with ``--draws`` seeds: first sets as large as
the held-out side (what evaluate scored before it drew 128), then sets of ``--count`` loops (``quality_samples``).
Each line gives the distances, their range and their mean.

Then the training loops, all at once against the same held-out loops, at each step of the path new loops take:
themselves; stage 1's resynthesis (posterior means at their own frames); those means resampled to the prior's K
frames and read back at the stage-1 frames, alone and with a draw of the posterior spread; through the trajectory
VAE (macro posterior mean -> decoded mean), alone and with a draw per frame at ``frame_temperature`` (as new
loops are played). The gap between the last of these and the new loops is the macro prior's.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from latentlive.core.runs import load_checkpoint
from latentlive.models.trajectory_vae import read_at_phase
from latentlive.training.config import parse_gin
from latentlive.training.decoder_finetune import prior_like_latents
from latentlive.training.sample_quality import frechet_log_mel
from latentlive.training.tasks.techno_prior import TechnoPriorTask, frame_phases, sampled_latents


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a techno_prior run")
    parser.add_argument("--split", default="test", choices=["validation", "test"])
    parser.add_argument("--draws", type=int, default=10, help="seeds per set size")
    parser.add_argument("--count", type=int, default=128, help="the larger set's size")
    parser.add_argument(
        "--frame-temperature",
        type=float,
        help="instead of the run's (0: the decoded mean, as at issue #18's filing)",
    )
    parser.add_argument(
        "--standard-macros",
        action="store_true",
        help="draw the macros from N(0, 1), as runs did before they kept their codes' spread (issue #18's filing)",
    )
    args = parser.parse_args()
    checkpoint = load_checkpoint(args.run / "checkpoints" / "last.pt")
    parse_gin([args.run / "config.gin"])
    task = TechnoPriorTask()
    if args.frame_temperature is not None:
        task.frame_temperature = args.frame_temperature
    data = task.load_data(None, 0, log=lambda _: None, train_audio=True)
    held_out = data.side(args.split).take(slice(None), "cpu")
    model, _ = task.build_model()
    model.load_state_dict(checkpoint["model_state"])
    model.eval()
    if args.standard_macros:
        model.code_mean.zero_()
        model.code_std.fill_(1.0)
    for count in (len(held_out["audio"]), args.count):
        task.quality_samples = count
        distances = [
            task.prior_sample_quality(model, held_out["audio"], held_out["loop_samples"], seed)[
                "eval/quality/frechet_log_mel"
            ]
            for seed in range(args.draws)
        ]
        print(
            f"{count} new loops against {len(held_out['audio'])} held-out ({args.split}), seeds 0-{args.draws - 1}: "
            f"{' '.join(f'{d:.1f}' for d in distances)}; range {min(distances):.1f}-{max(distances):.1f}, "
            f"mean {np.mean(distances):.1f}"
        )
    reference = [
        loop[:n].numpy() for loop, n in zip(held_out["audio"], held_out["loop_samples"], strict=True)
    ]
    train = data.train.take(slice(None), "cpu")
    stage1, generator = task.stage1, torch.Generator().manual_seed(0)
    macro, _ = model.encode(train["mean"])
    decoded_mean, decoded_logscale = model.decode(macro)
    steps: dict[str, list[np.ndarray]] = {}

    def add(step: str, clip: torch.Tensor) -> None:
        steps.setdefault(step, []).append(clip.numpy())

    for i, n in enumerate(int(n) for n in train["loop_samples"]):
        loop, mean = train["audio"][i, :n], train["mean"][i : i + 1]
        phase = frame_phases(mean, stage1.ratio, n)
        add("themselves", loop)
        add("resynthesised by stage 1", stage1.decode(stage1.encode(loop[None, None])[0])[0, 0, :n])
        add(f"read back from {task.frames} frames", stage1.decode(read_at_phase(mean, phase))[0, 0, :n])
        # what the decoder is fine-tuned on (training/decoder_finetune.py), over the whole loop
        drawn = prior_like_latents(train, i, 0, stage1.ratio, phase.shape[1], generator)
        add(f"read back from {task.frames} frames, a draw", stage1.decode(drawn)[0, 0, :n])
        own = decoded_mean[i : i + 1]
        add("through the trajectory VAE", stage1.decode(read_at_phase(own, phase))[0, 0, :n])
        drawn = sampled_latents(
            own, decoded_logscale[i : i + 1], stage1.ratio, n, task.frame_temperature, generator
        )
        add("through the trajectory VAE, a draw per frame", stage1.decode(drawn)[0, 0, :n])
    for step, clips in steps.items():
        print(
            f"the {len(clips)} training loops {step}: {frechet_log_mel(clips, reference, task.sample_rate):.1f}"
        )


if __name__ == "__main__":
    main()

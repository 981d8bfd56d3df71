"""Fine-tune a techno stage-1 decoder on the latents new loops are made of (docs/techno.md, issue #18).

    .venv/bin/python scripts/techno_decoder_finetune.py --run runs/techno_demo --name techno_ft \\
        [--steps 3000 --adversarial 0.3 --critic frame]

What it trains: ``latentlive.training.decoder_finetune`` (``make demo`` runs it with the settings above). It
writes a copy of the stage-1 run as ``runs/NAME`` with the new decoder. Then train a prior on it and score both:

    .venv/bin/python train.py --gin gin/techno_prior_demo.gin --name NAME_prior \\
        --bind "TechnoPriorTask.stage1_run = 'runs/NAME'"
    .venv/bin/latentlive evaluate --run runs/NAME_prior   # new loops: eval/quality/...
    .venv/bin/latentlive evaluate --run runs/NAME         # stage-1 reconstructions

One thread and seed 0 by default: a run repeats on the same machine (``--threads 2`` on two cores repeats
``make demo``'s fine-tune).
"""

import argparse
import sys
from pathlib import Path

from latentlive.core.errors import UserError
from latentlive.training.decoder_finetune import CRITICS, FinetuneSettings, finetune_decoder


def main() -> int:
    defaults = FinetuneSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a trained techno stage-1 run")
    parser.add_argument("--name", required=True, help="the new run, written as runs/NAME")
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument(
        "--adversarial", type=float, default=defaults.adversarial, help="hinge loss weight; 0: none"
    )
    parser.add_argument(
        "--critic",
        choices=CRITICS,
        default=defaults.critic,
        help="scales: three scale discriminators (MelGAN); frame: one period discriminator folded at the frame "
        "period, which sees a frame-rate buzz directly, at a tenth of the cost",
    )
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--frames-per-bar", type=int, default=defaults.frames_per_bar, help="as the prior's")
    parser.add_argument(
        "--prior-share",
        type=float,
        default=defaults.prior_share,
        help="share of the batches that decode what the prior makes (the rest: posterior samples)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="of the crops, draws and weights")
    parser.add_argument(
        "--threads", type=int, default=defaults.threads, help="torch threads (make demo: every core)"
    )
    args = parser.parse_args()
    settings = FinetuneSettings(
        steps=args.steps,
        adversarial=args.adversarial,
        critic=args.critic,
        learning_rate=args.learning_rate,
        frames_per_bar=args.frames_per_bar,
        prior_share=args.prior_share,
        seed=args.seed,
        threads=args.threads,
    )
    try:
        finetune_decoder(args.run, Path("runs") / args.name, settings)
    except UserError as err:
        print(f"techno_decoder_finetune: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How much the Fréchet distance of new techno loops depends on which loops were drawn (docs/sample_quality.md).

    .venv/bin/python scripts/techno_frechet_draws.py --run runs/techno_prior_demo [--split test] [--draws 20]

For a techno_prior run, the Fréchet log-mel distance of new loops (``prior_sample_quality``, as ``latentlive
evaluate`` reports it) to the held-out loops of ``--split``, drawn with ``--draws`` seeds: first sets as large as
the held-out side (what evaluate scored before it drew 64), then sets of ``--count`` loops (``quality_samples``).
Each line gives the distances, their range and their mean. Then two floors: the training loops themselves, and
their resynthesis through the stage-1 decoder (posterior mean), each all at once against the held-out loops.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from latentlive.core.runs import load_checkpoint
from latentlive.training.config import parse_gin
from latentlive.training.sample_quality import frechet_log_mel
from latentlive.training.tasks.techno_prior import TechnoPriorTask


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a techno_prior run")
    parser.add_argument("--split", default="test", choices=["validation", "test"])
    parser.add_argument("--draws", type=int, default=10, help="seeds per set size")
    parser.add_argument("--count", type=int, default=64, help="the larger set's size")
    args = parser.parse_args()
    checkpoint = load_checkpoint(args.run / "checkpoints" / "last.pt")
    parse_gin([args.run / "config.gin"])
    task = TechnoPriorTask()
    data = task.load_data(None, 0, log=lambda _: None, train_audio=True)
    held_out = data.side(args.split).take(slice(None), "cpu")
    model, _ = task.build_model()
    model.load_state_dict(checkpoint["model_state"])
    model.eval()
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
    loops = [loop[:n] for loop, n in zip(train["audio"], train["loop_samples"], strict=True)]
    resynthesised = [task.stage1.decode(task.stage1.encode(loop[None, None])[0])[0, 0] for loop in loops]
    for name, clips in (("themselves", loops), ("resynthesised by stage 1", resynthesised)):
        distance = frechet_log_mel([clip.numpy() for clip in clips], reference, task.sample_rate)
        print(f"the {len(loops)} training loops {name}: {distance:.1f}")


if __name__ == "__main__":
    main()

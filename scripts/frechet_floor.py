"""How the floor of the log-mel frames changes the Fréchet distance of new techno loops (docs/sample_quality.md).

    .venv/bin/python scripts/frechet_floor.py --run runs/techno_prior_demo --baseline runs/BASELINE [--split test]

Against the held-out loops of ``--split``, at each floor from -100 to -60 dB: the training loops themselves (the
corpus against itself), 128 new loops of ``--run`` as ``latentlive evaluate`` draws them, 128 of ``--baseline``
as issue #18 found them (each stage-1 frame the decoded mean, macros from N(0, 1)), and white noise; then the
ratio of the new loops' distance to the baseline's. ``sample_quality.SILENT_DB`` is the floor in use.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from latentlive.core.runs import load_checkpoint
from latentlive.training.config import parse_gin
from latentlive.training.sample_quality import SILENT_DB, frechet_log_mel
from latentlive.training.tasks.techno_prior import TechnoPriorTask

FLOORS_DB = (-100.0, -90.0, -80.0, -70.0, -60.0)


@torch.no_grad()
def new_loops(
    run: Path, split: str, as_filed: bool
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], int]:
    """The new loops of ``run`` that ``latentlive evaluate`` scores (seed 0), the held-out loops of ``split``,
    the training loops and the rate; ``as_filed``: drawn as at issue #18's filing."""
    parse_gin([run / "config.gin"])
    task = TechnoPriorTask()
    data = task.load_data(None, 0, log=lambda _: None, train_audio=True)
    model, _ = task.build_model()
    model.load_state_dict(load_checkpoint(run / "checkpoints" / "last.pt")["model_state"])
    model.eval()
    if as_filed:
        model.code_mean.zero_()
        model.code_std.fill_(1.0)
        task.frame_temperature = 0.0
    held, train = data.side(split).take(slice(None), "cpu"), data.train.take(slice(None), "cpu")
    lengths = [int(n) for n in held["loop_samples"]]
    _, loops = task.new_loops(model, lengths)
    reference = [loop[:n].numpy() for loop, n in zip(held["audio"], lengths, strict=True)]
    training = [loop[: int(n)].numpy() for loop, n in zip(train["audio"], train["loop_samples"], strict=True)]
    return loops, reference, training, task.sample_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a techno_prior run")
    parser.add_argument(
        "--baseline", type=Path, required=True, help="a techno_prior run on the decoder as trained"
    )
    parser.add_argument("--split", default="test", choices=["validation", "test"])
    args = parser.parse_args()
    loops, reference, training, rate = new_loops(args.run, args.split, as_filed=False)
    baseline, _, _, _ = new_loops(args.baseline, args.split, as_filed=True)
    rng = np.random.default_rng(0)
    noise = [0.1 * rng.standard_normal(len(clip)) for clip in reference]
    print("floor (dB) | training loops | new loops | baseline | white noise | new / baseline")
    for floor in FLOORS_DB:
        row = [frechet_log_mel(clips, reference, rate, floor) for clips in (training, loops, baseline, noise)]
        mark = " (in use)" if floor == SILENT_DB else ""
        print(f"{floor:.0f}{mark} | " + " | ".join(f"{d:.1f}" for d in row) + f" | {row[1] / row[2]:.3f}")


if __name__ == "__main__":
    main()

"""The grain-rate share of a grain run's prior texture at several engine settings (docs/grain.md, issue #18).

    .venv/bin/python scripts/grain_cloud_share.py --run runs/grain_demo [--split validation]

For each (density, jitter, spray): the share of the power of ``GrainTask.prior_texture`` (4 s along a latent walk
drawn from the prior) within 2 Hz of the harmonics of the density, and the same for ``corpus_texture`` (held-out
grains of ``--split`` played by the engine at the same settings), as ``latentlive evaluate`` reports it for the
defaults (``eval/quality/frame_share/grain``).
"""

import argparse
from pathlib import Path

from latentlive.core.runs import load_checkpoint
from latentlive.training.config import parse_gin
from latentlive.training.sample_quality import frame_rate_share
from latentlive.training.tasks.grain import GrainTask

SETTINGS = [
    (40.0, 0.0, 0.0),
    (40.0, 0.5, 0.0),
    (40.0, 1.0, 0.0),
    (40.0, 1.0, 0.3),
    (80.0, 1.0, 0.0),
    (100.0, 1.0, 0.0),
    (100.0, 1.0, 0.5),
    (200.0, 1.0, 0.0),
    (200.0, 0.0, 0.0),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--split", default="validation", choices=["validation", "test"])
    args = parser.parse_args()
    checkpoint = load_checkpoint(args.run / "checkpoints" / "last.pt")
    parse_gin([args.run / "config.gin"])
    task = GrainTask()
    data = task.load_data(None, int(checkpoint["run"].get("seed", 0)), log=lambda _: None).side(args.split)
    model, _ = task.build_model()
    model.load_state_dict(checkpoint["model_state"])
    model.eval()
    print("| density, jitter, spray | generated | held-out grains |\n| --- | --- | --- |")
    for density, jitter, spray in SETTINGS:
        settings = {"density": density, "jitter": jitter, "spray": spray}
        generated = frame_rate_share([task.prior_texture(model, settings)], task.sample_rate, density)
        corpus = frame_rate_share([task.corpus_texture(data, settings)], task.sample_rate, density)
        print(f"| {density:g}, {jitter:g}, {spray:g} | {generated:.3f} | {corpus:.3f} |")


if __name__ == "__main__":
    main()

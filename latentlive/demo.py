"""``make demo``: short runs of every model on the built-in corpora, exports, devices and renders.

Re-running it continues or reuses the runs it made before, so nothing is trained twice.
"""

import argparse
import shutil
import sys
from pathlib import Path

from latentlive.cli import guarded, main
from latentlive.runs import RunFolder, load_checkpoint

DEMO_STEPS = {"drums": 3000}


def _train_or_continue(runs: Path, model: str) -> RunFolder:
    run = RunFolder(runs / f"{model}_demo")
    command = ["train", "--gin", f"gin/{model}.gin", "--name", run.name, "--out", str(runs)]
    command += ["--max_steps", str(DEMO_STEPS[model]), "--bind", "train.media_every = 1000"]
    if run.checkpoint.is_file():
        if load_checkpoint(run.checkpoint)["step"] >= DEMO_STEPS[model]:
            print(f"{run.root}: already trained")
            return run
        command.append("--resume")
    if main(command) != 0:
        raise SystemExit(f"demo: training {model} failed")
    return run


def _step(argv: list[str]) -> None:
    if main(argv) != 0:
        raise SystemExit(f"demo: `latentlive {' '.join(argv)}` failed")


def run_demo(runs: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    drums = _train_or_continue(runs, "drums")
    _step(["export", "--run", str(drums.root), "--streaming"])
    shutil.copy2(drums.exported_model, out / "drums.ts")
    _step(
        [
            "devices",
            "--run",
            str(drums.root),
            "--model",
            str(out / "drums.ts"),
            "--out",
            str(out),
            "--preview",
        ]
    )
    _step(
        [
            "render",
            "drums",
            "--model",
            str(out / "drums.ts"),
            "--bars",
            "8",
            "--out",
            str(out / "drums_loop.mid"),
        ]
    )
    print(
        f"\ndemo ready in {out}: drums.ts, LatentDrums.amxd, drums_loop.mid (runs in {runs}; tensorboard --logdir {runs})"
    )


def cli() -> int:
    parser = argparse.ArgumentParser(prog="python -m latentlive.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=Path("build/demo"))
    args = parser.parse_args()
    return guarded(lambda: run_demo(args.runs, args.out))


if __name__ == "__main__":
    sys.exit(cli())

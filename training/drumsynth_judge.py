"""The drum synth's judge alone: fitted as a run fits it, on the run's training side, and scored on the held-out
sides per kind of sound and per class (the figures of docs/drumsynth.md)::

    python -m latentlive.training.drumsynth_judge --gin gin/drumsynth.gin --seed S [--db FOLDER]
"""

import argparse
import json
from pathlib import Path

import torch

from latentlive.models.drum_classifier import classify
from latentlive.training.config import parse_gin
from latentlive.training.tasks.base import SplitData
from latentlive.training.tasks.drumsynth import DrumSynthTask


def judge_report(task: DrumSynthTask, data: SplitData, device: str = "cpu") -> dict[str, float]:
    """The accuracy of ``task``'s judge, fitted as a run fits it (its training side and settings), on each
    held-out side of ``data``: overall, per kind of sound (``synth``: procedural, known by its factors;
    ``other``: soundfont samples or files) and per class."""
    judge = task._judge(torch.device(device))  # noqa: SLF001 - the run's own judge, not a copy of its recipe
    report: dict[str, float] = {}
    for side in ("validation", "test"):
        held_out = data.side(side).tensors
        if not len(held_out["cls"]):
            continue
        correct = (classify(judge, held_out["logmag"].to(device)).cpu() == held_out["cls"]).float()
        synth = ~torch.isnan(held_out["factors"]).all(1)
        report[f"{side}/accuracy"] = correct.mean().item()
        report[f"{side}/count"] = float(len(correct))
        for kind, mask in (("synth", synth), ("other", ~synth)):
            if mask.any():
                report[f"{side}/accuracy/{kind}"] = correct[mask].mean().item()
                report[f"{side}/count/{kind}"] = float(mask.sum())
        for c, name in enumerate(task.class_names):
            if (held_out["cls"] == c).any():
                report[f"{side}/accuracy/class/{name}"] = correct[held_out["cls"] == c].mean().item()
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m latentlive.training.drumsynth_judge --gin gin/drumsynth.gin [--seed S] [--db FOLDER]``:
    the drum synth's judge alone, fitted on the run's training side, its held-out accuracy printed as JSON."""
    parser = argparse.ArgumentParser(prog="python -m latentlive.training.drumsynth_judge")
    parser.add_argument("--gin", action="append", default=[], help="gin file(s) of the drum synth")
    parser.add_argument("--bind", action="append", default=[], help="extra gin bindings")
    parser.add_argument("--seed", type=int, default=0, help="the run's seed: it deals the split")
    parser.add_argument("--db", type=Path, default=None, help="a one-shot folder (default: built-in corpus)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    parse_gin(args.gin or ["gin/drumsynth.gin"], args.bind)
    task = DrumSynthTask()
    data = task.load_data(args.db, args.seed, print)
    print(json.dumps(judge_report(task, data, args.device), indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``latentlive evaluate --run R [--split test|validation] [--db FOLDER]``: the held-out metrics of a trained run.

The run's task is rebuilt from its ``config.gin``, its data read with the seed and folder it recorded, and the
split checked against the one its checkpoint carries (``split.json``): nothing is split anew. The model is then
scored on one side of that split, or on every example of a folder the user holds out, and the metrics are
printed and written to ``R/eval_<split-or-folder>.json``.
"""

import re
from pathlib import Path
from typing import Any

import torch

from latentlive import registry
from latentlive.core.errors import UserError
from latentlive.core.runs import RunFolder, atomic_write_json, load_checkpoint, recorded_path
from latentlive.corpus.splits import SIDES
from latentlive.training.config import parse_gin


def evaluation_name(split: str, db: Path | None) -> str:
    """The ``NAME`` of ``eval_NAME.json``: the split, or ``folder-<folder name>`` for a user's folder."""
    if db is None:
        return split
    return "folder-" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(db).resolve().name) or "root")


def evaluate_run(
    run_path: Path, split: str = "test", db: Path | None = None, log: Any = print
) -> dict[str, Any]:
    """Score the run at ``run_path`` on ``split`` of its own data, or on every example of ``db``; write and
    return ``{"run", "step", "held_out", "examples", "metrics", "file"}`` (``file``: the JSON written)."""
    if split not in SIDES[1:]:
        raise UserError(f"--split {split}: use test or validation (the training side is not held out)")
    run = RunFolder(Path(run_path)).require_trained()
    if db is not None and not Path(db).is_dir():
        raise UserError(f"{db}: no such folder; --db takes a folder of held-out data of the run's kind")
    checkpoint = load_checkpoint(run.checkpoint)
    task_name = checkpoint.get("task") if isinstance(checkpoint, dict) else None
    spec = registry.find(task_name) if isinstance(task_name, str) else None
    if spec is None:
        raise UserError(f"{run.checkpoint}: not a checkpoint of latentlive train; pass a trained --run")
    recorded_run = checkpoint.get("run") or {}
    seed, trained_on = int(recorded_run.get("seed", 0)), recorded_run.get("db")
    parse_gin([run.config])
    task = registry.load(spec.task)()
    torch.manual_seed(seed)
    data = task.load_data(None if trained_on is None else Path(trained_on), seed, log)
    recorded = checkpoint.get("split")
    if recorded is None:
        raise UserError(
            f"{run.checkpoint}: carries no split (trained before split.json); train the run again"
        )
    if recorded != data.split.to_json():
        raise UserError(
            f"{run.root}: its data no longer splits as when it was trained (files added, removed or renamed in "
            f"{trained_on or 'the built-in corpus'}); restore the data, or evaluate a folder with --db"
        )
    held_out = task.load_held_out(Path(db), log) if db is not None else data.side(split)
    if len(held_out) == 0:
        where = f"{db}" if db is not None else f"{run.root}: the {split} side of split.json"
        raise UserError(
            f"{where}: no held-out examples to score; add data (three groups or more give a test side)"
        )
    model, _ = task.build_model()
    model.load_state_dict(checkpoint["model_state"])
    model.eval()
    full = getattr(task, "evaluate_held_out", None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        with torch.no_grad():
            metrics = full(model, held_out, data) if full is not None else task.evaluate(model, held_out)
    name = evaluation_name(split, db)
    result = {
        "run": str(run.root),
        "step": int(checkpoint.get("step", 0)),
        "held_out": recorded_path(db) if db is not None else split,
        "examples": len(held_out),
        "metrics": {key: float(value) for key, value in metrics.items()},
    }
    path = run.evaluation(name)
    atomic_write_json(path, result)
    return {**result, "file": str(path)}

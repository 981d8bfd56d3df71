"""Benchmarks (`latentlive bench`): ratios measured in one run, written as JSON.

Each model's bench is a module of this package with the same small interface:
``bench(ts_path, run) -> dict`` (``run`` is None when a file is measured alone), ``TRAINING_BINDINGS`` (the
gin bindings of the short run of the model's full-size gin file trained when no run is given: speed does
not depend on how well the model has learned; empty where the model is measured from a file only),
``FROM_FILE`` (whether ``--model FILE.ts`` is measured without a run) and ``REUSE_CURRENT_EXPORT`` (whether
a streaming export newer than the checkpoint is measured as it is rather than exported again) and
``HELD_BY_DEPENDENT_RUNS`` (whether ``--run`` also takes a run of a model that trains on this one's, the
registry's ``needs``, because its export carries this model). Every timed
call is reported by ``common.call_figures``, with the same fields in every bench (docs/development.md).
"""

import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from latentlive import registry
from latentlive.bench.common import (
    INTERLEAVED_WITH,
    QUICK_SCALE,
    export_is_current,
    fewer_calls,
    first_call_figures,
    train_tiny_run,
    write_and_print,
    yardstick_figures,
)
from latentlive.bench.nsgt import bench_transform
from latentlive.core.errors import UserError
from latentlive.core.runs import RunFolder
from latentlive.export.exporter import export_run

__all__ = ["QUICK_SCALE", "bench_model", "bench_transform", "fewer_calls"]


def _run_tasks(model_name: str, bench: ModuleType) -> list[str]:
    """The tasks whose runs ``bench`` measures: the model's own, and with ``HELD_BY_DEPENDENT_RUNS`` those of
    the models whose runs train on its runs (a techno_prior run carries its techno stage 1)."""
    dependents = [spec.name for spec in registry.MODELS if any(m == model_name for _, m in spec.needs)]
    return [model_name, *(dependents if bench.HELD_BY_DEPENDENT_RUNS else [])]


def bench_model(
    model_name: str,
    bench: ModuleType,
    *,
    run: Path | None = None,
    out: Path | None = None,
    model: Path | None = None,
) -> dict[str, Any]:
    """Measure ``model_name`` with its ``bench`` module (train and export a short run when ``run`` is None,
    or take the exported ``model`` where the bench allows it); print and write JSON."""
    if model is not None:
        if not bench.FROM_FILE:
            raise UserError(f"--model: bench {model_name} measures a run; pass --run RUN instead")
        results = {
            "model": model_name,
            "torch_version": torch.__version__,
            "path": str(model),
            "interleaved_with": INTERLEAVED_WITH,
        }
        results.update(bench.bench(Path(model), None), **first_call_figures(Path(model)))
        results["yardstick"] = yardstick_figures()
        return write_and_print(model_name, results, out)
    if run is None and not bench.TRAINING_BINDINGS:
        raise UserError(f"bench {model_name} measures a file; pass --model FILE.ts")
    with tempfile.TemporaryDirectory() as scratch:
        if run:
            the_run = RunFolder(run).require_trained()
            if the_run.task not in (None, *_run_tasks(model_name, bench)):
                raise UserError(
                    f"{the_run.root}: a {the_run.task} run, not a {model_name} one; pass --run with a "
                    f"{model_name} run, or `latentlive bench {the_run.task} --run {run}`"
                )
        else:
            the_run = train_tiny_run(model_name, bench.TRAINING_BINDINGS, Path(scratch))
        if not (bench.REUSE_CURRENT_EXPORT and export_is_current(the_run)):
            export_run(the_run.root, streaming=True)
        results = {
            "model": model_name,
            "torch_version": torch.__version__,
            "device_for_training": "cuda" if torch.cuda.is_available() else "cpu",
            "interleaved_with": INTERLEAVED_WITH,
            **bench.bench(the_run.exported_model, the_run),
            **first_call_figures(the_run.exported_model),
            "yardstick": yardstick_figures(),
        }
    return write_and_print(model_name, results, out)

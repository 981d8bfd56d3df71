"""``latentlive export --run runs/NAME --streaming``: TorchScript for nn~, verified before it is kept.

The file is scripted to a temporary path beside the target, reloaded with ``torch.jit.load`` and
compared with the eager wrapper, checked against the nn~ contract in a fresh torch process, and only
then renamed over ``RUN/export/NAME.ts``. ``RUN/export/report.json`` records what was measured.

``--out`` may replace an earlier latentlive export (and the ``report.json`` beside it), never another
file unless ``force``, and never a folder; the disk is checked for room before the file is written.
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from latentlive import registry
from latentlive.core.errors import UserError
from latentlive.core.files import atomic_write, atomic_write_json, check_output_file, require_space
from latentlive.core.runs import RunFolder, load_checkpoint
from latentlive.export.host import DEFAULT_HOST_RATE, deliver_host_rate, load_ts, method_spec
from latentlive.export.metadata import METADATA_NAME, read_metadata
from latentlive.training.config import PROJECT_ROOT, parse_gin

NN_TILDE_TORCH = "2.5"


def _eager_matches(eager: torch.nn.Module, scripted: torch.nn.Module, methods: list[str]) -> list[str]:
    """Call every method of both modules with the same inputs, in the same order; list mismatches."""
    generator = torch.Generator().manual_seed(0)
    problems = []
    for module in (eager, scripted):
        deliver_host_rate(module, DEFAULT_HOST_RATE)
    for method in methods:
        spec = method_spec(scripted, method)
        for n in (spec.ratio, 2048):
            x = torch.randn(4, spec.in_channels, max(1, n // spec.in_ratio), generator=generator)
            with torch.no_grad():
                a, b = getattr(eager, method)(x), getattr(scripted, method)(x)
            if a.shape != b.shape or not torch.allclose(a, b, atol=1e-5, rtol=1e-4):
                problems.append(f"{method}: scripted output differs from eager output at buffer {n}")
    return problems


def _verify_in_fresh_process(path: Path) -> dict[str, Any]:
    """Run the contract checks on the saved file in a new torch process (no training code loaded)."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "latentlive.export.contract", str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise RuntimeError(f"contract check of {path} crashed:\n{done.stderr[-2000:]}") from None


def export_run(
    run_path: Path, streaming: bool = True, out: Path | None = None, force: bool = False
) -> dict[str, Any]:
    """Export the run at ``run_path``; return the report (also written to ``RUN/export/report.json``).

    ``out`` (default ``RUN/export/NAME.ts``) must be a ``.ts`` name; an existing file there is replaced only
    when it is a latentlive export or ``force`` is given.
    """
    # ``streaming`` goes to the export builder, which builds the cached-conv (streaming) layers from it;
    # cached_conv's global switch is never set, so models built later in this process stay offline
    return _export(run_path, streaming, out, force)


def is_latentlive_export(path: Path) -> bool:
    """Whether ``path`` is a ``.ts`` written by ``latentlive export`` (it carries our metadata)."""
    try:
        read_metadata(path)
    except UserError:
        return False
    return True


def is_export_report(path: Path) -> bool:
    """Whether ``path`` is a ``report.json`` written by ``latentlive export``."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(report, dict) and {"latency_samples", "contract", "methods"} <= set(report)


def _check_outputs(run: RunFolder, out: Path | None, force: bool) -> tuple[Path, Path]:
    """The model and report paths to write, refused before any work when they would replace a folder or
    a file that is not an earlier export (without ``force``), or cannot be written."""
    if out is None:  # the run's own export folder: everything there is the exporter's
        own = lambda _: True  # noqa: E731
        return check_output_file(run.exported_model, is_own=own), check_output_file(run.report, is_own=own)
    if out.suffix != ".ts" and not out.is_dir():
        raise UserError(f"{out}: nn~ loads .ts files; give --out a name ending in .ts")
    target = check_output_file(out, force, is_latentlive_export, example=f"{run.name}.ts")
    report = check_output_file(target.with_name("report.json"), force, is_export_report)
    return target, report


def _checkpoint_task(run: RunFolder, checkpoint: dict[str, Any]) -> str:
    task = checkpoint.get("task") if isinstance(checkpoint, dict) else None
    if not isinstance(task, str):
        raise UserError(
            f"{run.checkpoint}: not a checkpoint of latentlive train (it names no task); "
            "pass the --run of a trained run, or train it again"
        )
    return task


def _build(
    build: Callable, run: RunFolder, checkpoint: dict[str, Any], streaming: bool
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The export wrapper of ``checkpoint``; an incomplete checkpoint is one line, not a KeyError."""
    try:
        return build(checkpoint, streaming)
    except KeyError as missing:
        if not missing.args or missing.args[0] in checkpoint:
            raise  # a key of the checkpoint's contents, not the checkpoint itself: a fault of the exporter
        raise UserError(
            f"{run.checkpoint}: incomplete checkpoint (no {missing}); train the run again or resume it"
        ) from None


def _module_bytes(module: torch.nn.Module) -> int:
    """The bytes of a module's parameters and buffers: the bulk of its TorchScript file."""
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def _export(run_path: Path, streaming: bool, out: Path | None, force: bool) -> dict[str, Any]:
    run = RunFolder(run_path).require_trained()
    if not torch.__version__.startswith(NN_TILDE_TORCH):
        raise UserError(
            f"torch {torch.__version__}: nn~ 1.6 runs libtorch {NN_TILDE_TORCH}; export from the project's .venv (make install)"
        )
    target, report_path = _check_outputs(run, out, force)
    started = time.perf_counter()
    parse_gin([run.config])
    checkpoint = load_checkpoint(run.checkpoint)
    task = _checkpoint_task(run, checkpoint)
    spec = registry.find(task)
    if spec is None or spec.export is None:
        raise UserError(f"{run.checkpoint}: no exporter for task {task!r}")
    build = registry.load(spec.export)
    wrapper, metadata = _build(build, run, checkpoint, streaming)
    # A full disk must be seen before the TorchScript writer meets it: its failure can abort the process.
    require_space(target, _module_bytes(wrapper) + 4 * 2**20, "the exported model")
    methods = list(wrapper._methods)  # noqa: SLF001 - nn_tilde keeps the registered names here
    metadata.update(
        name=run.name,
        step=checkpoint.get("step", 0),
        streaming=streaming,
        cached_conv=streaming,  # the model's cached-conv layers, built by the builder
        torch_version=torch.__version__,
        methods={m: vars(method_spec(wrapper, m)) for m in methods},
    )
    scripted = torch.jit.script(wrapper)
    verified: dict[str, Any] = {}

    def save_and_verify(tmp: Path) -> None:
        scripted.save(str(tmp), _extra_files={METADATA_NAME: json.dumps(metadata)})
        problems = _eager_matches(build(checkpoint, streaming)[0], load_ts(tmp), methods)
        verified.update(_verify_in_fresh_process(tmp))
        problems += verified["problems"]
        if problems:
            raise UserError(
                f"{run.root}: not exported, the model breaks the nn~ contract: {'; '.join(problems)}"
            )

    atomic_write(target, save_and_verify)
    export_seconds = time.perf_counter() - started  # build, script, save, reload, comparison and contract
    report = {
        "path": str(target),
        "model": metadata["model"],
        "methods": metadata["methods"],
        "latency_samples": metadata["latency_samples"],
        "file_size_bytes": target.stat().st_size,
        "torch_version": torch.__version__,
        "streaming": streaming,
        "export_seconds": round(export_seconds, 3),
        "per_buffer_2048_one_thread": verified["timing_2048"],  # wall and CPU ms (export.host.time_calls)
        "first_five_calls_after_load_ms": verified["first_calls_ms"],
        "contract": {
            "buffers": "ratio..16384",
            "batches": [1, 4, 64],
            "problems": [],
            "recovery_not_checked": verified["recovery_not_checked"],  # methods that keep what they heard
        },
    }
    atomic_write_json(report_path, report)
    return report

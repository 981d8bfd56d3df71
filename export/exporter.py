"""``latentlive export --run runs/NAME --streaming``: TorchScript for nn~, verified before it is kept.

The file is scripted to a temporary path beside the target, reloaded with ``torch.jit.load`` and
compared with the eager wrapper, checked against the nn~ contract in a fresh torch process, and only
then renamed over ``RUN/export/NAME.ts``. ``RUN/export/report.json`` records what was measured.
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cached_conv as cc
import torch

from export.host import DEFAULT_HOST_RATE, deliver_host_rate, load_ts, method_spec
from export.metadata import METADATA_NAME
from latentlive.config import PROJECT_ROOT, parse_gin
from latentlive.errors import UserError
from latentlive.files import atomic_write, atomic_write_json
from latentlive.runs import RunFolder, load_checkpoint

NN_TILDE_TORCH = "2.5"


def _builders() -> dict[str, Callable[[dict[str, Any]], tuple[torch.nn.Module, dict[str, Any]]]]:
    from export.band import build_band_export
    from export.drums import build_drums_export
    from export.drumsynth import build_drumsynth_export
    from export.grain import build_grain_export
    from export.techno import build_techno_export, build_techno_prior_export

    return {
        "drums": build_drums_export,
        "drumsynth": build_drumsynth_export,
        "techno": build_techno_export,
        "techno_prior": build_techno_prior_export,
        "grain": build_grain_export,
        "band": build_band_export,
    }


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
        [sys.executable, "-m", "export.contract", str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise RuntimeError(f"contract check of {path} crashed:\n{done.stderr[-2000:]}") from None


def export_run(run_path: Path, streaming: bool = True, out: Path | None = None) -> dict[str, Any]:
    """Export the run at ``run_path``; return the report (also written to ``RUN/export/report.json``)."""
    was_streaming = bool(cc.USE_BUFFER_CONV)
    cc.use_cached_conv(streaming)  # the one place the streaming switch is set, before any model is built
    try:
        return _export(run_path, streaming, out)
    finally:
        cc.use_cached_conv(was_streaming)  # models built later in this process (training) stay offline


def _export(run_path: Path, streaming: bool, out: Path | None) -> dict[str, Any]:
    run = RunFolder(run_path).require_trained()
    if not torch.__version__.startswith(NN_TILDE_TORCH):
        raise UserError(
            f"torch {torch.__version__}: nn~ 1.6 runs libtorch {NN_TILDE_TORCH}; export from the project's .venv (make install)"
        )
    started = time.perf_counter()
    parse_gin([run.config])
    checkpoint = load_checkpoint(run.checkpoint)
    build = _builders().get(checkpoint["task"])
    if build is None:
        raise UserError(f"{run.checkpoint}: no exporter for task {checkpoint['task']!r}")
    wrapper, metadata = build(checkpoint)
    methods = list(wrapper._methods)  # noqa: SLF001 - nn_tilde keeps the registered names here
    metadata.update(
        name=run.name,
        step=checkpoint["step"],
        streaming=streaming,
        cached_conv=bool(cc.USE_BUFFER_CONV),
        torch_version=torch.__version__,
        methods={m: vars(method_spec(wrapper, m)) for m in methods},
    )
    scripted = torch.jit.script(wrapper)
    export_seconds = time.perf_counter() - started
    verified: dict[str, Any] = {}

    def save_and_verify(tmp: Path) -> None:
        scripted.save(str(tmp), _extra_files={METADATA_NAME: json.dumps(metadata)})
        problems = _eager_matches(build(checkpoint)[0], load_ts(tmp), methods)
        verified.update(_verify_in_fresh_process(tmp))
        problems += verified["problems"]
        if problems:
            raise UserError(
                f"{run.root}: not exported, the model breaks the nn~ contract: {'; '.join(problems)}"
            )

    target = atomic_write(out or run.exported_model, save_and_verify)
    report = {
        "path": str(target),
        "model": metadata["model"],
        "methods": metadata["methods"],
        "latency_samples": metadata["latency_samples"],
        "file_size_bytes": target.stat().st_size,
        "torch_version": torch.__version__,
        "streaming": streaming,
        "export_seconds": round(export_seconds, 3),
        "cpu_time_per_buffer_2048_one_thread_ms": verified["timing_2048"],
        "first_five_calls_after_load_ms": verified["first_calls_ms"],
        "contract": {"buffers": "ratio..16384", "batches": [1, 4, 64], "problems": []},
    }
    atomic_write_json(run.report if out is None else target.with_name("report.json"), report)
    return report

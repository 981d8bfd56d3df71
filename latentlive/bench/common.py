"""What several benches share: timing figures, streamed inputs, memory probes, the tiny run and the JSON."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from latentlive.core.files import atomic_write_json
from latentlive.core.runs import RunFolder
from latentlive.export.contract import first_calls_ms
from latentlive.export.host import (
    deliver_host_rate,
    load_ts,
    method_spec,
    one_thread,
    threaded_delay,
    time_calls,
)
from latentlive.export.metadata import read_metadata
from latentlive.training.config import PROJECT_ROOT, parse_gin

FIRST_CALL_RATE, FIRST_CALL_BUFFER = 48000, 2048
NN_HOST_BLOCK = 64


def train_tiny_run(model_name: str, bindings: list[str], folder: Path) -> RunFolder:
    """A short run of gin/``model_name``.gin with ``bindings``, in ``folder``: speed does not depend on how
    well the model has learned."""
    from latentlive.training.loop import train

    parse_gin([PROJECT_ROOT / "gin" / f"{model_name}.gin"], bindings)
    run = RunFolder(folder / model_name)
    run.root.mkdir(parents=True)
    train(run, device="cuda" if torch.cuda.is_available() else "cpu")
    return run


def export_is_current(run: RunFolder) -> bool:
    """Whether the run's streaming export is newer than its checkpoint (exporting techno takes a while)."""
    path = run.exported_model
    if not path.is_file() or path.stat().st_mtime < run.checkpoint.stat().st_mtime:
        return False
    return bool(read_metadata(path).get("streaming"))


def run_metrics(run: RunFolder | None) -> dict[str, Any]:
    """The run's metrics.json, empty without a run or the file."""
    return json.loads(run.metrics.read_text()) if run is not None and run.metrics.is_file() else {}


def first_call_figures(ts_path: Path) -> dict[str, Any]:
    """The first five calls of each method of a freshly loaded ``ts_path`` once its device has set the host
    rate (which warms it up, docs/host_rate.md), wall clock on one thread, against the buffer period."""
    calls = {}
    for method in read_metadata(ts_path)["methods"]:
        module = load_ts(ts_path)
        deliver_host_rate(module, FIRST_CALL_RATE)
        calls[method] = first_calls_ms(module, method, 5, FIRST_CALL_BUFFER)
    period_ms = 1e3 * FIRST_CALL_BUFFER / FIRST_CALL_RATE
    slowest = max(max(times) for times in calls.values())
    return {
        "first_five_calls_after_load_ms": calls,
        "first_call_slowest_ms": slowest,
        "first_call_budget_ms": period_ms,
        "first_call_slowest_over_budget": slowest / period_ms,
    }


def write_and_print(name: str, results: dict[str, Any], out: Path | None) -> dict[str, Any]:
    """Write ``results`` as JSON to ``out`` (default build/bench/NAME.json) and print them one per line."""
    target = out or Path("build") / "bench" / f"{name}.json"
    atomic_write_json(target, results)
    for key, value in results.items():
        if isinstance(value, dict) and key != "eval":
            value = ", ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items()
            )
        elif isinstance(value, float):
            value = f"{value:.4g}"
        print(f"{key:40s} {value}")
    print(f"wrote {target}")
    return results


def cycling(inputs: list[Tensor], call: Callable[[Tensor], object]) -> Callable[[], object]:
    """A call without arguments that feeds ``inputs`` in turn, so that a stream sees fresh buffers."""
    position = [0]

    def next_call() -> object:
        position[0] += 1
        return call(inputs[(position[0] - 1) % len(inputs)])

    return next_call


def method_inputs(
    module: torch.nn.Module, method: str, rate: int, buffer: int, count: int = 32
) -> list[Tensor]:
    """``count`` successive nn~ inputs of ``method`` for one ``buffer`` of host samples: latents ``N(0, 1)``,
    audio noise at -20 dBFS, or (``loop``) constant macros with a phase that ramps over 2 s at ``rate``."""
    spec = method_spec(module, method)
    generator = torch.Generator().manual_seed(0)
    frames = buffer // spec.in_ratio
    inputs = []
    for i in range(count):
        if method == "loop":
            x = torch.zeros(1, spec.in_channels, frames)
            x[0, -1] = ((i * buffer + torch.arange(frames)) / (2.0 * rate)) % 1.0
        else:
            scale = 1.0 if spec.in_ratio > 1 else 0.1
            x = scale * torch.randn(1, spec.in_channels, frames, generator=generator)
        inputs.append(x)
    return inputs


def streaming_figures(
    module: torch.nn.Module, method: str, repeats: int, rate: int, buffer: int
) -> dict[str, float]:
    """One nn~ call of ``method`` per ``buffer`` at host ``rate``, streamed on one thread: p50 and p99 in ms,
    and the buffer period over each (the real-time factor)."""
    deliver_host_rate(module, rate)  # as the device does
    module.reset()
    with one_thread(), torch.no_grad():
        inputs = method_inputs(module, method, rate, buffer)
        times = time_calls(cycling(inputs, getattr(module, method)), repeats, 10)
    module.reset()
    period_ms = 1e3 * buffer / rate
    return {
        **times,
        "real_time_factor": period_ms / times["p50_ms"],
        "p99_real_time_factor": period_ms / times["p99_ms"],
    }


def percentiles_ms(times_ms: list[float]) -> dict[str, float]:
    """``p50_ms`` and ``p99_ms`` of times in milliseconds."""
    return {"p50_ms": float(np.percentile(times_ms, 50)), "p99_ms": float(np.percentile(times_ms, 99))}


def spread(values: Any) -> dict[str, float]:
    """p50, p99 and max of ``values``."""
    return {
        "p50": float(np.percentile(values, 50)),
        "p99": float(np.percentile(values, 99)),
        "max": float(np.max(values)),
    }


def latency_figures(latency_samples: dict[str, int], buffer: int) -> dict[str, Any]:
    """Each method's latency in samples and in ms at 48 and 44.1 kHz, and what threaded nn~ adds at
    ``buffer``."""
    return {
        "latency_samples": latency_samples,
        "latency_ms_48k": {m: 1e3 * s / 48000 for m, s in latency_samples.items()},
        "latency_ms_44k1": {m: 1e3 * s / 44100 for m, s in latency_samples.items()},
        "nn_threaded_extra_delay_samples": threaded_delay(buffer, NN_HOST_BLOCK),
    }


def resident_bytes(field_name: str) -> int | None:
    """``VmRSS`` or ``VmHWM`` (the peak) of this process in bytes, None where /proc is missing."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Start a new peak-RSS window (Linux: ``5`` to ``/proc/self/clear_refs``); False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def max_rss_bytes() -> int:
    """The peak resident size of this process since it started, in bytes."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux

"""What several benches share: timing figures, streamed inputs, memory probes, the tiny run and the JSON."""

import contextvars
import functools
import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
QUICK_SCALE = 0.1  # ``latentlive bench --quick``: a tenth of the timed calls
MIN_TIMED_CALLS = 10
_calls_scale = contextvars.ContextVar("calls_scale", default=1.0)


@contextmanager
def fewer_calls(scale: float) -> Iterator[None]:
    """Within it, every :func:`call_figures` times ``scale`` of its calls (at least ``MIN_TIMED_CALLS``, or
    all of them when it times fewer) and every bench JSON records ``calls_scale``: ``bench --quick``."""
    token = _calls_scale.set(scale)
    try:
        yield
    finally:
        _calls_scale.reset(token)


def scaled_calls(repeats: int) -> int:
    """How many of ``repeats`` calls to time under the current :func:`fewer_calls` scale."""
    return max(min(repeats, MIN_TIMED_CALLS), math.ceil(repeats * _calls_scale.get()))


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


def _printed(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _lines(key: str, value: Any) -> list[str]:
    """``key value``, or one line per entry of a dict (``key.entry``) down to dicts of plain values."""
    if not isinstance(value, dict) or key == "eval":
        return [f"{key:40s} {_printed(value)}"]
    if not any(isinstance(v, dict) for v in value.values()):
        return [f"{key:40s} " + ", ".join(f"{k} {_printed(v)}" for k, v in value.items())]
    return [line for k, v in value.items() for line in _lines(f"{key}.{k}", v)]


def write_and_print(name: str, results: dict[str, Any], out: Path | None) -> dict[str, Any]:
    """Write ``results`` as JSON to ``out`` (default build/bench/NAME.json) and print them one per line."""
    target = out or Path("build") / "bench" / f"{name}.json"
    results = {**results, "calls_scale": _calls_scale.get()}
    atomic_write_json(target, results)
    for key, value in results.items():
        print("\n".join(_lines(key, value)))
    if results["calls_scale"] < 1:
        print(
            f"quick: {results['calls_scale']:g} of the timed calls; the p99 figures are rough, not for the README"
        )
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
) -> dict[str, Any]:
    """One nn~ call of ``method`` per ``buffer`` at host ``rate``, streamed on one thread:
    :func:`call_figures` against the buffer period."""
    deliver_host_rate(module, rate)  # as the device does
    module.reset()
    with torch.no_grad():
        inputs = method_inputs(module, method, rate, buffer)
        figures = call_figures(cycling(inputs, getattr(module, method)), repeats, 1e3 * buffer / rate)
    module.reset()
    return figures


# The work a DAW does between two calls of one model: a RAVE v2-like decoder (RAVE_LIKE_CHANNELS, upsampling
# by RAVE_LIKE_RATIOS to 16 bands of 128 frames: one 2048-sample buffer per call; 2.6 M parameters, 10 MB of
# float32 weights, which push a small model's weights out of the CPU caches; about 4 ms a call on one thread).
RAVE_LIKE_BUFFER, RAVE_LIKE_LATENT, RAVE_LIKE_BANDS = 2048, 128, 16
RAVE_LIKE_CHANNELS, RAVE_LIKE_RATIOS = (512, 256, 128, 64, 32), (4, 4, 4, 2)
INTERLEAVED_WITH = (
    f"one call of a RAVE v2-like decoder (scripted, 2.6 M parameters; {RAVE_LIKE_LATENT} latents -> "
    f"{RAVE_LIKE_BUFFER} samples, channels {RAVE_LIKE_CHANNELS}, ratios {RAVE_LIKE_RATIOS}) "
    "before each timed call"
)


class _RaveLikeStage(torch.nn.Module):
    """Upsample ``[B, C_in, T]`` -> ``[B, C_out, T * ratio]``, then residual units dilated 1, 3 and 9."""

    def __init__(self, channels_in: int, channels_out: int, ratio: int) -> None:
        super().__init__()
        self.upsample = torch.nn.ConvTranspose1d(channels_in, channels_out, 2 * ratio, ratio, ratio // 2)
        self.units = torch.nn.ModuleList(
            torch.nn.Sequential(
                torch.nn.LeakyReLU(0.2),
                torch.nn.Conv1d(channels_out, channels_out, 3, dilation=d, padding=d),
                torch.nn.LeakyReLU(0.2),
                torch.nn.Conv1d(channels_out, channels_out, 1),
            )
            for d in (1, 3, 9)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.upsample(torch.nn.functional.leaky_relu(x, 0.2))
        for unit in self.units:
            x = x + unit(x)
        return x


@functools.lru_cache(maxsize=1)
def rave_like_call() -> Callable[[], object]:
    """One call of the RAVE v2-like decoder of ``INTERLEAVED_WITH`` (scripted, without gradients)."""
    # seeded weights without touching the global generator; ordinary tensors whichever mode a bench is in
    with torch.random.fork_rng(devices=[]), torch.inference_mode(False):
        torch.manual_seed(0)
        stages = [torch.nn.Conv1d(RAVE_LIKE_LATENT, RAVE_LIKE_CHANNELS[0], 3, padding=1)]
        for i, ratio in enumerate(RAVE_LIKE_RATIOS):
            stages.append(_RaveLikeStage(RAVE_LIKE_CHANNELS[i], RAVE_LIKE_CHANNELS[i + 1], ratio))
        stages.append(torch.nn.Conv1d(RAVE_LIKE_CHANNELS[-1], RAVE_LIKE_BANDS, 7, padding=3))
        decoder = torch.jit.script(torch.nn.Sequential(*stages).eval())
        frames = RAVE_LIKE_BUFFER // RAVE_LIKE_BANDS // math.prod(RAVE_LIKE_RATIOS)
        z = torch.randn(1, RAVE_LIKE_LATENT, frames)

    def call() -> object:
        with torch.no_grad():
            return decoder(z)

    return call


YARDSTICK_CALLS = 200


def yardstick_figures() -> dict[str, Any]:
    """The host's speed in this run: the RAVE v2-like decoder of ``INTERLEAVED_WITH`` (2048 samples a call)
    timed alone, back to back on one thread. Every figure of a bench moves with the machine's load, and
    this one does too: comparing it tells whether a re-run on another day or machine ran on a slower host
    (``wall_ms_mean`` higher) or on slower code (the same yardstick, a worse figure)."""
    with one_thread():
        times = time_calls(rave_like_call(), scaled_calls(YARDSTICK_CALLS), 10)
    return {"what": INTERLEAVED_WITH, **times}


def _against_period(times: dict[str, float], period_ms: float | None) -> dict[str, Any]:
    return {
        **times,
        "buffer_period_ms": period_ms,
        "real_time_factor": None if period_ms is None else period_ms / times["wall_ms_mean"],
        "wall_ms_p99_over_period": None if period_ms is None else times["wall_ms_p99"] / period_ms,
    }


def call_figures(
    call: Callable[[], object],
    repeats: int,
    period_ms: float | None,
    warmup: int = 10,
    between: Callable[[], object] | None = None,
    multiple_of: int = 1,
) -> dict[str, Any]:
    """What every bench reports of a call, on one thread (docs/development.md#benchmarks): wall clock per
    call (``wall_ms_p50``, ``wall_ms_p99``, ``wall_ms_mean``), the thread's CPU time per call
    (``cpu_ms_mean``), and against the buffer period the call serves (``period_ms``; None for a call that
    serves no buffer) ``real_time_factor`` = period / ``wall_ms_mean`` and ``wall_ms_p99_over_period``.
    ``interleaved``: the same, with one call of a RAVE v2-like decoder (``INTERLEAVED_WITH``) before each
    call, as other devices run between two calls in a DAW; the goals are judged on it. ``between``
    (untimed) runs before each call in both. Under :func:`fewer_calls`, fewer calls are timed, still a
    whole number of ``multiple_of``."""
    rave_like, repeats = rave_like_call(), multiple_of * -(-scaled_calls(repeats) // multiple_of)

    def between_with_rave() -> None:
        if between is not None:
            between()
        rave_like()

    with one_thread():
        plain = time_calls(call, repeats, warmup, between)
        interleaved = time_calls(call, repeats, warmup, between_with_rave)
    return {
        **_against_period(plain, period_ms),
        "interleaved": _against_period(interleaved, period_ms),
    }


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

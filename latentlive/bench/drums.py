"""``latentlive bench drums``: the pattern decoder's time per call, and the harness at 2048 / 44.1 kHz."""

import json
from pathlib import Path
from typing import Any

import torch

from latentlive.bench.common import call_figures, cycling, run_metrics
from latentlive.core.runs import RunFolder
from latentlive.export.host import NNHost, load_ts, method_spec

DECODE_GOAL_MS = 1.0  # decode of one pattern, p99 on one thread, interleaved
TRAINING_BINDINGS = ["train.max_steps = 300"]
FROM_FILE = False
REUSE_CURRENT_EXPORT = False
HELD_BY_DEPENDENT_RUNS = False


def bench(ts_path: Path, run: RunFolder | None) -> dict[str, Any]:
    """``decode`` of one pattern on one thread against its 1 ms p99 goal (judged interleaved), one buffer of
    the nn~ harness at 2048 / 44.1 kHz, and the run's export time, training speed and evaluation."""
    module = load_ts(ts_path)
    spec = method_spec(module, "decode")
    steps = int(module.steps)
    one_pattern = torch.zeros(1, spec.in_channels, steps)
    one_pattern[:, -2] = torch.arange(steps)
    buffer, rate = 2048, 44100
    signal = torch.randn(1, spec.in_channels, 32 * buffer) * 0.5
    signal[:, -2] = (torch.arange(signal.shape[-1]) / (rate * 60 / 124 / 4)).floor()  # steps at 124 BPM
    host = NNHost(module, "decode", buffer_size=buffer, host_rate=rate)
    buffers = list(signal.split(buffer, dim=-1))
    with torch.no_grad():
        decode = call_figures(lambda: module.decode(one_pattern), 1000, None, warmup=20)
        harness = call_figures(cycling(buffers, host.process_buffer), 200, 1e3 * buffer / rate)
    p99 = decode["interleaved"]["wall_ms_p99"]
    metrics = run_metrics(run)
    report = json.loads(run.report.read_text()) if run is not None and run.report.is_file() else {}
    return {
        "decode_per_pattern_one_thread": decode,
        "decode_p99_goal_ms": DECODE_GOAL_MS,
        "decode_interleaved_p99_over_goal": p99 / DECODE_GOAL_MS,
        "harness_per_buffer_2048_44k1_one_thread": harness,
        "export_seconds": report.get("export_seconds"),
        "training_steps_per_second": metrics.get("train", {}).get("train/steps_per_second"),
        "eval": metrics.get("eval", {}),
    }

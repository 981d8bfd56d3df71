"""``latentlive bench drums``: the pattern decoder's time per call, and the harness at 2048 / 44.1 kHz."""

import json
import time
from pathlib import Path
from typing import Any

import torch

from latentlive.bench.common import run_metrics
from latentlive.core.runs import RunFolder
from latentlive.export.host import NNHost, load_ts, method_spec, one_thread, time_calls

TRAINING_BINDINGS = ["train.max_steps = 300"]
FROM_FILE = False
REUSE_CURRENT_EXPORT = False


def bench(ts_path: Path, run: RunFolder | None) -> dict[str, Any]:
    """``decode`` of one pattern on one thread against its 1 ms goal, the nn~ harness's real-time factor
    over 10 s of noise, and the run's export time, training speed and evaluation."""
    module = load_ts(ts_path)
    spec = method_spec(module, "decode")
    steps = int(module.steps)
    one_pattern = torch.zeros(1, spec.in_channels, steps)
    one_pattern[:, -2] = torch.arange(steps)
    with one_thread(), torch.no_grad():
        decode = time_calls(lambda: module.decode(one_pattern), repeats=1000, warmup=20)
        seconds, rate = 10.0, 44100
        signal = torch.randn(1, spec.in_channels, int(seconds * rate)) * 0.5
        signal[:, -2] = (torch.arange(signal.shape[-1]) / (rate * 60 / 124 / 4)).floor()
        host = NNHost(module, "decode", buffer_size=2048, host_rate=rate)
        start = time.perf_counter()
        host.process(signal)
        harness_rtf = seconds / (time.perf_counter() - start)
    metrics = run_metrics(run)
    report = json.loads(run.report.read_text()) if run is not None and run.report.is_file() else {}
    return {
        "decode_per_pattern_one_thread": decode,
        "decode_p99_goal_ms": 1.0,
        "decode_p99_headroom": 1.0 / decode["p99_ms"],
        "harness_real_time_factor_2048_44k1": harness_rtf,
        "export_seconds": report.get("export_seconds"),
        "training_steps_per_second": metrics.get("train", {}).get("train/steps_per_second"),
        "eval": metrics.get("eval", {}),
    }

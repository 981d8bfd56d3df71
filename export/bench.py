"""``latentlive bench MODEL``: speed figures measured in one run, printed as ratios and written as JSON.

Without ``--run`` a short run of the model's full-size gin file is trained in a temporary folder
(which also measures training speed) and exported.
"""

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from export.exporter import export_run
from export.host import NNHost, load_ts, method_spec, one_thread, time_calls
from latentlive.config import PROJECT_ROOT, parse_gin
from latentlive.files import atomic_write_json
from latentlive.runs import RunFolder

# Short runs of the full-size gin files: speed does not depend on how well the model has learned.
BENCH_TRAINING = {
    "drums": ["train.max_steps = 300"],
    "drumsynth": [
        "train.max_steps = 10",
        "DrumSynthTask.classifier_steps = 10",
        "DrumSynthTask.prior_samples_per_class = 2",
        "DrumSynthTask.eval_through_audio = False",
    ],
}


def _train_for_bench(model_name: str, folder: Path) -> RunFolder:
    from latentlive.training import train

    parse_gin([PROJECT_ROOT / "gin" / f"{model_name}.gin"], BENCH_TRAINING[model_name])
    run = RunFolder(folder / model_name)
    run.root.mkdir(parents=True)
    train(run, device="cuda" if torch.cuda.is_available() else "cpu")
    return run


def bench_drums(ts_path: Path, run: RunFolder) -> dict[str, Any]:
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
        host = NNHost(module, "decode", buffer_size=2048, sample_rate=rate)
        start = time.perf_counter()
        host.process(signal)
        harness_rtf = seconds / (time.perf_counter() - start)
    metrics = json.loads(run.metrics.read_text()) if run.metrics.is_file() else {}
    report = json.loads(run.report.read_text()) if run.report.is_file() else {}
    return {
        "decode_per_pattern_one_thread": decode,
        "decode_p99_goal_ms": 1.0,
        "decode_p99_headroom": 1.0 / decode["p99_ms"],
        "harness_real_time_factor_2048_44k1": harness_rtf,
        "export_seconds": report.get("export_seconds"),
        "training_steps_per_second": metrics.get("train", {}).get("train/steps_per_second"),
        "eval": metrics.get("eval", {}),
    }


def bench_drumsynth(ts_path: Path, run: RunFolder) -> dict[str, Any]:
    """One-shot render time, and the instrument's per-buffer time while it re-renders, on one thread."""
    module = load_ts(ts_path)
    rate, buffer = 44100, 2048
    module.set_sample_rate(rate)
    knobs = torch.zeros(1, int(module.latent_size))
    with one_thread(), torch.no_grad():
        one_shot = time_calls(lambda: module.generate(torch.tensor([0]), knobs), repeats=10, warmup=2)
        x = torch.zeros(1, 2 + int(module.latent_size), buffer)
        calls = []

        def play() -> None:  # a knob moves every 40 buffers and a hit every 8: the instrument keeps rendering
            n = len(calls)
            calls.append(n)
            x[0, 2] = (n // 40) * 0.1
            x[0, 0] = 0.0
            if n % 8 == 0:
                x[0, 0, 100:200] = 0.8
            module(x)

        per_buffer = time_calls(play, repeats=400, warmup=20)
    period_ms = 1e3 * buffer / rate
    return {
        "one_shot_render_one_thread": one_shot,
        "streaming_per_buffer_2048_44k1_one_thread": per_buffer,
        "buffer_period_ms": period_ms,
        "per_buffer_p99_over_quarter_period": per_buffer["p99_ms"] / (period_ms / 4),
        "griffin_lim_iterations": int(module.iterations),
    }


BENCHES = {"drums": bench_drums, "drumsynth": bench_drumsynth}


def bench_model(model_name: str, run: Path | None = None, out: Path | None = None) -> dict[str, Any]:
    """Measure ``model_name`` (train and export a short run when ``run`` is None); print and write JSON."""
    with tempfile.TemporaryDirectory() as scratch:
        the_run = RunFolder(run).require_trained() if run else _train_for_bench(model_name, Path(scratch))
        export_run(the_run.root, streaming=True)
        results = {
            "model": model_name,
            "torch_version": torch.__version__,
            "device_for_training": "cuda" if torch.cuda.is_available() else "cpu",
            **BENCHES[model_name](the_run.exported_model, the_run),
        }
    return _write_and_print(model_name, results, out)


def bench_transform(out: Path | None = None) -> dict[str, Any]:
    """The TorchScript NSGT against the reference ``nsgt`` package (one thread), printed and written as JSON."""
    from export.nsgt_bench import bench_nsgt

    return _write_and_print("nsgt", {"torch_version": torch.__version__, **bench_nsgt()}, out)


def _write_and_print(name: str, results: dict[str, Any], out: Path | None) -> dict[str, Any]:
    target = out or Path("build") / "bench" / f"{name}.json"
    atomic_write_json(target, results)
    for key, value in results.items():
        if isinstance(value, dict) and key != "eval":
            value = ", ".join(f"{k} {v:.4g}" for k, v in value.items())
        elif isinstance(value, float):
            value = f"{value:.4g}"
        print(f"{key:40s} {value}")
    print(f"wrote {target}")
    return results

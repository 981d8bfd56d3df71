"""``latentlive bench MODEL``: speed figures measured in one run, printed as ratios and written as JSON.

Without ``--run`` a short run of the model's full-size gin file is trained in a temporary folder
(which also measures training speed) and exported.
"""

import json
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from latentlive.core.errors import UserError
from latentlive.core.files import atomic_write_json
from latentlive.core.runs import RunFolder, load_checkpoint
from latentlive.export.contract import first_calls_ms
from latentlive.export.exporter import export_run
from latentlive.export.host import (
    NNHost,
    deliver_host_rate,
    load_ts,
    method_spec,
    one_thread,
    threaded_delay,
    time_calls,
)
from latentlive.export.metadata import read_metadata
from latentlive.live.model_file import read_model_metadata
from latentlive.training.config import PROJECT_ROOT, parse_gin
from latentlive.training.metrics import headline

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
    from latentlive.training.loop import train

    parse_gin([PROJECT_ROOT / "gin" / f"{model_name}.gin"], BENCH_TRAINING[model_name])
    run = RunFolder(folder / model_name)
    run.root.mkdir(parents=True)
    train(run, device="cuda" if torch.cuda.is_available() else "cpu")
    return run


def _export_is_current(run: RunFolder) -> bool:
    """Whether the run's streaming export is newer than its checkpoint (exporting techno takes a while)."""
    path = run.exported_model
    if not path.is_file() or path.stat().st_mtime < run.checkpoint.stat().st_mtime:
        return False
    return bool(read_metadata(path).get("streaming"))


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
        host = NNHost(module, "decode", buffer_size=2048, host_rate=rate)
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
    deliver_host_rate(module, rate)  # as the device does
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


def bench_model(
    model_name: str, run: Path | None = None, out: Path | None = None, model: Path | None = None
) -> dict[str, Any]:
    """Measure ``model_name`` (train and export a short run when ``run`` is None, or take the exported
    ``model`` where the bench allows it); print and write JSON."""
    if model is not None:
        if model_name not in BENCHES_OF_FILES:
            raise UserError(f"--model: bench {model_name} measures a run; pass --run RUN instead")
        results = {"model": model_name, "torch_version": torch.__version__, "path": str(model)}
        results.update(BENCHES[model_name](Path(model), None), **first_call_figures(Path(model)))
        return _write_and_print(model_name, results, out)
    with tempfile.TemporaryDirectory() as scratch:
        the_run = RunFolder(run).require_trained() if run else _train_for_bench(model_name, Path(scratch))
        if not (model_name in ("techno", "grain") and _export_is_current(the_run)):
            export_run(the_run.root, streaming=True)
        results = {
            "model": model_name,
            "torch_version": torch.__version__,
            "device_for_training": "cuda" if torch.cuda.is_available() else "cpu",
            **BENCHES[model_name](the_run.exported_model, the_run),
            **first_call_figures(the_run.exported_model),
        }
    return _write_and_print(model_name, results, out)


FIRST_CALL_RATE, FIRST_CALL_BUFFER = 48000, 2048


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


def bench_transform(out: Path | None = None) -> dict[str, Any]:
    """The TorchScript NSGT against the reference ``nsgt`` package (one thread), printed and written as JSON."""
    from latentlive.bench.nsgt import bench_nsgt

    return _write_and_print("nsgt", {"torch_version": torch.__version__, **bench_nsgt()}, out)


def _write_and_print(name: str, results: dict[str, Any], out: Path | None) -> dict[str, Any]:
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


# -- techno ----------------------------------------------------------------------------------------

TECHNO_RATE, TECHNO_BUFFER = 48000, 2048  # host rate and nn~ buffer of the techno figures
TECHNO_DECODE_GOAL = 50.0  # decode at least 50x faster than real time on one thread
TECHNO_METHODS = ("decode", "encode", "forward", "loop")  # those the exported file has are measured
NN_HOST_BLOCK = 64
BENCH_TRAINING["techno"] = [  # two steps at full size make a run to export; training speed is measured apart
    "train.max_steps = 2",
    "train.eval_every = 2",
    "train.media_every = 2",
    "train.checkpoint_every = 2",
    "TechnoTask.examples = 8",
    "TechnoTask.val_fraction = 0.25",
    "TechnoTask.interpolation_pairs = 1",
    "TechnoTask.media_examples = 1",
]


def _cycling(inputs: list[Tensor], call: Callable[[Tensor], object]) -> Callable[[], object]:
    """A call without arguments that feeds ``inputs`` in turn, so that a stream sees fresh buffers."""
    position = [0]

    def next_call() -> object:
        position[0] += 1
        return call(inputs[(position[0] - 1) % len(inputs)])

    return next_call


def _method_inputs(module: torch.nn.Module, method: str, count: int = 32) -> list[Tensor]:
    """``count`` successive nn~ inputs of ``method`` for one ``TECHNO_BUFFER``: latents ``N(0, 1)``, audio
    noise at -20 dBFS, or (``loop``) constant macros with a phase that ramps over 2 s."""
    spec = method_spec(module, method)
    generator = torch.Generator().manual_seed(0)
    frames = TECHNO_BUFFER // spec.in_ratio
    inputs = []
    for i in range(count):
        if method == "loop":
            x = torch.zeros(1, spec.in_channels, frames)
            x[0, -1] = ((i * TECHNO_BUFFER + torch.arange(frames)) / (2.0 * TECHNO_RATE)) % 1.0
        else:
            scale = 1.0 if spec.in_ratio > 1 else 0.1
            x = scale * torch.randn(1, spec.in_channels, frames, generator=generator)
        inputs.append(x)
    return inputs


def _streaming_figures(module: torch.nn.Module, method: str, repeats: int) -> dict[str, float]:
    """One nn~ call of ``method`` per ``TECHNO_BUFFER`` at ``TECHNO_RATE``, streamed on one thread: p50 and
    p99 in ms, and the buffer period over each (the real-time factor)."""
    deliver_host_rate(module, TECHNO_RATE)  # as the device does
    module.reset()
    with one_thread(), torch.no_grad():
        times = time_calls(_cycling(_method_inputs(module, method), getattr(module, method)), repeats, 10)
    module.reset()
    period_ms = 1e3 * TECHNO_BUFFER / TECHNO_RATE
    return {
        **times,
        "real_time_factor": period_ms / times["p50_ms"],
        "p99_real_time_factor": period_ms / times["p99_ms"],
    }


def _raw_model_figures(module: torch.nn.Module, model_rate: int, repeats: int) -> dict[str, dict[str, float]]:
    """The scripted streaming stage-1 model inside the file, alone at the model rate (no resampling, no
    FIFOs): ``TECHNO_BUFFER`` model samples per call, on one thread."""
    model = module.streams.model
    ratio, latent_size = int(module.streams.block), int(module.streams.latent_size)
    generator = torch.Generator().manual_seed(0)
    latents = [torch.randn(1, latent_size, TECHNO_BUFFER // ratio, generator=generator) for _ in range(32)]
    audio = [0.1 * torch.randn(1, 1, TECHNO_BUFFER, generator=generator) for _ in range(32)]
    period_ms = 1e3 * TECHNO_BUFFER / model_rate
    figures = {}
    for name, call, inputs in (("decode", model.decode, latents), ("encode", model.encode, audio)):
        model.reset()
        with one_thread(), torch.no_grad():
            times = time_calls(_cycling(inputs, call), repeats, 10)
        figures[name] = {**times, "real_time_factor": period_ms / times["p50_ms"]}
    module.reset()
    return figures


def _resident_bytes(field_name: str) -> int | None:
    """``VmRSS`` or ``VmHWM`` (the peak) of this process in bytes, None where /proc is missing."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Start a new peak-RSS window (Linux: ``5`` to ``/proc/self/clear_refs``); False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def _max_rss_bytes() -> int:
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def _techno_training_sizes() -> tuple[int, int, int]:
    """``(batch_size, crop, length)`` of gin/techno.gin (parsing it replaces the gin config in force)."""
    import gin

    parse_gin([PROJECT_ROOT / "gin" / "techno.gin"])
    return (
        int(gin.query_parameter("train.batch_size")),
        int(gin.query_parameter("TechnoTask.crop")),
        int(gin.query_parameter("TechnoTask.length")),
    )


def bench_techno_training(model_args: dict[str, Any], device: str, steps: int = 3) -> dict[str, float]:
    """Stage-1 training steps per second (after one warm-up step) and peak memory on ``device``, for the model
    of ``model_args`` at gin/techno.gin's batch and crop (KL phase; random audio: speed ignores content).

    CPU memory: the peak resident size while the model, optimizer, batch and steps live, above the resident
    size before them (``VmHWM``; ``ru_maxrss`` growth where /proc is missing). CUDA: ``max_memory_allocated``.
    """
    import cached_conv as cc

    from latentlive.models.waveform_vae import WaveformVAE
    from latentlive.training.loop import weighted_total
    from latentlive.training.tasks.techno import TechnoTask

    batch_size, crop, length = _techno_training_sizes()
    on_cuda = device.startswith("cuda")
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    window = _reset_peak_rss()
    before = (_resident_bytes("VmRSS") if window else None) or _max_rss_bytes()
    was_streaming = bool(cc.USE_BUFFER_CONV)
    cc.use_cached_conv(False)  # training runs the offline layers
    try:
        model = WaveformVAE(**model_args).to(device).train()
    finally:
        cc.use_cached_conv(was_streaming)
    task = TechnoTask(crop=crop, length=length, adversarial_after=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    generator = torch.Generator().manual_seed(0)
    batch = {"audio": (0.1 * torch.randn(batch_size, length, generator=generator)).to(device)}

    def train_step() -> None:
        total = weighted_total(task.losses(model, batch, 1), task.loss_weights(1))
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        if on_cuda:
            torch.cuda.synchronize(device)

    train_step()  # warm-up: allocator, optimizer state, cuDNN plans
    start = time.perf_counter()
    for _ in range(steps):
        train_step()
    seconds = time.perf_counter() - start
    if on_cuda:
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = ((_resident_bytes("VmHWM") if window else None) or _max_rss_bytes()) - before
    return {
        "steps_per_second": steps / seconds,
        "peak_memory_mb": peak / 2**20,
        "batch_size": batch_size,
        "crop": crop,
        "timed_steps": steps,
        "threads": torch.get_num_threads() if not on_cuda else 0,
    }


def bench_techno(
    ts_path: Path, run: RunFolder, repeats: int = 200, training_steps: int = 3
) -> dict[str, Any]:
    """Stage 1 of an exported techno file (``techno.ts`` or ``techno_prior.ts``), streamed on one thread at
    ``TECHNO_BUFFER`` / ``TECHNO_RATE`` with the resampling inside, the raw model at its own rate, latencies,
    size, and stage-1 training speed and memory (CPU, and CUDA when present)."""
    meta = read_metadata(ts_path)
    if meta.get("model") not in ("techno", "techno_prior"):
        raise UserError(
            f"{ts_path}: a {meta.get('model')!r} export, not a techno one; pass --run with a techno run"
        )
    module = load_ts(ts_path)
    model_rate = int(meta["sample_rate"])
    methods = [m for m in TECHNO_METHODS if m in meta["methods"]]
    streamed = {m: _streaming_figures(module, m, repeats) for m in methods}
    raw = _raw_model_figures(module, model_rate, repeats)
    latency = {m: int(meta["method_latency"][m if m != "loop" else "decode"]) for m in methods}
    decode_rtf = streamed["decode"]["real_time_factor"]
    verdict = "met" if decode_rtf >= TECHNO_DECODE_GOAL else "NOT met"
    parameters = {"stage1": sum(p.numel() for p in module.streams.model.parameters())}
    if hasattr(module, "loops"):
        parameters["stage2"] = sum(p.numel() for p in module.loops.prior.parameters())
    checkpoint = load_checkpoint(run.checkpoint)
    stage1_args = checkpoint["metadata"].get("stage1_args", checkpoint["model_args"])
    results: dict[str, Any] = {
        "host_sample_rate": TECHNO_RATE,
        "buffer_size": TECHNO_BUFFER,
        "buffer_period_ms": 1e3 * TECHNO_BUFFER / TECHNO_RATE,
        "model_sample_rate": model_rate,
        **{f"{m}_streamed_2048_48k_one_thread": figures for m, figures in streamed.items()},
        **{f"raw_{m}_2048_{model_rate // 1000}k_one_thread": figures for m, figures in raw.items()},
        "decode_real_time_factor": decode_rtf,
        "decode_goal_real_time_factor": TECHNO_DECODE_GOAL,
        "decode_goal_ratio": decode_rtf / TECHNO_DECODE_GOAL,
        "decode_goal": f"{decode_rtf:.1f}x real time on one thread, {decode_rtf / TECHNO_DECODE_GOAL:.2f}x "
        f"the {TECHNO_DECODE_GOAL:g}x goal: {verdict}",
        "latency_samples": latency,
        "latency_ms_48k": {m: 1e3 * s / 48000 for m, s in latency.items()},
        "latency_ms_44k1": {m: 1e3 * s / 44100 for m, s in latency.items()},
        "nn_threaded_extra_delay_samples": threaded_delay(TECHNO_BUFFER, NN_HOST_BLOCK),
        "parameters": parameters,
        "file_bytes": ts_path.stat().st_size,
        "training_cpu": bench_techno_training(stage1_args, "cpu", training_steps),
    }
    if torch.cuda.is_available():
        results["training_cuda"] = bench_techno_training(stage1_args, "cuda", 10 * training_steps)
    return results


BENCHES["techno"] = bench_techno


# -- grain -----------------------------------------------------------------------------------------

GRAIN_RATE, GRAIN_BUFFER = 48000, 2048  # host rate and nn~ buffer of the grain figures
GRAIN_GOAL = 100.0  # forward at least 100x faster than real time on one thread
GRAIN_DENSITIES = (40.0, 200.0)
GRAIN_DECODE_BATCHES = (1, 8, 64)
# a few steps at full model size on a small built-in corpus: speed does not depend on quality
BENCH_TRAINING["grain"] = [
    "train.max_steps = 2",
    "train.eval_every = 2",
    "train.media_every = 2",
    "train.checkpoint_every = 2",
    "GrainTask.sounds = 16",
    "GrainTask.max_grains = 2000",
    "GrainTask.val_fraction = 0.25",
    "GrainTask.eval_sounds = 1",
    "GrainTask.pca_examples = 512",
]


def _knob_walk(latent_size: int, count: int, frames: int) -> list[Tensor]:
    """``count`` successive buffers ``[1, D, frames]`` of a slow seeded walk in knob units (about +-2), so
    that every grain decodes a fresh latent."""
    generator = torch.Generator().manual_seed(0)
    steps = 0.05 * torch.randn(latent_size, count * frames, generator=generator)
    walk = (steps.cumsum(-1) + 2.0).remainder(8.0)
    walk = torch.where(walk > 4.0, 8.0 - walk, walk) - 2.0  # reflected into [-2, 2]
    return [walk[None, :, i * frames : (i + 1) * frames].contiguous() for i in range(count)]


def _grain_forward_figures(
    module: torch.nn.Module, density: float, repeats: int, block: int
) -> dict[str, float]:
    """One ``forward`` call per ``GRAIN_BUFFER`` at ``GRAIN_RATE`` along a moving knob path at ``density``
    grains per second, on one thread: p50 and p99 per call in ms (wall clock), and the real-time factor, the
    buffer period over the mean time per call.

    The instrument renders a block of ``block`` knob frames in one call of every few, so the mean is taken
    over rounds of whole blocks, and counts the time the calling thread computed (``time.thread_time``; on
    a shared machine a call may also wait for the CPU, which is not what it costs): ``mean_ms`` is the median
    of the rounds' means. ``wall_mean_ms``: the wall-clock mean over every call."""
    spec = method_spec(module, "forward")
    deliver_host_rate(module, GRAIN_RATE)  # as the device does
    module.reset()
    module.set_density(density)
    inputs = _knob_walk(spec.in_channels, 64, GRAIN_BUFFER // spec.in_ratio)
    play = _cycling(inputs, module.forward)
    calls = block * -(-16 // block)  # a round: whole blocks, at least 16 calls
    rounds, wall, cpu = max(1, repeats // calls), [], []
    with one_thread(), torch.no_grad():
        for _ in range(calls):  # warm-up: a round
            play()
        for _ in range(rounds * calls):
            start, start_cpu = time.perf_counter(), time.thread_time()
            play()
            wall.append((time.perf_counter() - start) * 1e3)
            cpu.append((time.thread_time() - start_cpu) * 1e3)
    module.set_density(40.0)
    module.reset()
    period_ms = 1e3 * GRAIN_BUFFER / GRAIN_RATE
    mean_ms = float(np.median([sum(cpu[i : i + calls]) / calls for i in range(0, len(cpu), calls)]))
    return {
        "p50_ms": float(np.percentile(wall, 50)),
        "p99_ms": float(np.percentile(wall, 99)),
        "mean_ms": mean_ms,
        "wall_mean_ms": sum(wall) / len(wall),
        "rounds": rounds,
        "density": density,
        "real_time_factor": period_ms / mean_ms,
        "p99_real_time_factor": period_ms / float(np.percentile(wall, 99)),
        "goal_ratio": period_ms / mean_ms / GRAIN_GOAL,
    }


def _grain_decode_figures(module: torch.nn.Module, repeats: int) -> dict[str, dict[str, float]]:
    """``decode_mean`` of the model inside the file, for batches of ``GRAIN_DECODE_BATCHES`` latents on one
    thread: p50 in ms and grains decoded per second."""
    decoder = module.streams.engine.decoder
    latent_size = int(module.latent_size)
    generator = torch.Generator().manual_seed(0)
    figures = {}
    for batch in GRAIN_DECODE_BATCHES:
        z = torch.randn(batch, latent_size, generator=generator)
        with one_thread(), torch.no_grad():
            times = time_calls(lambda z=z: decoder.decode_mean(z), repeats, 5)
        figures[f"batch_{batch}"] = {**times, "grains_per_second": batch * 1e3 / times["p50_ms"]}
    return figures


def bench_grain(ts_path: Path, run: RunFolder, repeats: int = 480) -> dict[str, Any]:
    """The granular instrument of an exported grain file: ``forward`` streamed on one thread at
    ``GRAIN_BUFFER`` / ``GRAIN_RATE`` at each of ``GRAIN_DENSITIES`` (against the ``GRAIN_GOAL``, on the mean
    time per call), grains decoded per second, latency (``forward`` renders blocks of ``block_frames`` knob
    frames, which its latency includes) and size."""
    meta = read_model_metadata(ts_path, "grain", "pass --run with a grain run")
    module = load_ts(ts_path)
    block = int(meta.get("block_frames", 1))
    forward = {d: _grain_forward_figures(module, d, repeats, block) for d in GRAIN_DENSITIES}
    slowest = min(figures["real_time_factor"] for figures in forward.values())
    verdict = "met" if slowest >= GRAIN_GOAL else "NOT met"
    latency = {m: int(s) for m, s in meta["method_latency"].items()}
    metrics = json.loads(run.metrics.read_text()) if run.metrics.is_file() else {}
    return {
        "host_sample_rate": GRAIN_RATE,
        "buffer_size": GRAIN_BUFFER,
        "buffer_period_ms": 1e3 * GRAIN_BUFFER / GRAIN_RATE,
        "model_sample_rate": int(meta["sample_rate"]),
        "grain_size": int(meta["grain_size"]),
        "latent_size": int(meta["latent_size"]),
        **{f"forward_density_{d:g}_2048_48k_one_thread": figures for d, figures in forward.items()},
        "decode_mean_one_thread": _grain_decode_figures(module, repeats),
        "forward_real_time_factor": slowest,
        "forward_goal_real_time_factor": GRAIN_GOAL,
        "forward_goal_ratio": slowest / GRAIN_GOAL,
        "forward_goal": f"{slowest:.1f}x real time on one thread at the slowest density, "
        f"{slowest / GRAIN_GOAL:.2f}x the {GRAIN_GOAL:g}x goal: {verdict}",
        "latency_samples": latency,
        "latency_ms_48k": {m: 1e3 * s / 48000 for m, s in latency.items()},
        "latency_ms_44k1": {m: 1e3 * s / 44100 for m, s in latency.items()},
        "nn_threaded_extra_delay_samples": threaded_delay(GRAIN_BUFFER, NN_HOST_BLOCK),
        "block_frames": meta.get("block_frames"),
        "decoder_parameters": meta.get("decoder_parameters"),
        "file_bytes": ts_path.stat().st_size,
        "training_steps_per_second": metrics.get("train", {}).get("train/steps_per_second"),
    }


BENCHES["grain"] = bench_grain


# -- band ------------------------------------------------------------------------------------------

BAND_GOAL_MS = 20.0  # next-measure prediction p99 on one thread
BAND_JITTER_BPM = 120.0
BAND_JITTER_MEASURES = 8
BAND_REPEATS = 1000
BENCH_TRAINING["band"] = [
    "train.max_steps = 2",
    "train.eval_every = 2",
    "train.media_every = 2",
    "train.checkpoint_every = 2",
]
BENCHES_OF_FILES = ("band",)


def _band_history(band: Any, measures: int) -> Any:
    """``measures`` measures the model drew itself from silence (temperature 1): a history with notes."""
    history = [band.empty_roll()]
    for n in range(measures):
        history.append(band.next_measure(np.stack(history), 1.0, n, ahead=1))
    return np.stack(history[1:])


def _band_boundary_buffer(module: torch.nn.Module, lanes: int, repeats: int) -> dict[str, float]:
    """One nn~ ``next`` call of 512 samples in which a measure ends (the buffer that predicts), one thread."""
    buffer = 512

    def at(
        position: float,
    ) -> Tensor:  # a held C5 on every lane, the position advancing a 16th per 2048 samples
        x = torch.full((1, lanes + 1, buffer), 60.0)
        x[0, lanes] = position + torch.arange(buffer) / 2048.0
        return x

    module.reset()
    times = []
    with one_thread(), torch.no_grad():
        for k in range(repeats + 5):
            module.next(at(16.0 * k + 8.0))  # inside measure k
            start = time.perf_counter()
            module.next(at(16.0 * (k + 1)))  # measure k ends
            times.append((time.perf_counter() - start) * 1e3)
    module.reset()
    return {"p50_ms": float(np.percentile(times[5:], 50)), "p99_ms": float(np.percentile(times[5:], 99))}


def _band_player_jitter(band: Any, bpm: float, measures: int) -> dict[str, Any]:
    """The band player following MIDI clock sent at ``bpm`` from a virtual port of the JACK dummy server,
    while a melody plays its part: when each note on arrives, against the clock tick of its step."""
    import threading

    import mido

    from latentlive.live import ports
    from latentlive.live.band_player import BandPlayer
    from latentlive.live.scheduler import CLOCKS_PER_BEAT, CLOCKS_PER_STEP, ClockFollower, sleep_until

    if not ports.api_usable("jack"):
        subprocess.run(
            ["bash", str(PROJECT_ROOT / "scripts" / "start_jackd.sh")], capture_output=True, check=False
        )
        if not ports.api_usable("jack"):
            return {"skipped": "no JACK server (install jackd2; scripts/start_jackd.sh starts a dummy one)"}
    backend = ports.backend_for("jack")
    output = ports.open_output("latentlive bench band", api="jack")
    player = BandPlayer(band, output, part=0, follower=ClockFollower(), bpm=bpm)
    player_in = ports.open_input("latentlive bench band in", api="jack", callback=player.handle_message)
    received: list[tuple[float, mido.Message]] = []
    recorder = backend.open_input(
        ports.find_port(backend.get_input_names(), "latentlive bench band"),
        callback=lambda msg: received.append((time.perf_counter(), msg)),
    )
    sender = backend.open_output(ports.find_port(backend.get_output_names(), "latentlive bench band in"))
    thread = threading.Thread(target=player.play, kwargs={"bars": measures})
    thread.start()
    tick_s = 60.0 / (bpm * CLOCKS_PER_BEAT)
    arpeggio = (72, 76, 79, 84)
    ticks: list[float] = []
    try:
        sender.send(mido.Message("start"))
        origin = time.perf_counter() + 0.2
        for tick in range(measures * 16 * CLOCKS_PER_STEP):
            sleep_until(origin + tick * tick_s)
            sender.send(mido.Message("clock"))
            ticks.append(time.perf_counter())
            if tick % CLOCKS_PER_BEAT == 0:  # quarter notes of the played part
                beat = tick // CLOCKS_PER_BEAT
                if beat:
                    sender.send(mido.Message("note_off", note=arpeggio[(beat - 1) % 4]))
                sender.send(mido.Message("note_on", note=arpeggio[beat % 4], velocity=90))
        sender.send(mido.Message("note_off", note=arpeggio[(len(ticks) // CLOCKS_PER_BEAT - 1) % 4]))
        thread.join(timeout=30)
    finally:
        player.stop()
        thread.join(timeout=10)
        time.sleep(0.1)
        for port in (sender, recorder, player_in, output):
            port.close()
    step_s = tick_s * CLOCKS_PER_STEP
    offsets = []
    for arrived, msg in received:
        if msg.type == "note_on" and msg.velocity > 0:
            step = min(int((arrived - ticks[0]) // step_s), len(ticks) // CLOCKS_PER_STEP - 1)
            offsets.append((arrived - ticks[step * CLOCKS_PER_STEP]) * 1e3)
    figures: dict[str, Any] = {"bpm": bpm, "measures": measures, "note_ons": len(offsets)}
    if offsets:
        values = np.array(offsets)
        jitter = np.abs(values - np.median(values))
        figures["offset_from_clock_tick_ms"] = _spread(values)
        figures["jitter_ms"] = _spread(jitter)
    return figures


def _small_op_us(count: int = 20000) -> float:
    """Microseconds of one tiny eager torch op on one thread: how busy the machine was (about 2 idle)."""
    x = torch.zeros(16)
    with one_thread():
        start = time.perf_counter()
        for _ in range(count):
            x = x + 1.0
    return (time.perf_counter() - start) / count * 1e6


def _spread(values: Any) -> dict[str, float]:
    return {
        "p50": float(np.percentile(values, 50)),
        "p99": float(np.percentile(values, 99)),
        "max": float(np.max(values)),
    }


def bench_band(ts_path: Path, run: RunFolder | None, repeats: int | None = None) -> dict[str, Any]:
    """Next-measure prediction time on one thread against the goal: per measure as the player and the device
    run it (the measure that ended is encoded, the history's encodings are kept), and from a whole history
    of ``context`` measures (``next_measure``, every measure encoded); the cost of an nn~ buffer in which a
    measure ends; the player's jitter against MIDI clock through the JACK dummy server."""
    from latentlive.live.band_model import BandModel

    band = BandModel(ts_path)
    repeats = repeats or BAND_REPEATS
    history = _band_history(band, band.context)
    encoded = band.history()
    played = [p == 0 for p in range(band.parts)]  # the player reads the history from the part played
    for measure in history:
        encoded.push(measure, present=played)

    def per_measure() -> None:
        encoded.push(history[-1], present=played)
        encoded.next_measure(1.0, 0)

    with one_thread(), torch.no_grad():
        live = time_calls(per_measure, repeats=repeats, warmup=20)
        whole = time_calls(lambda: band.next_measure(history, 1.0, 0), repeats=repeats, warmup=20)
    ratio = live["p99_ms"] / BAND_GOAL_MS
    verdict = "met" if ratio <= 1.0 else "NOT met"
    results: dict[str, Any] = {
        "parts": band.part_names,
        "context_measures": band.context,
        "next_measure_per_measure_live_one_thread": live,
        "next_measure_whole_history_one_thread": whole,
        "next_measure_goal_p99_ms": BAND_GOAL_MS,
        "next_measure_p99_over_goal": ratio,
        "next_measure_whole_history_p99_over_goal": whole["p99_ms"] / BAND_GOAL_MS,
        "next_measure_goal": f"p99 {live['p99_ms']:.2f} ms per measure on one thread, {ratio:.2f}x the "
        f"{BAND_GOAL_MS:g} ms goal: {verdict}",
        "nn_next_buffer_512_with_a_measure_end_one_thread": _band_boundary_buffer(
            band.module, len(band.lane_parts), min(repeats, 200)
        ),
        "file_bytes": ts_path.stat().st_size,
        "small_torch_op_us": _small_op_us(),
    }
    metrics = json.loads(run.metrics.read_text()) if run is not None and run.metrics.is_file() else {}
    if metrics:
        results["eval"] = headline(metrics.get("eval", {}))  # every metric: the run's metrics.json
    results["player_jitter_jack_dummy"] = _band_player_jitter(band, BAND_JITTER_BPM, BAND_JITTER_MEASURES)
    return results


BENCHES["band"] = bench_band

"""``latentlive bench techno``: stage 1 of an exported techno file streamed at 2048 / 48 kHz, the raw model,
latencies, size, and stage-1 training speed and memory."""

import time
from pathlib import Path
from typing import Any

import torch

from latentlive.bench.common import (
    call_figures,
    cycling,
    latency_figures,
    max_rss_bytes,
    reset_peak_rss,
    resident_bytes,
    streaming_figures,
)
from latentlive.core.errors import UserError
from latentlive.core.runs import RunFolder, load_checkpoint
from latentlive.export.host import load_ts
from latentlive.export.metadata import read_metadata
from latentlive.training.config import PROJECT_ROOT, parse_gin

TECHNO_RATE, TECHNO_BUFFER = 48000, 2048  # host rate and nn~ buffer of the techno figures
TECHNO_DECODE_GOAL = 50.0  # decode at least 50x faster than real time on one thread, interleaved
TECHNO_METHODS = ("decode", "encode", "forward", "loop")  # those the exported file has are measured
TRAINING_BINDINGS = [  # two steps at full size make a run to export; training speed is measured apart
    "train.max_steps = 2",
    "train.eval_every = 2",
    "train.media_every = 2",
    "train.checkpoint_every = 2",
    "TechnoTask.examples = 8",
    "split_fractions.train = 0.5",
    "split_fractions.validation = 0.25",
    "split_fractions.test = 0.25",
    "TechnoTask.interpolation_pairs = 1",
    "TechnoTask.media_examples = 1",
]
FROM_FILE = False
REUSE_CURRENT_EXPORT = True  # exporting techno takes a while


def _raw_model_figures(module: torch.nn.Module, model_rate: int, repeats: int) -> dict[str, dict[str, Any]]:
    """The scripted streaming stage-1 model inside the file, alone at the model rate (no resampling, no
    FIFOs): ``TECHNO_BUFFER`` model samples per call, on one thread, against their period at the model
    rate."""
    model = module.streams.model
    ratio, latent_size = int(module.streams.block), int(module.streams.latent_size)
    generator = torch.Generator().manual_seed(0)
    latents = [torch.randn(1, latent_size, TECHNO_BUFFER // ratio, generator=generator) for _ in range(32)]
    audio = [0.1 * torch.randn(1, 1, TECHNO_BUFFER, generator=generator) for _ in range(32)]
    period_ms = 1e3 * TECHNO_BUFFER / model_rate
    figures = {}
    for name, call, inputs in (("decode", model.decode, latents), ("encode", model.encode, audio)):
        model.reset()
        with torch.no_grad():
            figures[name] = call_figures(cycling(inputs, call), repeats, period_ms)
    module.reset()
    return figures


def _training_sizes() -> tuple[int, int, int]:
    """``(batch_size, crop, length)`` of gin/techno.gin (parsing it replaces the gin config in force)."""
    import gin

    parse_gin([PROJECT_ROOT / "gin" / "techno.gin"])
    return (
        int(gin.query_parameter("train.batch_size")),
        int(gin.query_parameter("TechnoTask.crop")),
        int(gin.query_parameter("TechnoTask.length")),
    )


def bench_training(model_args: dict[str, Any], device: str, steps: int = 3) -> dict[str, float]:
    """Stage-1 training steps per second (after one warm-up step) and peak memory on ``device``, for the model
    of ``model_args`` at gin/techno.gin's batch and crop (KL phase; random audio: speed ignores content).

    CPU memory: the peak resident size while the model, optimizer, batch and steps live, above the resident
    size before them (``VmHWM``; ``ru_maxrss`` growth where /proc is missing). CUDA: ``max_memory_allocated``.
    """
    from latentlive.models.waveform_vae import WaveformVAE
    from latentlive.training.loop import weighted_total
    from latentlive.training.tasks.techno import TechnoTask

    batch_size, crop, length = _training_sizes()
    on_cuda = device.startswith("cuda")
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    window = reset_peak_rss()
    before = (resident_bytes("VmRSS") if window else None) or max_rss_bytes()
    model = WaveformVAE(**model_args).to(device).train()  # offline layers, as training runs them
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
        # VmHWM is synced lazily and the steps may reuse memory the process already holds: never below 0
        peak = max(0, ((resident_bytes("VmHWM") if window else None) or max_rss_bytes()) - before)
    return {
        "steps_per_second": steps / seconds,
        "peak_memory_mb": peak / 2**20,
        "batch_size": batch_size,
        "crop": crop,
        "timed_steps": steps,
        "threads": torch.get_num_threads() if not on_cuda else 0,
    }


def bench(
    ts_path: Path, run: RunFolder | None, repeats: int = 200, training_steps: int = 3
) -> dict[str, Any]:
    """Stage 1 of an exported techno file (``techno.ts`` or ``techno_prior.ts``), streamed on one thread at
    ``TECHNO_BUFFER`` / ``TECHNO_RATE`` with the resampling inside (the decode goal judged on the interleaved
    real-time factor), the raw model at its own rate, latencies, size, and stage-1 training speed and memory
    (CPU, and CUDA when present) of the ``run``'s model."""
    assert run is not None, "bench techno measures a run (FROM_FILE is False)"
    meta = read_metadata(ts_path)
    if not str(meta.get("model", "")).startswith("techno"):  # the techno model, or its prior holding it
        raise UserError(
            f"{ts_path}: a {meta.get('model')!r} export, not a techno one; pass --run with a techno run"
        )
    module = load_ts(ts_path)
    model_rate = int(meta["sample_rate"])
    methods = [m for m in TECHNO_METHODS if m in meta["methods"]]
    streamed = {m: streaming_figures(module, m, repeats, TECHNO_RATE, TECHNO_BUFFER) for m in methods}
    raw = _raw_model_figures(module, model_rate, repeats)
    latency = {m: int(meta["method_latency"][m if m != "loop" else "decode"]) for m in methods}
    decode_rtf = streamed["decode"]["interleaved"]["real_time_factor"]
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
        "decode_interleaved_real_time_factor": decode_rtf,
        "decode_goal_real_time_factor": TECHNO_DECODE_GOAL,
        "decode_goal_ratio": decode_rtf / TECHNO_DECODE_GOAL,
        "decode_goal": f"{decode_rtf:.1f}x real time on one thread, interleaved, "
        f"{decode_rtf / TECHNO_DECODE_GOAL:.2f}x the {TECHNO_DECODE_GOAL:g}x goal: {verdict}",
        **latency_figures(latency, TECHNO_BUFFER),
        "parameters": parameters,
        "file_bytes": ts_path.stat().st_size,
        "training_cpu": bench_training(stage1_args, "cpu", training_steps),
    }
    if torch.cuda.is_available():
        results["training_cuda"] = bench_training(stage1_args, "cuda", 10 * training_steps)
    return results

"""``latentlive bench grain``: the granular instrument's ``forward`` streamed at 2048 / 48 kHz at two grain
densities, grains decoded per second, latency and size."""

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from latentlive.bench.common import call_figures, cycling, latency_figures, run_metrics
from latentlive.core.runs import RunFolder
from latentlive.export.host import deliver_host_rate, load_ts, method_spec
from latentlive.live.model_file import read_model_metadata

GRAIN_RATE, GRAIN_BUFFER = 48000, 2048  # host rate and nn~ buffer of the grain figures
GRAIN_GOAL = 100.0  # forward at least 100x faster than real time on one thread, interleaved
GRAIN_DENSITIES = (40.0, 200.0)
GRAIN_DECODE_BATCHES = (1, 8, 64)
# a few steps at full model size on a small built-in corpus: speed does not depend on quality
TRAINING_BINDINGS = [
    "train.max_steps = 2",
    "train.eval_every = 2",
    "train.media_every = 2",
    "train.checkpoint_every = 2",
    "GrainTask.sounds = 16",
    "GrainTask.max_grains = 2000",
    "split_fractions.train = 0.5",
    "split_fractions.validation = 0.25",
    "split_fractions.test = 0.25",
    "GrainTask.eval_sounds = 1",
    "GrainTask.pca_examples = 512",
]
FROM_FILE = False
REUSE_CURRENT_EXPORT = True


def _knob_walk(latent_size: int, count: int, frames: int) -> list[Tensor]:
    """``count`` successive buffers ``[1, D, frames]`` of a slow seeded walk in knob units (about +-2), so
    that every grain decodes a fresh latent."""
    generator = torch.Generator().manual_seed(0)
    steps = 0.05 * torch.randn(latent_size, count * frames, generator=generator)
    walk = (steps.cumsum(-1) + 2.0).remainder(8.0)
    walk = torch.where(walk > 4.0, 8.0 - walk, walk) - 2.0  # reflected into [-2, 2]
    return [walk[None, :, i * frames : (i + 1) * frames].contiguous() for i in range(count)]


def _forward_figures(module: torch.nn.Module, density: float, repeats: int, block: int) -> dict[str, Any]:
    """One ``forward`` call per ``GRAIN_BUFFER`` at ``GRAIN_RATE`` along a moving knob path at ``density``
    grains per second, on one thread: :func:`call_figures` against the buffer period.

    The instrument renders a block of ``block`` knob frames in one call of every few, so the calls timed
    (and the warm-up) are whole blocks: the mean per call is the cost of a block spread over its calls."""
    spec = method_spec(module, "forward")
    deliver_host_rate(module, GRAIN_RATE)  # as the device does
    module.reset()
    module.set_density(density)
    inputs = _knob_walk(spec.in_channels, 64, GRAIN_BUFFER // spec.in_ratio)
    whole_blocks = block * -(-16 // block)  # at least 16 calls
    with torch.no_grad():
        figures = call_figures(
            cycling(inputs, module.forward),
            whole_blocks * -(-repeats // whole_blocks),
            1e3 * GRAIN_BUFFER / GRAIN_RATE,
            warmup=whole_blocks,
        )
    module.set_density(40.0)
    module.reset()
    return {**figures, "density": density}


def _decode_figures(module: torch.nn.Module, repeats: int) -> dict[str, dict[str, Any]]:
    """``decode_mean`` of the model inside the file, for batches of ``GRAIN_DECODE_BATCHES`` latents on one
    thread: :func:`call_figures` (no buffer period) and grains decoded per second (on ``wall_ms_mean``, and
    interleaved)."""
    decoder = module.streams.engine.decoder
    latent_size = int(module.latent_size)
    generator = torch.Generator().manual_seed(0)
    figures = {}
    for batch in GRAIN_DECODE_BATCHES:
        z = torch.randn(batch, latent_size, generator=generator)
        with torch.no_grad():
            times = call_figures(lambda z=z: decoder.decode_mean(z), repeats, None, warmup=5)
        times["grains_per_second"] = batch * 1e3 / times["wall_ms_mean"]
        times["interleaved"]["grains_per_second"] = batch * 1e3 / times["interleaved"]["wall_ms_mean"]
        figures[f"batch_{batch}"] = times
    return figures


def bench(ts_path: Path, run: RunFolder | None, repeats: int = 480) -> dict[str, Any]:
    """The granular instrument of an exported grain file: ``forward`` streamed on one thread at
    ``GRAIN_BUFFER`` / ``GRAIN_RATE`` at each of ``GRAIN_DENSITIES`` (against the ``GRAIN_GOAL``, on the
    interleaved real-time factor), grains decoded per second, latency (``forward`` renders blocks of
    ``block_frames`` knob frames, which its latency includes) and size."""
    meta = read_model_metadata(ts_path, "grain", "pass --run with a grain run")
    module = load_ts(ts_path)
    block = int(meta.get("block_frames", 1))
    forward = {d: _forward_figures(module, d, repeats, block) for d in GRAIN_DENSITIES}
    slowest = min(figures["interleaved"]["real_time_factor"] for figures in forward.values())
    verdict = "met" if slowest >= GRAIN_GOAL else "NOT met"
    latency = {m: int(s) for m, s in meta["method_latency"].items()}
    metrics = run_metrics(run)
    return {
        "host_sample_rate": GRAIN_RATE,
        "buffer_size": GRAIN_BUFFER,
        "buffer_period_ms": 1e3 * GRAIN_BUFFER / GRAIN_RATE,
        "model_sample_rate": int(meta["sample_rate"]),
        "grain_size": int(meta["grain_size"]),
        "latent_size": int(meta["latent_size"]),
        **{f"forward_density_{d:g}_2048_48k_one_thread": figures for d, figures in forward.items()},
        "decode_mean_one_thread": _decode_figures(module, repeats),
        "forward_interleaved_real_time_factor": slowest,
        "forward_goal_real_time_factor": GRAIN_GOAL,
        "forward_goal_ratio": slowest / GRAIN_GOAL,
        "forward_goal": f"{slowest:.1f}x real time on one thread, interleaved, at the slowest density, "
        f"{slowest / GRAIN_GOAL:.2f}x the {GRAIN_GOAL:g}x goal: {verdict}",
        **latency_figures(latency, GRAIN_BUFFER),
        "block_frames": meta.get("block_frames"),
        "decoder_parameters": meta.get("decoder_parameters"),
        "file_bytes": ts_path.stat().st_size,
        "training_steps_per_second": metrics.get("train", {}).get("train/steps_per_second"),
    }

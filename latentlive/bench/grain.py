"""``latentlive bench grain``: the granular instrument's ``forward`` streamed at 2048 / 48 kHz at two grain
densities, the knob-to-sound time, grains decoded per second, latency and size."""

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from latentlive.bench.common import call_figures, cycling, latency_figures, run_metrics
from latentlive.core.runs import RunFolder
from latentlive.export.grain import DEFAULT_SETTINGS
from latentlive.export.host import NNHost, deliver_host_rate, load_ts, method_spec
from latentlive.live.model_file import read_model_metadata

GRAIN_RATE, GRAIN_BUFFER = 48000, 2048  # host rate and nn~ buffer of the grain figures
GRAIN_GOAL = 100.0  # forward at least 100x faster than real time on one thread, interleaved
GRAIN_DENSITIES = (40.0, 200.0)
GRAIN_DECODE_BATCHES = (1, 8, 64)
LATENCY_GOAL_SAMPLES = GRAIN_BUFFER  # the model's own latency: at most one buffer (nn~ adds its own)
MOVE_CALL, MOVE_CALLS = 8, 8  # the XY knobs jump at the start of this call; calls measured from it
XY_MOVE = 2.0  # the jump: knob 1 from 0 to +2, knob 2 from 0 to -2 (knob units)
CHANGE_WINDOW = 256  # host samples over which the changed part of the output is judged
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
HELD_BY_DEPENDENT_RUNS = False


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
    grains per second (the file's other settings at their defaults: random intervals), on one thread:
    :func:`call_figures` against the buffer period.

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
            repeats,
            1e3 * GRAIN_BUFFER / GRAIN_RATE,
            warmup=whole_blocks,
            multiple_of=whole_blocks,
        )
    module.set_density(DEFAULT_SETTINGS["density"])
    module.reset()
    return {**figures, "density": density, "jitter": float(module.get_jitter()[0])}


def _set(module: torch.nn.Module, name: str, value: float) -> None:
    """The attribute ``name`` of a loaded file (its setter) or of the wrapper before scripting."""
    if hasattr(module, f"set_{name}"):
        getattr(module, f"set_{name}")(value)
    else:
        setattr(module, name, (value,))


def knob_to_sound(
    module: torch.nn.Module, density: float, rate: int = GRAIN_RATE, buffer: int = GRAIN_BUFFER
) -> dict[str, Any]:
    """When a move of the XY knobs (knobs 1 and 2 jump by ``XY_MOVE`` at the start of call ``MOVE_CALL``)
    is heard in ``forward``, driven as nn~ drives it (one call per ``buffer`` at ``rate``, synchronous grains
    at ``density``), in host samples and ms from the move, and in calls (the move's call is call 1).

    Three streams from a fresh start: unmoved (``A``, knobs at 0), moved (``B``) and moved from the start
    (``C``). ``first``: the first sample where ``B`` differs from ``A``; ``half``: the end of the first window
    of ``CHANGE_WINDOW`` samples where ``B`` is nearer ``C`` than ``A`` is, by half (``|B - C| <= |A - C| / 2``):
    half of the output has changed. The goal is one ``buffer`` (``goal_ms``), judged on ``first`` (``ms``):
    ``half`` adds about half a grain, which the model's latency does not set."""
    spec = method_spec(module, "forward")
    move, total = MOVE_CALL * buffer, (MOVE_CALL + MOVE_CALLS) * buffer
    knobs = torch.zeros(3, spec.in_channels, total)
    knobs[1, 0, move:], knobs[1, 1, move:] = XY_MOVE, -XY_MOVE
    knobs[2, 0], knobs[2, 1] = XY_MOVE, -XY_MOVE
    _set(module, "density", density)
    _set(module, "jitter", 0.0)  # synchronous: the three streams share their onsets
    streams = []
    for signal in knobs:  # one stream at a time, each from a fresh start (batch 1, as in a device)
        module.reset()
        streams.append(NNHost(module, "forward", buffer, rate).process(signal[None])[0, 0])
    _set(module, "density", DEFAULT_SETTINGS["density"])
    _set(module, "jitter", DEFAULT_SETTINGS["jitter"])
    module.reset()
    unmoved, moved, target = streams
    changed = ((moved - unmoved).abs() > 1e-6 * unmoved.abs().max().clamp_min(1e-6)).nonzero()
    first = int(changed[0]) - move if changed.numel() else total - move
    away = (moved[move:] - target[move:]).view(-1, CHANGE_WINDOW).norm(dim=1)
    apart = (unmoved[move:] - target[move:]).view(-1, CHANGE_WINDOW).norm(dim=1)
    near = (away <= 0.5 * apart).logical_and(apart > 0).nonzero()
    half = (int(near[0]) + 1) * CHANGE_WINDOW if near.numel() else total - move
    goal_ms = 1e3 * buffer / rate
    return {
        "ms": 1e3 * first / rate,
        "samples": first,
        "calls": first // buffer + 1,
        "half_ms": 1e3 * half / rate,
        "half_samples": half,
        "half_calls": -(-half // buffer),
        "goal_ms": goal_ms,
        "met": 1e3 * first / rate <= goal_ms,
        "density": density,
    }


def _decode_figures(module: torch.nn.Module, repeats: int) -> dict[str, dict[str, Any]]:
    """``decode_mean`` of the model inside the file, for batches of ``GRAIN_DECODE_BATCHES`` latents (in knob
    units: the knob axes are folded into its first product) on one thread: :func:`call_figures` (no buffer period) and grains decoded per second (on ``wall_ms_mean``, and
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
    with torch.no_grad():
        to_sound = {f"density_{d:g}": knob_to_sound(module, d) for d in GRAIN_DENSITIES}
    slowest_sound = max(figures["ms"] for figures in to_sound.values())
    slowest_half = max(figures["half_ms"] for figures in to_sound.values())
    latency_met = latency["forward"] <= LATENCY_GOAL_SAMPLES
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
        "knob_to_sound": {
            **to_sound,
            "ms": slowest_sound,
            "half_ms": slowest_half,
            "goal_ms": 1e3 * GRAIN_BUFFER / GRAIN_RATE,
            "met": all(figures["met"] for figures in to_sound.values()),
        },
        "forward_latency_goal": {
            "samples": latency["forward"],
            "ms_48k": 1e3 * latency["forward"] / 48000,
            "goal_samples": LATENCY_GOAL_SAMPLES,
            "met": latency_met,
        },
        **latency_figures(latency, GRAIN_BUFFER),
        "block_frames": meta.get("block_frames"),
        "decoder_parameters": meta.get("decoder_parameters"),
        "file_bytes": ts_path.stat().st_size,
        "training_steps_per_second": metrics.get("train", {}).get("train/steps_per_second"),
    }

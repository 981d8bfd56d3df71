"""``latentlive bench techno``: stage 1 of an exported techno file streamed at 2048 / 48 kHz, the raw model,
latencies, size, and stage-1 training speed and memory; the knob-to-sound (``decode``) and input-to-output
(``forward``) times of the default and the causal setting beside RAVE v2_small's, measured in one run; and
the full band (gin/techno_fullband.gin: 44.1 kHz, 16 PQMF bands, untrained) beside RAVE v2_small at 44.1 kHz
(``full_band``: decode cost per 2048 buffer, real-time factor, latency)."""

import json
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from latentlive.bench.common import (
    NN_HOST_BLOCK,
    call_figures,
    cycling,
    latency_figures,
    max_rss_bytes,
    reset_peak_rss,
    resident_bytes,
    streaming_figures,
)
from latentlive.bench.rave_v2_small import RATIO as RAVE_RATIO
from latentlive.bench.rave_v2_small import RAVE_RATE, reset_caches, scripted_rave_v2_small
from latentlive.core.errors import UserError
from latentlive.core.runs import RunFolder, load_checkpoint
from latentlive.export.host import deliver_host_rate, load_ts, method_spec, one_thread, threaded_delay
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
HELD_BY_DEPENDENT_RUNS = True  # a techno_prior run carries the stage 1 it trained on
CHANGE_CALLS = 8  # calls of the old input before the change, and after it
CHANGE_WINDOW = 64  # samples per window when judging how much of the output has changed
CHANGE_RATE = RAVE_RATE  # the side-by-side runs every model at RAVE's rate: the same nn~ delay in ms
FULL_BAND_GIN = "techno_fullband.gin"  # measured beside RAVE v2_small at its rate, untrained, in every run


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


def change_latency(before: Tensor, switched: Tensor, after: Tensor, start: int) -> dict[str, int]:
    """How late a change at sample ``start`` shows in the output: ``switched`` follows the old input until
    ``start`` and the new one from there, ``before`` and ``after`` follow only the old or the new one (all
    ``[T]``, the same stream otherwise). ``first_change_samples``: until ``switched`` leaves ``before``;
    ``half_changed_samples``: until the end of the first ``CHANGE_WINDOW`` in which it lies nearer ``after``
    than ``before`` (energy of the differences); -1 where it never does."""
    old = (switched[start:] - before[start:]).double()
    new = (switched[start:] - after[start:]).double()
    scale = float(max(before.abs().max(), after.abs().max(), 1e-12))
    moved = torch.nonzero(old.abs() > 1e-6 * scale)
    first = int(moved[0, 0]) if len(moved) else -1
    windows = old.shape[0] // CHANGE_WINDOW
    old_energy = old[: windows * CHANGE_WINDOW].reshape(windows, -1).square().sum(1)
    new_energy = new[: windows * CHANGE_WINDOW].reshape(windows, -1).square().sum(1)
    nearer = torch.nonzero((old_energy > new_energy) & (old_energy > 0))
    half = int(nearer[0, 0] + 1) * CHANGE_WINDOW if len(nearer) else -1
    return {"first_change_samples": first, "half_changed_samples": half}


def _three_streams(
    call: Callable[[Tensor], Tensor], reset: Callable[[], None], old: Tensor, new: Tensor
) -> tuple[list[Tensor], int]:
    """``call`` fed ``CHANGE_CALLS`` buffers of ``old`` then as many of ``new`` (and ``old`` or ``new``
    throughout), each stream from a reset and the same seed (RAVE draws noise): flat outputs, change sample."""
    streams = []
    for first, second in ((old, old), (old, new), (new, new)):
        reset()
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(0)
            outputs = [call(first) for _ in range(CHANGE_CALLS)] + [call(second) for _ in range(CHANGE_CALLS)]
        streams.append(torch.cat(outputs, -1)[0, 0])
    reset()
    change = streams[0].shape[-1] // 2  # as many calls before the change as after
    return streams, change


def ts_change_latency(module: torch.nn.Module, method: str, rate: int, buffer: int) -> dict[str, int]:
    """:func:`change_latency` of an exported ``method`` (``decode``: latents, ``forward``: audio) driven as
    nn~ drives it: told the host ``rate``, one call per ``buffer``, the input changed between two calls."""
    deliver_host_rate(module, rate)
    spec = method_spec(module, method)
    generator = torch.Generator().manual_seed(0)
    scale = 1.0 if spec.in_ratio > 1 else 0.1
    old, new = (
        scale * torch.randn(1, spec.in_channels, buffer // spec.in_ratio, generator=generator)
        for _ in range(2)
    )
    if spec.in_ratio > 1:  # latents: one point held, as a knob sets it
        old, new = (x[..., :1].expand_as(x).contiguous() for x in (old, new))
    streams, change = _three_streams(getattr(module, method), module.reset, old, new)
    return change_latency(*streams, change)


def rave_change_latency(rave: torch.nn.Module, method: str, buffer: int) -> dict[str, int]:
    """:func:`change_latency` of RAVE v2_small streamed, ``buffer`` samples per call: ``decode`` with one
    latent point held then changed between two calls, ``forward`` with one block of audio repeated then
    changed (as :func:`ts_change_latency` drives our files)."""
    generator = torch.Generator().manual_seed(0)
    if method == "decode":
        old, new = (
            torch.randn(1, 128, 1, generator=generator).expand(1, 128, buffer // RAVE_RATIO) for _ in range(2)
        )
        call = rave.decode
    else:
        old, new = (0.1 * torch.randn(1, 1, buffer, generator=generator) for _ in range(2))
        call = rave.forward
    streams, change = _three_streams(call, lambda: reset_caches(rave), old, new)
    return change_latency(*streams, change)


def answer_time(change: dict[str, int], rate: int, buffer: int, goal_ms: float | None) -> dict[str, Any]:
    """What a player meets: the half-changed time plus threaded nn~'s own delay at ``buffer``, in ms at
    ``rate`` and in calls of ``buffer``; ``met`` when at most ``goal_ms``."""
    samples = change["half_changed_samples"] + threaded_delay(buffer, NN_HOST_BLOCK)
    ms = 1e3 * samples / rate
    return {
        "ms": ms,
        "calls": math.ceil(samples / buffer),
        "goal_ms": goal_ms,
        "met": None if goal_ms is None else bool(change["half_changed_samples"] >= 0 and ms <= goal_ms),
        "model_ms": 1e3 * change["half_changed_samples"] / rate,
        "first_change_ms": 1e3 * change["first_change_samples"] / rate,
        **change,
        "nn_threaded_extra_samples": threaded_delay(buffer, NN_HOST_BLOCK),
        "host_sample_rate": rate,
        "buffer_size": buffer,
    }


def other_setting_export(stage1_args: dict[str, Any], facts: dict[str, Any], folder: Path) -> Path:
    """``techno.ts`` of the other stage-1 setting (``causal`` flipped) at the size of ``stage1_args``: a
    :func:`seeded_export` (tests/test_techno_causal.py runs the contract checks on it)."""
    return seeded_export({**stage1_args, "causal": not stage1_args.get("causal", False)}, facts, folder)


def seeded_export(args: dict[str, Any], facts: dict[str, Any], folder: Path) -> Path:
    """``techno.ts`` of the stage 1 of constructor ``args`` with seeded untrained weights (latency and speed do
    not depend on training) and the corpus ``facts`` (``sample_rate``, ``bars``), scripted and saved in
    ``folder`` as the exporter saves it (without its contract checks)."""
    from latentlive.export.metadata import METADATA_NAME
    from latentlive.export.techno import build_techno_export
    from latentlive.models.waveform_vae import WaveformVAE

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        state = WaveformVAE(**args).state_dict()
    checkpoint = {
        "metadata": {"sample_rate": facts["sample_rate"], "bars": facts["bars"]},
        "model_args": args,
        "model_state": state,
    }
    wrapper, metadata = build_techno_export(checkpoint)
    metadata["methods"] = {m: vars(method_spec(wrapper, m)) for m in ("encode", "decode", "forward")}
    path = folder / "techno.ts"
    torch.jit.script(wrapper).save(str(path), _extra_files={METADATA_NAME: json.dumps(metadata)})
    return path


def low_latency_figures(ts_path: Path, checkpoint: dict[str, Any], repeats: int) -> dict[str, Any]:
    """Input-to-output (``forward``) and knob-to-sound (``decode``) times of the default and the causal
    stage 1 (``ts_path``, of ``checkpoint``, is one of them; :func:`other_setting_export` the other) beside RAVE
    v2_small's, each through threaded nn~ at ``TECHNO_BUFFER`` and ``CHANGE_RATE``; the goals: a decode at
    most RAVE's decode, a forward at most RAVE's forward. The other setting's streamed decode is timed as the
    file's is (``repeats`` calls)."""
    rave = scripted_rave_v2_small()
    period_ms = 1e3 * TECHNO_BUFFER / RAVE_RATE
    with one_thread():
        rave_answers = {
            kind: answer_time(
                rave_change_latency(rave, method, TECHNO_BUFFER), RAVE_RATE, TECHNO_BUFFER, None
            )
            for kind, method in (("knob_to_sound", "decode"), ("input_to_output", "forward"))
        }
        rave_calls = {
            "decode_2048_44k_one_thread": call_figures(
                cycling([torch.randn(1, 128, TECHNO_BUFFER // RAVE_RATIO)], rave.decode), 50, period_ms
            ),
            "forward_2048_44k_one_thread": call_figures(
                cycling([0.1 * torch.randn(1, 1, TECHNO_BUFFER)], rave.forward), 50, period_ms
            ),
        }
    reset_caches(rave)
    goals = {kind: answer["ms"] for kind, answer in rave_answers.items()}
    figures: dict[str, Any] = {
        "goal": f"decode at most RAVE v2_small's knob-to-sound time ({goals['knob_to_sound']:.0f} ms), forward "
        f"at most its input-to-output time ({goals['input_to_output']:.0f} ms), through threaded nn~ at "
        f"{TECHNO_BUFFER}, all measured here",
        "rave_v2_small": {
            **rave_answers,
            **rave_calls,
            "parameters": sum(p.numel() for p in rave.parameters()),
            "encoder_parameters": sum(p.numel() for p in rave.encoder.parameters()),
        },
    }
    facts = checkpoint["metadata"]
    stage1_args = facts.get("stage1_args", checkpoint["model_args"])
    causal = bool(stage1_args.get("causal", False))
    full_band_args, full_band_facts = full_band_settings()
    with tempfile.TemporaryDirectory() as scratch:
        other = other_setting_export(stage1_args, facts, Path(scratch))
        (Path(scratch) / "full_band").mkdir()
        full_band = seeded_export(full_band_args, full_band_facts, Path(scratch) / "full_band")
        for setting, path in (
            ("causal" if causal else "default", ts_path),
            ("default" if causal else "causal", other),
            ("full_band", full_band),
        ):
            module = load_ts(path)
            entry = _answer_times(module, read_metadata(path), goals)
            if path == other:
                entry["decode_streamed_2048_48k_one_thread"] = streaming_figures(
                    module, "decode", repeats, TECHNO_RATE, TECHNO_BUFFER
                )
            if setting in ("default", "full_band"):  # streamed at RAVE's rate: the full band's side by side
                entry["decode_streamed_2048_44k_one_thread"] = streaming_figures(
                    module, "decode", repeats, RAVE_RATE, TECHNO_BUFFER
                )
            if path == full_band:
                entry["raw_decode_2048_44k_one_thread"] = _raw_model_figures(module, RAVE_RATE, repeats)[
                    "decode"
                ]
                entry["model_args"] = full_band_args
                entry["parameters"] = sum(p.numel() for p in module.streams.model.parameters())
            figures[setting] = entry
    return figures


def _answer_times(
    module: torch.nn.Module, metadata: dict[str, Any], goals: dict[str, float]
) -> dict[str, Any]:
    """Declared latencies, and the knob-to-sound (and input-to-output) time of an exported stage 1 through
    threaded nn~ at ``TECHNO_BUFFER`` and ``CHANGE_RATE``, against RAVE's ``goals``."""
    entry: dict[str, Any] = {"latency_samples": {m: int(v) for m, v in metadata["method_latency"].items()}}
    entry["sample_rate"] = int(metadata["sample_rate"])
    with one_thread():
        for kind, method in (("knob_to_sound", "decode"), ("input_to_output", "forward")):
            if method in metadata["methods"]:
                entry[kind] = answer_time(
                    ts_change_latency(module, method, CHANGE_RATE, TECHNO_BUFFER),
                    CHANGE_RATE,
                    TECHNO_BUFFER,
                    goals[kind],
                )
    return entry


def full_band_settings() -> tuple[dict[str, Any], dict[str, Any]]:
    """The stage-1 constructor arguments and corpus facts (``sample_rate``, ``bars``) of
    gin/techno_fullband.gin, read without keeping its bindings in force."""
    import gin

    from latentlive.models.waveform_vae import WaveformVAE
    from latentlive.training.config import configured_arguments

    parse_gin([PROJECT_ROOT / "gin" / FULL_BAND_GIN])
    try:
        args = {k: v for k, v in configured_arguments(WaveformVAE).items() if k != "streaming"}
        facts = {
            "sample_rate": int(gin.query_parameter("TechnoTask.sample_rate")),
            "bars": int(gin.query_parameter("TechnoTask.bars")),
        }
    finally:
        gin.clear_config()
    return args, facts


def full_band_side_by_side(low_latency: dict[str, Any]) -> dict[str, Any]:
    """The decode of the full band (gin/techno_fullband.gin, untrained), RAVE v2_small and the default 16 kHz
    stage 1 at RAVE's rate, from ``low_latency`` (one run): per 2048 buffer on one thread, wall ms (p50, mean) and
    real-time factor, of the model alone (RAVE: all it runs; ours: at its own rate) and streamed as nn~ runs
    the file (resampling and FIFOs included), back to back and interleaved; the declared decode latency and the
    knob-to-sound time through threaded nn~."""
    rave = low_latency["rave_v2_small"]

    def row(alone: dict[str, Any] | None, streamed: dict[str, Any] | None, answer: dict[str, Any]) -> dict:
        figures: dict[str, Any] = {
            "knob_to_sound_ms": answer["ms"],
            "knob_to_sound_model_ms": answer["model_ms"],
        }
        for name, timed in (("alone", alone), ("streamed", streamed)):
            if timed is not None:
                figures[f"{name}_wall_ms_p50"] = timed["wall_ms_p50"]
                figures[f"{name}_wall_ms_mean"] = timed["wall_ms_mean"]
                figures[f"{name}_real_time_factor"] = timed["real_time_factor"]
                figures[f"{name}_interleaved_real_time_factor"] = timed["interleaved"]["real_time_factor"]
        return figures

    rows = {"rave_v2_small": row(rave["decode_2048_44k_one_thread"], None, rave["knob_to_sound"])}
    for setting in ("full_band", "default"):
        entry = low_latency[setting]
        rows[setting] = {
            "sample_rate": entry["sample_rate"],
            "decode_latency_samples": entry["latency_samples"]["decode"],
            **row(
                entry.get("raw_decode_2048_44k_one_thread"),
                entry["decode_streamed_2048_44k_one_thread"],
                entry["knob_to_sound"],
            ),
        }
    rave_ms = rows["rave_v2_small"]["alone_wall_ms_mean"]
    for setting in ("full_band", "default"):
        rows[setting]["decode_cost_over_rave"] = rows[setting]["streamed_wall_ms_mean"] / rave_ms
    return {
        "what": f"decode of {TECHNO_BUFFER} samples at {RAVE_RATE} Hz on one thread; full band: "
        f"gin/{FULL_BAND_GIN} at full size, untrained",
        **rows,
    }


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
    low_latency = low_latency_figures(ts_path, checkpoint, repeats)
    measured = low_latency["causal" if stage1_args.get("causal", False) else "default"]
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
        "knob_to_sound": measured["knob_to_sound"],
        **({"input_to_output": measured["input_to_output"]} if "input_to_output" in measured else {}),
        "low_latency": low_latency,
        "full_band": full_band_side_by_side(low_latency),
        "parameters": parameters,
        "file_bytes": ts_path.stat().st_size,
        "training_cpu": bench_training(stage1_args, "cpu", training_steps),
    }
    if torch.cuda.is_available():
        results["training_cuda"] = bench_training(stage1_args, "cuda", 10 * training_steps)
    return results

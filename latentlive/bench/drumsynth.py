"""``latentlive bench drumsynth``: one-shot render time, the instrument's time per buffer, how soon a moved knob
is heard on a hit, and the sound quality of the instrument's renders against the one-shot ``render``."""

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from latentlive.bench.common import call_figures
from latentlive.core.runs import RunFolder
from latentlive.export.host import deliver_host_rate, load_ts

TRAINING_BINDINGS = [
    "train.max_steps = 10",
    "DrumSynthTask.classifier_steps = 10",
    "DrumSynthTask.prior_samples_per_class = 2",
    "DrumSynthTask.eval_through_audio = False",
]
FROM_FILE = False
REUSE_CURRENT_EXPORT = False
HELD_BY_DEPENDENT_RUNS = False
RATE, BUFFER = 44100, 2048
KNOB_GOAL_MS = 100.0


def knob_to_sound(ts_path: Path, cls: int = 0, knobs: float = 1.5) -> dict[str, Any]:
    """Calls (and ms at 2048 / 44.1 kHz) from the call whose input moves the knobs (all to ``knobs``) to the
    first call whose hit plays a sound rendered from them.

    Two fresh instruments get the same input, a hit of ``cls`` at the start of every call, except that one
    has its knobs moved from call 0 on; a hit plays the new knobs' sound from the first call whose output
    differs from the unmoved instrument's (the only difference is the sound the knobs render; its quality
    is :func:`quality`'s ``instrument_preview``). Call 0 is the move's own call, so 2 calls is the goal.
    """
    unmoved, moved = _fresh(ts_path), _fresh(ts_path)
    calls = int(moved.render_calls) + 2
    x = torch.zeros(1, 2 + int(moved.latent_size), BUFFER)
    x[0, 1], x[0, 0, :10] = cls, 1.0
    y = x.clone()
    y[0, 2:] = knobs
    first = calls
    for call in range(calls):
        if not torch.equal(unmoved(x), moved(y)) and first == calls:
            first = call
    ms = 1e3 * first * BUFFER / RATE
    return {
        "calls": first,
        "ms": ms,
        "goal_ms": KNOB_GOAL_MS,
        "met": ms <= KNOB_GOAL_MS,
        "refined_after_calls": int(moved.render_calls) - 1,  # the full-quality sound replaces the preview
    }


def _test_side(run: RunFolder) -> tuple[Any, Tensor, Tensor, Tensor, Tensor]:
    """The run's task, and the test side's pooled log-magnitudes, their decoded posterior means, classes and
    knobs (the posterior means along the class's PCA axes, in standard deviations)."""
    from latentlive import registry
    from latentlive.core.runs import load_checkpoint
    from latentlive.training.config import parse_gin

    checkpoint = load_checkpoint(run.checkpoint)
    recorded = checkpoint.get("run") or {}
    parse_gin([run.config])
    task = registry.load(registry.find(checkpoint["task"]).task)()
    torch.manual_seed(int(recorded.get("seed", 0)))
    trained_on = recorded.get("db")
    data = task.load_data(
        None if trained_on is None else Path(trained_on), int(recorded.get("seed", 0)), print
    )
    test = data.side("test").tensors
    model, _ = task.build_model()
    model.load_state_dict(checkpoint["model_state"])
    model.eval()
    facts = checkpoint["metadata"]
    cls = test["cls"].long()
    with torch.no_grad():
        z = model.encode(test["logmag"], cls)[0]
        decoded = model.decode(z, cls)[0]
    mean = torch.tensor(facts["pca_mean"])[cls]
    components = torch.tensor(facts["pca_components"])[cls]  # [N, D, D], rows the axes
    std = torch.tensor(facts["pca_std"])[cls]
    knobs = torch.linalg.solve(components.transpose(1, 2), (z - mean).unsqueeze(-1)).squeeze(-1) / std
    return task, test["logmag"], decoded, cls, knobs


def quality(module: torch.jit.ScriptModule, run: RunFolder, limit: int = 200) -> dict[str, Any]:
    """Log-spectral distance (dB, pooled NSGT log-magnitudes as the model sees them; its floor makes it weigh
    the quiet parts) and spectral convergence (weighs the loud parts; magnitudes scaled to peak 1) of each
    path's sound for the test side's one-shots (encode -> knobs -> render), against the original sound and
    against the decoded magnitude it was asked for: ``render`` (Griffin-Lim from phase zero, the run's iterations), and
    the instrument (``forward``: knobs moved, in test order per class, warm start from the class's last
    sound) when its preview is swapped in and once refined."""
    from latentlive.training.metrics import log_spectral_distance, spectral_convergence

    task, original, decoded, cls, knobs = _test_side(run)
    knobs = knobs.clamp(-4.0, 4.0)
    n = min(limit, len(cls))
    latent = int(module.latent_size)
    sounds: dict[str, list[Tensor]] = {
        "one_shot_render": [],
        "instrument_preview": [],
        "instrument_refined": [],
    }
    x = torch.zeros(1, 2 + latent, BUFFER)
    preview_calls = int(module.preview_calls)
    for i in range(n):
        c = int(cls[i])
        sounds["one_shot_render"].append(module.render(cls[i : i + 1], knobs[i : i + 1])[0])
        x[0, 1], x[0, 2:] = c, knobs[i].unsqueeze(1)
        for call in range(int(module.render_calls)):
            module(x)
            if call == preview_calls:
                sounds["instrument_preview"].append(module.kit.rendered_model_rate[c].clone())
        sounds["instrument_refined"].append(module.kit.rendered_model_rate[c].clone())

    def peak(
        magnitude: Tensor,
    ) -> Tensor:  # levels apart: the sounds are peak-normalised, the decoder's are not
        return magnitude / magnitude.amax((-2, -1), keepdim=True).clamp_min(1e-12)

    result: dict[str, Any] = {"sounds": n, "griffin_lim_iterations": int(module.render_calls) - 1}
    for name, audio in sounds.items():
        heard = task.analyse(torch.stack(audio)).exp()
        result[name] = {
            "lsd_db_vs_original": float(
                log_spectral_distance(original[:n].exp(), heard, task.log_floor).mean()
            ),
            "lsd_db_vs_decoded": float(
                log_spectral_distance(decoded[:n].exp(), heard, task.log_floor).mean()
            ),
            "sc_peak_scaled_vs_original": float(
                spectral_convergence(peak(original[:n].exp()), peak(heard)).mean()
            ),
            "sc_peak_scaled_vs_decoded": float(
                spectral_convergence(peak(decoded[:n].exp()), peak(heard)).mean()
            ),
        }
    return result


def bench(ts_path: Path, run: RunFolder | None) -> dict[str, Any]:
    """One-shot render time, and the instrument's per-buffer time while it re-renders, on one thread; the
    per-buffer p99 against a quarter of the buffer period, judged interleaved; how soon a moved knob is heard
    (:func:`knob_to_sound`) and, with a run, the quality of both render paths (:func:`quality`)."""
    module = load_ts(ts_path)
    deliver_host_rate(module, RATE)  # as the device does
    knobs = torch.zeros(1, int(module.latent_size))
    x = torch.zeros(1, 2 + int(module.latent_size), BUFFER)
    calls = []

    def play() -> None:  # a knob moves every 40 buffers and a hit every 8: the instrument keeps rendering
        n = len(calls)
        calls.append(n)
        x[0, 2] = (n // 40) * 0.1
        x[0, 0] = 0.0
        if n % 8 == 0:
            x[0, 0, 100:200] = 0.8
        module(x)

    period_ms = 1e3 * BUFFER / RATE
    with torch.no_grad():
        one_shot = call_figures(lambda: module.generate(torch.tensor([0]), knobs), 10, None, warmup=2)
        per_buffer = call_figures(play, 400, period_ms, warmup=20)
        heard = knob_to_sound(ts_path)
        results = {
            "one_shot_render_one_thread": one_shot,
            "streaming_per_buffer_2048_44k1_one_thread": per_buffer,
            "buffer_period_ms": period_ms,
            "per_buffer_interleaved_p99_over_quarter_period": per_buffer["interleaved"]["wall_ms_p99"]
            / (period_ms / 4),
            "knob_to_sound": {
                **heard,
                "p99_call_ms": per_buffer["interleaved"]["wall_ms_p99"],
                "p99_goal_ms": period_ms / 4,
                "p99_met": per_buffer["interleaved"]["wall_ms_p99"] <= period_ms / 4,
            },
            "render_buffers_per_sound": int(module.render_calls),  # a whole re-render spans this many calls
        }
        if run is not None:
            results["render_quality"] = quality(_fresh(ts_path), run)
    return results


def _fresh(ts_path: Path) -> torch.jit.ScriptModule:
    """A newly loaded instrument at 44.1 kHz (the centre sounds, no job running)."""
    module = load_ts(ts_path)
    deliver_host_rate(module, RATE)
    return module

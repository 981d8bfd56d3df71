"""``latentlive bench drumsynth``: one-shot render time, and the instrument's time per buffer."""

from pathlib import Path
from typing import Any

import torch

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


def bench(ts_path: Path, run: RunFolder | None) -> dict[str, Any]:
    """One-shot render time, and the instrument's per-buffer time while it re-renders, on one thread; the
    per-buffer p99 against a quarter of the buffer period, judged interleaved."""
    module = load_ts(ts_path)
    rate, buffer = 44100, 2048
    deliver_host_rate(module, rate)  # as the device does
    knobs = torch.zeros(1, int(module.latent_size))
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

    period_ms = 1e3 * buffer / rate
    with torch.no_grad():
        one_shot = call_figures(lambda: module.generate(torch.tensor([0]), knobs), 10, None, warmup=2)
        per_buffer = call_figures(play, 400, period_ms, warmup=20)
    return {
        "one_shot_render_one_thread": one_shot,
        "streaming_per_buffer_2048_44k1_one_thread": per_buffer,
        "buffer_period_ms": period_ms,
        "per_buffer_interleaved_p99_over_quarter_period": per_buffer["interleaved"]["wall_ms_p99"]
        / (period_ms / 4),
        "render_buffers_per_sound": int(module.render_calls),  # a re-render is spread over this many calls
    }

"""``latentlive bench band``: next-measure prediction time against its goal, the nn~ buffer in which a
measure ends, and the player's jitter against MIDI clock through the JACK dummy server."""

import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from latentlive.bench.common import call_figures, run_metrics, spread
from latentlive.core.runs import RunFolder
from latentlive.export.host import one_thread
from latentlive.training.config import PROJECT_ROOT
from latentlive.training.metrics import headline

BAND_GOAL_MS = 20.0  # next-measure prediction p99 on one thread, interleaved
BOUNDARY_BUFFER = 512
BAND_JITTER_BPM = 120.0
BAND_JITTER_MEASURES = 8
BAND_REPEATS = 1000
TRAINING_BINDINGS = [
    "train.max_steps = 2",
    "train.eval_every = 2",
    "train.media_every = 2",
    "train.checkpoint_every = 2",
]
FROM_FILE = True
REUSE_CURRENT_EXPORT = False
HELD_BY_DEPENDENT_RUNS = False


def _history(band: Any, measures: int) -> Any:
    """``measures`` measures the model drew itself from silence (temperature 1): a history with notes."""
    history = [band.empty_roll()]
    for n in range(measures):
        history.append(band.next_measure(np.stack(history), 1.0, n, ahead=1))
    return np.stack(history[1:])


def _boundary_buffer(module: torch.nn.Module, lanes: int, repeats: int) -> dict[str, Any]:
    """One nn~ ``next`` call of ``BOUNDARY_BUFFER`` samples in which a measure ends (the buffer that
    predicts), after one inside the measure (untimed), on one thread, against its period at 44.1 kHz."""

    def at(position: float) -> Tensor:  # a held C5 on every lane; the position advances a 16th per 2048
        x = torch.full((1, lanes + 1, BOUNDARY_BUFFER), 60.0)
        x[0, lanes] = position + torch.arange(BOUNDARY_BUFFER) / 2048.0
        return x

    measure = [0]

    def inside() -> None:
        measure[0] += 1
        module.next(at(16.0 * measure[0] + 8.0))

    module.reset()
    with torch.no_grad():
        figures = call_figures(
            lambda: module.next(at(16.0 * (measure[0] + 1))),
            repeats,
            1e3 * BOUNDARY_BUFFER / 44100,
            warmup=5,
            between=inside,
        )
    module.reset()
    return figures


def _player_jitter(band: Any, bpm: float, measures: int) -> dict[str, Any]:
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
    recorder_source = ports.find_port(backend.get_input_names(), "latentlive bench band")
    recorder = ports.open_input(
        recorder_source,
        api="jack",
        existing=recorder_source,
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
        figures["offset_from_clock_tick_ms"] = spread(values)
        figures["jitter_ms"] = spread(jitter)
    return figures


def _small_op_us(count: int = 20000) -> float:
    """Microseconds of one tiny eager torch op on one thread: how busy the machine was (about 2 idle)."""
    x = torch.zeros(16)
    with one_thread():
        start = time.perf_counter()
        for _ in range(count):
            x = x + 1.0
    return (time.perf_counter() - start) / count * 1e6


def bench(ts_path: Path, run: RunFolder | None, repeats: int | None = None) -> dict[str, Any]:
    """Next-measure prediction time on one thread against the goal: per measure as the player and the device
    run it (the measure that ended is encoded, the history's encodings are kept), and from a whole history
    of ``context`` measures (``next_measure``, every measure encoded), the goal judged on the interleaved p99;
    the cost of an nn~ buffer in which a measure ends; the player's jitter against MIDI clock through the
    JACK dummy server."""
    from latentlive.live.band_model import BandModel

    band = BandModel(ts_path)
    repeats = repeats or BAND_REPEATS
    history = _history(band, band.context)
    encoded = band.history()
    played = [p == 0 for p in range(band.parts)]  # the player reads the history from the part played
    for measure in history:
        encoded.push(measure, present=played)

    def per_measure() -> None:
        encoded.push(history[-1], present=played)
        encoded.next_measure(1.0, 0)

    with torch.no_grad():
        live = call_figures(per_measure, repeats, None, warmup=20)
        whole = call_figures(lambda: band.next_measure(history, 1.0, 0), repeats, None, warmup=20)
    p99, whole_p99 = live["interleaved"]["wall_ms_p99"], whole["interleaved"]["wall_ms_p99"]
    ratio = p99 / BAND_GOAL_MS
    verdict = "met" if ratio <= 1.0 else "NOT met"
    results: dict[str, Any] = {
        "parts": band.part_names,
        "context_measures": band.context,
        "next_measure_per_measure_live_one_thread": live,
        "next_measure_whole_history_one_thread": whole,
        "next_measure_goal_p99_ms": BAND_GOAL_MS,
        "next_measure_interleaved_p99_over_goal": ratio,
        "next_measure_whole_history_interleaved_p99_over_goal": whole_p99 / BAND_GOAL_MS,
        "next_measure_goal": f"p99 {p99:.2f} ms per measure on one thread, interleaved, {ratio:.2f}x the "
        f"{BAND_GOAL_MS:g} ms goal: {verdict}",
        "nn_next_buffer_512_with_a_measure_end_one_thread": _boundary_buffer(
            band.module, len(band.lane_parts), min(repeats, 200)
        ),
        "file_bytes": ts_path.stat().st_size,
        "small_torch_op_us": _small_op_us(),
    }
    metrics = run_metrics(run)
    if metrics:
        results["eval"] = headline(metrics.get("eval", {}))  # every metric: the run's metrics.json
    results["player_jitter_jack_dummy"] = _player_jitter(band, BAND_JITTER_BPM, BAND_JITTER_MEASURES)
    return results

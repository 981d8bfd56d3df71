"""The fields every bench JSON gives a timed call (``latentlive.bench.common.call_figures``), and a check
that a report uses them, and only them, with their definitions (docs/development.md#benchmarks)."""

from typing import Any

import pytest

CALL_FIELDS = {
    "calls",
    "wall_ms_p50",
    "wall_ms_p99",
    "wall_ms_mean",
    "cpu_ms_mean",
    "buffer_period_ms",
    "real_time_factor",
    "wall_ms_p99_over_period",
}
# what marks a dict as the figures of a timed call: the common names and the names benches used before them
TIMING_NAMES = {"wall_ms_p50", "wall_ms_p99", "wall_ms_mean", "cpu_ms_mean", "real_time_factor"}
OLD_NAMES = {"p50_ms", "p99_ms", "mean_ms", "wall_mean_ms", "p99_real_time_factor", "rounds"}


def timed_figures(report: Any, path: str = "") -> list[tuple[str, dict]]:
    """Every dict in ``report`` (at any depth) holding the figures of a timed call, with its dotted path; not
    the ``yardstick`` (the host's speed, the reference decoder timed alone: no period, nothing interleaved)."""
    if not isinstance(report, dict) or path == "yardstick":
        return []
    found = [(path, report)] if (TIMING_NAMES | OLD_NAMES) & set(report) else []
    for key, value in report.items():
        found += timed_figures(value, f"{path}.{key}" if path else key)
    return found


def assert_one_call(path: str, figures: dict) -> None:
    """``figures`` has every common field, and the definitions hold."""
    assert CALL_FIELDS <= set(figures), f"{path}: lacks {sorted(CALL_FIELDS - set(figures))}"
    assert not OLD_NAMES & set(figures), f"{path}: old names {sorted(OLD_NAMES & set(figures))}"
    assert figures["calls"] > 0 and figures["cpu_ms_mean"] >= 0, path
    assert 0 < figures["wall_ms_p50"] <= figures["wall_ms_p99"], path
    period = figures["buffer_period_ms"]
    if period is None:
        assert figures["real_time_factor"] is None and figures["wall_ms_p99_over_period"] is None, path
    else:
        assert figures["real_time_factor"] == pytest.approx(period / figures["wall_ms_mean"]), path
        assert figures["wall_ms_p99_over_period"] == pytest.approx(figures["wall_ms_p99"] / period), path


def assert_common_fields(report: dict) -> int:
    """Every timed call in ``report`` has the common fields and an ``interleaved`` twin with them; returns
    how many calls it holds."""
    calls = [(p, f) for p, f in timed_figures(report) if not p.endswith(".interleaved")]
    assert calls, "no timed call in the report"
    for path, figures in calls:
        assert_one_call(path, figures)
        assert isinstance(figures.get("interleaved"), dict), f"{path}: no interleaved figures"
        assert_one_call(f"{path}.interleaved", figures["interleaved"])
        assert figures["interleaved"]["buffer_period_ms"] == figures["buffer_period_ms"], path
    return len(calls)


# `latentlive bench grain` (issue #17): when a move of the XY knobs is heard, per density and the slowest
# (latentlive.bench.grain.knob_to_sound), and the model's latency against one 2048 buffer
GRAIN_KNOB_TO_SOUND_FIELDS = {"ms", "samples", "calls", "goal_ms", "met"} | {
    "half_ms",
    "half_samples",
    "half_calls",
}
GRAIN_LATENCY_GOAL_FIELDS = {"samples", "ms_48k", "goal_samples", "met"}


def assert_grain_answer_fields(report: dict) -> None:
    """The grain bench's knob-to-sound block (one entry per density, the slowest beside them) and latency
    goal have their fields, and each ``met`` says what its figures say."""
    answer = report["knob_to_sound"]
    entries = [v for v in answer.values() if isinstance(v, dict)]
    assert entries, "knob_to_sound: no density measured"
    for figures in entries:
        assert GRAIN_KNOB_TO_SOUND_FIELDS <= set(figures), sorted(GRAIN_KNOB_TO_SOUND_FIELDS - set(figures))
        assert figures["met"] == (figures["ms"] <= figures["goal_ms"])
        assert 0 <= figures["samples"] <= figures["half_samples"]
    assert answer["ms"] == max(figures["ms"] for figures in entries)
    assert answer["met"] == all(figures["met"] for figures in entries)
    goal = report["forward_latency_goal"]
    assert GRAIN_LATENCY_GOAL_FIELDS <= set(goal), sorted(GRAIN_LATENCY_GOAL_FIELDS - set(goal))
    assert goal["met"] == (goal["samples"] <= goal["goal_samples"])


# latentlive bench drumsynth: ``knob_to_sound`` (issue #17: a moved knob heard within 100 ms, p99 call under a
# quarter of the buffer period); ``latentlive.bench.drumsynth.knob_to_sound`` gives the first five
DRUMSYNTH_KNOB_TO_SOUND = {
    "calls",
    "ms",
    "goal_ms",
    "met",
    "refined_after_calls",
    "p99_call_ms",
    "p99_goal_ms",
    "p99_met",
}


# latentlive bench techno (issue #17): ``knob_to_sound`` (decode) and ``input_to_output`` (forward) of the run
# measured, and ``low_latency``: the default and causal settings beside RAVE v2_small's, the goals
TECHNO_ANSWER_FIELDS = {
    "ms",
    "calls",
    "goal_ms",
    "met",
    "model_ms",
    "first_change_samples",
    "half_changed_samples",
    "nn_threaded_extra_samples",
}


def assert_techno_answer_fields(report: dict) -> None:
    """Every answer time of the techno bench has its fields, each goal is RAVE's time of the same kind (decode
    for ``knob_to_sound``, forward for ``input_to_output``) in the same run, and each ``met`` says what its
    figures say."""
    side_by_side = report["low_latency"]
    assert {"rave_v2_small", "default", "causal"} <= set(side_by_side)
    rave = side_by_side["rave_v2_small"]
    for kind in ("knob_to_sound", "input_to_output"):
        assert TECHNO_ANSWER_FIELDS <= set(rave[kind]), kind
        goal = rave[kind]["ms"]
        answers = [report[kind]] + [side_by_side[setting][kind] for setting in ("default", "causal")]
        for figures in answers:
            assert TECHNO_ANSWER_FIELDS <= set(figures), sorted(TECHNO_ANSWER_FIELDS - set(figures))
            assert figures["goal_ms"] == goal and figures["met"] == (figures["ms"] <= goal)
            assert 0 <= figures["first_change_samples"] <= figures["half_changed_samples"]

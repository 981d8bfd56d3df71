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
    """Every dict in ``report`` (at any depth) holding the figures of a timed call, with its dotted path."""
    if not isinstance(report, dict):
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

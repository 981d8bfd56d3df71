"""One definition of a timed call across every bench: the fields, what they mean (on a fake clock), the
interleaved figure, and the check that each bench JSON uses them (tests/bench_fields.py)."""

import copy
import json
from pathlib import Path

import pytest
import torch
from bench_fields import assert_common_fields
from torch import Tensor

import latentlive.bench.common as common
import latentlive.export.host as host
from latentlive.export.host import time_calls
from latentlive.export.host_rate import HostRateModule


class FakeClock:
    """``perf_counter`` and ``thread_time`` that move only when told: wall and CPU milliseconds spent."""

    def __init__(self) -> None:
        self.wall, self.cpu = 0.0, 0.0

    def perf_counter(self) -> float:
        return self.wall

    def thread_time(self) -> float:
        return self.cpu

    def spend(self, wall_ms: float, cpu_ms: float) -> None:
        self.wall += wall_ms / 1e3
        self.cpu += cpu_ms / 1e3


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(host, "time", fake)
    return fake


def test_time_calls_times_the_call_alone_in_wall_and_cpu_time(clock: FakeClock) -> None:
    calls: list[str] = []
    count = iter(range(10**6))

    def call() -> None:
        clock.spend(11.0, 1.0) if next(count) % 10 == 9 else clock.spend(1.0, 0.5)

    times = time_calls(
        call, repeats=100, warmup=10, between=lambda: (calls.append("b"), clock.spend(100, 100))
    )
    assert len(calls) == 110  # between runs before every call, warm-up included, and is not timed
    assert times["calls"] == 100
    assert times["wall_ms_mean"] == pytest.approx(2.0)  # (9 x 1 + 11) / 10
    assert times["cpu_ms_mean"] == pytest.approx(0.55)
    assert times["wall_ms_p50"] == pytest.approx(1.0)
    assert times["wall_ms_p99"] == pytest.approx(11.0)


def test_call_figures_against_the_period_and_interleaved_with_the_rave_like_call(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    monkeypatch.setattr(common, "rave_like_call", lambda: lambda: (order.append("rave"), clock.spend(50, 50)))

    def call() -> None:
        order.append("call")
        clock.spend(9.0 if order.count("call") % 4 == 0 else 1.0, 1.0)  # 1, 1, 1, 9 ms: mean 3, median 1

    figures = common.call_figures(call, 20, 42.0, warmup=2, between=lambda: order.append("between"))
    assert order[:3] == ["between", "call", "between"] and "rave" not in order[:44]
    assert order[-3:] == ["between", "rave", "call"] and order.count("rave") == 22
    for timed in (figures, figures["interleaved"]):
        assert timed["wall_ms_mean"] == pytest.approx(3.0)  # the RAVE-like call is not timed
        assert timed["wall_ms_p50"] == pytest.approx(1.0)
        assert timed["buffer_period_ms"] == 42.0
        assert timed["real_time_factor"] == pytest.approx(42.0 / 3.0)  # period over the mean, not the p50
        assert timed["wall_ms_p99_over_period"] == pytest.approx(timed["wall_ms_p99"] / 42.0)
    assert assert_common_fields({"a_call": figures}) == 1
    without_period = common.call_figures(call, 4, None, warmup=0)
    assert (
        without_period["real_time_factor"] is None
        and without_period["interleaved"]["real_time_factor"] is None
    )


def test_quick_times_a_tenth_of_the_calls_in_whole_blocks_and_the_json_says_so(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(common, "rave_like_call", lambda: lambda: None)

    def call() -> None:
        clock.spend(1.0, 1.0)

    assert common.call_figures(call, 480, None)["calls"] == 480
    assert common.write_and_print("x", {"a": 1}, tmp_path / "full.json")["calls_scale"] == 1.0
    with common.fewer_calls(common.QUICK_SCALE):
        assert common.call_figures(call, 480, None)["calls"] == 48
        assert common.call_figures(call, 480, None)["interleaved"]["calls"] == 48
        assert common.call_figures(call, 480, None, multiple_of=20)["calls"] == 60  # 48, up to whole blocks
        assert common.call_figures(call, 50, None)["calls"] == common.MIN_TIMED_CALLS
        assert common.call_figures(call, 4, None)["calls"] == 4  # below the minimum already: all of them
        common.write_and_print("x", {"a": 1}, tmp_path / "quick.json")
    assert json.loads((tmp_path / "quick.json").read_text())["calls_scale"] == common.QUICK_SCALE
    assert common.call_figures(call, 480, None)["calls"] == 480  # the scale ends with the block


def test_the_field_check_fails_on_old_names_a_wrong_definition_or_no_interleaved_figure(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "rave_like_call", lambda: lambda: clock.spend(5, 5))
    good = {"forward": common.call_figures(lambda: clock.spend(1.0, 1.0), 5, 10.0, warmup=0)}
    assert assert_common_fields(good) == 1
    old = {"forward": {"p50_ms": 1.0, "p99_ms": 2.0, "real_time_factor": 10.0}}
    on_p50 = copy.deepcopy(good)
    on_p50["forward"]["real_time_factor"] = 10.0 / 0.5
    alone = copy.deepcopy(good)
    del alone["forward"]["interleaved"]
    for broken in (old, on_p50, alone, {"nothing": {"timed": 1}}):
        with pytest.raises(AssertionError):
            assert_common_fields(broken)


class Doubler(HostRateModule):
    """A tiny nn~ module with a state: ``forward`` doubles its input, ``reset`` forgets the count."""

    def __init__(self) -> None:
        super().__init__((44100, 48000))
        self.count = 0
        self.register_attribute("latency", 0)
        self.register_method("forward", 1, 1, 1, 1, ["(signal) in"], ["(signal) out"])

    def forward(self, x: Tensor) -> Tensor:
        self.count += 1
        return 2.0 * x

    def use_host_rate(self, rate: int) -> None:
        pass

    def warm_up(self) -> None:
        pass

    @torch.jit.export
    def reset(self) -> None:
        self.count = 0


def test_streamed_figures_of_a_scripted_module_use_the_common_fields(tmp_path: Path) -> None:
    path = tmp_path / "doubler.ts"
    torch.jit.script(Doubler()).save(str(path))
    module = host.load_ts(path)
    figures = common.streaming_figures(module, "forward", 8, 48000, 2048)
    assert figures["buffer_period_ms"] == pytest.approx(1e3 * 2048 / 48000)
    assert assert_common_fields({"forward_streamed": figures}) == 1
    assert module.count == 0  # left reset, as the device finds it


def test_drums_and_drumsynth_bench_json_use_the_common_fields(
    drums_run: Path, drums_ts: Path, drumsynth_ts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The benches' measuring parts on the tiny exports of conftest (their interleaved call made light and a
    tenth of their calls timed: the fields are checked here, not the speed)."""
    from latentlive.bench import drums, drumsynth
    from latentlive.core.runs import RunFolder

    x = torch.randn(64, 64)
    monkeypatch.setattr(common, "rave_like_call", lambda: lambda: x @ x)
    with common.fewer_calls(common.QUICK_SCALE):
        report = drums.bench(drums_ts, RunFolder(drums_run))
    assert assert_common_fields(report) == 2  # decode of a pattern, a buffer of the harness
    decode = report["decode_per_pattern_one_thread"]
    assert report["decode_interleaved_p99_over_goal"] == decode["interleaved"]["wall_ms_p99"] / 1.0
    assert report["harness_per_buffer_2048_44k1_one_thread"]["buffer_period_ms"] == pytest.approx(
        1e3 * 2048 / 44100
    )
    assert report["export_seconds"] > 0
    with common.fewer_calls(common.QUICK_SCALE):
        report = drumsynth.bench(drumsynth_ts, None)
    assert assert_common_fields(report) == 2  # a one-shot, a buffer while it re-renders
    per_buffer = report["streaming_per_buffer_2048_44k1_one_thread"]
    assert report["per_buffer_interleaved_p99_over_quarter_period"] == pytest.approx(
        per_buffer["interleaved"]["wall_ms_p99"] / (per_buffer["buffer_period_ms"] / 4)
    )


def test_the_yardstick_times_the_rave_like_call_alone_and_every_model_bench_writes_it(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(common, "rave_like_call", lambda: lambda: clock.spend(4.0, 3.0))
    yardstick = common.yardstick_figures()
    assert yardstick["calls"] == common.YARDSTICK_CALLS
    assert yardstick["wall_ms_mean"] == pytest.approx(4.0) and yardstick["cpu_ms_mean"] == pytest.approx(3.0)
    assert yardstick["what"] == common.INTERLEAVED_WITH
    with common.fewer_calls(common.QUICK_SCALE):
        assert common.yardstick_figures()["calls"] == common.YARDSTICK_CALLS * common.QUICK_SCALE
    # what `latentlive bench` writes for a file measured alone (the band bench reads an exported .ts)
    from latentlive.bench import bench_model

    class FileBench:
        FROM_FILE = True

        @staticmethod
        def bench(path: Path, run: object) -> dict:
            return {"figure": 1.0}

    monkeypatch.setattr("latentlive.bench.first_call_figures", lambda path: {})
    report = bench_model("x", FileBench, model=tmp_path / "x.ts", out=tmp_path / "x.json")
    assert report["yardstick"]["wall_ms_mean"] == pytest.approx(4.0)
    assert json.loads((tmp_path / "x.json").read_text())["yardstick"]["calls"] == common.YARDSTICK_CALLS


def test_a_run_of_another_model_is_a_one_line_error_before_anything_is_exported(
    drums_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from latentlive.cli import main

    export = drums_run / "export"
    before = sorted((p.name, p.stat().st_mtime_ns) for p in export.iterdir()) if export.is_dir() else []
    out = tmp_path / "bench.json"
    assert main(["bench", "drumsynth", "--run", str(drums_run), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert f"{drums_run}: a drums run, not a drumsynth one" in err and "latentlive bench drums" in err
    after = sorted((p.name, p.stat().st_mtime_ns) for p in export.iterdir()) if export.is_dir() else []
    assert after == before and not out.exists()


def test_the_techno_bench_also_takes_a_techno_prior_run_and_the_others_only_their_own() -> None:
    from latentlive import registry
    from latentlive.bench import _run_tasks

    def tasks(name: str) -> list[str]:
        return _run_tasks(name, registry.load(registry.find(name).bench))

    assert tasks("techno") == ["techno", "techno_prior"]  # the prior's run carries its stage 1
    assert tasks("grain") == ["grain"]  # grain_prior trains on grain runs but exports no grain model
    assert tasks("drums") == ["drums"] and tasks("drumsynth") == ["drumsynth"] and tasks("band") == ["band"]

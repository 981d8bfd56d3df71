"""The nn~ contract's checks of the model itself (issue 16): each fails on a small module broken its way (stuck
at zero, a NaN inside that the output guard hides, a state that never recovers, a stream off by one sample)
and passes a healthy one."""

import json
from pathlib import Path

import pytest
import torch
from test_techno_export import check_stream_equals_offline, offline_stage1
from torch import Tensor

from latentlive.core.runs import load_checkpoint
from latentlive.export.contract import (
    check_extremes,
    check_not_stuck,
    check_recovery,
    recovery_pair,
    verify_file,
)
from latentlive.export.host import deliver_host_rate, load_ts
from latentlive.export.host_rate import HostRateModule
from latentlive.export.metadata import METADATA_NAME, read_metadata
from latentlive.export.streams import guarded

WINDOW = 8  # host samples: the smoother's state is its last 7 input samples


class Smoother(HostRateModule):
    """A healthy streaming module: the mean of the last 8 input samples (7 cached across buffers) behind an
    output guard at 1. ``fault`` breaks it: ``"stuck"`` answers zeros, ``"nan"`` has a NaN inside for inputs
    beyond 9 (which the guard turns into 0), ``"latch"`` adds an integral of its input that it never forgets."""

    def __init__(self, fault: str = "") -> None:
        super().__init__((44100, 48000))
        self.fault, self.window = fault, WINDOW
        self.output_guard = True
        self.register_buffer("cache", torch.zeros(1, 1, WINDOW - 1))
        self.register_buffer("total", torch.zeros(1))
        self.register_attribute("latency", 0)
        self.register_method("forward", 1, 1, 1, 1, ["(signal) in"], ["(signal) out"])
        self.reset()

    def forward(self, x: Tensor) -> Tensor:
        if self.rate == 0:
            return self.silence(x, 1, 1, 1)
        if self.cache.shape[0] != x.shape[0]:
            self.cache = x.new_zeros(x.shape[0], 1, self.window - 1)
        padded = torch.cat([self.cache, x], dim=-1)
        self.cache = padded[..., padded.shape[-1] - (self.window - 1) :]
        y = padded.unfold(-1, self.window, 1).mean(-1)
        if self.fault == "stuck":
            y = y * 0.0
        elif self.fault == "nan":
            y = y * torch.sqrt(9.0 - x.abs()) / 3.0
        elif self.fault == "latch":
            self.total = self.total + x.sum()
            y = y + 1e-3 * self.total
        return guarded(y, 1.0, self.output_guard)

    @torch.jit.export
    def guard_output(self, on: bool) -> None:
        self.output_guard = on

    def use_host_rate(self, rate: int) -> None:
        pass

    def warm_up(self) -> None:
        pass

    @torch.jit.export
    def reset(self) -> None:
        self.cache = self.cache.new_zeros(self.cache.shape[0], 1, self.window - 1)
        self.total = torch.zeros_like(self.total)  # not in place: ``forward`` replaced it (docs/host_rate.md)


def saved(fault: str, folder: Path) -> Path:
    """The smoother with ``fault``, scripted and saved with the metadata an export carries."""
    path = folder / f"smoother_{fault or 'healthy'}.ts"
    metadata = {
        "latency_samples": 0,
        "output_bounds": {"forward": 1.0},
        "state_window": {"forward": WINDOW},
    }
    torch.jit.script(Smoother(fault)).save(str(path), _extra_files={METADATA_NAME: json.dumps(metadata)})
    return path


def loaded(path: Path) -> torch.jit.ScriptModule:
    module = load_ts(path)
    deliver_host_rate(module, 44100)
    return module


def test_a_healthy_module_passes_every_check(tmp_path):
    path = saved("", tmp_path)
    module = loaded(path)
    assert check_extremes(module, "forward", 1.0) == []
    assert check_recovery(recovery_pair(path, 44100), "forward", WINDOW) == []
    assert check_not_stuck(module, "forward", 4096) == []
    assert verify_file(path)["problems"] == []


def test_a_module_stuck_at_zero_fails_the_stuck_check_alone(tmp_path):
    path = saved("stuck", tmp_path)
    module = loaded(path)
    assert check_extremes(module, "forward", 1.0) == []  # zeros are finite and bounded
    assert check_recovery(recovery_pair(path, 44100), "forward", WINDOW) == []  # and they recover
    assert check_not_stuck(module, "forward", 4096) == [
        "forward: the same output for two different inputs of 4096 samples: the model is stuck"
    ]
    assert [p for p in verify_file(path)["problems"] if p.endswith("the model is stuck")] != []


def test_a_nan_inside_fails_the_raw_output_check_though_the_guard_hides_it(tmp_path):
    path = saved("nan", tmp_path)
    module = loaded(path)
    with torch.no_grad():
        guarded_out = module(torch.full((1, 1, 2048), 10.0))
    assert torch.isfinite(guarded_out).all() and guarded_out.abs().max() <= 1.0  # what nn~ gets looks fine
    problems = check_extremes(module, "forward", 1.0)
    assert problems == [
        "forward: non-finite raw output (before the guard) for +10",
        "forward: non-finite raw output (before the guard) for -10",
    ]
    assert module.output_guard  # the check leaves the guard on
    assert check_recovery(recovery_pair(path, 44100), "forward", WINDOW) == []
    assert check_not_stuck(module, "forward", 4096) == []


def test_a_state_that_never_recovers_fails_the_recovery_check(tmp_path):
    path = saved("latch", tmp_path)
    module = loaded(path)
    assert check_extremes(module, "forward", 1.0) == []
    problems = check_recovery(recovery_pair(path, 44100), "forward", WINDOW)
    assert [p.split(" (by")[0] for p in problems] == [
        f"forward: {WINDOW} samples after {case}, the output still differs from a fresh module's on the same input"
        for case in ("silence", "full-scale noise", "+10", "-10")  # the fresh module integrated other input
    ]
    assert check_not_stuck(module, "forward", 4096) == []
    assert any("after +10, the output still differs" in p for p in verify_file(path)["problems"])


def test_an_export_without_a_raw_output_or_a_state_window_breaks_the_contract(tmp_path):
    path = saved("", tmp_path)
    bare = tmp_path / "bare.ts"
    metadata = read_metadata(path)
    del metadata["state_window"]
    torch.jit.script(Smoother()).save(str(bare), _extra_files={METADATA_NAME: json.dumps(metadata)})
    assert (
        "forward: the metadata declares no state_window (None: it keeps a memory)"
        in (verify_file(bare)["problems"])
    )


# -- streaming equals offline after the declared delay (tests/test_techno_export.py), off by one sample


@pytest.mark.parametrize("shift", [-1, 1])
def test_a_stream_off_by_one_sample_fails_streaming_equals_offline(techno_run: Path, techno_ts: Path, shift):
    checkpoint = load_checkpoint(techno_run / "checkpoints" / "last.pt")
    model = offline_stage1(checkpoint["model_args"], checkpoint["model_state"])
    module, metadata = load_ts(techno_ts), read_metadata(techno_ts)
    check_stream_equals_offline(module, model, metadata, "forward", 44100)  # as exported: it holds
    metadata["primes"]["forward"]["44100"] += shift  # the stream read one sample early or late
    with pytest.raises(AssertionError):
        check_stream_equals_offline(module, model, metadata, "forward", 44100)

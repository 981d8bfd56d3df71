"""The low-latency techno setting (gin/techno_causal.gin): its export declares and keeps a small latency,
streams as it computes offline (the contract: test_gin_configs exports the gin file), is measured by the bench as nn~ drives it, and the devices built on it
compensate exactly that latency."""

from pathlib import Path
from typing import Any

import gin
import pytest
import torch
from device_graph import DeviceGraph
from test_m4l_loops import prior_metadata
from test_techno_export import check_stream_equals_offline

from latentlive.bench.techno import change_latency, other_setting_export, ts_change_latency
from latentlive.core.runs import load_checkpoint
from latentlive.export.host import load_ts
from latentlive.export.metadata import read_metadata
from latentlive.m4l_devices.loops import build_loops_device
from latentlive.m4l_devices.loops_fx import build_loops_fx_device
from latentlive.models.waveform_vae import WaveformVAE
from latentlive.training.config import parse_gin

ROOT = Path(__file__).resolve().parents[1]
NN_DELAY = 2 * 2048 - 64  # one threaded nn~ at the devices' 2048-sample buffer
SMALL = 1024  # host samples: under half a 2048 buffer, as the causal setting promises


@pytest.fixture(scope="module")
def causal_args(techno_run: Path) -> dict[str, Any]:
    """The tiny stage 1 of conftest with ``causal`` set, as gin/techno_causal.gin sets it (test_gin_configs
    trains and exports that file with the contract checks)."""
    args = load_checkpoint(techno_run / "checkpoints" / "last.pt")["model_args"]
    assert args["causal"] is False
    return {**args, "causal": True}


@pytest.fixture(scope="module")
def causal_ts(
    causal_args: dict[str, Any], techno_run: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """techno.ts of ``causal_args`` with the bench's seeded weights, built and saved as the exporter does."""
    facts = load_checkpoint(techno_run / "checkpoints" / "last.pt")["metadata"]
    default_args = {**causal_args, "causal": False}
    return other_setting_export(default_args, facts, tmp_path_factory.mktemp("causal"))


def causal_offline(causal_args: dict[str, Any]) -> WaveformVAE:
    """The offline model with the weights of ``causal_ts`` (the bench seeds them with 0)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return WaveformVAE(**causal_args).eval()


def test_techno_causal_gin_sets_the_causal_model() -> None:
    parse_gin([ROOT / "gin/techno_causal.gin"])
    try:
        assert gin.query_parameter("WaveformVAE.causal") is True
        assert gin.query_parameter("train.task") == "techno"
    finally:
        gin.clear_config()  # WaveformVAE is configurable: models built later must not inherit the file


def assert_low_latency(metadata: dict[str, Any]) -> None:
    """The model adds no delay of its own, and every method answers within ``SMALL`` host samples."""
    assert metadata["model_delays"] == {"encode": 0, "decode": 0, "forward": 0}, metadata["model_delays"]
    for method in ("encode", "decode", "forward"):
        assert 0 < metadata["method_latency"][method] < SMALL, (method, metadata["method_latency"])


def test_causal_export_declares_a_latency_under_half_a_buffer(causal_ts: Path) -> None:
    metadata = read_metadata(causal_ts)
    assert_low_latency(metadata)
    assert load_ts(causal_ts).get_latency()[0] == metadata["latency"] == metadata["method_latency"]["forward"]


def test_the_low_latency_check_rejects_the_default_setting(techno_ts: Path) -> None:
    with pytest.raises(AssertionError):
        assert_low_latency(read_metadata(techno_ts))


@pytest.mark.parametrize("method", ["forward", "decode", "encode"])
def test_causal_streaming_equals_offline_after_the_declared_delay(
    causal_args: dict[str, Any], causal_ts: Path, method: str
) -> None:
    module = load_ts(causal_ts)
    check_stream_equals_offline(module, causal_offline(causal_args), read_metadata(causal_ts), method, 44100)


def test_change_latency_finds_a_delayed_step() -> None:
    before, after = torch.zeros(4096), torch.ones(4096)
    switched = torch.cat([torch.zeros(2048 + 300), torch.ones(4096 - 2048 - 300)])
    assert change_latency(before, switched, after, 2048) == {
        "first_change_samples": 300,
        "half_changed_samples": 384,  # 256..320 holds 20 new samples and 44 old: 320..384 is the first
    }
    unchanged = change_latency(before, before.clone(), after, 2048)
    assert unchanged == {"first_change_samples": -1, "half_changed_samples": -1}


def test_bench_hears_a_knob_change_of_the_causal_decode_within_a_buffer(
    causal_ts: Path, techno_ts: Path
) -> None:
    """Driven as nn~ drives it (one call per buffer), the causal decode leaves the old sound by its declared
    latency (a host latent frame more: the frames are interpolated) and is half way to the new one within a
    buffer; the default setting is not."""
    metadata = read_metadata(causal_ts)
    declared = metadata["method_latency"]["decode"]
    change = ts_change_latency(load_ts(causal_ts), "decode", 44100, 2048)
    assert 0 <= change["first_change_samples"] <= declared + metadata["latent_ratio"], (change, declared)
    assert change["first_change_samples"] <= change["half_changed_samples"] < 2048, change
    default = ts_change_latency(load_ts(techno_ts), "decode", 44100, 2048)
    assert default["half_changed_samples"] > 2048, default


def test_devices_on_the_causal_export_compensate_its_latency(causal_ts: Path, tmp_path: Path) -> None:
    """LatentLoopsFX delays the dry path by its two nn~ plus encode and decode; LatentLoops runs the phase
    ahead by its two nn~ plus the decode latency, which a techno_prior export on this stage 1 declares."""
    metadata = read_metadata(causal_ts)
    latency = metadata["method_latency"]
    fx = DeviceGraph(build_loops_fx_device(tmp_path / "fx", str(causal_ts), metadata))
    wet = 2 * NN_DELAY + latency["encode"] + latency["decode"]
    assert sorted(fx.text(d) for d in fx.find("delay~")) == [f"delay~ {wet + 64} {wet}"] * 2
    prior = {**prior_metadata(metadata["latent_size"], 2, 1), "latency": latency["decode"]}
    loops = DeviceGraph(build_loops_device(tmp_path / "loops", str(causal_ts.with_name("p.ts")), prior))
    assert f"*~ {2 * NN_DELAY + latency['decode']}." in {loops.text(i) for i in loops.boxes}

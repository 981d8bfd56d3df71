"""The techno exports on the saved files: the nn~ contract, host rates, latency, streaming equals offline
(after the declared delay, for random chunk sizes), the loop trajectory read at the phase, and the devices."""

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cached_conv as cc
import numpy as np
import pytest
import torch
from cli_process import exporter_verdict
from torch import Tensor

from latentlive.cli import main
from latentlive.core.runs import load_checkpoint
from latentlive.export.host import (
    UNINITIALISED_RATE,
    deliver_host_rate,
    load_ts,
    method_spec,
    reload,
    set_attribute,
)
from latentlive.export.metadata import read_metadata
from latentlive.m4l_devices.amxd import AUDIO_EFFECT, INSTRUMENT, read_amxd
from latentlive.m4l_devices.validate import validate_device
from latentlive.models.resample import LatentRateConverter, StreamingResampler
from latentlive.models.trajectory_vae import TrajectoryVAE
from latentlive.models.waveform_vae import WaveformVAE

HOST_RATES = (44100, 48000)
SECONDS = 2  # of host audio per streaming check: the warm-up takes about half a second at tiny size
ATOL = 1e-4  # float32 resampling and convolutions, on outputs of order 0.1 to 1


@pytest.fixture(scope="module")
def stage1(techno_ts: Path) -> torch.jit.ScriptModule:
    """techno.ts, told 44.1 kHz as its device tells it."""
    module = load_ts(techno_ts)
    deliver_host_rate(module, 44100)
    return module


@pytest.fixture(scope="module")
def loops(techno_prior_ts: Path) -> torch.jit.ScriptModule:
    """techno_prior.ts, told 44.1 kHz as its device tells it."""
    module = load_ts(techno_prior_ts)
    deliver_host_rate(module, 44100)
    return module


@pytest.fixture(scope="module")
def prior_checkpoint(techno_prior_run: Path) -> dict[str, Any]:
    return load_checkpoint(techno_prior_run / "checkpoints" / "last.pt")


def offline_stage1(args: dict[str, Any], state: dict[str, Tensor]) -> WaveformVAE:
    """The stage-1 model with zero ("same") padding, as in training: the offline reference of the stream."""
    model = WaveformVAE(**args, streaming=False)
    model.load_state_dict(state)
    return model.eval()


@pytest.fixture(scope="module")
def stage1_offline(techno_run: Path) -> WaveformVAE:
    checkpoint = load_checkpoint(techno_run / "checkpoints" / "last.pt")
    return offline_stage1(checkpoint["model_args"], checkpoint["model_state"])


@pytest.fixture(scope="module")
def prior_eager(prior_checkpoint: dict[str, Any]) -> TrajectoryVAE:
    model = TrajectoryVAE(**prior_checkpoint["model_args"])
    model.load_state_dict(prior_checkpoint["model_state"])
    return model.eval()


# --- the contract, host rates, latency ----------------------------------------------------------


def test_saved_files_passed_the_contract_in_a_separate_process(
    techno_ts: Path, techno_prior_ts: Path
) -> None:
    assert set(exporter_verdict(techno_ts)["methods"]) == {"encode", "decode", "forward"}
    assert set(exporter_verdict(techno_prior_ts)["methods"]) == {"trajectory", "decode", "loop", "encode"}
    assert read_metadata(techno_ts)["model"] == "techno"
    assert read_metadata(techno_prior_ts)["model"] == "techno_prior"


@pytest.mark.parametrize("which", ["stage1", "loops"])
def test_the_host_rate_takes_44100_and_48000_and_ignores_others_without_harm(
    which: str, request: pytest.FixtureRequest
) -> None:
    """As a device sets it (``set host_rate``) or a host calls ``set_sample_rate``; nn~'s garbage rates,
    22050 and 96000 raise nothing and leave the rate and the stream as they were."""
    module = request.getfixturevalue(which)
    method = "forward" if which == "stage1" else "loop"
    spec = method_spec(module, method)
    generator = torch.Generator().manual_seed(1)
    first, second = (torch.rand(1, spec.in_channels, 2048, generator=generator) - 0.5 for _ in range(2))
    for rate in HOST_RATES:
        deliver_host_rate(module, rate)
        assert module.get_host_rate() == (rate,) and int(module.sr) == rate
    with torch.no_grad():
        module.set_sample_rate(44100)
        module.set_sample_rate(48000)  # a new rate: also a reset
        getattr(module, method)(first)
        expected = getattr(module, method)(second)
        module.set_sample_rate(44100)
        module.set_sample_rate(48000)
        getattr(module, method)(first)
        for bad in (22050, 96000, 0, UNINITIALISED_RATE):
            deliver_host_rate(module, bad)
            assert module.refused_rate == bad
        reload(module)
        after_refusal = getattr(module, method)(second)
    # the refusals left the rate and the stream as they were: the next buffer continues the stream
    assert module.get_host_rate() == (48000,)
    assert torch.isfinite(after_refusal).all()
    torch.testing.assert_close(after_refusal, expected, atol=0.0, rtol=0.0)


@pytest.mark.parametrize("which", ["stage1", "loops"])
def test_latency_attribute_is_the_declared_latency(which: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue("techno_ts" if which == "stage1" else "techno_prior_ts")
    module = request.getfixturevalue(which)
    metadata = read_metadata(path)
    assert "latency" in module.get_attributes()
    assert module.get_latency()[0] == metadata["latency_samples"] == metadata["attributes"]["latency"]
    assert set(metadata["method_latency"]) >= {"encode", "decode", "forward"}
    # the attribute is the latency of the method a device runs with it: resynthesis, or loop decoding
    own = "forward" if which == "stage1" else "decode"
    assert metadata["latency_samples"] == metadata["method_latency"][own]


def test_method_latency_is_the_prime_plus_the_delays_of_the_chain_at_both_rates(techno_ts: Path) -> None:
    """Each declared latency is what the chain delays by (FIFO prime, resamplers, model), to the sample
    at both host rates (encode: to the host latent frame its FIFO counts in)."""
    metadata = read_metadata(techno_ts)
    model_rate, ratio = metadata["sample_rate"], metadata["latent_ratio"]
    for rate in HOST_RATES:
        down, up = StreamingResampler(rate, model_rate), StreamingResampler(model_rate, rate)
        primes = {method: by_rate[str(rate)] for method, by_rate in metadata["primes"].items()}
        model = {method: d * rate / model_rate for method, d in metadata["model_delays"].items()}
        chain = {
            "forward": primes["forward"] + down.delay_in + up.delay + model["forward"],
            "decode": primes["decode"] + up.delay + model["decode"],
            "encode": primes["encode"] * ratio + down.delay_in + model["encode"],
        }
        for method, exact in chain.items():
            tolerance = ratio if method == "encode" else 1.0
            assert abs(metadata["method_latency"][method] - exact) <= tolerance, (method, rate, exact)


# --- streaming equals offline -------------------------------------------------------------------


def stream(
    module: torch.jit.ScriptModule, method: str, signal: Tensor, in_ratio: int, quantum: int
) -> Tensor:
    """Feed ``signal [1, C, N / in_ratio]`` to ``method`` in chunks of random multiples of ``quantum`` host
    samples (``N`` a multiple of ``quantum``), as nn~ would with changing buffer sizes; outputs joined."""
    rng = np.random.default_rng(quantum + signal.shape[-1])
    call, outputs, start, total = getattr(module, method), [], 0, signal.shape[-1] * in_ratio
    with torch.no_grad():
        while start < total:
            size = min(quantum * int(rng.integers(1, 33)), total - start)
            outputs.append(call(signal[..., start // in_ratio : (start + size) // in_ratio]))
            start += size
    return torch.cat(outputs, dim=-1)


def delayed(x: Tensor, delay: int) -> Tensor:
    """``x [B, C, T]`` shifted ``delay`` samples later (zeros first), same length."""
    return torch.cat([x.new_zeros(*x.shape[:-1], delay), x], dim=-1)[..., : x.shape[-1]]


def offline_pipeline(
    model: WaveformVAE, method: str, signal: Tensor, rate: int, metadata: dict[str, Any]
) -> Tensor:
    """The same chain run offline: resample, offline model shifted by its streaming delay, resample."""
    model_rate, ratio = metadata["sample_rate"], metadata["latent_ratio"]
    delay = metadata["model_delays"][method]
    frame_rate = model_rate / model.ratio
    down, up = StreamingResampler(rate, model_rate), StreamingResampler(model_rate, rate)
    with torch.no_grad():
        if method == "decode":
            z = LatentRateConverter(rate / ratio, frame_rate).resample(signal)
            return up.resample(delayed(model.decode(z), delay))
        audio = down.resample(signal)
        audio = audio[..., : audio.shape[-1] // model.ratio * model.ratio]  # the stream runs whole blocks
        latents = model.encode(audio)[0]
        if method == "forward":
            return up.resample(delayed(model.decode(latents), delay))
        to_host = LatentRateConverter(frame_rate, rate / ratio)
        return to_host.resample(delayed(latents, delay // model.ratio))


def warm_up(method: str, rate: int, metadata: dict[str, Any]) -> int:
    """Outputs (host samples; host frames for encode) where the stream may differ from the reference.

    The caches start from zeros where the offline model pads each layer with zeros, so the first outputs
    differ: ``delay`` model samples of output before the start, then as far again while the left receptive
    field (as long as the delay, with centred padding) still reaches them; the resamplers' filters spread
    the difference by their span."""
    model_rate, ratio = metadata["sample_rate"], metadata["latent_ratio"]
    down, up = StreamingResampler(rate, model_rate), StreamingResampler(model_rate, rate)
    model = 2 * metadata["model_delays"][method] * rate / model_rate
    if method == "forward":
        return math.ceil(model + 2 * down.delay_in + 2 * up.delay) + 1
    if method == "decode":
        return math.ceil(model + 2 * up.delay) + 1
    return math.ceil((model + 2 * down.delay_in) / ratio) + 2  # interpolation spans a frame either side


def fifo_underruns(module: torch.jit.ScriptModule, method: str, rate: int) -> int:
    name = {"forward": "forward_out", "decode": "decode_out", "encode": "encode_out"}[method]
    return int(getattr(module.streams, f"{name}_{rate // 1000}").fifo.underruns)


def check_stream_equals_offline(
    module: torch.jit.ScriptModule, model: WaveformVAE, metadata: dict[str, Any], method: str, rate: int
) -> None:
    ratio = metadata["latent_ratio"]
    samples = SECONDS * rate // ratio * ratio
    generator = torch.Generator().manual_seed(rate)
    # chunks: multiples of the method's smallest buffer (64 host samples for audio, a frame for latents)
    quantum = 64 if method == "forward" else ratio
    if method == "decode":  # host latent frames, one per `ratio` host samples
        signal, in_ratio = torch.randn(1, model.latent_size, samples // ratio, generator=generator), ratio
    else:
        signal, in_ratio = 0.3 * torch.randn(1, 1, samples, generator=generator), 1
    deliver_host_rate(module, rate)  # as the devices deliver it
    module.reset()
    streamed = stream(module, method, signal, in_ratio, quantum)
    reference = offline_pipeline(model, method, signal, rate, metadata)
    prime, skip = metadata["primes"][method][str(rate)], warm_up(method, rate, metadata)
    length = min(streamed.shape[-1] - prime, reference.shape[-1])
    assert length - skip > streamed.shape[-1] // 3, "the warm-up leaves too little to compare"
    assert fifo_underruns(module, method, rate) == 0
    assert torch.all(streamed[..., :prime] == 0)  # the FIFO's primed zeros come first
    tail = reference[..., skip:length]
    assert tail.abs().max() > 1e-2  # not a comparison of silences
    torch.testing.assert_close(streamed[..., prime + skip : prime + length], tail, atol=ATOL, rtol=0.0)


@pytest.mark.parametrize("rate", HOST_RATES)
@pytest.mark.parametrize("method", ["forward", "decode", "encode"])
def test_stage1_streaming_equals_offline_after_the_declared_delay(
    stage1: torch.jit.ScriptModule, stage1_offline: WaveformVAE, techno_ts: Path, method: str, rate: int
) -> None:
    check_stream_equals_offline(stage1, stage1_offline, read_metadata(techno_ts), method, rate)


@pytest.mark.parametrize("rate", HOST_RATES)
def test_loops_decode_streaming_equals_offline_stage1(
    loops: torch.jit.ScriptModule, prior_checkpoint: dict[str, Any], techno_prior_ts: Path, rate: int
) -> None:
    facts = prior_checkpoint["metadata"]
    model = offline_stage1(facts["stage1_args"], facts["stage1_state"])
    check_stream_equals_offline(loops, model, read_metadata(techno_prior_ts), "decode", rate)


def test_offline_stage1_ignores_and_keeps_the_cached_conv_switch(techno_run: Path) -> None:
    # the models take ``streaming`` as an argument: cached_conv's global switch neither changes them
    # nor is changed by building them
    checkpoint = load_checkpoint(techno_run / "checkpoints" / "last.pt")
    before = bool(cc.USE_BUFFER_CONV)
    for setting in (True, False):
        cc.use_cached_conv(setting)
        try:
            model = offline_stage1(checkpoint["model_args"], checkpoint["model_state"])
            assert bool(cc.USE_BUFFER_CONV) is setting and not model.streaming
        finally:
            cc.use_cached_conv(before)


# --- the loop: trajectory at the phase, loop audio ----------------------------------------------


def loop_controls(macro: list[float], phases: Tensor, ratio: int) -> Tensor:
    """``[1, M + 1, len(phases) * ratio]``: the macros held, each phase held over a block of ``ratio``."""
    x = torch.zeros(1, len(macro) + 1, phases.numel() * ratio)
    x[0, : len(macro)] = torch.tensor(macro).unsqueeze(1)
    x[0, len(macro)] = phases.repeat_interleave(ratio)
    return x


@pytest.fixture
def playing(loops: torch.jit.ScriptModule) -> Iterator[torch.jit.ScriptModule]:
    deliver_host_rate(loops, 44100)
    loops.reset()
    yield loops


def test_a_phase_ramp_reads_the_decoded_loop_frames_in_order(
    playing: torch.jit.ScriptModule, prior_eager: TrajectoryVAE
) -> None:
    ratio, frames = int(playing.latent_ratio), prior_eager.frames
    macro = torch.linspace(-1.2, 0.7, prior_eager.macro_size).tolist()
    # a sample-by-sample ramp over the loop, as from Live's transport: block j ends at phase j / frames
    samples = torch.arange(frames * ratio)
    x = loop_controls(macro, torch.zeros(frames), ratio)
    x[0, -1] = ((samples + 1 - ratio) / (frames * ratio)) % 1.0
    set_attribute(playing, "frame_temperature", ["0"])  # the decoded mean, without the per-frame draws
    try:
        with torch.no_grad():
            latents = playing.trajectory(x)
            expected = prior_eager.decode(
                torch.tensor(macro).view(1, -1, 1).expand(1, -1, prior_eager.macro_frames)
            )[0]
            x[0, -1] = (x[0, -1] + 0.5 / frames) % 1.0  # half-way between frames: their mean
            halves = playing.trajectory(x)
    finally:
        set_attribute(playing, "frame_temperature", ["1"])
    assert latents.shape == (1, prior_eager.latent_size, frames)
    torch.testing.assert_close(latents, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(halves, 0.5 * (expected + expected.roll(-1, dims=2)), atol=1e-5, rtol=1e-5)


def test_the_same_phase_gives_the_same_latents_and_phase_one_equals_zero(
    playing: torch.jit.ScriptModule, prior_eager: TrajectoryVAE
) -> None:
    ratio, macro = int(playing.latent_ratio), [0.5] * prior_eager.macro_size
    phases = torch.tensor([0.0, 0.37, 0.81, 1.0, 0.37, 0.0])
    with torch.no_grad():
        first = playing.trajectory(loop_controls(macro, phases, ratio))
        again = playing.trajectory(loop_controls(macro, phases.flip(0), ratio)).flip(2)
    torch.testing.assert_close(first, again, atol=0.0, rtol=0.0)  # no state: a phase reads one point
    torch.testing.assert_close(first[..., 1], first[..., 4], atol=0.0, rtol=0.0)
    torch.testing.assert_close(first[..., 3], first[..., 0], atol=1e-6, rtol=0.0)  # 1.0 wraps to 0.0
    assert not torch.allclose(first[..., 0], first[..., 2])


def test_changing_the_macros_changes_the_trajectory(
    playing: torch.jit.ScriptModule, prior_eager: TrajectoryVAE
) -> None:
    ratio, frames = int(playing.latent_ratio), prior_eager.frames
    ramp = torch.arange(frames) / frames
    with torch.no_grad():
        still = playing.trajectory(loop_controls([0.0] * prior_eager.macro_size, ramp, ratio))
        moved = playing.trajectory(loop_controls([2.0] + [0.0] * (prior_eager.macro_size - 1), ramp, ratio))
        back = playing.trajectory(loop_controls([0.0] * prior_eager.macro_size, ramp, ratio))
    assert (moved - still).abs().max() > 1e-3
    torch.testing.assert_close(back, still, atol=0.0, rtol=0.0)


def test_loop_audio_is_finite_and_sounds_after_its_latency_for_a_moving_phase(
    playing: torch.jit.ScriptModule, techno_prior_ts: Path, prior_eager: TrajectoryVAE
) -> None:
    metadata = read_metadata(techno_prior_ts)
    latency, buffer = metadata["method_latency"]["decode"], 2048
    total = (latency // buffer + 8) * buffer
    phase = (torch.arange(total) / (2.0 * 44100)) % 1.0  # a two-second loop
    x = torch.zeros(1, prior_eager.macro_size + 1, total)
    x[0, 0], x[0, prior_eager.macro_size] = 1.0, phase
    with torch.no_grad():
        out = torch.cat([playing.loop(x[..., i : i + buffer]) for i in range(0, total, buffer)], dim=-1)
    assert out.shape == (1, 1, total) and torch.isfinite(out).all()
    assert out.abs().max() <= metadata["output_bounds"]["loop"]
    assert out[..., latency:].abs().max() > 1e-3 and out[..., latency:].std() > 1e-4


# --- devices --------------------------------------------------------------------------------------


def test_devices_for_both_runs_build_and_validate(
    techno_run: Path, techno_ts: Path, techno_prior_run: Path, techno_prior_ts: Path
) -> None:
    assert main(["devices", "--run", str(techno_run)]) == 0
    assert main(["devices", "--run", str(techno_prior_run)]) == 0
    for path, device_type, ts, name in (
        (techno_run / "export" / "LatentLoopsFX.amxd", AUDIO_EFFECT, techno_ts, "techno.ts"),
        (techno_prior_run / "export" / "LatentLoops.amxd", INSTRUMENT, techno_prior_ts, "techno_prior.ts"),
    ):
        assert validate_device(path) == []
        device = read_amxd(path)
        assert device.device_type == device_type
        texts = [b["box"].get("text", "") for b in device.patcher["patcher"]["boxes"]]
        assert any(t.startswith(f"nn~ {name} decode") for t in texts), texts  # by file name, beside it
        assert (path.parent / name).read_bytes() == ts.read_bytes()

"""The exported grain model on the saved file: the nn~ contract, host rates, latency, what the attributes do
to the sound, buffer-size independence, following a sound, `render grain`, and the device."""

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from bench_fields import assert_common_fields, assert_grain_answer_fields
from cli_process import exporter_verdict
from torch import Tensor

from latentlive.bench.grain import knob_to_sound
from latentlive.cli import main
from latentlive.core.runs import load_checkpoint
from latentlive.export.grain import GrainExport, GrainPlan, GrainStreams
from latentlive.export.host import UNINITIALISED_RATE, NNHost, deliver_host_rate, load_ts, reload
from latentlive.export.metadata import read_metadata
from latentlive.m4l_devices.amxd import INSTRUMENT, read_amxd
from latentlive.m4l_devices.validate import validate_device
from latentlive.models.grain_vae import GrainVAE
from latentlive.models.resample import LatentRateConverter, StreamingResampler

HOST = 44100
DEFAULTS = {"density": 40.0, "jitter": 0.0, "spray": 0.0, "grain_length": 1.0, "transpose": 0.0}


@pytest.fixture(scope="module")
def grains(grain_ts: Path) -> torch.jit.ScriptModule:
    """grain.ts, told the host rate as its device tells it."""
    module = load_ts(grain_ts)
    deliver_host_rate(module, HOST)
    return module


def steady_knobs(latent_size: int, samples: int, value: float = 1.0) -> Tensor:
    """A held knob signal ``[1, D, samples]``: knob 1 at ``value``, knob 2 at ``-value / 2``, others 0."""
    knobs = torch.zeros(1, latent_size, samples)
    knobs[0, 0] = value
    knobs[0, 1] = -0.5 * value
    return knobs


def play(
    module: torch.nn.Module, knobs: Tensor, buffer: int = 2048, rate: int = HOST, **settings: float
) -> Tensor:
    """``forward`` from a fresh stream through the nn~ harness with the attributes ``settings`` (others at their
    defaults) -> ``[N]``."""
    for name, value in {**DEFAULTS, **settings}.items():
        if isinstance(module, torch.jit.ScriptModule):
            assert getattr(module, f"set_{name}")(float(value)) == 0
        else:
            setattr(module, name, (float(value),))
    host = NNHost(module, "forward", buffer, rate)
    module.reset()  # a fresh stream, as in a new nn~ object
    return host.process(knobs)[0, 0]


def spectral_centroid(audio: Tensor, rate: int) -> float:
    power = torch.fft.rfft(audio.double()).abs().pow(2)
    frequencies = torch.fft.rfftfreq(audio.numel(), 1.0 / rate, dtype=torch.float64)
    return float((power * frequencies).sum() / power.sum())


def peak_frequency(audio: Tensor, rate: int) -> float:
    power = torch.fft.rfft(audio.double()).abs()
    return float(torch.fft.rfftfreq(audio.numel(), 1.0 / rate)[power.argmax()])


# -- the contract, host rates, latency ---------------------------------------------------------------


def test_saved_file_passed_the_contract_in_a_separate_process(grain_ts: Path) -> None:
    assert set(exporter_verdict(grain_ts)["methods"]) == {"forward", "encode"}
    meta = read_metadata(grain_ts)
    assert meta["model"] == "grain" and meta["latent_ratio"] == 256
    for key in ("latent_size", "grain_size", "hop", "sample_rate", "latency_samples", "methods"):
        assert key in meta, key
    assert meta["methods"]["forward"] == {
        "in_channels": meta["latent_size"],
        "in_ratio": 256,
        "out_channels": 1,
        "out_ratio": 1,
    }


def test_the_host_rate_takes_44100_and_48000_and_ignores_others(grains: torch.jit.ScriptModule) -> None:
    for rate in (44100, 48000):
        deliver_host_rate(grains, rate)
        assert grains.get_host_rate() == (rate,) and int(grains.sr) == rate
    for bad in (22050, 88200, 0, UNINITIALISED_RATE):  # nothing raises into nn~; the rate stays
        deliver_host_rate(grains, bad)
        assert grains.get_host_rate() == (48000,) and grains.refused_rate == bad
    reload(grains)
    assert grains.get_host_rate() == (48000,)
    deliver_host_rate(grains, HOST)


def test_latency_attribute_is_the_declared_latency(grains: torch.jit.ScriptModule, grain_ts: Path) -> None:
    meta = read_metadata(grain_ts)
    assert "latency" in grains.get_attributes()
    assert grains.get_latency()[0] == meta["latency_samples"] == meta["attributes"]["latency"]
    assert meta["latency_samples"] == meta["method_latency"]["forward"] > 0


def test_forward_latency_is_at_most_one_buffer_at_both_rates(grain_ts: Path) -> None:
    """The model's own latency (threaded nn~ adds its two buffers on top) fits in one 2048 buffer at both
    host rates, for the tiny export and the grains of gin/grain.gin and gin/grain_2048.gin; the blocks of 24
    knob frames rendered at once before did not."""
    meta = read_metadata(grain_ts)
    assert meta["latency_samples"] == meta["method_latency"]["forward"] <= 2048
    rate = meta["sample_rate"]
    for grain_size in (meta["grain_size"], 1024, 2048):
        plan = GrainPlan(rate, grain_size, grain_size // 4)
        for host in (44100, 48000):
            delay = StreamingResampler(rate, host).delay
            assert plan.primes["forward"][host] + delay <= plan.latency["forward"] <= 2048
    assert GrainPlan(rate, 1024, 256, block=24).latency["forward"] > 2048


@pytest.mark.parametrize("rate", [44100, 48000])
def test_a_move_of_the_xy_knobs_is_heard_within_the_latency_of_the_saved_file(
    grain_ts: Path, rate: int
) -> None:
    """Measured as the bench measures it: one call per 2048 buffer, the knobs jump at the start of a call;
    the sound changes once the latency has passed and a grain has started (200 grains per second)."""
    module = load_ts(grain_ts)
    deliver_host_rate(module, rate)
    latency = read_metadata(grain_ts)["latency_samples"]
    with torch.no_grad():
        figures = knob_to_sound(module, 200.0, rate)
    # less a host frame of interpolation and the resampler's pre-ringing; at most a grain interval later
    assert latency - 256 <= figures["samples"] <= latency + rate / 200.0 + 64
    assert figures["met"] and figures["calls"] == 1
    assert figures["samples"] <= figures["half_samples"] <= 2048


def test_knob_to_sound_of_an_instrument_that_ignores_its_knobs_is_never() -> None:
    """The measurement can fail: grains that do not depend on the knobs never reflect the move."""
    rate, grain_size, hop = 22050, 1024, 256
    facts = identity_knob_facts(rate, hop)
    deaf = GrainExport(SineGrainVAE(440.0, rate, grain_size), facts, GrainPlan(rate, grain_size, hop))
    heard = GrainExport(LevelGrainVAE(grain_size), facts, GrainPlan(rate, grain_size, hop))
    with torch.no_grad():
        never, level = (knob_to_sound(export, 200.0, HOST) for export in (deaf, heard))
    assert not never["met"] and never["samples"] == never["half_samples"] == 8 * 2048
    assert level["met"] and level["samples"] <= 2048


# -- what the attributes do ----------------------------------------------------------------------------


def test_density_zero_is_silence_once_the_last_grains_have_rung_out(
    grains: torch.jit.ScriptModule, grain_ts: Path
) -> None:
    meta = read_metadata(grain_ts)
    # stop the first stream while a grain sounds: grains come out at latency + k * interval (host samples)
    latency, interval = meta["latency_samples"], HOST / 40.0
    grain = meta["grain_size"] * HOST / meta["sample_rate"]
    buffers = next(n for n in range(8, 64) if 0.2 * grain < (n * 2048 - latency) % interval < 0.6 * grain)
    knobs = steady_knobs(meta["latent_size"], buffers * 2048)
    for name, value in DEFAULTS.items():
        getattr(grains, f"set_{name}")(value)
    host = NNHost(grains, "forward", 2048, HOST)
    sounding = host.process(knobs)[0, 0]
    assert sounding[meta["latency_samples"] :].abs().max() > 1e-3
    grains.set_density(0.0)
    after = host.process(knobs)[0, 0]  # the same stream goes on, without new grains
    # a grain and the resampler ring for less than a grain plus the latency
    ring = latency + math.ceil(grain) + 256
    assert after[ring:].abs().max() < 1e-6
    assert after[:ring].abs().max() > 0  # the tail of the grains already started is kept


def test_higher_density_plays_more_often_and_louder(grains: torch.jit.ScriptModule, grain_ts: Path) -> None:
    meta = read_metadata(grain_ts)
    knobs = steady_knobs(meta["latent_size"], HOST)
    skip = meta["latency_samples"] + 2048

    def figures(density: float) -> tuple[float, float]:
        audio = play(grains, knobs, density=density)[skip:]
        frames = audio[: audio.numel() // 64 * 64].view(-1, 64)
        sounding = float((frames.pow(2).mean(1).sqrt() > 1e-3).float().mean())
        return float(audio.pow(2).mean()), sounding

    sparse, dense = figures(10.0), figures(200.0)
    assert dense[0] > 4.0 * sparse[0]
    assert dense[1] > 0.9 and sparse[1] < 0.5


def test_transpose_changes_the_grains_of_the_saved_file(
    grains: torch.jit.ScriptModule, grain_ts: Path
) -> None:
    """An octave up each grain lasts half as long, an octave down twice as long (sparse grains)."""
    meta = read_metadata(grain_ts)
    knobs = steady_knobs(meta["latent_size"], HOST)
    lengths = {}
    for semitones in (-12.0, 0.0, 12.0):
        audio = play(grains, knobs, density=10.0, transpose=semitones)
        lengths[semitones] = int((audio.abs() > 1e-4).sum())
    assert lengths[12.0] < 0.7 * lengths[0.0] < 0.7**2 * lengths[-12.0]
    low, plain = (play(grains, knobs, density=40.0, transpose=t) for t in (-12.0, 0.0))
    assert spectral_centroid(low, HOST) < spectral_centroid(plain, HOST)


class SineGrainVAE(GrainVAE):
    """A grain VAE whose every latent decodes to a Hann-windowed sine: a steady path plays a steady pitch."""

    def __init__(
        self, frequency: float, sample_rate: int, grain_size: int = 1024, latent_size: int = 4
    ) -> None:
        super().__init__(grain_size=grain_size, latent_size=latent_size, channels=(4, 8))
        t = torch.arange(grain_size) / sample_rate
        self.register_buffer("grain", torch.sin(2 * math.pi * frequency * t) * torch.hann_window(grain_size))

    def decode_mean(self, z: Tensor) -> Tensor:
        return 0.5 * self.grain.expand(z.shape[0], 1, -1)


def identity_knob_facts(rate: int, hop: int, latent_size: int = 4) -> dict[str, Any]:
    """The metadata a :class:`GrainExport` reads, with knobs that are the latents themselves (identity PCA)."""
    return {
        "sample_rate": rate,
        "hop": hop,
        "pca_mean": [0.0] * latent_size,
        "pca_components": torch.eye(latent_size).tolist(),
        "pca_std": [1.0] * latent_size,
    }


def test_transpose_up_an_octave_doubles_the_centroid_of_a_steady_path() -> None:
    """The export's transpose attribute, on grains of a known pitch, through the resampler to the host rate."""
    rate, grain_size, hop = 22050, 1024, 256
    model = SineGrainVAE(440.0, rate, grain_size)
    facts = identity_knob_facts(rate, hop)
    export = GrainExport(model, facts, GrainPlan(rate, grain_size, hop))
    knobs = steady_knobs(4, HOST)
    with torch.no_grad():
        # 110 grains per second: the stream is periodic at 110 Hz, and 440 and 880 Hz are its harmonics
        plain, up = (play(export, knobs, density=110.0, transpose=t)[4096:] for t in (0.0, 12.0))
    assert spectral_centroid(up, HOST) > 1.5 * spectral_centroid(plain, HOST)
    assert peak_frequency(plain, HOST) == pytest.approx(440.0, rel=0.01)
    assert peak_frequency(up, HOST) == pytest.approx(880.0, rel=0.01)


class LevelGrainVAE(GrainVAE):
    """A grain VAE whose latent decodes to a Hann window scaled by its first coordinate: silence at 0."""

    def __init__(self, grain_size: int = 1024, latent_size: int = 4) -> None:
        super().__init__(grain_size=grain_size, latent_size=latent_size, channels=(4, 8))
        self.register_buffer("window", torch.hann_window(grain_size))

    def decode_mean(self, z: Tensor) -> Tensor:
        return z[:, :1, None] * self.window


@pytest.mark.parametrize("rate, buffer", [(HOST, 256), (HOST, 2048), (HOST, 8192), (48000, 1024)])
def test_a_knob_step_is_heard_after_the_declared_latency(rate: int, buffer: int) -> None:
    """Blocks of knob frames are rendered together: the latency covers the wait, whatever the buffer."""
    model_rate, grain_size, hop = 22050, 1024, 256
    facts = identity_knob_facts(model_rate, hop)
    plan = GrainPlan(model_rate, grain_size, hop)
    latency, step = plan.latency["forward"], 6 * 2048
    knobs = torch.zeros(1, 4, 16 * 2048)
    knobs[0, 0, step:] = 1.0
    with torch.no_grad():
        audio = play(GrainExport(LevelGrainVAE(), facts, plan), knobs, buffer=buffer, rate=rate, density=40.0)
    # silent until the step comes out (less a host frame of interpolation and the resampler's pre-ringing);
    # the first grain after it starts within one interval
    assert int((audio.abs() > 0).nonzero()[0]) >= step + latency - 256
    assert int((audio.abs() > 0.05).nonzero()[0]) < step + latency + rate / 40.0 + 512


def test_synchronous_output_does_not_depend_on_the_host_buffer(
    grains: torch.jit.ScriptModule, grain_ts: Path
) -> None:
    meta = read_metadata(grain_ts)
    steps = torch.linspace(-2.0, 2.0, 16).repeat_interleave(2048)  # the path moves every 2048 samples
    knobs = torch.zeros(1, meta["latent_size"], steps.numel())
    knobs[0, 0], knobs[0, 1] = steps, -steps
    small, large = (play(grains, knobs, buffer=size, density=90.0) for size in (256, 2048))
    assert small.abs().max() > 1e-3
    torch.testing.assert_close(small, large, atol=1e-5, rtol=0.0)


@pytest.mark.parametrize("rate", [44100, 48000])
def test_forward_streams_the_offline_render_at_the_host_rate(
    grain_run: Path, grain_ts: Path, rate: int
) -> None:
    """Through the nn~ 1.6.0 harness, the rate set as the device sets it: host knob frames -> model frames ->
    one whole engine call -> resampled to the host rate, offline, equals the stream after its FIFO prime."""
    meta, checkpoint = read_metadata(grain_ts), load_checkpoint(grain_run / "checkpoints" / "last.pt")
    knobs = steady_knobs(meta["latent_size"], 24 * 2048)
    knobs[0, 0] = torch.linspace(-1.5, 1.5, knobs.shape[-1])  # a path that moves
    module = load_ts(grain_ts)
    streamed = NNHost(module, "forward", 2048, host_rate=rate).process(knobs)[0, 0]
    fresh = GrainStreams(*_grain_parts(checkpoint))
    model_rate, hop, ratio = meta["sample_rate"], meta["hop"], meta["latent_ratio"]
    with torch.no_grad():
        path = LatentRateConverter(rate / ratio, model_rate / hop).resample(knobs[..., ratio - 1 :: ratio])
        audio = fresh.engine(path, hop, path.shape[-1] * hop)
        offline = StreamingResampler(model_rate, rate).resample(audio)[0, 0]
    prime = meta["primes"]["forward"][str(rate)]
    assert torch.all(streamed[:prime] == 0)
    length = min(streamed.numel() - prime, offline.numel()) - 2048  # the last block may still be waiting
    assert offline[:length].abs().max() > 1e-3  # not a comparison of silences
    torch.testing.assert_close(streamed[prime : prime + length], offline[:length], atol=1e-5, rtol=0.0)


def _grain_parts(checkpoint: dict) -> tuple[GrainVAE, dict, GrainPlan]:
    """What ``GrainStreams`` is built from, as the exporter builds it."""
    facts = checkpoint["metadata"]
    model = GrainVAE(**checkpoint["model_args"])
    model.load_state_dict(checkpoint["model_state"])
    return model, facts, GrainPlan(int(facts["sample_rate"]), model.grain_size, int(facts["hop"]))


def test_encode_of_a_sound_then_forward_of_its_path_sounds(
    grains: torch.jit.ScriptModule, grain_ts: Path
) -> None:
    meta = read_metadata(grain_ts)
    t = torch.arange(HOST) / HOST
    sound = (0.5 * torch.sin(2 * math.pi * (200 + 600 * t) * t) * (1 - t))[None, None]
    knobs = NNHost(grains, "encode", 2048, HOST).process(sound)
    assert knobs.shape == (1, meta["latent_size"], HOST) and torch.isfinite(knobs).all()
    assert knobs[..., meta["method_latency"]["encode"] :].std() > 0  # the path follows the sound
    audio = play(grains, knobs)
    assert torch.isfinite(audio).all() and audio[meta["latency_samples"] :].pow(2).mean().sqrt() > 1e-3


# -- render grain ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["line", "circle", "walk", "FILE"])
def test_render_grain_writes_a_wav_of_the_asked_length_at_the_host_rate(
    path: str, grain_ts: Path, tmp_path: Path
) -> None:
    out = tmp_path / f"{path}.wav"
    args = ["render", "grain", "--model", str(grain_ts), "--out", str(out), "--rate", "48000"]
    if path == "FILE":
        sound = tmp_path / "voice.wav"
        t = np.arange(int(1.5 * 24000)) / 24000
        sf.write(str(sound), np.stack([np.sin(2 * np.pi * 330 * t)] * 2, axis=1) * 0.5, 24000)
        args += ["--path", str(sound), "--density", "80", "--jitter", "0.3", "--spray", "0.2"]
        expected = int(1.5 * 48000)
    else:
        args += ["--path", path, "--seconds", "1.25", "--transpose", "-5", "--grain-length", "0.5"]
        expected = int(1.25 * 48000)
    assert main(args) == 0
    info = sf.info(str(out))
    assert (info.samplerate, info.channels, info.frames) == (48000, 1, expected)
    audio, _ = sf.read(str(out))
    assert np.abs(audio).max() > 1e-3


def test_render_grain_refuses_to_overwrite_and_bad_inputs_in_one_line(
    grain_ts: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    mine = tmp_path / "mine.wav"
    mine.write_bytes(b"mine")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio at all")
    cases = [
        (["--model", str(grain_ts), "--path", "line", "--out", str(mine)], "exists"),
        (["--model", str(tmp_path / "no.ts"), "--path", "line", "--out", str(tmp_path / "a.wav")], "no such"),
        (
            ["--model", str(grain_ts), "--path", str(broken), "--out", str(tmp_path / "b.wav")],
            "not a readable",
        ),
        (["--model", str(grain_ts), "--path", "spiral", "--out", str(tmp_path / "c.wav")], "no such file"),
        (
            ["--model", str(grain_ts), "--path", "line", "--rate", "22050", "--out", str(tmp_path / "d.wav")],
            "44100",
        ),
    ]
    for args, message in cases:
        assert main(["render", "grain", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert mine.read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.wav", "mine.wav"]


def test_a_walk_is_seeded_and_bounded() -> None:
    from latentlive.live.render_grain import WALK_BOUND, knob_path

    first, again, other = (knob_path("walk", 8, 2000, 172.0, seed) for seed in (3, 3, 4))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert np.abs(first).max() <= WALK_BOUND + 1e-6 and first.std(axis=1).min() > 0.1
    line = knob_path("line", 8, 101, 172.0)
    assert line[0, 0] == -2.0 and line[0, -1] == 2.0 and np.array_equal(line[1], -line[0])
    assert np.all(line[2:] == 0)


# -- the device ----------------------------------------------------------------------------------------


def test_devices_builds_latent_grains_and_it_validates(grain_run: Path, grain_ts: Path) -> None:
    assert main(["devices", "--run", str(grain_run)]) == 0
    path = grain_run / "export" / "LatentGrains.amxd"
    assert validate_device(path) == []
    device = read_amxd(path)
    assert device.device_type == INSTRUMENT
    texts = [b["box"].get("text", "") for b in device.patcher["patcher"]["boxes"]]
    assert any(t.startswith("nn~ grain.ts forward ") for t in texts), texts
    assert (grain_run / "export" / "grain.ts").read_bytes() == grain_ts.read_bytes()  # the model beside it


# -- bench -----------------------------------------------------------------------------------------------


def test_bench_grain_writes_json_with_ratios_to_the_goal(
    grain_run: Path, grain_ts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bench" / "grain.json"
    assert main(["bench", "grain", "--run", str(grain_run), "--out", str(out), "--quick"]) == 0
    report = json.loads(out.read_text())
    assert report["calls_scale"] == 0.1  # --quick: the fields are checked here, not the speed
    assert report["host_sample_rate"] == 48000 and report["buffer_size"] == 2048
    assert assert_common_fields(report) == 2 + 3  # forward at two densities, decode_mean at three batches
    for density in (40, 200):
        figures = report[f"forward_density_{density}_2048_48k_one_thread"]
        assert figures["buffer_period_ms"] == pytest.approx(report["buffer_period_ms"])
        # forward renders a block of several buffers in one call of every few: whole blocks are timed
        assert figures["calls"] % report["block_frames"] == 0
    slowest = min(
        report[f"forward_density_{d}_2048_48k_one_thread"]["interleaved"]["real_time_factor"]
        for d in (40, 200)
    )
    assert report["forward_interleaved_real_time_factor"] == pytest.approx(slowest)  # the goal: interleaved
    assert report["forward_goal_ratio"] == pytest.approx(slowest / 100.0)
    assert report["decode_mean_one_thread"]["batch_64"]["grains_per_second"] > 0
    assert report["latency_samples"]["forward"] == read_metadata(grain_ts)["latency_samples"]
    assert report["file_bytes"] == grain_ts.stat().st_size
    # issue #17: the knob-to-sound time at each density and the latency against one 2048 buffer
    assert_grain_answer_fields(report)
    assert set(report["knob_to_sound"]) >= {"density_40", "density_200"}
    assert report["forward_latency_goal"]["goal_samples"] == 2048 and report["forward_latency_goal"]["met"]

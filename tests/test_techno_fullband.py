"""The full-band techno stage 1 (issue #18): the PQMF of models/pqmf.py rebuilds audio (and a broken bank does
not) and streams as it computes offline; gin/techno_fullband.gin sets a 44.1 kHz model of 16 bands on 44.1 kHz
loops that hold what lies above 8 kHz; a tiny full-band run trains, exports with ``--streaming`` through the
nn~ contract checks, and its file streams as the offline model computes."""

import json
from pathlib import Path
from typing import Any

import gin
import numpy as np
import pytest
import torch
from test_rave_yardstick import unphased_analysis
from test_techno_export import check_stream_equals_offline, offline_stage1
from torch import Tensor

from latentlive.bench.techno import full_band_settings
from latentlive.cli import main
from latentlive.core.runs import load_checkpoint
from latentlive.corpus.techno_synth import BPM_RANGE, loop_samples_for
from latentlive.export.host import load_ts
from latentlive.export.metadata import read_metadata
from latentlive.models.pqmf import PQMFAnalysis, PQMFSynthesis
from latentlive.models.waveform_vae import WaveformVAE
from latentlive.training.config import configured_arguments, parse_gin
from latentlive.training.tasks.techno import load_loop_tensors

ROOT = Path(__file__).resolve().parents[1]
BANDS = 16


def _noise(samples: int, seed: int = 0) -> Tensor:
    return 0.3 * torch.randn(1, 1, samples, generator=torch.Generator().manual_seed(seed))


def _relative_error(output: Tensor, reference: Tensor) -> float:
    return float((output - reference).norm() / reference.norm())


@pytest.mark.parametrize("frames", [False, True])
def test_pqmf_analysis_then_synthesis_rebuilds_audio_and_a_broken_bank_does_not(frames: bool) -> None:
    """Offline ("centred") the bands rebuild the input with no delay, in either layout of the bands."""
    audio = _noise(BANDS * 512)
    analysis, synthesis = PQMFAnalysis(BANDS, frames=frames), PQMFSynthesis(BANDS, frames=frames)
    inner = slice(1024, -1024)  # away from the zero padding at both ends
    with torch.no_grad():
        bands = analysis(audio)
        assert bands.shape == ((1, 1, BANDS * 512) if frames else (1, BANDS, 512))
        rebuilt = synthesis(bands)
        analysis.matrix.copy_(unphased_analysis())  # every band with the same phase: aliasing stays
        broken = synthesis(analysis(audio))
    assert _relative_error(rebuilt[..., inner], audio[..., inner]) < 2e-3  # a 100 dB bank: near-perfect
    assert _relative_error(broken[..., inner], audio[..., inner]) > 0.5


@pytest.mark.parametrize("causal", [False, True])
def test_pqmf_streamed_equals_offline_after_its_delay(causal: bool) -> None:
    """Audio in random chunks (multiples of the band count) through the streaming analysis, the bands in random
    chunks through the streaming synthesis: the offline output, ``delay`` later (band frames, then samples)."""
    rng = np.random.default_rng(0)
    audio = _noise(BANDS * 640, seed=1)
    offline = [PQMFAnalysis(BANDS, causal=causal), PQMFSynthesis(BANDS, causal=causal)]
    analysis = PQMFAnalysis(BANDS, causal=causal, streaming=True)
    synthesis = PQMFSynthesis(BANDS, causal=causal, delay=analysis.delay, streaming=True)

    def chunks(x: Tensor, unit: int) -> list[Tensor]:
        sizes = rng.integers(1, 40, size=x.shape[-1]) * unit
        bounds = np.minimum(np.concatenate([[0], np.cumsum(sizes)]), x.shape[-1])
        return [x[..., a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]

    with torch.no_grad():
        bands = offline[0](audio)
        rebuilt = offline[1](bands)
        streamed_bands = torch.cat([analysis(c) for c in chunks(audio, BANDS)], -1)
        streamed = torch.cat([synthesis(c) for c in chunks(streamed_bands, 1)], -1)
        synthesis.reset()  # the check can fail: the same chunks in the wrong order
        shuffled = torch.cat([synthesis(c) for c in chunks(streamed_bands, 1)[::-1]], -1)
    frames, samples = analysis.delay, synthesis.delay
    if causal:
        assert frames == 0 and samples == 0  # causal padding: the stream is the offline output itself
    else:  # centred: each stage waits for its look-ahead
        assert frames > 0 and samples > BANDS * frames
    torch.testing.assert_close(streamed_bands[..., frames:], bands[..., : bands.shape[-1] - frames])
    # the streamed bands begin with frames from before the audio (offline: zeros): skip the delay once more
    reference = rebuilt[..., samples : rebuilt.shape[-1] - samples]
    torch.testing.assert_close(streamed[..., 2 * samples :], reference)
    assert not torch.allclose(shuffled[..., 2 * samples :], reference, atol=1e-3)


@pytest.fixture(scope="module")
def full_band() -> dict[str, Any]:
    """gin/techno_fullband.gin's stage-1 arguments and task settings (its bindings not left in force)."""
    parse_gin([ROOT / "gin/techno_fullband.gin"])
    try:
        args = {k: v for k, v in configured_arguments(WaveformVAE).items() if k != "streaming"}
        task = {name: gin.query_parameter(f"TechnoTask.{name}") for name in ("sample_rate", "length", "crop")}
        task["bars"] = gin.query_parameter("TechnoTask.bars")
    finally:
        gin.clear_config()
    return {"args": args, **task}


def test_techno_fullband_gin_sets_a_44k_model_of_16_bands(full_band: dict[str, Any]) -> None:
    model = WaveformVAE(**full_band["args"])
    assert full_band["sample_rate"] == 44100 and model.bands == BANDS
    assert model.ratio == 256  # one latent frame per 256 samples: as nn~ exchanges them at 44.1 kHz
    assert full_band["length"] % model.ratio == 0 and full_band["crop"] % model.ratio == 0
    assert full_band["length"] >= loop_samples_for(BPM_RANGE[0], full_band["bars"], 44100)
    with torch.no_grad():
        audio = model.decode(torch.randn(1, model.latent_size, 8))
    assert audio.shape == (1, 1, 8 * 256) and float(audio.abs().max()) <= 1.0
    # the bench measures this very model beside RAVE v2_small, and leaves no binding in force
    assert full_band_settings() == (full_band["args"], {"sample_rate": 44100, "bars": full_band["bars"]})
    assert gin.config_str() == ""


def test_full_band_loops_hold_what_lies_above_8k(full_band: dict[str, Any]) -> None:
    """The built-in loops at 44.1 kHz have hats and noise above the 8 kHz that the 16 kHz model can hold."""
    settings = {k: full_band[k] for k in ("sample_rate", "length", "bars")}
    data, _ = load_loop_tensors(None, {**settings, "examples": 2}, log=lambda _: None)
    audio = data.tensors["audio"].double()
    power = torch.fft.rfft(audio).abs().square()
    above = torch.fft.rfftfreq(audio.shape[-1], 1 / 44100) > 8000
    share = power[:, above].sum(1) / power.sum(1)
    assert audio.shape[-1] == full_band["length"] and bool((share > 1e-4).all()), share


@pytest.fixture(scope="module")
def fullband_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few steps of gin/techno_fullband.gin at the size of gin/techno_tiny.gin, exported with
    ``--streaming`` (the exporter runs the nn~ contract checks and refuses a file that fails them)."""
    runs = tmp_path_factory.mktemp("runs")
    tiny = (ROOT / "gin/techno_tiny.gin").read_text().splitlines()
    bindings = [line for line in tiny if line.strip() and not line.startswith(("#", "include"))]
    args = ["train", "--gin", str(ROOT / "gin/techno_fullband.gin"), "--name", "fullband", "--out", str(runs)]
    assert main([*args, *[item for b in bindings for item in ("--bind", b)]]) == 0
    assert main(["export", "--run", str(runs / "fullband"), "--streaming"]) == 0
    gin.clear_config()  # the run's bindings (16 bands) must not reach the tests after this file
    return runs / "fullband"


def test_a_tiny_full_band_run_exports_through_the_contract(fullband_run: Path) -> None:
    report = json.loads((fullband_run / "export" / "report.json").read_text())
    assert report["contract"]["problems"] == [] and report["streaming"] is True
    assert set(report["methods"]) == {"encode", "decode", "forward"}
    metadata = read_metadata(fullband_run / "export" / "fullband.ts")
    assert metadata["sample_rate"] == 44100 and metadata["ratio"] == 256
    args = load_checkpoint(fullband_run / "checkpoints" / "last.pt")["model_args"]
    assert args["bands"] == BANDS


@pytest.mark.parametrize(("method", "rate"), [("decode", 44100), ("forward", 48000)])
def test_the_full_band_file_streams_as_the_offline_model_computes(
    fullband_run: Path, method: str, rate: int
) -> None:
    checkpoint = load_checkpoint(fullband_run / "checkpoints" / "last.pt")
    model = offline_stage1(checkpoint["model_args"], checkpoint["model_state"])
    path = fullband_run / "export" / "fullband.ts"
    check_stream_equals_offline(load_ts(path), model, read_metadata(path), method, rate)

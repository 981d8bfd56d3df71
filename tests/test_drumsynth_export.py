"""The drum synth as an nn~ instrument: hits play at once, voices, background re-rendering, host rates."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from export.host import NNHost, load_ts
from export.metadata import read_metadata

ROOT = Path(__file__).resolve().parents[1]


def _controls(module: torch.jit.ScriptModule, length: int, cls: int, knobs: list[float]) -> torch.Tensor:
    """``[1, 2 + D, T]``: no gate, the class and the knobs held."""
    d = int(module.latent_size)
    x = torch.zeros(1, 2 + d, length)
    x[0, 1] = cls
    x[0, 2:] = torch.tensor(knobs + [0.0] * (d - len(knobs))).unsqueeze(1)
    return x


@pytest.fixture
def synth(drumsynth_ts: Path) -> torch.jit.ScriptModule:
    module = load_ts(drumsynth_ts)
    module.set_sample_rate(44100)
    return module


def test_saved_file_honours_the_contract_in_a_separate_process(drumsynth_ts: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "export.contract", str(drumsynth_ts)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["problems"] == []
    metadata = read_metadata(drumsynth_ts)
    assert metadata["model"] == "drumsynth" and metadata["voices"] >= 4 and metadata["latency_samples"] == 0


def test_a_hit_plays_the_rendered_sound_at_once(synth: torch.jit.ScriptModule) -> None:
    x = _controls(synth, 2048, cls=1, knobs=[])
    x[0, 0, 300:400] = 0.5  # a note: velocity 0.5 from sample 300
    out = synth(x)[0, 0]
    sound = synth.rendered[1]
    assert torch.all(out[:300] == 0)
    assert torch.allclose(out[300:2048], 0.5 * sound[: 2048 - 300], atol=1e-6)
    assert out[300:].abs().max() > 0


def test_at_most_four_voices_the_oldest_is_taken(synth: torch.jit.ScriptModule) -> None:
    x = _controls(synth, 2048, cls=0, knobs=[])
    for start in (0, 200, 400, 600, 800):  # five hits in one buffer
        x[0, 0, start : start + 50] = 1.0
    synth(x)
    playing = synth.voice_class[0]
    assert int((playing >= 0).sum()) == 4
    assert sorted(synth.voice_position[0].tolist()) == [2048 - 800, 2048 - 600, 2048 - 400, 2048 - 200]


def test_moving_a_knob_re_renders_one_stage_per_call(synth: torch.jit.ScriptModule) -> None:
    before = synth.rendered[2].clone()
    x = _controls(synth, 512, cls=2, knobs=[1.5])
    stages = []
    for _ in range(4 * int(synth.iterations) + 8):
        synth(x)
        stages.append(int(synth.job_stage))
        if stages[-1] == 0:
            break
    assert stages[-1] == 0 and len(stages) == 2 * int(synth.iterations) + 3
    assert not torch.equal(synth.rendered[2], before)
    assert torch.allclose(synth.rendered_knobs[2], torch.tensor([1.5] + [0.0] * (int(synth.latent_size) - 1)))
    offline = synth.generate(torch.tensor([2]), synth.rendered_knobs[2].unsqueeze(0))
    assert torch.allclose(synth.rendered[2], offline[0], atol=1e-4)


def test_host_rates(synth: torch.jit.ScriptModule) -> None:
    at_44k = synth.rendered.shape[1]
    synth.set_sample_rate(48000)
    assert synth.rendered.shape[1] == round(at_44k * 48000 / 44100)
    with pytest.raises(Exception, match="44100 or 48000"):
        synth.set_sample_rate(22050)


def test_the_host_harness_plays_hits_across_buffer_boundaries(synth: torch.jit.ScriptModule) -> None:
    signal = _controls(synth, 8192, cls=3, knobs=[])
    signal[0, 0, 1000:1100] = 1.0
    signal[0, 0, 5000:5100] = 1.0
    out = NNHost(synth, "forward", buffer_size=256, sample_rate=44100).process(signal)[0, 0]
    sound = synth.rendered[3]
    expected = torch.zeros(8192)
    expected[1000:] += sound[: 8192 - 1000]
    expected[5000:] += sound[: 8192 - 5000]
    assert torch.allclose(out, expected, atol=1e-5)

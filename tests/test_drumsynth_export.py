"""The drum synth as an nn~ instrument (hits at once, voices, background re-rendering, host rates) and loops."""

from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
import torch
from cli_process import run_contract

from latentlive.cli import main
from latentlive.core.errors import UserError
from latentlive.export.drumsynth import fft_resample
from latentlive.export.host import UNINITIALISED_RATE, NNHost, deliver_host_rate, load_ts
from latentlive.export.metadata import read_metadata
from latentlive.live.drum_model import level_to_velocity
from latentlive.live.render_loop import mix_loop, render_loop_wav

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
    """The exported drum synth, told 44.1 kHz as its device tells it (``set host_rate 44100``)."""
    module = load_ts(drumsynth_ts)
    deliver_host_rate(module, 44100)
    return module


def test_saved_file_honours_the_contract_in_a_separate_process(drumsynth_ts: Path) -> None:
    assert run_contract(drumsynth_ts)["problems"] == []
    metadata = read_metadata(drumsynth_ts)
    assert metadata["model"] == "drumsynth" and metadata["voices"] >= 4 and metadata["latency_samples"] == 0


def test_a_hit_plays_the_rendered_sound_at_once(synth: torch.jit.ScriptModule) -> None:
    x = _controls(synth, 2048, cls=1, knobs=[])
    x[0, 0, 300:400] = 0.5  # a note: velocity 0.5 from sample 300
    out = synth(x)[0, 0]
    sound = synth.kit.rendered[1]
    assert torch.all(out[:300] == 0)
    assert torch.allclose(out[300:2048], 0.5 * sound[: 2048 - 300], atol=1e-6)
    assert out[300:].abs().max() > 0


def test_hits_in_one_buffer_play_the_class_of_their_own_onset(synth: torch.jit.ScriptModule) -> None:
    x = _controls(synth, 2048, cls=0, knobs=[])
    x[0, 0, 100:120] = 1.0  # a kick ...
    x[0, 1, 130:] = 5  # ... then the class changes and a rim follows in the same buffer
    x[0, 0, 140:160] = 1.0
    out = synth(x)[0, 0]
    expected = torch.zeros(2048)
    expected[100:] += synth.kit.rendered[0][: 2048 - 100]
    expected[140:] += synth.kit.rendered[5][: 2048 - 140]
    assert torch.allclose(out, expected, atol=1e-5)


def test_at_most_four_voices_the_oldest_is_taken(synth: torch.jit.ScriptModule) -> None:
    x = _controls(synth, 2048, cls=0, knobs=[])
    for start in (0, 200, 400, 600, 800):  # five hits in one buffer
        x[0, 0, start : start + 50] = 1.0
    synth(x)
    playing = synth.kit.voice_class[0]
    assert int((playing >= 0).sum()) == 4
    assert sorted(synth.kit.voice_position[0].tolist()) == [2048 - 800, 2048 - 600, 2048 - 400, 2048 - 200]


def test_moving_a_knob_re_renders_one_stage_per_call(synth: torch.jit.ScriptModule) -> None:
    before = synth.kit.rendered[2].clone()
    x = _controls(synth, 512, cls=2, knobs=[1.5])
    stages = []
    for _ in range(4 * int(synth.kit.iterations) + 8):
        synth(x)
        stages.append(int(synth.kit.job_stage))
        if stages[-1] == 0:
            break
    assert stages[-1] == 0 and len(stages) == 2 * int(synth.kit.iterations) + 3
    assert not torch.equal(synth.kit.rendered[2], before)
    assert torch.allclose(
        synth.kit.rendered_knobs[2], torch.tensor([1.5] + [0.0] * (int(synth.latent_size) - 1))
    )
    offline = synth.generate(torch.tensor([2]), synth.kit.rendered_knobs[2].unsqueeze(0))
    assert torch.allclose(synth.kit.rendered[2], offline[0], atol=1e-4)


@pytest.mark.parametrize("rate", [48000, 88200, 96000])
def test_sounds_are_resampled_to_every_supported_host_rate(synth: torch.jit.ScriptModule, rate: int) -> None:
    at_44k = synth.kit.rendered.shape[1]
    deliver_host_rate(synth, rate)
    assert synth.get_host_rate() == (rate,) and synth.kit.rendered.shape[1] == round(at_44k * rate / 44100)
    x = _controls(synth, 2048, cls=1, knobs=[])
    x[0, 0, 0:10] = 1.0
    assert torch.allclose(synth(x)[0, 0], synth.kit.rendered[1][:2048], atol=1e-6)
    for bad in (22050, 0, -1, UNINITIALISED_RATE):  # refused without a word to nn~: the rate stays
        deliver_host_rate(synth, bad)
        assert synth.get_host_rate() == (rate,) and synth.refused_rate == bad


def test_the_host_harness_plays_hits_across_buffer_boundaries(synth: torch.jit.ScriptModule) -> None:
    signal = _controls(synth, 8192, cls=3, knobs=[])
    signal[0, 0, 1000:1100] = 1.0
    signal[0, 0, 5000:5100] = 1.0
    out = NNHost(synth, "forward", buffer_size=256, host_rate=44100).process(signal)[0, 0]
    sound = synth.kit.rendered[3]
    expected = torch.zeros(8192)
    expected[1000:] += sound[: 8192 - 1000]
    expected[5000:] += sound[: 8192 - 5000]
    assert torch.allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("rate", [44100, 48000])
def test_a_hit_streams_the_offline_one_shot_resampled_to_the_host_rate(drumsynth_ts: Path, rate: int) -> None:
    """Through the nn~ 1.6.0 harness, the rate set as the device sets it: a hit plays the one-shot rendered
    offline at the model rate and resampled to the host rate."""
    synth = load_ts(drumsynth_ts)
    signal = _controls(synth, 16384, cls=2, knobs=[])
    signal[0, 0, 300:400] = 0.75
    out = NNHost(synth, "forward", buffer_size=512, host_rate=rate).process(signal)[0, 0]
    one_shot = synth.render(torch.tensor([2]), torch.zeros(1, int(synth.latent_size)))
    model_rate = read_metadata(drumsynth_ts)["sample_rate"]
    resampled = fft_resample(one_shot, round(one_shot.shape[-1] * rate / model_rate)).clamp(-1.0, 1.0)[0]
    expected, n = torch.zeros(16384), min(16384 - 300, resampled.numel())
    expected[300 : 300 + n] = 0.75 * resampled[:n]  # then the sound has ended
    assert expected.abs().max() > 0.1
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0.0)


def test_mix_loop_places_hits_on_the_grid_and_wraps_tails() -> None:

    pattern = np.zeros((2, 16), dtype=np.float32)
    pattern[0, 0] = 1.0
    pattern[1, 15] = 0.5
    sounds = np.zeros((2, 30), dtype=np.float32)
    sounds[:, 0] = 0.5
    sounds[:, 25] = 0.25  # a tail that passes the end of the loop
    loop = mix_loop(pattern, sounds, bars=1, samples_per_step=10.0)
    assert loop.shape == (160,)
    assert loop[0] == pytest.approx(0.5) and loop[25] == pytest.approx(0.25)
    velocity = level_to_velocity(0.5) / 127
    assert loop[150] == pytest.approx(0.5 * velocity)
    assert loop[(150 + 25) % 160] == pytest.approx(0.25 * velocity)  # wrapped to the start


def test_render_loop_writes_a_wav_loop_and_its_midi(
    drums_ts: Path, drumsynth_ts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "loop.wav"
    assert (
        main(
            [
                "render",
                "loop",
                "--drums",
                str(drums_ts),
                "--kit",
                str(drumsynth_ts),
                "--bars",
                "2",
                "--bpm",
                "120",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    audio, rate = sf.read(str(out))
    assert rate == 44100 and audio.ndim == 1 and len(audio) == 2 * 16 * 44100 * 60 // 120 // 4
    assert np.abs(audio).max() > 0.01
    assert mido.MidiFile(str(out.with_suffix(".mid"))).length == pytest.approx(4.0, abs=0.01)
    with pytest.raises(UserError, match="not a drumsynth model; pass --kit drumsynth.ts"):
        render_loop_wav(drums_ts, drums_ts, None, 0, 1, 120, tmp_path / "bad.wav")
    assert not (tmp_path / "bad.wav").exists()

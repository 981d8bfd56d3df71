"""The drum synth as an nn~ instrument (hits at once, voices, background re-rendering, host rates) and loops."""

from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
import torch
from bench_fields import DRUMSYNTH_KNOB_TO_SOUND
from cli_process import exporter_verdict
from midi_files import drum_note_ons

from latentlive.bench.drumsynth import knob_to_sound
from latentlive.cli import main
from latentlive.core.errors import UserError
from latentlive.export.drumsynth import fft_resample
from latentlive.export.host import UNINITIALISED_RATE, NNHost, deliver_host_rate, load_ts
from latentlive.export.metadata import read_metadata
from latentlive.live.render import TICKS_PER_STEP, loop_note_ons
from latentlive.live.render_loop import mix_loop, render_loop_wav
from latentlive.training.metrics import log_spectral_distance

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


def test_saved_file_passed_the_contract_in_a_separate_process(drumsynth_ts: Path) -> None:
    exporter_verdict(drumsynth_ts)
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


def _knob_to_sound_calls(
    synth: torch.jit.ScriptModule, cls: int, before: list[float], knobs: list[float], limit: int
) -> int:
    """Calls after the one that moves the knobs of ``cls`` from ``before`` until its hit (one at the start of
    every call) plays a sound rendered from the new knobs: unlike the hit before, with those knobs swapped in."""
    held = _controls(synth, 512, cls=cls, knobs=before)
    held[0, 0, 0:10] = 1.0
    old = synth(held)[0, 0].clone()
    moved = _controls(synth, 512, cls=cls, knobs=knobs)
    moved[0, 0, 0:10] = 1.0
    for call in range(limit):
        out = synth(moved)[0, 0]
        swapped_in = torch.allclose(synth.kit.rendered_knobs[cls][: len(knobs)], torch.tensor(knobs))
        if swapped_in and not torch.equal(out, old):
            return call
    return limit


def test_a_knob_change_reaches_the_hit_within_two_calls(synth: torch.jit.ScriptModule) -> None:
    """Two calls with the preview; more with the whole Griffin-Lim before the first swap (the old staging)."""
    limit = int(synth.render_calls) + 2
    assert _knob_to_sound_calls(synth, 3, [], [-2.0], limit) == 2
    assert _knob_to_sound_calls(synth, 3, [-2.0], [1.0], limit) == 2  # while the last sound is being refined
    synth.kit.preview_iterations = int(synth.kit.iterations)
    assert _knob_to_sound_calls(synth, 3, [1.0], [2.0], limit) > 2


def test_a_moved_knob_is_heard_then_refined(synth: torch.jit.ScriptModule) -> None:
    iterations = int(synth.kit.iterations)
    before = synth.kit.rendered[2].clone()
    x = _controls(synth, 512, cls=2, knobs=[1.5])
    for call in range(iterations + 1):
        synth(x)
        if call == 2:
            preview = synth.kit.rendered[2].clone()
            assert not torch.equal(preview, before) and not bool(synth.kit.refined[2])
    assert int(synth.kit.job_stage) == 0 and bool(synth.kit.refined[2])
    assert int(synth.render_calls) == iterations + 1
    assert not torch.equal(synth.kit.rendered[2], preview)  # the refined sound replaced the preview
    assert torch.allclose(
        synth.kit.rendered_knobs[2], torch.tensor([1.5] + [0.0] * (int(synth.latent_size) - 1))
    )


def test_a_sound_left_for_another_class_is_refined_once_idle(synth: torch.jit.ScriptModule) -> None:
    x = _controls(synth, 512, cls=2, knobs=[1.0])
    for _ in range(int(synth.preview_calls) + 2):  # the preview is heard and its refinement begins
        synth(x)
    assert int(synth.kit.job_stage) == 2 and not bool(synth.kit.refined[2])
    x[0, 1] = 5  # another class: its own job first
    for _ in range(int(synth.render_calls)):
        synth(x)
    assert bool(synth.kit.refined[5]) and not bool(synth.kit.refined[2])
    for _ in range(int(synth.render_calls)):
        synth(x)
    assert bool(synth.kit.refined[2]) and int(synth.kit.job_stage) == 0
    assert torch.allclose(synth.kit.rendered_knobs[2], x[0, 2:, 0])


@pytest.mark.parametrize("sound", [0.0, float("nan")])
def test_a_silent_or_broken_sound_does_not_silence_the_next(
    synth: torch.jit.ScriptModule, sound: float
) -> None:
    """The warm start takes the phase of the class's last sound: where it has none, phase zero."""
    synth.kit.rendered_model_rate[6] = sound
    synth.kit.set_host_rate(44100)  # the sounds are analysed again, as when the device changes the rate
    x = _controls(synth, 512, cls=6, knobs=[0.5])
    for _ in range(int(synth.preview_calls) + 1):
        synth(x)
    preview = synth.kit.rendered_model_rate[6]
    assert torch.isfinite(preview).all() and preview.abs().max() > 0.5


def _fft_calls(synth: torch.jit.ScriptModule, x: torch.Tensor) -> dict[str, int]:
    """How many times each FFT operation ran in one call of ``synth`` on ``x``."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        synth(x)
    return {e.key: e.count for e in profile.key_averages() if e.key.startswith("aten::fft_")}


def test_the_knob_call_decodes_without_analysing_the_sound_heard(synth: torch.jit.ScriptModule) -> None:
    """The call that reads new knobs (the slowest call of a job) takes the warm start's phase as it was kept:
    no NSGT analysis (its real FFT), only the inverse (a complex FFT and a real inverse FFT). Before a host
    rate is set nothing is kept, and the same call analyses the sound."""
    x = _controls(synth, 512, cls=3, knobs=[1.0])
    assert _fft_calls(synth, x) == {"aten::fft_fft": 1, "aten::fft_irfft": 1}
    assert int(synth.kit.job_stage) == 1  # it was the knob call
    synth.kit.warm_phase = torch.zeros(0, dtype=torch.complex64)  # as before the host rate is set
    synth.kit.job_stage = 0
    x = _controls(synth, 512, cls=3, knobs=[2.0])
    assert _fft_calls(synth, x)["aten::fft_rfft"] == 1


def test_a_swapped_in_sound_keeps_the_phase_it_was_made_with(synth: torch.jit.ScriptModule) -> None:
    kit = synth.kit
    x = _controls(synth, 512, cls=2, knobs=[1.5])
    for _ in range(int(synth.preview_calls) + 1):  # the knob call and the preview's iterations
        synth(x)
    assert not bool(kit.refined[2])  # the preview is in
    made = kit.nsgt.inverse(kit.job_magnitude * kit.warm_phase[2].unsqueeze(0))[0]
    heard = kit.rendered_model_rate[2]
    assert torch.allclose(made / made.abs().amax(), heard / heard.abs().amax(), atol=1e-5)
    assert not torch.allclose(kit.warm_phase[2], kit.warm_phase[1])


def test_a_silent_job_leaves_phase_zero_for_the_next(synth: torch.jit.ScriptModule) -> None:
    """A job whose magnitude is silent ends with a silent sound and phase 0 everywhere (once the momentum has
    died out); the phase kept for the next job is phase zero there (1), or every later sound of the class
    would be silent too."""
    kit = synth.kit
    x = _controls(synth, 512, cls=5, knobs=[1.0])
    synth(x)  # the knob call
    kit.job_magnitude = torch.zeros_like(kit.job_magnitude)
    for _ in range(int(synth.render_calls) - 1):
        synth(x)
    assert bool(kit.refined[5]) and kit.rendered_model_rate[5].abs().max() == 0  # the silent sound is in
    assert torch.equal(kit.warm_phase[5], torch.ones_like(kit.warm_phase[5]))
    x = _controls(synth, 512, cls=5, knobs=[-1.0])
    for _ in range(int(synth.preview_calls) + 1):
        synth(x)
    preview = kit.rendered_model_rate[5]
    assert torch.isfinite(preview).all() and preview.abs().max() > 0.5


def test_the_preview_sounds_as_close_to_its_magnitude_as_the_one_shot_render(
    synth: torch.jit.ScriptModule,
) -> None:
    """Log-spectral distance (dB, magnitudes scaled to peak 1) of each sound's NSGT magnitude to the decoded one
    it was asked for: the preview (warm start, a few iterations) within 1 dB of ``render`` (phase zero, all the
    iterations); the sound before the knobs moved is not."""
    kit = synth.kit

    def distance(magnitude: torch.Tensor, audio: torch.Tensor) -> float:
        heard = kit.nsgt.magnitude(audio)
        scaled = [m / m.amax().clamp_min(1e-12) for m in (magnitude, heard)]
        return float(log_spectral_distance(scaled[0], scaled[1], 1e-4).mean())

    for cls, knobs in [(1, [1.0, -1.0]), (1, [2.0, 0.5]), (4, [-1.5, 1.5])]:
        x = _controls(synth, 512, cls=cls, knobs=knobs)
        for _ in range(int(synth.preview_calls) + 1):
            synth(x)
        assert not bool(kit.refined[cls]) and torch.allclose(kit.rendered_knobs[cls], x[0, 2:, 0])
        classes, latent = torch.tensor([cls]), x[:, 2:, 0]
        magnitude = kit.magnitude(classes, latent)
        preview = distance(magnitude, kit.rendered_model_rate[cls].unsqueeze(0))
        one_shot = distance(magnitude, synth.render(classes, latent))
        before = distance(magnitude, kit.centre_model_rate[cls].unsqueeze(0))  # the sound the knobs left
        assert preview <= one_shot + 1.0 < before, (preview, one_shot, before)


def test_the_bench_hears_a_moved_knob_two_calls_later(drumsynth_ts: Path) -> None:
    figures = knob_to_sound(drumsynth_ts)
    assert set(figures) == DRUMSYNTH_KNOB_TO_SOUND - {"p99_call_ms", "p99_goal_ms", "p99_met"}
    assert figures["calls"] == 2 and figures["met"] and figures["ms"] == pytest.approx(2e3 * 2048 / 44100)
    assert figures["refined_after_calls"] == int(read_metadata(drumsynth_ts)["render_calls"]) - 1


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


def test_mix_loop_places_notes_at_their_ticks_with_velocity_and_wraps_tails() -> None:
    notes = [[] for _ in range(16)]
    notes[0] = [(0, 127, 0.0)]
    notes[15] = [(1, 64, 0.25)]  # a quarter step late: its tail passes the end of the loop
    notes[4] = [(1, 100, -0.5)]  # half a step early
    sounds = np.zeros((2, 30), dtype=np.float32)
    sounds[:, 0] = 0.5
    sounds[:, 25] = 0.25
    ons = loop_note_ons(notes, bars=1)
    loop = mix_loop(ons, sounds, total_ticks=16 * TICKS_PER_STEP, samples_per_tick=10.0 / TICKS_PER_STEP)
    assert loop.shape == (160,)
    assert loop[0] == pytest.approx(0.5) and loop[25] == pytest.approx(0.25)
    assert loop[35] == pytest.approx(0.5 * 100 / 127)  # step 4 at 40 samples, moved 5 earlier
    late = round(152.5)  # step 15 at 150 samples, a quarter of 10 later
    assert loop[late] == pytest.approx(0.5 * 64 / 127)
    assert loop[(late + 25) % 160] == pytest.approx(0.25 * 64 / 127)  # wrapped to the start
    assert np.count_nonzero(loop) == 6


def test_render_loop_plays_the_feel_of_its_midi(drums_ts: Path, drumsynth_ts: Path, tmp_path: Path) -> None:
    """The WAV plays the notes of the .mid beside it: swing moves both, --quantise puts both on the grid."""
    renders = {}
    for name, feel in {"swung": {"swing": 1.0}, "grid": {"quantise": True}}.items():
        out = tmp_path / f"{name}.wav"
        render_loop_wav(drums_ts, drumsynth_ts, None, 0, 1, 120, out, **feel)
        ticks = [t for t, _, _ in drum_note_ons(out.with_suffix(".mid"))[0]]
        renders[name] = (sf.read(str(out))[0], ticks)
    grid_audio, grid_ticks = renders["grid"]
    swung_audio, swung_ticks = renders["swung"]
    assert all(t % TICKS_PER_STEP == 0 for t in grid_ticks)
    assert any(t % TICKS_PER_STEP != 0 for t in swung_ticks)  # odd 16ths half a step late
    assert len(grid_audio) == len(swung_audio) and not np.allclose(grid_audio, swung_audio, atol=1e-3)


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

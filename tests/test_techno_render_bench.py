"""`latentlive bench techno` and `latentlive render techno` on the tiny techno runs of conftest."""

import json
from pathlib import Path

import pytest
import soundfile as sf
import torch

from latentlive.cli import main
from latentlive.corpus.techno_synth import loop_samples_for
from latentlive.render_techno import load_techno_models, play_loops
from latentlive.training.tasks.techno_prior import decoded_loop


def test_bench_techno_writes_json_with_positive_figures(
    techno_run: Path, techno_ts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bench" / "techno.json"
    assert main(["bench", "techno", "--run", str(techno_run), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    for method in ("decode", "encode", "forward"):
        figures = report[f"{method}_streamed_2048_48k_one_thread"]
        assert figures["p50_ms"] > 0 and figures["p99_ms"] >= figures["p50_ms"]
        assert figures["real_time_factor"] > 0
        assert report["latency_samples"][method] > 0
        assert report["latency_ms_48k"][method] == pytest.approx(
            1e3 * report["latency_samples"][method] / 48000
        )
    for method in ("decode", "encode"):
        assert report[f"raw_{method}_2048_16k_one_thread"]["real_time_factor"] > 0
    assert report["decode_goal_ratio"] == pytest.approx(report["decode_real_time_factor"] / 50.0)
    assert report["host_sample_rate"] == 48000 and report["buffer_size"] == 2048
    assert report["parameters"]["stage1"] > 0
    assert report["file_bytes"] == techno_ts.stat().st_size
    training = report["training_cpu"]
    assert training["batch_size"] == 16 and training["crop"] == 16384
    assert training["steps_per_second"] > 0 and training["peak_memory_mb"] > 0


def test_bench_techno_refuses_a_run_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["bench", "techno", "--run", str(tmp_path / "nope"), "--out", str(tmp_path / "b.json")]) == 2
    assert "no such run" in capsys.readouterr().err
    assert not (tmp_path / "b.json").exists()


def test_render_techno_writes_loops_and_interpolation_at_the_model_rate(
    techno_prior_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "renders"
    args = ["render", "techno", "--run", str(techno_prior_run), "--out", str(out), "--samples", "2"]
    assert main([*args, "--steps", "3", "--repeats", "2", "--bpm", "130", "--seed", "7"]) == 0
    bars = load_techno_models(techno_prior_run).bars
    loop = loop_samples_for(130.0, bars, 16000)
    for i in (1, 2):
        info = sf.info(str(out / f"seed7_sample{i}.wav"))
        assert (info.samplerate, info.channels, info.frames) == (16000, 1, 2 * loop)
    info = sf.info(str(out / "seed7_interpolation.wav"))
    assert (info.samplerate, info.frames) == (16000, 3 * loop)
    audio, _ = sf.read(str(out / "seed7_sample1.wav"))
    assert abs(audio).max() > 0  # something was played


def test_render_techno_never_overwrites(
    techno_prior_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "seed0_interpolation.wav").write_bytes(b"mine")
    args = ["render", "techno", "--run", str(techno_prior_run), "--out", str(tmp_path), "--samples", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "seed0_interpolation.wav: exists" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "seed0_interpolation.wav").read_bytes() == b"mine"
    assert not (tmp_path / "seed0_sample1.wav").exists()  # refused before writing anything


def test_render_techno_errors_in_one_line_for_a_bad_run(
    techno_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["render", "techno", "--run", str(tmp_path / "missing"), "--out", str(tmp_path / "a")]) == 2
    assert "no such run" in capsys.readouterr().err
    assert main(["render", "techno", "--run", str(techno_run), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "techno_prior run" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_one_played_loop_is_the_decoded_loop(techno_prior_run: Path) -> None:
    models = load_techno_models(techno_prior_run)
    trajectory = torch.randn(1, models.prior.latent_size, models.prior.frames)
    with torch.no_grad():
        expected = decoded_loop(models.stage1, trajectory, 5000)[0]
        played = play_loops(models.stage1, trajectory, 5000)
    torch.testing.assert_close(played, expected)

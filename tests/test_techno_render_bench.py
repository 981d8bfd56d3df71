"""`latentlive bench techno` and `latentlive render techno` on the tiny techno runs of conftest."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from bench_fields import assert_common_fields, assert_techno_answer_fields

from latentlive.cli import main
from latentlive.corpus.splits import SIDES, read_split
from latentlive.corpus.techno_synth import loop_samples_for
from latentlive.render_techno import load_techno_models, play_loops, unseen_loops
from latentlive.training.tasks.techno import load_loop_tensors
from latentlive.training.tasks.techno_prior import decoded_loop


def test_bench_techno_writes_json_with_positive_figures(
    techno_run: Path, techno_ts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bench" / "techno.json"
    assert main(["bench", "techno", "--run", str(techno_run), "--out", str(out), "--quick"]) == 0
    report = json.loads(out.read_text())
    assert report["calls_scale"] == 0.1  # --quick: the fields are checked here, not the speed
    # streamed decode, encode, forward; raw decode, encode; RAVE v2_small's decode and forward (the latency
    # yardsticks) and the causal setting's streamed decode
    assert assert_common_fields(report) == 3 + 2 + 2 + 1 + 3
    assert_techno_answer_fields(report)
    side_by_side = report["low_latency"]
    assert (
        side_by_side["causal"]["latency_samples"]["decode"]
        < side_by_side["default"]["latency_samples"]["decode"]
    )
    assert report["knob_to_sound"] == side_by_side["default"]["knob_to_sound"]  # the run measured: default
    assert "RAVE v2-like" in report["interleaved_with"]
    for method in ("decode", "encode", "forward"):
        figures = report[f"{method}_streamed_2048_48k_one_thread"]
        assert figures["calls"] == 20  # a tenth of 200
        assert figures["buffer_period_ms"] == pytest.approx(1e3 * 2048 / 48000)
        assert report["latency_samples"][method] > 0
        assert report["latency_ms_48k"][method] == pytest.approx(
            1e3 * report["latency_samples"][method] / 48000
        )
    for method in ("decode", "encode"):  # the raw model against its period at the model rate
        assert report[f"raw_{method}_2048_16k_one_thread"]["buffer_period_ms"] == pytest.approx(128.0)
    decode = report["decode_streamed_2048_48k_one_thread"]["interleaved"]["real_time_factor"]
    assert report["decode_interleaved_real_time_factor"] == decode  # the goal: interleaved
    assert report["decode_goal_ratio"] == pytest.approx(decode / 50.0)
    assert report["host_sample_rate"] == 48000 and report["buffer_size"] == 2048
    assert report["parameters"]["stage1"] > 0
    assert report["file_bytes"] == techno_ts.stat().st_size
    training = report["training_cpu"]
    assert training["batch_size"] == 16 and training["crop"] == 16384
    assert training["steps_per_second"] > 0 and training["peak_memory_mb"] >= 0  # 0: freed memory reused


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


def test_render_techno_interpolates_between_loops_of_the_test_side(techno_prior_run: Path) -> None:
    models = load_techno_models(techno_prior_run)
    split = read_split(models.run.split_file)
    assert len(split.groups["test"]) == 2  # gin/techno_tiny.gin: 2 of 8 built-in loops
    ends = unseen_loops(models, split, seed=0, log=lambda _: None)
    assert ends is not None
    settings = {key: models.corpus[key] for key in ("sample_rate", "length", "bars", "examples")}
    data, groups = load_loop_tensors(None, settings, log=lambda _: None)
    test = split.indices(groups, "test")
    torch.testing.assert_close(ends[0], data.tensors["audio"][test])  # the test loops, rendered again
    torch.testing.assert_close(ends[1], data.tensors["loop_samples"][test])
    swapped = type(split)(split.seed, split.fractions, {**split.groups, "test": split.groups["train"][:2]})
    moved = unseen_loops(models, swapped, seed=0, log=lambda _: None)
    assert moved is not None  # another split, other loops: the loops come from the split it is given
    torch.testing.assert_close(moved[0], data.tensors["audio"][split.indices(groups, "train")[:2]])


def test_render_techno_of_a_folder_run_interpolates_between_loops_of_its_test_file(tmp_path: Path) -> None:
    folder, runs = tmp_path / "loops", tmp_path / "runs"
    folder.mkdir()
    bar = loop_samples_for(124.0, 1, 16000)
    for i in range(4):  # four files of 4 bars: 4 one-bar loops each, dealt by file (2 train, 1 and 1)
        beats = np.exp(-np.arange(4 * bar) % (bar // 4) / 300.0)
        noise = np.random.default_rng(i).uniform(-0.5, 0.5, 4 * bar)
        sf.write(folder / f"take {i} 124bpm.wav", (beats * noise).astype(np.float32), 16000)
    root = Path(__file__).resolve().parents[1] / "gin"
    sizes = ["--bind", "TechnoTask.bars = 1", "--bind", "TechnoTask.length = 32768", "--max_steps", "2"]
    sizes += ["--bind", "TechnoTask.examples = 64"]
    stage1 = [
        "train",
        "--gin",
        str(root / "techno_tiny.gin"),
        "--db",
        str(folder),
        "--name",
        "techno",
        *sizes,
    ]
    assert main([*stage1, "--out", str(runs)]) == 0
    binding = f"TechnoPriorTask.stage1_run = '{runs / 'techno'}'"
    prior = ["train", "--gin", str(root / "techno_prior_tiny.gin"), "--bind", binding, "--max_steps", "2"]
    assert main([*prior, "--name", "prior", "--out", str(runs)]) == 0
    models = load_techno_models(runs / "prior")
    split = read_split(models.run.split_file)
    assert [len(split.groups[side]) for side in SIDES] == [2, 1, 1] and not split.by_time
    ends = unseen_loops(models, split, seed=1, log=lambda _: None)
    assert ends is not None
    data, groups = load_loop_tensors(
        folder, {k: models.corpus[k] for k in ("sample_rate", "length", "bars", "examples")}
    )
    test = split.indices(groups, "test")
    assert len(test) == 4 and {groups[i] for i in test} == set(split.groups["test"])
    torch.testing.assert_close(ends[0], data.tensors["audio"][test[2:4]])  # seed 1: the test file's 2nd pair


def test_render_techno_refuses_a_run_without_its_split(
    techno_prior_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "old_prior"
    shutil.copytree(techno_prior_run, run)
    (run / "split.json").unlink()
    assert (
        main(["render", "techno", "--run", str(run), "--out", str(tmp_path / "out"), "--samples", "1"]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert f"{run / 'split.json'}: no split.json" in err and len(err.splitlines()) == 1
    assert not any((tmp_path / "out").rglob("*.wav"))  # refused before writing anything

"""`latentlive evaluate`: a trained run scored on its own test split, or on a folder the user holds out, from the
split the run recorded; bad input is one line and writes nothing."""

import json
import shutil
from pathlib import Path

import pytest
from cli_process import assert_one_clear_line, run_cli
from test_drums_split import FOLDER, write_performances

from latentlive.corpus.drum_map import INSTRUMENT_NAMES
from latentlive.corpus.splits import SIDES


@pytest.fixture(scope="module")
def drums_run(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny drums run trained on a folder of eleven performances: (run, its folder)."""
    root = tmp_path_factory.mktemp("evaluate")
    write_performances(root / "db", FOLDER)
    done = run_cli(
        "train", "--gin", "gin/drums_tiny.gin", "--db", str(root / "db"), "--out", str(root / "runs"),
        "--name", "drums", "--max-steps", "20", cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return root / "runs" / "drums", root / "db"


def test_the_test_split_is_scored_per_class_beside_the_lookup(drums_run, tmp_path: Path) -> None:
    run, _ = drums_run
    split = json.loads((run / "split.json").read_text())
    assert sorted(g for side in SIDES for g in split["groups"][side]) == sorted(FOLDER)
    done = run_cli("evaluate", "--run", str(run), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((run / "eval_test.json").read_text())
    assert result["held_out"] == "test" and result["examples"] == 3 * len(split["groups"]["test"])
    metrics = result["metrics"]
    assert {f"eval/f1/{name}" for name in INSTRUMENT_NAMES} <= set(metrics)
    assert {"eval/f1", "eval/baseline_nearest_bar/f1", "eval/beats_nearest_bar"} <= set(metrics)
    groove = {"eval/velocity_error", "eval/offset_error_ms"}
    assert groove | {key.replace("eval/", "eval/baseline_nearest_bar/") for key in groove} <= set(metrics)
    assert {"eval/baseline_mean_velocity/velocity_error", "eval/baseline_zero_offset/offset_error_ms"} <= set(
        metrics
    )
    assert f"wrote {run / 'eval_test.json'}" in done.stdout


def test_a_folder_held_out_by_the_user_is_scored_whole(drums_run, tmp_path: Path) -> None:
    run, _ = drums_run
    write_performances(tmp_path / "mine", {"house/a.mid": 501, "house/b.mid": 502}, bars=2)
    done = run_cli("evaluate", "--run", str(run), "--db", str(tmp_path / "mine"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((run / "eval_folder-mine.json").read_text())
    # named relative to the working folder it lies in (a shipped run names no path of the machine that wrote it)
    assert result["examples"] == 4 and result["held_out"] == "mine"
    metrics = result["metrics"]
    assert {f"eval/f1/{name}" for name in INSTRUMENT_NAMES} <= set(metrics)
    # the files were played with feel: the zero-offset baseline has timing to miss
    assert metrics["eval/baseline_zero_offset/offset_error_ms"] > 0 and metrics["eval/velocity_error"] >= 0
    assert "eval/baseline_nearest_bar/velocity_error" in metrics


def test_a_run_whose_data_changed_is_refused_and_nothing_is_written(drums_run, tmp_path: Path) -> None:
    run, db = drums_run
    changed = tmp_path / "changed"
    shutil.copytree(run, changed)
    (changed / "eval_validation.json").unlink(missing_ok=True)
    extra = db / "extra.mid"
    write_performances(db, {"extra.mid": 777})
    try:
        done = run_cli("evaluate", "--run", str(changed), "--split", "validation", cwd=tmp_path)
    finally:
        extra.unlink()
    assert_one_clear_line(done, "no longer splits as when it was trained", "--db")
    assert not (changed / "eval_validation.json").exists()


def test_bad_input_is_one_line(drums_run, tmp_path: Path) -> None:
    run, _ = drums_run
    assert_one_clear_line(run_cli("evaluate", "--run", str(tmp_path / "nope"), cwd=tmp_path), "nope")
    assert_one_clear_line(
        run_cli("evaluate", "--run", str(run), "--db", str(tmp_path / "missing"), cwd=tmp_path), "--db"
    )
    (tmp_path / "empty").mkdir()
    done = run_cli("evaluate", "--run", str(run), "--db", str(tmp_path / "empty"), cwd=tmp_path)
    assert_one_clear_line(done, "empty", "no .mid or .midi files found")

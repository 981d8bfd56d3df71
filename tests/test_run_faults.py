"""Faults of runs and outputs end in one clear line and lose nothing (issue 14, items 4 and 5).

Each case runs the CLI as a user would (in this process through ``latentlive.cli.main`` where that is
enough, in a process of its own where a kill matters) and checks the exit status, the one-line message and
that every file that was there is still there, byte for byte. A full disk is simulated: a fake
``shutil.disk_usage`` or a write that fails as torch's writer fails on a full disk.
"""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

import latentlive.core.files
from latentlive.cli import main
from latentlive.core.runs import RunFolder, load_checkpoint, training_lock

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "gin" / "drums_tiny.gin")
SHORT = ["--max_steps", "20", "--bind", "train.checkpoint_every = 10", "--bind", "train.eval_every = 20"]
TORCH_FULL_DISK = (
    "[enforce fail at inline_container.cc:595] . unexpected pos 64 vs 0; "
    "PytorchStreamWriter failed writing file data/0: file write failed"
)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def error_line(capsys: pytest.CaptureFixture, status: int, args: list[str], *fragments: str) -> str:
    """Run ``latentlive ARGS``; assert exit ``status`` and that stderr ends in one error line holding every
    fragment, with no traceback (a training's progress bar may come before it)."""
    assert main(args) == status
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err and lines, err
    assert lines[-1].startswith("latentlive: error: "), err
    assert sum("error" in line for line in lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]
    return lines[-1]


def train_args(runs: Path, name: str, *extra: str) -> list[str]:
    return ["train", "--gin", TINY, "--out", str(runs), "--name", name, *extra]


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*.tmp")]


# ------------------------------------------------------------------ output paths of export, render, devices


def _fake_export(path: Path, model: str) -> Path:
    """A file that reads as a latentlive export of ``model`` (metadata only: enough for the checks that
    run before anything is loaded)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("fake/extra/latentlive.json", json.dumps({"model": model}))
    return path


OUTPUT_CASES = {
    "export over a folder": ("export", "{folder}", "is a folder"),
    "export over a user's text file": ("export", "{precious_txt}", ".ts"),
    "export over a user's .ts": ("export", "{precious_ts}", "--force"),
    "export under /proc": ("export", "/proc/latentlive/drums.ts", "cannot write"),
    "export into a read-only folder": ("export", "/sys/drums.ts", "cannot write"),
    "render over a folder": ("render", "{folder}", "is a folder"),
    "render over a user's .mid": ("render", "{precious_mid}", "--force"),
    "render under /proc": ("render", "/proc/loop.mid", "cannot write"),
    "devices into a file": ("devices", "{precious_txt}", "is a file"),
    "devices under /proc": ("devices", "/proc/latentlive", "cannot write"),
    "devices over a user's device": ("devices", "{mine}", "--force"),
}


@pytest.fixture
def user_files(tmp_path: Path) -> dict[str, Path]:
    """A folder of the user's files that no command may replace without --force."""
    home = tmp_path / "home"
    (home / "folder").mkdir(parents=True)
    (home / "folder" / "inside.txt").write_text("keep")
    (home / "precious.txt").write_text("precious")
    (home / "precious.ts").write_text("not a model")
    (home / "precious.mid").write_bytes(b"MThd my own song")
    (home / "mine").mkdir()
    (home / "mine" / "LatentDrums.amxd").write_bytes(b"ampf my own device")
    return {
        "folder": home / "folder",
        "precious_txt": home / "precious.txt",
        "precious_ts": home / "precious.ts",
        "precious_mid": home / "precious.mid",
        "mine": home / "mine",
    }


def _output_command(command: str, out: str, drums_ts: Path) -> list[str]:
    run = str(drums_ts.parent.parent)
    if command == "export":
        return ["export", "--run", run, "--streaming", "--out", out]
    if command == "render":
        return ["render", "drums", "--model", str(drums_ts), "--out", out]
    return ["devices", "--run", run, "--out", out]


@pytest.mark.parametrize("case", OUTPUT_CASES)
def test_an_unusable_or_taken_output_path_is_refused_in_one_line(
    case: str, drums_ts: Path, user_files: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    command, out, fragment = OUTPUT_CASES[case]
    out = out.format(**user_files)
    home = user_files["folder"].parent
    before, run_before = snapshot(home), snapshot(drums_ts.parent.parent)
    error_line(capsys, 2, _output_command(command, out, drums_ts), fragment)
    assert snapshot(home) == before and snapshot(drums_ts.parent.parent) == run_before  # no probe, no temp


def test_force_replaces_a_file_but_never_a_folder(
    drums_ts: Path, user_files: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    mid = user_files["precious_mid"]
    assert main([*_output_command("render", str(mid), drums_ts), "--force"]) == 0
    assert mid.read_bytes().startswith(b"MThd") and mid.read_bytes() != b"MThd my own song"
    folder = user_files["folder"]
    error_line(capsys, 2, [*_output_command("render", str(folder), drums_ts), "--force"], "is a folder")
    assert snapshot(folder) == {"inside.txt": b"keep"}
    device = user_files["mine"] / "LatentDrums.amxd"
    assert main([*_output_command("devices", str(device.parent), drums_ts), "--force"]) == 0
    assert device.read_bytes().startswith(b"ampf") and device.read_bytes() != b"ampf my own device"
    assert main(_output_command("devices", str(device.parent), drums_ts)) == 0  # now its own device


def test_devices_refuse_a_model_of_another_kind(
    drums_ts: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    grain = _fake_export(tmp_path / "grain.ts", "grain")
    out = tmp_path / "devices"
    args = ["devices", "--run", str(drums_ts.parent.parent), "--model", str(grain), "--out", str(out)]
    error_line(capsys, 2, args, "grain.ts", "'grain' model", "'drums'")
    assert not out.exists()


@pytest.mark.parametrize(
    ("missing", "fragment"), [("task", "names no task"), ("model_state", "'model_state'")]
)
def test_export_of_a_checkpoint_without_a_key_is_one_line(
    missing: str, fragment: str, drums_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "broken"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copyfile(drums_run / "config.gin", run / "config.gin")
    checkpoint = load_checkpoint(drums_run / "checkpoints" / "last.pt")
    del checkpoint[missing]
    torch.save(checkpoint, run / "checkpoints" / "last.pt")
    (run / "export").mkdir()
    (run / "export" / "broken.ts").write_bytes(b"the previous export")
    before = snapshot(run)
    error_line(capsys, 2, ["export", "--run", str(run), "--streaming"], "last.pt", fragment)
    assert snapshot(run) == before


def test_export_onto_a_full_disk_keeps_the_previous_file_and_leaves_no_temp(
    drums_ts: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "drums.ts"
    shutil.copyfile(drums_ts, out)  # an earlier export: the exporter's own, replaceable
    before = snapshot(tmp_path)
    args = ["export", "--run", str(drums_ts.parent.parent), "--streaming", "--out", str(out)]
    usage = shutil.disk_usage(tmp_path)
    with monkeypatch.context() as patch:  # a disk with 100 kB free: refused before the writer starts
        patch.setattr(latentlive.core.files.shutil, "disk_usage", lambda _: usage._replace(free=100_000))
        error_line(capsys, 2, args, "not enough disk space", "needs about", "0.1 MB is free")
    assert snapshot(tmp_path) == before

    def full_disk_save(self, path, **kwargs) -> None:  # the space check passed, then the disk filled up
        Path(path).write_bytes(b"half a mod")
        raise RuntimeError(TORCH_FULL_DISK)

    with monkeypatch.context() as patch:
        patch.setattr(torch.jit.RecursiveScriptModule, "save", full_disk_save)
        error_line(capsys, 2, args, str(out), "disk is full")
    assert snapshot(tmp_path) == before and no_temp_files(tmp_path)


def test_a_render_onto_a_full_disk_keeps_the_previous_file_and_leaves_no_temp(
    drums_ts: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mido

    out = tmp_path / "loop.mid"
    out.write_bytes(b"MThd the previous render")

    def no_space(self, filename=None, file=None) -> None:
        Path(filename).write_bytes(b"MThd half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mido.MidiFile, "save", no_space)
    args = [*_output_command("render", str(out), drums_ts), "--force"]
    error_line(capsys, 2, args, "loop.mid", "disk is full", "No space left on device")
    assert snapshot(tmp_path) == {"loop.mid": b"MThd the previous render"}


# ------------------------------------------------------------------ a full disk during training


@pytest.mark.parametrize("again", ["the same command", "--resume"])
def test_a_failed_first_checkpoint_leaves_a_run_that_restarts_in_place(
    again: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = shutil.disk_usage(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(latentlive.core.files.shutil, "disk_usage", lambda _: usage._replace(free=10_000))
        error_line(
            capsys, 2, train_args(tmp_path, "full", *SHORT), "last.pt", "not enough disk space", "again"
        )
    run = RunFolder(tmp_path / "full")
    assert not run.checkpoint.exists() and run.state() == "unstarted" and no_temp_files(run.root)
    resume = ["train", "--out", str(tmp_path), "--name", "full", "--resume"]
    assert main(train_args(tmp_path, "full", *SHORT) if again == "the same command" else resume) == 0
    assert "starting it again from step 0" in capsys.readouterr().out
    assert load_checkpoint(run.checkpoint)["step"] == 20


def test_a_failed_later_checkpoint_keeps_the_previous_one_resumable(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save, saves = torch.save, []

    def fills_the_disk(obj, path, *args, **kwargs) -> None:  # the second checkpoint meets a full disk
        saves.append(path)
        if len(saves) == 2:
            Path(path).write_bytes(b"half a checkpoint")
            raise RuntimeError(TORCH_FULL_DISK)
        real_save(obj, path, *args, **kwargs)

    run = RunFolder(tmp_path / "later")
    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", fills_the_disk)
        error_line(capsys, 2, train_args(tmp_path, "later", *SHORT), "last.pt", "disk is full", "--resume")
    assert len(saves) == 2 and load_checkpoint(run.checkpoint)["step"] == 10 and no_temp_files(run.root)
    assert main(["train", "--out", str(tmp_path), "--name", "later", "--resume"]) == 0
    assert load_checkpoint(run.checkpoint)["step"] == 20


# ------------------------------------------------------------------ diverging losses


def test_a_diverging_run_stops_in_one_line_and_can_be_run_again(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = train_args(tmp_path, "lr", *SHORT, "--bind", "train.learning_rate = 1e30")
    error_line(
        capsys, 2, args, "diverged at step", "train.learning_rate (now 1e+30)", "run the command again"
    )
    run = RunFolder(tmp_path / "lr")
    assert not run.checkpoint.exists() and run.state() == "unstarted"
    assert main(train_args(tmp_path, "lr", "--max_steps", "2")) == 0  # a sane rate: restarted in place
    assert load_checkpoint(run.checkpoint)["step"] == 2


def test_a_nan_loss_keeps_the_last_good_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from latentlive.training.tasks.drums import DrumsTask

    real_losses = DrumsTask.losses

    def nan_after_15(self, model, batch, step):
        losses = real_losses(self, model, batch, step)
        return {k: v * float("nan") for k, v in losses.items()} if step >= 15 else losses

    monkeypatch.setattr(DrumsTask, "losses", nan_after_15)
    checkpoint = tmp_path / "nan" / "checkpoints" / "last.pt"
    real_save, kept = torch.save, {}

    def remember(obj, path, *args, **kwargs) -> None:
        real_save(obj, path, *args, **kwargs)
        kept["bytes"] = Path(path).read_bytes()

    monkeypatch.setattr(torch, "save", remember)
    error_line(capsys, 2, train_args(tmp_path, "nan", *SHORT), "diverged at step 16", "nan", "new --name")
    assert checkpoint.read_bytes() == kept["bytes"] and load_checkpoint(checkpoint)["step"] == 10


# ------------------------------------------------------------------ runs that cannot be lost


BAD_SETTINGS = {
    "negative --max_steps": (["--max_steps", "-5"], ["--max_steps", "at least 1"]),
    "zero --max_steps": (["--max_steps", "0"], ["train.max_steps = 0"]),
    "zero batch size": (["--bind", "train.batch_size = 0"], ["train.batch_size = 0"]),
    "negative learning rate": (["--bind", "train.learning_rate = -1.0"], ["train.learning_rate = -1.0"]),
}


def test_a_runs_folder_that_is_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = tmp_path / "runs.txt"
    runs.write_text("my notes")
    error_line(capsys, 2, train_args(runs, "drums", *SHORT), "runs.txt", "cannot create the run folder")
    assert runs.read_text() == "my notes"


@pytest.mark.parametrize("case", BAD_SETTINGS)
def test_settings_that_cannot_train_are_refused_and_leave_no_run(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    extra, fragments = BAD_SETTINGS[case]
    error_line(capsys, 2, train_args(tmp_path, "bad", *extra), *fragments)
    assert not (tmp_path / "bad").exists()


@pytest.fixture
def trained_copy(drums_run: Path, tmp_path: Path) -> Path:
    """A copy of the tiny drums run (trained to its last step), free to be resumed or refused."""
    return Path(shutil.copytree(drums_run, tmp_path / "runs" / "drums"))


RESUME_CONFLICTS = {
    "another seed": (["--seed", "3"], ["--seed 3", "--seed 0"]),
    "another data folder": (["--db", "{db}"], ["--db", "built-in corpus"]),
    "another gin file": (
        ["--gin", "gin/drums.gin"],
        ["DrumsTask.warmup_steps = 2000", "20", "--resume keeps"],
    ),
    "a conflicting binding": (["--bind", "PatternVAE.latent_size = 8"], ["PatternVAE.latent_size = 8", "4"]),
}


@pytest.mark.parametrize("case", RESUME_CONFLICTS)
def test_a_resume_that_changes_the_data_or_config_is_refused(
    case: str, trained_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "db").mkdir()
    extra, fragments = RESUME_CONFLICTS[case]
    extra = [e.format(db=tmp_path / "db") for e in extra]
    before = snapshot(trained_copy)
    args = ["train", "--out", str(trained_copy.parent), "--name", "drums", "--resume", *extra]
    error_line(capsys, 2, args, *fragments)
    assert snapshot(trained_copy) == before


def test_a_resume_with_the_same_config_and_a_longer_run_is_accepted(trained_copy: Path) -> None:
    settings = json.loads((trained_copy / "run.json").read_text())
    assert settings["seed"] == 0 and settings["db"] is None
    args = ["train", "--out", str(trained_copy.parent), "--name", "drums", "--resume", "--gin", TINY]
    assert main([*args, "--seed", "0", "--max_steps", "41"]) == 0
    assert load_checkpoint(trained_copy / "checkpoints" / "last.pt")["step"] == 41


def test_a_locked_run_is_refused_and_nothing_changes(
    trained_copy: Path, capsys: pytest.CaptureFixture
) -> None:
    run = RunFolder(trained_copy)
    before = snapshot(trained_copy)
    with training_lock(run):  # another training holds the run
        args = [
            "train",
            "--out",
            str(trained_copy.parent),
            "--name",
            "drums",
            "--resume",
            "--max_steps",
            "60",
        ]
        error_line(capsys, 2, args, "another process", f"pid {os.getpid()}", "is training this run")
    assert {k: v for k, v in snapshot(trained_copy).items() if k != ".train.lock"} == {
        k: v for k, v in before.items() if k != ".train.lock"
    }


def _train_process(runs: Path, name: str, *extra: str) -> subprocess.Popen:
    command = [sys.executable, str(ROOT / "train.py"), *train_args(runs, name, *extra)[1:]]
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def test_kill_9_then_resume_at_seed_3_equals_an_uninterrupted_run(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    steps = [
        "--max_steps",
        "200",
        "--bind",
        "train.checkpoint_every = 10",
        "--bind",
        "train.eval_every = 100",
    ]
    steps += ["--bind", "train.media_every = 1000"]
    process = _train_process(tmp_path, "killed", "--seed", "3", *steps)
    run = RunFolder(tmp_path / "killed")
    deadline = time.time() + 120
    while not run.checkpoint.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.01)
    assert run.checkpoint.exists() and process.poll() is None, process.stderr.read()
    process.send_signal(signal.SIGSTOP)  # frozen mid-run, still holding its lock
    # while it trains, a second training of the same run is refused
    error_line(capsys, 2, train_args(tmp_path, "killed", "--seed", "3", *steps), "is training this run")
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    stopped_at = load_checkpoint(run.checkpoint)["step"]
    assert 0 < stopped_at < 200 and json.loads(run.settings_file.read_text())["seed"] == 3

    assert main(["train", "--out", str(tmp_path), "--name", "killed", "--resume", *steps[:2]]) == 0
    assert main(train_args(tmp_path, "straight", "--seed", "3", *steps)) == 0
    resumed = load_checkpoint(run.checkpoint)
    straight = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")
    assert resumed["step"] == straight["step"] == 200 and resumed["run"]["seed"] == 3
    for name, value in straight["model_state"].items():
        assert torch.equal(value, resumed["model_state"][name]), name

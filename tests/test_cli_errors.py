"""Bad input ends with one clear line on stderr, exit status 2, no traceback and nothing overwritten."""

import subprocess
import sys
from pathlib import Path

import mido
import pytest
from cli_process import assert_one_clear_line, run_cli

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "gin" / "drums_tiny.gin")
KIT_TINY = str(ROOT / "gin" / "drumsynth_tiny.gin")


def _midi_without_drums(path: Path) -> None:
    midi = mido.MidiFile()
    track = mido.MidiTrack()
    for i, note in enumerate((60, 62, 64, 65)):  # a melody on channel 1
        track.append(mido.Message("note_on", note=note, velocity=90, channel=0, time=0 if i == 0 else 240))
        track.append(mido.Message("note_off", note=note, velocity=0, channel=0, time=240))
    midi.tracks.append(track)
    midi.save(str(path))


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    empty = tmp_path / "empty"
    empty.mkdir()
    unreadable = tmp_path / "unreadable" / "rock"
    unreadable.mkdir(parents=True)
    (unreadable / "broken.mid").write_bytes(b"MThd this is not midi")
    melody = tmp_path / "melody"
    melody.mkdir()
    _midi_without_drums(melody / "song.mid")
    return {"empty": empty, "unreadable": unreadable.parent, "melody": melody}


CASES = {
    "gin typo": (["train", "--gin", TINY, "--bind", "PatternVAE.latnet_size = 3"], ["latent_size"]),
    "unknown configurable": (["train", "--gin", TINY, "--bind", "DrumTask.beta = 1"], ["DrumsTask"]),
    "missing gin file": (["train", "--gin", "gin/nope.gin"], ["gin/nope.gin", "no such gin file"]),
    "missing run": (["export", "--run", "runs/nope"], ["runs/nope", "no such run"]),
    "devices of a missing run": (["devices", "--run", "runs/nope"], ["no exported model"]),
    "render without a model": (["render", "drums", "--model", "nope.ts", "--out", "x.mid"], ["nope.ts"]),
    "db missing": (["train", "--gin", TINY, "--db", "no/such/folder"], ["no/such/folder"]),
    "db empty": (["train", "--gin", TINY, "--db", "{empty}"], ["{empty}", "MIDI"]),
    "db unreadable": (["train", "--gin", TINY, "--db", "{unreadable}"], ["{unreadable}"]),
    "db without drums": (["train", "--gin", TINY, "--db", "{melody}"], ["{melody}", "drum"]),
    "one-shot db without audio": (["train", "--gin", KIT_TINY, "--db", "{melody}"], ["{melody}", "audio"]),
    "loop without a kit": (["render", "loop", "--drums", "x.ts", "--out", "x.wav"], ["--kit"]),
    "negative seed": (["train", "--gin", TINY, "--seed", "-5"], ["--seed -5", "from 0 to 4294967295"]),
    "nsgt bench with a run": (["bench", "nsgt", "--run", "runs/drums"], ["bench nsgt", "leave out --run"]),
    "negative report seed": (["report", "--model", "drums", "--seeds", "1", "-1"], ["--seeds -1"]),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gets_one_clear_line(case: str, folders: dict[str, Path], tmp_path: Path) -> None:
    args, fragments = CASES[case]
    args = [a.format(**folders) for a in args] + (
        ["--out", str(tmp_path / "runs")] if args[0] == "train" else []
    )
    done = run_cli(*args, cwd=ROOT if args[0] != "render" else tmp_path)
    assert_one_clear_line(done, *(f.format(**folders) for f in fragments))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("last.pt"))


def test_train_py_refuses_a_negative_seed_before_making_the_run(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "--gin",
            TINY,
            "--seed",
            "-1",
            "--out",
            str(tmp_path / "runs"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert_one_clear_line(done, "--seed -1", "from 0 to 4294967295")
    assert not (tmp_path / "runs").exists()


def test_an_existing_run_is_never_overwritten(drums_run: Path) -> None:
    checkpoint = drums_run / "checkpoints" / "last.pt"
    before = checkpoint.read_bytes()
    done = run_cli("train", "--gin", TINY, "--name", drums_run.name, "--out", str(drums_run.parent), cwd=ROOT)
    assert_one_clear_line(done, "exists", "--resume")
    assert checkpoint.read_bytes() == before


QUICK_REFUSALS = {
    "export": (["export", "--run", "runs/nope"], "no such run"),
    "evaluate": (["evaluate", "--run", "runs/nope"], "no such run"),
    "devices": (["devices", "--run", "runs/nope"], "no exported model"),
    "train, missing gin file": (["train", "--gin", "gin/nope.gin"], "no such gin file"),
    "train, missing db": (["train", "--gin", TINY, "--db", "no/such/folder"], "no such folder"),
}


@pytest.mark.parametrize("case", QUICK_REFUSALS)
def test_a_wrong_path_is_refused_before_torch_is_loaded(case: str) -> None:
    """A wrong --run, --gin or --db is told in a fraction of a second: nothing that imports torch (about 3 s)
    runs first."""
    args, fragment = QUICK_REFUSALS[case]
    probe = f"import sys; from latentlive.cli import main; status = main({args!r}); print(status, 'torch' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.stdout.split() == ["2", "False"], done.stdout + done.stderr
    assert fragment in done.stderr

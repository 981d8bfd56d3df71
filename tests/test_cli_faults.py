"""Faults end in one line: bad input (options out of range, gin mistakes, options a player does not read) is
``latentlive: error: ...`` and exit status 2, an internal fault ``latentlive: internal error: ...``, exit
status 1 and its traceback in a log file; the files that were there are still there, byte for byte; the
players notice a dead JACK server and survive a double Ctrl-C.

Most cases run in this process (``main([...])`` with capsys): a process of its own costs seconds of imports.
The cases where the process itself matters (the log of a fault, signals, a server that dies) run in one.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_process import ROOT, assert_one_clear_line, killed_if_running, run_cli
from jack_midi import Recorder

import latentlive.live.band_player
import latentlive.live.drum_player
from latentlive.cli import build_parser, guarded, main, option_ranges

TINY = str(ROOT / "gin" / "drums_tiny.gin")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_one_error_line(code: int, err: str, *fragments: str, status: int = 2, kind: str = "error") -> str:
    """Exit ``status`` and exactly one line on stderr, ``latentlive: KIND: ...`` holding every fragment."""
    lines = err.strip().splitlines()
    assert code == status, err
    assert len(lines) == 1 and lines[0].startswith(f"latentlive: {kind}: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder to run in that holds files a command must not touch: an earlier render and a run."""
    (tmp_path / "precious.mid").write_bytes(b"MThd an earlier render")
    (tmp_path / "precious.wav").write_bytes(b"RIFF an earlier loop")
    run = tmp_path / "runs" / "kept"
    run.mkdir(parents=True)
    (run / "config.gin").write_text("train.max_steps = 1\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------- the checks can fail


def test_the_one_line_checks_reject_a_traceback_and_a_second_line():
    traceback_text = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad\n'
    with pytest.raises(AssertionError):
        assert_one_error_line(1, traceback_text)
    with pytest.raises(AssertionError):
        assert_one_error_line(2, "latentlive: error: bad\nusage: latentlive ...\n")
    with pytest.raises(AssertionError):
        assert_one_error_line(2, "latentlive: error: Traceback (most recent call last)\n")
    with pytest.raises(AssertionError):
        assert_one_error_line(0, "latentlive: error: bad\n")
    done = subprocess.CompletedProcess([], 2, "", traceback_text)
    with pytest.raises(AssertionError):
        assert_one_clear_line(done)
    assert_one_error_line(2, "latentlive: error: --bars 0: out of range\n", "--bars 0")


# ---------------------------------------------------------------- ranges and options, in this process

BAD_OPTIONS = {
    "negative temperature": (
        ["play", "drums", "--temperature", "-1"],
        ["--temperature -1.0", "from 0.01 to 10"],
    ),
    "threshold nan": (["play", "drums", "--threshold", "nan"], ["--threshold nan", "from 0 to 1"]),
    "zero bars": (["play", "band", "--bars", "0"], ["--bars 0", "from 1 to"]),
    "bpm inf": (["play", "drums", "--bpm", "inf"], ["--bpm inf", "from 20 to 999"]),
    "latent nan": (["play", "drums", "--z", "0.5,nan"], ["--z nan", "from -10 to 10"]),
    "band temperature": (["play", "band", "--temperature", "11"], ["--temperature 11.0", "from 0 to 10"]),
    "threshold for band": (
        ["play", "band", "--threshold", "0.5"],
        ["--threshold: `play band` does not read it (only drums)"],
    ),
    "part for drums": (["play", "drums", "--part", "bass"], ["--part: `play drums` does not read it"]),
    "seed for drums": (["play", "drums", "--seed", "3"], ["--seed: `play drums` does not read it"]),
    "seed for a drum render": (
        ["render", "drums", "--seed", "3", "--out", "precious.mid"],
        ["--seed: `render drums` does not read it (only techno, grain, band)"],
    ),
    "temperature for a loop": (
        ["render", "loop", "--temperature", "0.5", "--out", "precious.wav"],
        ["--temperature: `render loop` does not read it"],
    ),
    "bars for grain": (["render", "grain", "--bars", "4", "--out", "x.wav"], ["--bars: `render grain`"]),
    "a million bars": (
        ["render", "drums", "--bars", "1000000", "--out", "precious.mid"],
        ["--bars 1000000", "from 1 to 1000"],
    ),
    "render bpm zero": (
        ["render", "drums", "--bpm", "0", "--out", "precious.mid"],
        ["--bpm 0.0", "from 20 to 999"],
    ),
    "grain jitter": (["render", "grain", "--jitter", "2", "--out", "x.wav"], ["--jitter 2.0", "from 0 to 1"]),
    "grain seconds": (
        ["render", "grain", "--seconds", "1e9", "--out", "x.wav"],
        ["--seconds 1000000000.0", "to 600"],
    ),
    "band measures": (["render", "band", "--measures", "-3", "--out", "x.mid"], ["--measures -3"]),
    "techno samples": (["render", "techno", "--samples", "-1", "--out", "loops"], ["--samples -1"]),
    "not a number": (["play", "drums", "--bars", "many"], ["--bars", "invalid int value", "--help"]),
}


@pytest.mark.parametrize("case", BAD_OPTIONS)
def test_a_bad_option_is_one_line_naming_its_range(case, workspace, capsys):
    args, fragments = BAD_OPTIONS[case]
    if args[0] == "play":
        args = [*args, "--model", "drums.ts"]  # the ranges are checked before the model is read
    elif args[1] in ("drums", "grain", "band"):
        args = [*args, "--model", "m.ts"]
    before = snapshot(workspace)
    code = main(args)
    assert_one_error_line(code, capsys.readouterr().err, *fragments)
    assert snapshot(workspace) == before


def test_a_loop_longer_than_ten_minutes_is_refused(workspace, capsys):
    before = snapshot(workspace)
    args = ["render", "loop", "--drums", "d.ts", "--kit", "k.ts", "--bars", "1000", "--bpm", "20"]
    code = main([*args, "--out", "loop.wav"])
    assert_one_error_line(code, capsys.readouterr().err, "--bars 1000 at --bpm 20.0", "600 s")
    assert snapshot(workspace) == before


def test_every_numeric_option_of_play_and_render_has_a_range():
    """A new numeric option without a range would be taken unchecked: the table must name each."""
    parser, ranges = build_parser(), option_ranges()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse lists no subparsers
    for command in ("play", "render", "bench", "devices"):
        numeric = {
            action.dest
            for action in commands[command]._actions  # noqa: SLF001
            if action.type in (int, float) or getattr(action.type, "__name__", "") == "_floats"
        }
        ranged = {dest for key, table in ranges.items() if key.split()[0] == command for dest in table}
        assert numeric <= ranged, f"{command}: no range for {numeric - ranged}"
    assert "temperature" in set(ranges["play drums"]) & set(ranges["play band"])


def test_play_hands_every_option_it_accepts_to_the_player(monkeypatch):
    """``play drums --bars 1`` once played on and on: each option given must reach the player."""
    calls = {}
    monkeypatch.setattr(latentlive.live.drum_player, "play_drums", lambda model, **kw: calls.update(drums=kw))
    monkeypatch.setattr(latentlive.live.band_player, "play_band", lambda model, **kw: calls.update(band=kw))
    common = ["--model", "m.ts", "--port", "out", "--in-port", "in", "--bpm", "100", "--clock", "--bars", "1"]
    common += ["--api", "jack", "--temperature", "0.5"]
    drums = ["--style", "2", "--z", "0.5,-1", "--threshold", "0.3", "--swing", "0.25", "--quantise"]
    assert main(["play", "drums", *common, *drums]) == 0
    assert main(["play", "band", *common, "--part", "bass", "--ahead", "2", "--seed", "7"]) == 0
    expected_common = {
        "bpm": 100.0,
        "clock": True,
        "bars": 1,
        "api": "jack",
        "temperature": 0.5,
        "exiting": True,
    }
    assert calls["drums"] == {
        **expected_common,
        "port": "out",
        "in_port": "in",
        "style": 2,
        "z": [0.5, -1.0],
        "threshold": 0.3,
        "swing": 0.25,
        "quantise": True,
    }
    assert calls["band"] == {
        **expected_common,
        "out_port": "out",
        "in_port": "in",
        "part": "bass",
        "ahead": 2,
        "seed": 7,
    }


# ---------------------------------------------------------------- gin mistakes, in this process

GIN_MISTAKES = {
    "a string for an int": ('PatternVAE.latent_size = "x"', ["PatternVAE.latent_size = 'x'", "takes int"]),
    "a float for an int": ("PatternVAE.latent_size = 2.5", ["PatternVAE.latent_size = 2.5", "takes int"]),
    "unterminated": ("PatternVAE.hidden_sizes = (64, 32", ["--bind 'PatternVAE.hidden_sizes = (64, 32'"]),
    "unterminated string": ('DrumsTask.divergence = "kl', ["--bind", "DrumsTask.divergence"]),
    "no latent": ("PatternVAE.latent_size = 0", ["PatternVAE.latent_size must be at least 1", "--bind"]),
    "no batch": ("train.batch_size = 0", ["batch_size", "0"]),
}


@pytest.mark.parametrize("case", GIN_MISTAKES)
def test_a_gin_mistake_is_one_line_naming_the_binding(case, workspace, capsys):
    binding, fragments = GIN_MISTAKES[case]
    before = snapshot(workspace)
    args = ["train", "--gin", TINY, "--bind", binding, "--bind", "train.max_steps = 2"]
    code = main([*args, "--out", str(workspace / "runs"), "--name", "new"])
    assert_one_error_line(code, capsys.readouterr().err, *fragments)
    assert {k: v for k, v in snapshot(workspace).items() if k in before} == before
    assert not list((workspace / "runs").rglob("*.pt"))


def test_a_gin_mistake_in_a_process_is_one_line_from_any_folder(tmp_path):
    """In a process of its own (no pytest logging handlers), from a folder without gin/: gin's include search
    logged "Path not found" lines to stderr there, around the one line."""
    args = ["train", "--gin", TINY, "--bind", "PatternVAE.latent_size = 2.5", "--out", str(tmp_path / "runs")]
    done = run_cli(*args, cwd=tmp_path)
    assert_one_clear_line(done, "PatternVAE.latent_size = 2.5", "takes int")
    assert not list(tmp_path.rglob("*.pt"))


# ---------------------------------------------------------------- internal faults


def test_an_internal_fault_is_one_line_and_its_traceback_goes_to_a_log(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LATENTLIVE_CACHE", str(tmp_path / "cache"))

    def deep_fault() -> None:
        {}["missing key"]  # noqa: B018 - a fault in the code, not in the input

    code = guarded(deep_fault, "export --run x")
    line = assert_one_error_line(
        code, capsys.readouterr().err, "KeyError: 'missing key'", status=1, kind="internal error"
    )
    log = Path(line.split("details in ")[1])
    assert log.parent == tmp_path / "cache" / "logs"
    assert "Traceback" in log.read_text() and "deep_fault" in log.read_text()
    assert "export --run x" in log.read_text()


def test_a_value_error_deep_in_the_code_is_a_fault_not_bad_input(tmp_path, monkeypatch, capsys):
    """Only a configurable's own ValueError is about the config; one from below is a fault with a log."""
    monkeypatch.setenv("LATENTLIVE_CACHE", str(tmp_path))
    code = guarded(lambda: int("not a number"))
    assert_one_error_line(code, capsys.readouterr().err, "ValueError", status=1, kind="internal error")
    assert guarded(lambda: (_ for _ in ()).throw(KeyboardInterrupt)) == 130
    assert capsys.readouterr().err == "latentlive: interrupted\n"


def test_an_internal_fault_in_a_process_prints_no_traceback(tmp_path):
    """The real top level, in a process: a fault in a command is one line, exit 1, and a log to read."""
    code = (
        "import sys, latentlive.cli as cli\n"
        "def broken(args):\n"
        "    raise RuntimeError('checkpoint of an unknown kind')\n"
        "cli.run_export = broken\n"
        "sys.exit(cli.main(['export', '--run', 'runs/x']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LATENTLIVE_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    line = assert_one_error_line(
        done.returncode,
        done.stderr,
        "RuntimeError: checkpoint of an unknown kind",
        status=1,
        kind="internal error",
    )
    log = Path(line.split("details in ")[1])
    assert log.is_file() and "broken" in log.read_text()


# ---------------------------------------------------------------- players in a process of their own


def _start_player(drums_ts: Path, port: str, env: dict[str, str]) -> subprocess.Popen:
    args = ["play", "drums", "--model", str(drums_ts), "--api", "jack", "--port", port, "--bpm", "300"]
    return subprocess.Popen(
        [sys.executable, "-m", "latentlive.cli", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_status(process: subprocess.Popen) -> str:
    """The player's status line (it prints it once its ports are open): torch imports first, so be patient."""
    line = process.stdout.readline()
    assert line.startswith("latentlive drums:"), (line, process.stderr.read() if process.poll() else "")
    return line


def _jack_runs(env: dict[str, str]) -> bool:
    """Whether the JACK server that ``env`` names answers (``jack_wait -c`` prints "running")."""
    done = subprocess.run(["jack_wait", "-c"], env=env, capture_output=True, text=True, check=False)
    return done.stdout.strip() == "running"


@pytest.fixture
def private_jack(tmp_path: Path):
    """A JACK server of this test alone (``-n NAME``), which it may kill; the name to set as
    JACK_DEFAULT_SERVER."""
    name = f"llfault{os.getpid()}"
    server = subprocess.Popen(
        ["jackd", "-n", name, "-d", "dummy", "-r", "48000", "-p", "1024"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    env = {**os.environ, "JACK_DEFAULT_SERVER": name}
    deadline = time.monotonic() + 30.0  # a busy machine may take a while to start a server
    while not _jack_runs(env) and server.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _jack_runs(env), f"the private JACK server {name} did not start"
    yield name, server
    if server.poll() is None:
        server.terminate()
        server.wait(timeout=10)


def test_a_player_whose_jack_server_dies_ends_with_one_line(drums_ts, private_jack):
    name, server = private_jack
    player = _start_player(drums_ts, "ll fault dead server", {"JACK_DEFAULT_SERVER": name})
    with killed_if_running(player) as process:
        _wait_for_status(process)
        time.sleep(0.5)  # a few steps played
        # The server goes away under the player. SIGTERM, not SIGKILL: a killed jackd leaves its entry in
        # JACK's table of servers in /dev/shm, and a full table refuses every later server on the machine.
        server.terminate()
        server.wait()
        _, stderr = process.communicate(timeout=30)
    assert_one_error_line(process.returncode, stderr, "the JACK server stopped", "failed while playing")


def test_a_second_ctrl_c_while_stopping_exits_cleanly(jack_server, drums_ts):
    with killed_if_running(_start_player(drums_ts, "ll fault double ctrl-c", {})) as process:
        _wait_for_status(process)
        recorder = Recorder("ll fault double ctrl-c")
        assert recorder.wait_for_note_ons(2, timeout=30.0)
        deadline = time.monotonic() + 20.0
        while process.poll() is None and time.monotonic() < deadline:
            # Ctrl-C again and again, until the process is gone: while the notes are released, while the
            # ports close, and during the exit itself.
            process.send_signal(signal.SIGINT)
            time.sleep(0.01)
        stdout, stderr = process.communicate(timeout=30)
        assert recorder.wait_for_all_notes_off()
        recorder.close()
    # not -11 (a segfault), -2 (killed by a late Ctrl-C) nor 130 (interrupted while stopping)
    assert process.returncode == 0, stderr
    assert stderr.strip() == "", stderr

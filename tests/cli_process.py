"""The CLI run as a user runs it, in a process of its own, and the check that an error is one clear line;
the export contract checked in a process of its own."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m latentlive.cli ARGS`` in ``cwd``; its exit code, stdout and stderr."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "latentlive.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def run_contract(path: Path) -> dict[str, Any]:
    """The report of ``python -m latentlive.export.contract PATH``: the nn~ contract checked on a saved file
    in a fresh process (no training code loaded); asserts that the checks ran to their end."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "latentlive.export.contract", str(path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextmanager
def killed_if_running(process: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """``process`` within the block; killed (and waited for) if it still runs when the block ends, as it may
    after a failed assertion."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def assert_one_clear_line(done: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit code 2 and one line on stderr, ``latentlive: error: ...`` with every fragment, no traceback."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("latentlive: error: "), done.stderr
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]

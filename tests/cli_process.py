"""The CLI run as a user runs it, in a process of its own, and the check that an error is one clear line;
the export contract checked in a process of its own, or the verdict of that check as the exporter recorded it."""

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


def exporter_verdict(path: Path) -> dict[str, Any]:
    """The report ``latentlive export`` wrote beside ``path``. The exporter keeps a file only once
    ``python -m latentlive.export.contract`` has passed it in a fresh process (tests/test_export.py proves
    the refusal), so this is :func:`run_contract`'s verdict without checking the same file twice. Its
    ``first_five_calls_after_load_ms`` come from that process, one entry per method."""
    report = json.loads((path.parent / "report.json").read_text(encoding="utf-8"))
    assert report["path"] == str(path) and report["file_size_bytes"] == path.stat().st_size
    assert report["contract"]["problems"] == []
    assert set(report["first_five_calls_after_load_ms"]) == set(report["methods"])
    return report


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

"""Shared fixtures: a tiny drums run trained and exported once per test session."""

import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

# Tiny models run fastest on one thread, and two spinning OpenMP threads stall badly when another
# process (jackd, a subprocess under test) takes a core: one thread here and in subprocesses.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import gin  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from jack_midi import jack_running  # noqa: E402

from latentlive.cli import main  # noqa: E402

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]


# With pytest-xdist (``make test`` runs two workers), the tests that take one of these fixtures run in one
# worker, one after the other: the tests on JACK ports play in real time and open ports by name, and the
# wheel is built by pip in the source tree itself (two builds at once break each other's build/ folder).
ONE_WORKER_FIXTURES = {"jack_server": "jack", "wheel": "wheel"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put each test that takes a fixture of ``ONE_WORKER_FIXTURES`` in that fixture's xdist group."""
    for item in items:
        for fixture, group in ONE_WORKER_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(autouse=True)
def _no_gin_bindings_left() -> Iterator[None]:
    """Each test leaves no gin bindings behind: a model built with keyword arguments in a later test would
    take them as its defaults (WaveformVAE after gin/techno.gin got decoder_dilations (1, 9) and streamed
    outside its test's warm-up), so tests would pass or fail by the order they run in."""
    yield
    gin.clear_config()


@pytest.fixture(autouse=True)
def _seeded_random_state() -> None:
    """Each test starts from the same random state, whatever ran before it in its worker: a test that draws
    from torch's, numpy's or Python's global generator cannot pass or fail by the order tests run in (one
    that drew an argmax holding nothing failed on 14 of 300 draws)."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep preprocessing caches of the tests out of the user's cache folder."""
    os.environ["LATENTLIVE_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def jack_server():
    """A running JACK server: the one already there, or a dummy one started here and stopped at the end."""
    assert shutil.which("jackd"), "jackd not found: install jackd2 (`make test` does)"
    if jack_running():
        yield
        return
    server = subprocess.Popen(
        ["jackd", "-d", "dummy", "-r", "48000", "-p", "256"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    subprocess.run(["jack_wait", "-w", "-t", "10"], capture_output=True, check=False)
    assert jack_running(), "jackd -d dummy did not start"
    yield
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="session")
def drums_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of gin/drums_tiny.gin on the built-in corpus (40 steps)."""
    runs = tmp_path_factory.mktemp("runs")
    assert (
        main(["train", "--gin", str(ROOT / "gin/drums_tiny.gin"), "--name", "drums", "--out", str(runs)]) == 0
    )
    return runs / "drums"


@pytest.fixture(scope="session")
def drums_ts(drums_run: Path) -> Path:
    """The tiny drums run exported for nn~ (verified by the exporter)."""
    assert main(["export", "--run", str(drums_run), "--streaming"]) == 0
    return drums_run / "export" / "drums.ts"


@pytest.fixture(scope="session")
def drumsynth_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of gin/drumsynth_tiny.gin on the built-in one-shots (a few steps)."""
    runs = tmp_path_factory.mktemp("runs")
    args = ["train", "--gin", str(ROOT / "gin/drumsynth_tiny.gin"), "--name", "drumsynth", "--out", str(runs)]
    assert main(args) == 0
    return runs / "drumsynth"


@pytest.fixture(scope="session")
def drumsynth_ts(drumsynth_run: Path) -> Path:
    """The tiny drum synth exported for nn~ (verified by the exporter)."""
    assert main(["export", "--run", str(drumsynth_run), "--streaming"]) == 0
    return drumsynth_run / "export" / "drumsynth.ts"


@pytest.fixture(scope="session")
def techno_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of gin/techno_tiny.gin (stage 1) on a few built-in loops."""
    runs = tmp_path_factory.mktemp("runs")
    assert (
        main(["train", "--gin", str(ROOT / "gin/techno_tiny.gin"), "--name", "techno", "--out", str(runs)])
        == 0
    )
    return runs / "techno"


@pytest.fixture(scope="session")
def techno_ts(techno_run: Path) -> Path:
    """The tiny stage 1 exported for nn~ (verified by the exporter)."""
    assert main(["export", "--run", str(techno_run), "--streaming"]) == 0
    return techno_run / "export" / "techno.ts"


@pytest.fixture(scope="session")
def techno_prior_run(techno_run: Path) -> Path:
    """A run of gin/techno_prior_tiny.gin (techno_prior) on the tiny stage-1 run."""
    runs = techno_run.parent
    args = [
        "train",
        "--gin",
        str(ROOT / "gin/techno_prior_tiny.gin"),
        "--name",
        "techno_prior",
        "--out",
        str(runs),
    ]
    assert main([*args, "--bind", f"TechnoPriorTask.stage1_run = '{techno_run}'"]) == 0
    return runs / "techno_prior"


@pytest.fixture(scope="session")
def techno_prior_ts(techno_prior_run: Path) -> Path:
    """The tiny techno_prior (with its techno run) exported for nn~."""
    assert main(["export", "--run", str(techno_prior_run), "--streaming"]) == 0
    return techno_prior_run / "export" / "techno_prior.ts"


@pytest.fixture(scope="session")
def grain_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of gin/grain_tiny.gin on a few built-in sounds."""
    runs = tmp_path_factory.mktemp("runs")
    assert (
        main(["train", "--gin", str(ROOT / "gin/grain_tiny.gin"), "--name", "grain", "--out", str(runs)]) == 0
    )
    return runs / "grain"


@pytest.fixture(scope="session")
def grain_ts(grain_run: Path) -> Path:
    """The tiny grain VAE exported for nn~ (verified by the exporter)."""
    assert main(["export", "--run", str(grain_run), "--streaming"]) == 0
    return grain_run / "export" / "grain.ts"


@pytest.fixture(scope="session")
def band_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of gin/band_tiny.gin on a few built-in chorales (40 steps, with both ablations)."""
    runs = tmp_path_factory.mktemp("runs")
    assert (
        main(["train", "--gin", str(ROOT / "gin/band_tiny.gin"), "--name", "band", "--out", str(runs)]) == 0
    )
    return runs / "band"


@pytest.fixture(scope="session")
def band_ts(band_run: Path) -> Path:
    """The tiny band run exported for nn~ (verified by the exporter)."""
    assert main(["export", "--run", str(band_run), "--streaming"]) == 0
    return band_run / "export" / "band.ts"

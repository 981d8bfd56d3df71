"""A bad model size in a gin binding, a crop the model cannot cut, a binding that the task overrides and a
device this machine lacks: each is one line naming the binding and the fix, exit status 2, and no run folder
left behind. ``latentlive train`` runs in this process (the subprocess path is tests/test_cli_errors.py)."""

from pathlib import Path

import pytest

from latentlive.cli import main

GIN = Path(__file__).resolve().parents[1] / "gin"

CASES = {
    "waveform capacity 0": (
        "techno_tiny",
        "WaveformVAE.capacity = 0",
        ["WaveformVAE.capacity", "at least 1"],
    ),
    "waveform latent size 0": ("techno_tiny", "WaveformVAE.latent_size = 0", ["WaveformVAE.latent_size"]),
    "crop off the model's ratio": (
        "techno_tiny",
        "TechnoTask.crop = 100",
        ["TechnoTask.crop = 100", "ratio 128", "TechnoTask.crop = 128"],
    ),
    "grain latent size below 1": ("grain_tiny", "GrainVAE.latent_size = -3", ["GrainVAE.latent_size", "-3"]),
    "grain width 0": ("grain_tiny", "GrainVAE.channels = (0, 8)", ["GrainVAE.channels", "at least 1"]),
    "kit latent size 0": ("drumsynth_tiny", "DrumSynthVAE.latent_size = 0", ["DrumSynthVAE.latent_size"]),
    "drums latent size 0": ("drums_tiny", "PatternVAE.latent_size = 0", ["PatternVAE.latent_size"]),
    "dropout above 1": ("drums_tiny", "PatternVAE.dropout = 1.5", ["PatternVAE.dropout", "1.5"]),
    "band latent size 0": ("band_tiny", "BandRMVAE.latent_size = 0", ["BandRMVAE.latent_size"]),
    "band binding the task sets": ("band_tiny", "BandRMVAE.ahead = 2", ["BandRMVAE.ahead", "BandTask.ahead"]),
}


def _one_line(capsys: pytest.CaptureFixture, status: int, fragments: list[str]) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2, err
    assert len(err) == 1 and err[0].startswith("latentlive: error: "), err
    for fragment in fragments:
        assert fragment in err[0], err[0]


@pytest.mark.parametrize("case", CASES)
def test_a_bad_model_binding_is_one_line_and_leaves_no_run(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    gin_name, binding, fragments = CASES[case]
    runs = tmp_path / "runs"
    status = main(["train", "--gin", str(GIN / f"{gin_name}.gin"), "--bind", binding, "--out", str(runs)])
    _one_line(capsys, status, fragments)
    assert not runs.exists() or not any(runs.iterdir()), list(runs.iterdir())


@pytest.mark.parametrize(
    ("device", "fragment"),
    [("cuda:99", "CUDA GPU"), ("gpu", "not a device name"), ("xla", "cpu, cuda or mps")],
)
def test_a_device_this_machine_lacks_is_one_line_before_the_run_is_made(
    device: str, fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    runs = tmp_path / "runs"
    status = main(["train", "--gin", str(GIN / "drums_tiny.gin"), "--device", device, "--out", str(runs)])
    _one_line(capsys, status, [f"--device {device}", fragment])
    assert not runs.exists()


def test_a_good_binding_still_trains(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The checks refuse only what is wrong: the smallest sizes they allow train."""
    runs = tmp_path / "runs"
    bindings = ["PatternVAE.latent_size = 1", "PatternVAE.dropout = 0.0", "train.max_steps = 2"]
    args = ["train", "--gin", str(GIN / "drums_tiny.gin"), "--device", "cpu", "--out", str(runs)]
    status = main([*args, *(a for b in bindings for a in ("--bind", b))])
    assert status == 0, capsys.readouterr().err
    assert any(runs.glob("*/checkpoints/last.pt"))

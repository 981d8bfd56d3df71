"""LatentKit.amxd, the drum synth instrument: structure, parameters, metadata errors and preview."""

from pathlib import Path
from typing import Any

import pytest

from latentlive.core.errors import UserError
from latentlive.m4l_devices.amxd import read_amxd
from latentlive.m4l_devices.drumsynth import build_kit_device
from latentlive.m4l_devices.preview import draw_presentation
from latentlive.m4l_devices.validate import validate_device

CLASSES = ["kick", "snare", "clap", "closed_hat", "open_hat", "tom", "rim", "cymbal"]
GM = {
    "Kick": 36,
    "Snare": 38,
    "Clap": 39,
    "Closed Hat": 42,
    "Open Hat": 46,
    "Tom": 45,
    "Rim": 37,
    "Cymbal": 49,
}


def kit_metadata(latent_size: int) -> dict[str, Any]:
    """Hand-written metadata in the shape export.metadata.read_metadata returns for drumsynth.ts."""
    return {
        "model": "drumsynth",
        "latent_size": latent_size,
        "class_names": CLASSES,
        "voices": 4,
        "sample_rate": 22050,
        "host_sample_rates": [44100, 48000],
        "methods": {
            "forward": {"in_channels": latent_size + 2, "in_ratio": 1, "out_channels": 1, "out_ratio": 1}
        },
    }


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    out = tmp_path_factory.mktemp("kits")
    return {
        d: build_kit_device(out / f"d{d}", "/models/my kit/drumsynth.ts", kit_metadata(d)) for d in (4, 8)
    }


def boxes_of(path: Path) -> list[dict[str, Any]]:
    return [b["box"] for b in read_amxd(path).patcher["patcher"]["boxes"]]


def params_of(path: Path) -> dict[str, dict[str, Any]]:
    return {
        b["saved_attribute_attributes"]["valueof"]["parameter_longname"]: b
        for b in boxes_of(path)
        if b.get("parameter_enable")
    }


def lines_of(path: Path) -> list[tuple[str, int, str, int]]:
    lines = read_amxd(path).patcher["patcher"]["lines"]
    return [(*ln["patchline"]["source"], *ln["patchline"]["destination"]) for ln in lines]


@pytest.mark.parametrize("d", [4, 8])
def test_kit_validates_as_a_169px_instrument_in_presentation(kits: dict[int, Path], d: int) -> None:
    path = kits[d]
    assert path.name == "LatentKit.amxd"
    assert validate_device(path) == []
    device = read_amxd(path)
    patcher = device.patcher["patcher"]
    assert device.device_type == "iiii"
    assert patcher["openinpresentation"] == 1 and patcher["openrect"][3] == 169


@pytest.mark.parametrize("d", [4, 8])
def test_nn_box_takes_gate_class_knobs_and_gives_audio(kits: dict[int, Path], d: int) -> None:
    boxes = {b["id"]: b for b in boxes_of(kits[d])}
    nn = next(b for b in boxes.values() if b.get("text", "").startswith("nn~"))
    assert (nn["numinlets"], nn["numoutlets"]) == (d + 2, 1)
    assert nn["text"] == f"nn~ drumsynth.ts forward 512 {d + 2} 1"
    lines = lines_of(kits[d])
    assert {inlet for _, _, dst, inlet in lines if dst == nn["id"]} == set(range(d + 2))
    sources = {(inlet, boxes[src]["text"]) for src, _, dst, inlet in lines if dst == nn["id"]}
    assert sources == {(0, "line~"), (0, "prepend load"), (0, "prepend set host_rate")} | {
        (i, "sig~") for i in range(1, d + 2)
    }
    # the audio reaches both channels of plugout~ through the output gain
    gain = next(dst for src, _, dst, _ in lines if src == nn["id"])
    assert boxes[gain]["text"] == "*~"
    out = [(boxes[dst]["text"], inlet) for src, _, dst, inlet in lines if src == gain]
    assert sorted(out) == [("plugout~ 1 2", 0), ("plugout~ 1 2", 1)]
    texts = {b.get("text") for b in boxes.values()}
    assert {"midiin", "midiparse"} <= texts


def test_note_table_defaults_to_gm_drum_notes(kits: dict[int, Path]) -> None:
    params = params_of(kits[8])
    for label, note in GM.items():
        numbox = params[f"{label} Note"]
        assert numbox["maxclass"] == "live.numbox"
        assert numbox["saved_attribute_attributes"]["valueof"]["parameter_initial"] == [note]


@pytest.mark.parametrize("d", [4, 8])
def test_every_control_is_a_live_parameter_with_a_unique_long_name(kits: dict[int, Path], d: int) -> None:
    boxes = boxes_of(kits[d])
    params = [b for b in boxes if b.get("parameter_enable")]
    assert all(b["maxclass"].startswith("live.") for b in params)
    names = [b["saved_attribute_attributes"]["valueof"]["parameter_longname"] for b in params]
    assert len(names) == len(set(names))
    per_class = {f"{label} Knob {k}" for label in GM for k in range(1, d + 1)}
    assert per_class <= set(names)  # every class keeps its own automatable knobs
    assert {"Edit Class", "Randomise", "Output Gain", "Model File"} <= set(names)
    assert params_of(kits[d])["Randomise"]["maxclass"] == "live.text"
    assert (
        params_of(kits[d])["Output Gain"]["saved_attribute_attributes"]["valueof"]["parameter_unitstyle"] == 4
    )


def test_randomise_draws_a_value_for_each_editor_knob(kits: dict[int, Path]) -> None:
    boxes = {b["id"]: b for b in boxes_of(kits[4])}
    button = next(i for i, b in boxes.items() if b.get("varname") == "Randomise")
    lines = lines_of(kits[4])
    spread = next(dst for src, _, dst, _ in lines if src == button)
    draws = [dst for src, _, dst, _ in lines if src == spread]
    assert len(draws) == 4 and all(boxes[i]["text"] == "random 4001" for i in draws)


def test_model_drop_and_missing_model_status(kits: dict[int, Path]) -> None:
    boxes = {b["id"]: b for b in boxes_of(kits[4])}
    pairs = {(boxes[s].get("text"), boxes[t].get("text")) for s, _, t, _ in lines_of(kits[4])}
    nn = next(b["text"] for b in boxes.values() if b.get("text", "").startswith("nn~"))
    assert ("prepend load", nn) in pairs
    assert ("absolutepath", "route notfound") in pairs
    assert any("Model missing" in (b.get("text") or "") for b in boxes.values())


@pytest.mark.parametrize(
    "change, message",
    [
        ({"latent_size": 9}, "latent_size=9"),
        ({"model": "drums"}, "not 'drumsynth'"),
        ({"class_names": None}, "lacks or mangles"),
        ({"class_names": ["kick", "kick"]}, "distinct"),
        ({"methods": {"forward": {"in_channels": 3, "out_channels": 1}}}, "in_channels=3"),
    ],
)
def test_bad_metadata_is_a_user_error(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message) as err:
        build_kit_device(tmp_path, "drumsynth.ts", kit_metadata(4) | change)
    assert "\n" not in str(err.value)
    assert not list(tmp_path.iterdir())


def test_preview_writes_a_png(kits: dict[int, Path], tmp_path: Path) -> None:
    out = draw_presentation(kits[8], tmp_path / "kit.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000

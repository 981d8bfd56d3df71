"""The .amxd writer/reader, the object table, the LatentDrums device, its validation and preview."""

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from latentlive.core.errors import UserError
from latentlive.m4l_devices.amxd import MIDI_EFFECT, read_amxd, write_amxd
from latentlive.m4l_devices.drums import DELAY_EXPR, VELOCITY_EXPR, build_drums_device
from latentlive.m4l_devices.max_objects import UnknownObjectError, object_io, split_box_text
from latentlive.m4l_devices.patcher import Param, Patcher
from latentlive.m4l_devices.preview import draw_presentation
from latentlive.m4l_devices.validate import validate_device

INSTRUMENTS = ["Kick", "Snare", "Closed HH", "Open HH", "Low Tom", "Mid Tom", "High Tom", "Crash", "Ride"]
GM_NOTES = [36, 38, 42, 46, 45, 48, 50, 49, 51]


def drums_metadata(latent_size: int, steps: int = 16) -> dict[str, Any]:
    """Hand-written metadata in the shape export.metadata.read_metadata returns for drums.ts."""
    return {
        "model": "drums",
        "latent_size": latent_size,
        "steps": steps,
        "style_names": ["rock", "funk", "latin"],
        "instrument_names": INSTRUMENTS,
        "gm_notes": GM_NOTES,
        "methods": {"decode": {"in_channels": latent_size + 2, "out_channels": 18}},
        "attributes": {"temperature": 1.0, "threshold": 0.5},
        "latency_samples": 0,
    }


@pytest.fixture(scope="module")
def drum_devices(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    out = tmp_path_factory.mktemp("devices")
    devices = {
        d: build_drums_device(out / f"d{d}", "/models/my drums/drums.ts", drums_metadata(d))
        for d in (2, 5, 8, 16)
    }
    # a two-bar model (32 steps), keyed by -D so the tests of every device take it too
    devices[-4] = build_drums_device(out / "two_bars", "/models/drums.ts", drums_metadata(4, steps=32))
    return devices


def boxes_of(path: Path) -> list[dict[str, Any]]:
    return [b["box"] for b in read_amxd(path).patcher["patcher"]["boxes"]]


def lines_of(path: Path) -> list[tuple[str, int, str, int]]:
    lines = read_amxd(path).patcher["patcher"]["lines"]
    return [(*ln["patchline"]["source"], *ln["patchline"]["destination"]) for ln in lines]


def tiny_patcher() -> Patcher:
    p = Patcher(device_width=120)
    dial = p.ui(
        "live.dial",
        (10, 10, 44, 48),
        param=Param("Gain", "Gain", mmin=0, mmax=1, initial=0.5),
        presentation_rect=(4, 20, 44, 48),
    )
    sig = p.obj("sig~", (10, 80))
    p.connect(dial, 0, sig, 0)
    return p


# --- .amxd container ---------------------------------------------------------------------------


def test_amxd_round_trip_and_byte_layout(tmp_path: Path) -> None:
    doc = tiny_patcher().to_dict()
    doc["patcher"]["description"] = "d\u00e9j\u00e0 vu"  # UTF-8 survives
    path = write_amxd(tmp_path / "t.amxd", doc, MIDI_EFFECT)
    raw = path.read_bytes()
    assert raw[0:4] == b"ampf" and struct.unpack("<I", raw[4:8])[0] == 4 and raw[8:12] == b"mmmm"
    assert raw[12:16] == b"meta" and struct.unpack("<I", raw[16:20])[0] == 4 and raw[20:24] == b"\0\0\0\0"
    assert raw[24:28] == b"ptch"
    length = struct.unpack("<I", raw[28:32])[0]
    assert length == len(raw) - 32
    payload = raw[32:]
    assert payload.endswith(b"\n\0")
    assert json.loads(payload[:-1].decode("utf-8")) == doc
    device = read_amxd(path)
    assert (device.device_type, device.patcher, device.meta) == ("mmmm", doc, b"\0\0\0\0")
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed away


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda raw: b"RIFF" + raw[4:], "no 'ampf' header"),
        (lambda raw: raw[:-40], "truncated"),
        (lambda raw: raw[:30], "truncated"),
        (lambda raw: raw[:8] + b"xxxx" + raw[12:], "unknown device type"),
        (lambda raw: raw[:32] + b"[" + raw[33:], "does not parse"),
        (lambda raw: raw[:32] + b"mx@c" + raw[36:], "frozen"),
    ],
)
def test_read_amxd_rejects_corrupt_files(tmp_path: Path, mangle: Any, message: str) -> None:
    good = write_amxd(tmp_path / "good.amxd", tiny_patcher().to_dict(), MIDI_EFFECT)
    bad = tmp_path / "bad.amxd"
    bad.write_bytes(mangle(good.read_bytes()))
    with pytest.raises(UserError, match=message) as err:
        read_amxd(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_read_amxd_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such device file"):
        read_amxd(tmp_path / "nope.amxd")


# --- object table ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, inlets, outlets",
    [
        ("unpack 0 0 0", 1, 3),
        ("route a b", 2, 3),
        ("sel 1 2", 3, 3),
        ("t b b b", 1, 3),
        ("pack 0 3 0", 3, 1),
        ("makenote 100 50", 3, 2),
        ("makenote 100 50 10", 4, 3),
        ("midiformat", 7, 2),
        ("midiparse", 1, 8),
        ("transport", 2, 9),
        ("metro 16n @quantize 16n @active 1", 2, 1),
        ('nn~ "/a b/drums.ts" decode 512 7 9', 7, 9),
        ("mc.unpack~ 4", 1, 4),
        ("expr $f1 + $f3", 3, 1),
    ],
)
def test_object_io_follows_arguments(text: str, inlets: int, outlets: int) -> None:
    io = object_io({"maxclass": "newobj", "text": text})
    assert (io.inlets, io.outlets) == (inlets, outlets)


def test_object_table_ui_classes_and_unknowns() -> None:
    assert (object_io({"maxclass": "live.grid"}).inlets, object_io({"maxclass": "live.grid"}).outlets) == (
        2,
        6,
    )
    assert object_io({"maxclass": "live.menu"}).outlets == 3
    assert object_io({"maxclass": "comment", "suppressinlet": 1}).inlets == 0
    assert object_io({"maxclass": "newobj", "text": "js helper.js"}) is None  # the script decides
    assert object_io({"maxclass": "newobj", "text": "nn~ drums.ts decode"}) is None  # the model decides
    assert split_box_text('nn~ "/a b/x.ts" decode @gpu 1') == ("nn~", ["/a b/x.ts", "decode"], ["@gpu", "1"])
    with pytest.raises(UnknownObjectError):
        object_io({"maxclass": "newobj", "text": "mystery~ 1"})


def test_patcher_refuses_a_line_to_a_missing_inlet() -> None:
    p = Patcher(device_width=100)
    a, b = p.obj("sig~", (0, 0)), p.obj("midiout", (0, 40))
    with pytest.raises(ValueError, match="no inlet 1"):
        p.connect(a, 0, b, 1)
    with pytest.raises(ValueError, match="no outlet 0"):
        p.connect(b, 0, a, 0)


# --- the drum device ---------------------------------------------------------------------------


@pytest.mark.parametrize("d", [2, 5, 8, 16, -4])
def test_drum_device_validates(drum_devices: dict[int, Path], d: int) -> None:
    path = drum_devices[d]
    assert path.name == "LatentDrums.amxd"
    assert validate_device(path) == []


@pytest.mark.parametrize("d", [2, 5, 8, 16, -4])
def test_drum_device_is_a_169px_midi_effect_opening_in_presentation(
    drum_devices: dict[int, Path], d: int
) -> None:
    device = read_amxd(drum_devices[d])
    patcher = device.patcher["patcher"]
    assert device.device_type == "mmmm"
    assert patcher["openinpresentation"] == 1
    assert patcher["openrect"][3] == 169
    shown = [b for b in boxes_of(drum_devices[d]) if b.get("presentation")]
    assert max(b["presentation_rect"][1] + b["presentation_rect"][3] for b in shown) <= 169
    assert max(b["presentation_rect"][0] + b["presentation_rect"][2] for b in shown) <= patcher["devicewidth"]


@pytest.mark.parametrize("d", [2, 5, 8])
def test_every_control_is_a_live_parameter_with_a_unique_long_name(
    drum_devices: dict[int, Path], d: int
) -> None:
    boxes = boxes_of(drum_devices[d])
    params = [b for b in boxes if b.get("parameter_enable")]
    assert all(b["maxclass"].startswith("live.") for b in params)
    controls = [b for b in boxes if b["maxclass"] in {"live.dial", "live.numbox", "live.menu", "live.drop"}]
    assert all(b.get("parameter_enable") == 1 for b in controls)
    names = [b["saved_attribute_attributes"]["valueof"]["parameter_longname"] for b in params]
    assert len(names) == len(set(names))
    assert {f"Latent {k}" for k in range(1, d + 1)} | {
        "Style",
        "Threshold",
        "Temperature",
        "Swing",
        "Quantise",
    } <= set(names)
    dials = {b["saved_attribute_attributes"]["valueof"]["parameter_longname"]: b for b in params}
    assert dials["Latent 1"]["saved_attribute_attributes"]["valueof"]["parameter_mmin"] == -3.0
    assert dials["Style"]["saved_attribute_attributes"]["valueof"]["parameter_enum"] == [
        "rock",
        "funk",
        "latin",
        "Any",
    ]
    notes = [b for b in boxes if b["maxclass"] == "live.numbox"]  # the editable GM drum map
    assert [b["saved_attribute_attributes"]["valueof"]["parameter_initial"] for b in notes] == [
        [n] for n in GM_NOTES
    ]
    # the XY pad is not a parameter itself: it drives the Latent 1 / Latent 2 dials
    pad = next(b for b in boxes if b["maxclass"] == "pictslider")
    assert not pad.get("parameter_enable")


@pytest.mark.parametrize("d", [2, 5, 8, -4])
def test_nn_box_has_latents_step_style_in_and_levels_and_offsets_out(
    drum_devices: dict[int, Path], d: int
) -> None:
    path = drum_devices[d]
    steps, d = (32, -d) if d < 0 else (16, d)
    boxes = {b["id"]: b for b in boxes_of(path)}
    nn = next(b for b in boxes.values() if b.get("text", "").startswith("nn~"))
    assert (nn["numinlets"], nn["numoutlets"]) == (d + 2, 18)
    assert nn["text"].startswith("nn~ drums.ts decode ")  # by file name: found beside the device
    lines = lines_of(path)
    fed = {inlet for _, _, dst, inlet in lines if dst == nn["id"]}
    assert fed == set(range(d + 2))
    sampled = {
        outlet for src, outlet, dst, _ in lines if src == nn["id"] and boxes[dst]["text"] == "snapshot~"
    }
    assert sampled == set(range(18))  # 9 hit levels, 9 offsets
    # the step inlet comes from a phasor locked to Live's transport, over one bar or two
    phasor = {16: "phasor~ 1n @lock 1", 32: "phasor~ 2.0.0 @lock 1"}[steps]
    step_src = next(src for src, _, dst, inlet in lines if dst == nn["id"] and inlet == d)
    chain = [boxes[step_src]["text"]]
    while chain[-1] != phasor:
        chain.append(boxes[next(s for s, _, t, _ in lines if t == _id_of(boxes, chain[-1]))]["text"])
    assert chain == ["+~ 1.", f"*~ {steps}.", phasor]
    grid = next(b for b in boxes.values() if b["maxclass"] == "live.grid")
    assert grid["columns"] == steps


def _id_of(boxes: dict[str, dict[str, Any]], text: str) -> str:
    return next(i for i, b in boxes.items() if b.get("text") == text)


def _fed_by(lines, boxes, dst_id: str, inlet: int) -> list[str]:
    """The texts (or maxclasses) of the boxes that feed inlet ``inlet`` of box ``dst_id``."""
    return [boxes[s].get("text", boxes[s]["maxclass"]) for s, _, t, i in lines if t == dst_id and i == inlet]


def test_drum_device_plays_midi_in_time_and_passes_midi_through(drum_devices: dict[int, Path]) -> None:
    path = drum_devices[5]
    boxes = {b["id"]: b for b in boxes_of(path)}
    texts = {b.get("text") for b in boxes.values()}
    assert "metro 32n @quantize 32n @active 1" in texts  # the look-ahead tick, half a step before a 16th
    lines = {(boxes[s].get("text"), boxes[t].get("text")) for s, _, t, _ in lines_of(path)}
    assert ("midiin", "midiout") in lines
    assert ("midiformat", "midiout") in lines and ("pack 0 0", "midiformat") in lines
    assert (
        "prepend load",
        next(b["text"] for b in boxes.values() if b.get("text", "").startswith("nn~")),
    ) in lines
    assert ("absolutepath", "route notfound") in lines  # a missing model shows in the status line


@pytest.mark.parametrize("d", [5, -4])
def test_drum_device_plays_velocity_and_offsets_through_its_scheduler(
    drum_devices: dict[int, Path], d: int
) -> None:
    """Each hit's level becomes its MIDI velocity; its offset, the swing and the quantise switch set its
    delay from the look-ahead tick in ms of Live's tempo, and one of two delay lanes plays it into makenote."""
    path = drum_devices[d]
    boxes = {b["id"]: b for b in boxes_of(path)}
    lines = lines_of(path)
    nn = next(i for i, b in boxes.items() if b.get("text", "").startswith("nn~"))
    delays = [i for i, b in boxes.items() if b.get("text") == DELAY_EXPR]
    velocities = [i for i, b in boxes.items() if b.get("text") == VELOCITY_EXPR]
    assert len(delays) == len(velocities) == 9
    offset_snapshots = {
        s for s, _, t, _ in lines if boxes[t].get("text") == DELAY_EXPR and boxes[s]["text"] == "snapshot~"
    }
    assert {o for s, o, t, _ in lines if s == nn and t in offset_snapshots} == set(range(9, 18))
    for delay in delays:
        assert _fed_by(lines, boxes, delay, 1) == ["snapshot~"]  # the offset
        assert _fed_by(lines, boxes, delay, 2) == ["expr ($i1 % 2) * $f2 * 0.5 * $f3"]  # swing shift
        assert _fed_by(lines, boxes, delay, 3) == ["!- 1"]  # 1 - quantise
        assert _fed_by(lines, boxes, delay, 4) == ["!/ 15000."]  # ms per 16th at Live's tempo
    swing = next(i for i, b in boxes.items() if b.get("text", "").startswith("expr ($i1 % 2)"))
    assert _fed_by(lines, boxes, swing, 1) == ["live.dial"]
    assert _fed_by(lines, boxes, next(i for i, b in boxes.items() if b.get("text") == "!- 1"), 0) == [
        "live.toggle"
    ]
    tempo = next(i for i, b in boxes.items() if b.get("text") == "!/ 15000.")
    assert [(boxes[s]["text"], o) for s, o, t, _ in lines if t == tempo] == [("transport", 4)]
    makenote = next(i for i, b in boxes.items() if b.get("text", "").startswith("makenote"))
    # velocity (cold) then pitch (hot), from the two lanes of each drum
    assert _fed_by(lines, boxes, makenote, 1) == ["t b i"] * 18
    assert sorted(set(_fed_by(lines, boxes, makenote, 0))) == sorted({f"i {n}" for n in GM_NOTES})
    assert sum(b.get("text") == "delay" for b in boxes.values()) == 18


def test_drum_metadata_errors_are_user_errors(tmp_path: Path) -> None:
    bad = drums_metadata(17)
    with pytest.raises(UserError, match="latent_size=17"):
        build_drums_device(tmp_path, "drums.ts", bad)
    short = drums_metadata(4) | {"gm_notes": GM_NOTES[:8]}
    with pytest.raises(UserError, match="expected 9"):
        build_drums_device(tmp_path, "drums.ts", short)
    old = drums_metadata(4)
    old["methods"]["decode"]["out_channels"] = 9  # an export from before velocities and offsets
    with pytest.raises(UserError, match="export the run again"):
        build_drums_device(tmp_path, "drums.ts", old)
    with pytest.raises(UserError, match="16 or 32 steps"):
        build_drums_device(tmp_path, "drums.ts", drums_metadata(4, steps=48))
    assert not list(tmp_path.iterdir())


# --- validation catches broken devices -----------------------------------------------------------


def test_validate_catches_broken_line_unknown_object_and_duplicate_name(tmp_path: Path) -> None:
    p = tiny_patcher()
    p.ui("live.dial", (60, 10, 44, 48), param=Param("Gain", "Gain2"), presentation_rect=(60, 20, 44, 48))
    doc = p.to_dict()
    patcher = doc["patcher"]
    patcher["boxes"].append(
        {
            "box": {
                "id": "obj-99",
                "maxclass": "newobj",
                "text": "mystery~ 3",
                "numinlets": 1,
                "numoutlets": 1,
                "patching_rect": [0, 0, 60, 22],
            }
        }
    )
    patcher["lines"].append({"patchline": {"source": ["obj-2", 0], "destination": ["obj-1", 5]}})
    patcher["lines"].append({"patchline": {"source": ["obj-2", 0], "destination": ["obj-404", 0]}})
    problems = validate_device(write_amxd(tmp_path / "bad.amxd", doc, MIDI_EFFECT))
    text = "\n".join(problems)
    assert "unknown object 'mystery~'" in text
    assert "obj-2:0 -> obj-1:5: obj-1 has 1 inlets" in text
    assert "obj-404" in text
    assert "long name 'Gain' is also used" in text
    assert len(problems) == 4


def test_validate_catches_layout_and_count_problems(tmp_path: Path) -> None:
    doc = tiny_patcher().to_dict()
    patcher = doc["patcher"]
    patcher["openinpresentation"] = 0
    dial = patcher["boxes"][0]["box"]
    dial["presentation_rect"] = [100, 150, 44, 48]  # past the right edge and the 169 px bottom
    patcher["boxes"][1]["box"]["numoutlets"] = 2  # sig~ has one outlet
    problems = validate_device(write_amxd(tmp_path / "bad.amxd", doc, MIDI_EFFECT))
    text = "\n".join(problems)
    assert "openinpresentation" in text
    assert "does not fit the 120 x 169 device" in text
    assert "declares 1 inlets / 2 outlets, Max gives it 1 / 1" in text
    corrupt = tmp_path / "corrupt.amxd"
    corrupt.write_bytes(b"ampf\x04\x00\x00\x00mmmmptch\xff\x00\x00\x00{")
    assert len(validate_device(corrupt)) == 1


# --- preview -------------------------------------------------------------------------------------


def test_preview_writes_a_png(drum_devices: dict[int, Path], tmp_path: Path) -> None:
    out = draw_presentation(drum_devices[8], tmp_path / "preview" / "drums.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000

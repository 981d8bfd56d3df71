"""LatentLoops.amxd and LatentLoopsFX.amxd: structure, signal paths, parameters, metadata errors, preview."""

from pathlib import Path
from typing import Any

import pytest
from device_graph import DeviceGraph

from latentlive.core.errors import UserError
from latentlive.m4l_devices.amxd import read_amxd
from latentlive.m4l_devices.loops import build_loops_device
from latentlive.m4l_devices.loops_fx import build_loops_fx_device
from latentlive.m4l_devices.max_objects import split_box_text
from latentlive.m4l_devices.preview import draw_presentation
from latentlive.m4l_devices.validate import validate_device

MODEL_DIR = "/models/my techno"
LATENCY = 512
WET_DELAY = 2 * (2 * 2048 - 64) + LATENCY  # two threaded nn~ with 2048-sample buffers, plus the model
SHAPES = [(4, 2, 1), (32, 16, 4)]  # (latent_size, macro_size, bars)


def prior_metadata(latent: int, macro: int, bars: int) -> dict[str, Any]:
    """Hand-written metadata in the shape export.metadata.read_metadata returns for techno_prior.ts."""
    return {
        "model": "techno_prior",
        "latent_size": latent,
        "macro_size": macro,
        "bars": bars,
        "latent_ratio": 256,
        "latency": LATENCY,
        "methods": {
            "trajectory": {"in_channels": macro + 1, "in_ratio": 1, "out_channels": latent, "out_ratio": 256},
            "decode": {"in_channels": latent, "in_ratio": 256, "out_channels": 1, "out_ratio": 1},
            "loop": {"in_channels": macro + 1, "in_ratio": 1, "out_channels": 1, "out_ratio": 1},
            "encode": {"in_channels": 1, "in_ratio": 1, "out_channels": latent, "out_ratio": 256},
        },
    }


def techno_metadata(latent: int) -> dict[str, Any]:
    """Hand-written metadata in the shape export.metadata.read_metadata returns for techno.ts."""
    return {
        "model": "techno",
        "latent_size": latent,
        "latent_ratio": 256,
        "latency": LATENCY,
        "methods": {
            "encode": {"in_channels": 1, "in_ratio": 1, "out_channels": latent, "out_ratio": 256},
            "decode": {"in_channels": latent, "in_ratio": 256, "out_channels": 1, "out_ratio": 1},
            "forward": {"in_channels": 1, "in_ratio": 1, "out_channels": 1, "out_ratio": 1},
        },
    }


@pytest.fixture(scope="module")
def loops(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    out = tmp_path_factory.mktemp("loops")
    model = Path(MODEL_DIR) / "techno_prior.ts"  # nn~ gets the file name; the file need not exist to build
    return {
        latent: build_loops_device(out / f"l{latent}", str(model), prior_metadata(latent, macro, bars))
        for latent, macro, bars in SHAPES
    }


@pytest.fixture(scope="module")
def effects(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    out = tmp_path_factory.mktemp("fx")
    model = str(Path(MODEL_DIR) / "techno.ts")
    return {
        latent: build_loops_fx_device(out / f"f{latent}", model, techno_metadata(latent))
        for latent in (4, 32)
    }


# --- LatentLoops --------------------------------------------------------------------------------


@pytest.mark.parametrize("latent", [4, 32])
def test_loops_validates_as_a_169px_instrument_in_presentation(loops: dict[int, Path], latent: int) -> None:
    path = loops[latent]
    assert path.name == "LatentLoops.amxd"
    assert validate_device(path) == []
    device = read_amxd(path)
    patcher = device.patcher["patcher"]
    assert device.device_type == "iiii"
    assert patcher["openinpresentation"] == 1 and patcher["openrect"][3] == 169


@pytest.mark.parametrize("latent, macro, bars", SHAPES)
def test_loops_parameters_are_unique_live_controls_with_one_dial_per_macro_and_latent(
    loops: dict[int, Path], latent: int, macro: int, bars: int
) -> None:
    g = DeviceGraph(loops[latent])
    params = [b for b in g.boxes.values() if b.get("parameter_enable")]
    assert all(b["maxclass"].startswith("live.") for b in params)
    names = [b["saved_attribute_attributes"]["valueof"]["parameter_longname"] for b in params]
    assert len(names) == len(set(names))
    by_name = g.params()
    dials = {n for n, b in by_name.items() if b["maxclass"] == "live.dial"}
    assert {n for n in dials if n.startswith("Macro ")} == {f"Macro {k}" for k in range(1, macro + 1)}
    assert {n for n in dials if n.startswith("Latent ")} == {f"Latent {k}" for k in range(1, latent + 1)}
    for name in [f"Macro {k}" for k in range(1, macro + 1)] + [f"Latent {k}" for k in range(1, latent + 1)]:
        valueof = by_name[name]["saved_attribute_attributes"]["valueof"]
        assert "parameter_invisible" not in valueof  # automatable
        assert (valueof["parameter_mmin"], valueof["parameter_mmax"]) == (-3.0, 3.0)
    assert {"Mode", "Loop Bars", "Output Gain", "Model File"} <= set(names)
    mode = by_name["Mode"]["saved_attribute_attributes"]["valueof"]
    assert mode["parameter_enum"] == ["Macro", "Latent"]
    bars_menu = by_name["Loop Bars"]["saved_attribute_attributes"]["valueof"]
    assert bars_menu["parameter_enum"] == ["1 bar", "2 bars", "4 bars"]
    assert bars_menu["parameter_initial"] == [[1, 2, 4].index(bars)]  # defaults to the model's bars


@pytest.mark.parametrize("latent, macro, bars", SHAPES)
def test_loops_nn_boxes_have_the_contract_channel_counts(
    loops: dict[int, Path], latent: int, macro: int, bars: int
) -> None:
    g = DeviceGraph(loops[latent])
    texts = sorted(g.text(i) for i in g.find("nn~"))
    model = "techno_prior.ts"
    assert texts == [
        f"nn~ {model} decode 2048 {latent} 1",
        f"nn~ {model} trajectory 2048 {macro + 1} {latent}",
    ]
    trajectory = g.find(f"nn~ {model} trajectory")[0]
    assert (g.boxes[trajectory]["numinlets"], g.boxes[trajectory]["numoutlets"]) == (macro + 1, latent)


@pytest.mark.parametrize("latent, macro, bars", SHAPES)
def test_trajectory_outlet_k_reaches_decode_inlet_k_through_the_offset_stage(
    loops: dict[int, Path], latent: int, macro: int, bars: int
) -> None:
    g = DeviceGraph(loops[latent])
    trajectory = next(i for i in g.find("nn~ ") if " trajectory " in g.text(i))
    decode = next(i for i in g.find("nn~ ") if " decode " in g.text(i))
    for k in range(latent):
        # trajectory k --> *~ (macro gain) --> +~ --> decode inlet k
        gains = [d for d, inlet in g.out(trajectory, k) if g.text(d) == "*~" and inlet == 0]
        assert len(gains) == 1
        ((offset, inlet),) = g.out(gains[0])
        assert g.text(offset) == "+~" and inlet == 0
        assert g.out(offset) == [(decode, k)]
        # the Latent k dial feeds the other side of the same offset stage (via line~ and the latent gain)
        assert g.reaches(g.param(f"Latent {k + 1}"), (offset, 1), through="line~")
    # every decode inlet is driven, and only by an offset stage
    assert {inlet for s, _, d, inlet in g.lines if d == decode and g.text(s) == "+~"} == set(range(latent))


@pytest.mark.parametrize("latent, macro, bars", SHAPES)
def test_macro_dials_and_the_transport_phase_drive_the_trajectory(
    loops: dict[int, Path], latent: int, macro: int, bars: int
) -> None:
    g = DeviceGraph(loops[latent])
    trajectory = next(i for i in g.find("nn~ ") if " trajectory " in g.text(i))
    for k in range(macro):
        assert g.reaches(g.param(f"Macro {k + 1}"), (trajectory, k), through="line~")
    (phasor,) = g.find("phasor~")
    assert g.text(phasor) == f"phasor~ {bars}.0.0 @lock 1"  # locked to Live's transport, the model's bars
    assert g.reaches(phasor, (trajectory, macro))  # the phase is the last input
    lengths = {g.text(s) for s in g.sources(phasor, 0)}
    assert lengths == {"frequency 1.0.0", "frequency 2.0.0", "frequency 4.0.0"}
    assert g.reaches(g.param("Loop Bars"), (phasor, 0))
    # the phase runs ahead by the nn~ delays plus the model's latency
    assert f"*~ {WET_DELAY}." in {g.text(i) for i in g.boxes}
    assert g.reaches(g.find("delta~")[0], (trajectory, macro), through=f"*~ {WET_DELAY}.")


@pytest.mark.parametrize("latent", [4, 32])
def test_trajectory_is_shown_on_the_latent_dials_with_live_modulate(
    loops: dict[int, Path], latent: int
) -> None:
    g = DeviceGraph(loops[latent])
    trajectory = next(i for i in g.find("nn~ ") if " trajectory " in g.text(i))
    modulators = g.find("live.modulate~")
    assert len(modulators) == latent
    shown = set()
    for k in range(latent):
        for dst, _ in g.out(trajectory, k):
            for mod, inlet in g.out(dst):
                if g.text(mod) == "live.modulate~" and inlet == 0:
                    assert g.text(dst) == "*~ 0.166667"  # 1 / (max - min) of a -3..3 dial
                    shown.add(mod)
    assert shown == set(modulators)
    for mod in modulators:  # ids arrive through the Macro-mode gate; "id 0" stops it in Latent mode
        assert {g.text(s) for s in g.sources(mod, 1)} == {"gate 1", "id 0"}
    # nothing in the patch writes a Latent dial: the modulation only shows, automation stays clean
    dials = {g.param(f"Latent {k + 1}") for k in range(latent)}
    assert not [s for s, _, d, _ in g.lines if d in dials]
    names = g.find('route "Latent 1"')
    assert len(names) == 1 and g.boxes[names[0]]["numoutlets"] == latent + 1


def test_transport_stop_silences_the_output(loops: dict[int, Path]) -> None:
    g = DeviceGraph(loops[4])
    decode = next(i for i in g.find("nn~ ") if " decode " in g.text(i))
    (sync,) = g.find("plugsync~")
    ((state, _),) = g.out(sync, 0)  # the play state outlet
    assert g.text(state) == "change"
    ((gate, _),) = g.out(decode, 0)
    assert g.text(gate) == "*~" and g.reaches(sync, (gate, 1))
    (out,) = g.find("plugout~")
    assert g.reaches(gate, (out, 0)) and g.reaches(gate, (out, 1))
    assert g.reaches(g.param("Output Gain"), (out, 0))


def test_loops_model_drop_loads_both_nn_and_shows_missing_model(loops: dict[int, Path]) -> None:
    g = DeviceGraph(loops[4])
    (load,) = g.find("prepend load")
    assert sorted(split_box_text(g.text(d))[1][1] for d, _ in g.out(load)) == ["decode", "trajectory"]
    assert any("Model missing" in (b.get("text") or "") for b in g.boxes.values())
    assert ("absolutepath", "route notfound") in {(g.text(s), g.text(d)) for s, _, d, _ in g.lines}


# --- LatentLoopsFX ------------------------------------------------------------------------------


@pytest.mark.parametrize("latent", [4, 32])
def test_fx_validates_as_a_169px_audio_effect_with_scale_and_offset_per_latent(
    effects: dict[int, Path], latent: int
) -> None:
    path = effects[latent]
    assert path.name == "LatentLoopsFX.amxd" and validate_device(path) == []
    device = read_amxd(path)
    assert device.device_type == "aaaa"
    assert device.patcher["patcher"]["openinpresentation"] == 1
    assert device.patcher["patcher"]["openrect"][3] == 169
    g = DeviceGraph(path)
    names = [b["saved_attribute_attributes"]["valueof"]["parameter_longname"] for b in g.params().values()]
    all_names = [
        b["saved_attribute_attributes"]["valueof"]["parameter_longname"]
        for b in g.boxes.values()
        if b.get("parameter_enable")
    ]
    assert len(all_names) == len(set(all_names))
    expected = {f"Scale {k}" for k in range(1, latent + 1)} | {f"Offset {k}" for k in range(1, latent + 1)}
    assert {n for n in names if n.startswith(("Scale ", "Offset "))} == expected
    assert {"Dry/Wet", "Output Gain", "Model File"} <= set(names)
    assert all(g.params()[n]["maxclass"] == "live.dial" for n in expected)


@pytest.mark.parametrize("latent", [4, 32])
def test_fx_latent_k_is_scaled_then_offset_into_decode_inlet_k(effects: dict[int, Path], latent: int) -> None:
    g = DeviceGraph(effects[latent])
    model = "techno.ts"
    (encode,) = g.find(f"nn~ {model} encode 2048 1 {latent}")
    (decode,) = g.find(f"nn~ {model} decode 2048 {latent} 1")
    for k in range(latent):
        ((scaled, inlet),) = g.out(encode, k)
        assert g.text(scaled) == "*~" and inlet == 0
        ((shifted, inlet),) = g.out(scaled)
        assert g.text(shifted) == "+~" and inlet == 0
        assert g.out(shifted) == [(decode, k)]
        assert g.reaches(g.param(f"Scale {k + 1}"), (scaled, 1), through="line~")
        assert g.reaches(g.param(f"Offset {k + 1}"), (shifted, 1), through="line~")
    (source,) = g.find("plugin~")
    assert g.reaches(source, (encode, 0), through="*~ 0.5")  # mono: (L + R) / 2


def test_fx_dry_path_is_delayed_by_the_wet_path_latency(effects: dict[int, Path]) -> None:
    g = DeviceGraph(effects[4])
    (source,) = g.find("plugin~")
    (out,) = g.find("plugout~")
    delays = g.find("delay~")
    assert sorted(g.text(d) for d in delays) == [f"delay~ {WET_DELAY + 64} {WET_DELAY}"] * 2
    for side in (0, 1):
        (delay,) = [d for d, _ in g.out(source, side) if d in delays]
        assert g.reaches(delay, (out, side))
    decode = next(i for i in g.find("nn~ ") if " decode " in g.text(i))
    assert g.reaches(decode, (out, 0)) and g.reaches(decode, (out, 1))
    assert g.reaches(g.param("Dry/Wet"), (out, 0))
    (load,) = g.find("prepend load")
    assert sorted(split_box_text(g.text(d))[1][1] for d, _ in g.out(load)) == ["decode", "encode"]


# --- errors and preview -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model": "techno"}, "not 'techno_prior'"),
        ({"macro_size": 0}, "macro_size=0 is outside 2..16"),
        ({"latent_size": 64}, "latent_size=64 is outside 4..32"),
        ({"bars": 3}, "bars=3"),
        ({"macro_size": None}, "lacks or mangles"),
        ({"latency": -5}, "latency=-5"),
        ({"latent_ratio": 128}, "latent_ratio=128"),
        ({"methods": {"trajectory": {"in_channels": 9, "out_channels": 8}}}, "trajectory in_channels=9"),
    ],
)
def test_loops_bad_metadata_is_a_one_line_user_error(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(UserError, match=message) as err:
        build_loops_device(tmp_path, "techno_prior.ts", prior_metadata(8, 4, 2) | change)
    assert "\n" not in str(err.value) and str(err.value).startswith("techno_prior.ts: ")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model": "techno_prior"}, "not 'techno'"),
        ({"latent_size": 64}, "latent_size=64 is outside 4..32"),
        ({"latent_size": "many"}, "lacks or mangles"),
        ({"methods": {"encode": {"in_channels": 1, "out_channels": 16}}}, "encode out_channels=16"),
    ],
)
def test_fx_bad_metadata_is_a_one_line_user_error(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(UserError, match=message) as err:
        build_loops_fx_device(tmp_path, "techno.ts", techno_metadata(8) | change)
    assert "\n" not in str(err.value)
    assert not list(tmp_path.iterdir())


def test_previews_render_pngs(loops: dict[int, Path], effects: dict[int, Path], tmp_path: Path) -> None:
    for name, device in (("loops", loops[32]), ("fx", effects[32])):
        data = draw_presentation(device, tmp_path / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000

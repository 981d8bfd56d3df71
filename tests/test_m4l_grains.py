"""LatentGrains.amxd: structure, signal paths, attribute messages, notes, metadata errors and preview."""

from pathlib import Path
from typing import Any

import pytest
from device_graph import DeviceGraph

from latentlive.core.errors import UserError
from latentlive.m4l_devices.amxd import read_amxd
from latentlive.m4l_devices.grains import build_grains_device
from latentlive.m4l_devices.preview import draw_presentation
from latentlive.m4l_devices.validate import validate_device

MODEL = "/models/my grains/grain.ts"  # nn~ gets the file name; the file need not exist to build
LATENCY = 2048
SIZES = (2, 8, 32)
ATTRIBUTES = {"density": "Density", "jitter": "Jitter", "spray": "Spray", "grain_length": "Grain Length"}


def grain_metadata(latent: int) -> dict[str, Any]:
    """Hand-written metadata in the shape export.metadata.read_metadata returns for grain.ts."""
    return {
        "model": "grain",
        "latent_size": latent,
        "grain_size": 1024,
        "hop": 256,
        "sample_rate": 22050,
        "latent_ratio": 256,
        "latency_samples": LATENCY,
        "attributes": {"density": 40.0, "jitter": 0.0, "spray": 0.0, "grain_length": 1.0, "transpose": 0.0},
        "methods": {
            "forward": {"in_channels": latent, "in_ratio": 256, "out_channels": 1, "out_ratio": 1},
            "encode": {"in_channels": 1, "in_ratio": 1, "out_channels": latent, "out_ratio": 256},
        },
    }


@pytest.fixture(scope="module")
def devices(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    out = tmp_path_factory.mktemp("grains")
    return {d: build_grains_device(out / f"d{d}", MODEL, grain_metadata(d)) for d in SIZES}


class Graph(DeviceGraph):
    """A LatentGrains device: one ``nn~`` box."""

    @property
    def nn(self) -> str:
        (nn,) = [i for i in self.boxes if self.text(i).startswith("nn~")]
        return nn


@pytest.mark.parametrize("d", SIZES)
def test_device_validates_as_a_169px_instrument_in_presentation(devices: dict[int, Path], d: int) -> None:
    path = devices[d]
    assert path.name == "LatentGrains.amxd"
    assert validate_device(path) == []
    device = read_amxd(path)
    patcher = device.patcher["patcher"]
    assert device.device_type == "iiii"
    assert patcher["openinpresentation"] == 1 and patcher["openrect"][3] == 169
    shown = [b["box"] for b in patcher["boxes"] if b["box"].get("presentation")]
    assert all(r[1] + r[3] <= 169 for r in (b["presentation_rect"] for b in shown))


@pytest.mark.parametrize("d", SIZES)
def test_one_automatable_knob_per_latent_and_unique_long_names(devices: dict[int, Path], d: int) -> None:
    g = Graph(devices[d])
    params = [b for b in g.boxes.values() if b.get("parameter_enable")]
    assert all(b["maxclass"].startswith("live.") for b in params)
    names = [b["saved_attribute_attributes"]["valueof"]["parameter_longname"] for b in params]
    assert len(names) == len(set(names))
    knobs = {n for n in names if n.startswith("Latent ")}
    assert knobs == {f"Latent {k}" for k in range(1, d + 1)}
    for name in knobs:
        valueof = g.valueof(name)
        assert "parameter_invisible" not in valueof  # automatable
        assert (valueof["parameter_mmin"], valueof["parameter_mmax"]) == (-3.0, 3.0)
    expected = {"Path Mode", "Path Shape", "Path Rate", "Path Depth", "Path Step", "Root Note"}
    assert expected | {"Attack", "Release", "Hold", "Output Gain", "Model File"} | set(
        ATTRIBUTES.values()
    ) <= set(names)
    assert g.valueof("Path Mode")["parameter_enum"] == ["Off", "LFO", "Walk"]
    assert g.valueof("Path Rate")["parameter_enum"] == [
        "1/4 bar",
        "1/2 bar",
        "1 bar",
        "2 bars",
        "4 bars",
        "8 bars",
    ]


@pytest.mark.parametrize("d", SIZES)
def test_nn_box_has_one_inlet_per_latent_each_driven_by_its_knob(devices: dict[int, Path], d: int) -> None:
    g = Graph(devices[d])
    nn = g.boxes[g.nn]
    assert nn["text"] == f"nn~ grain.ts forward 1024 {d} 1"
    assert (nn["numinlets"], nn["numoutlets"]) == (d, 1)
    signal_inlets = {inlet for s, _, dst, inlet in g.lines if dst == g.nn and g.text(s) in ("line~", "+~")}
    assert signal_inlets == set(range(d))
    for k in range(d):
        # knob k --> "$1 20" --> line~ (--> +~ the path, knobs 1 and 2) --> nn~ inlet k
        (signal,) = [s for s in g.sources(g.nn, k) if g.text(s) in ("line~", "+~")]
        (source,) = g.sources(signal, 0) if k < 2 else [signal]
        (ramp,) = g.sources(source)
        assert g.text(source) == "line~" and g.sources(ramp) == [g.param(f"Latent {k + 1}")]


def test_xy_pad_drives_the_first_two_knobs(devices: dict[int, Path]) -> None:
    g = Graph(devices[8])
    (pad,) = [i for i, b in g.boxes.items() if b["maxclass"] == "pictslider"]
    assert g.boxes[pad]["presentation"] == 1
    for axis in range(2):
        ((scale, _),) = g.out(pad, axis)
        assert g.text(scale) == "/ 100."
        assert g.out(scale) == [(g.param(f"Latent {axis + 1}"), 0)]
    # the knobs move the pad back with "set" (no output, no loop)
    assert g.reaches(g.param("Latent 1"), (pad, 0)) and g.reaches(g.param("Latent 2"), (pad, 0))
    assert g.chain(g.one("pak 0. 0."), "prepend set", "pictslider")


def test_path_generator_adds_lfo_and_walk_to_knobs_one_and_two(devices: dict[int, Path]) -> None:
    g = Graph(devices[8])
    (phasor,) = [i for i in g.boxes if g.text(i).startswith("phasor~")]
    assert g.text(phasor) == "phasor~ 2.0.0 @lock 1"  # locked to Live's transport, default 2 bars
    rates = sorted(g.text(s) for s in g.sources(phasor, 0))
    assert rates == sorted(f"frequency {r}" for r in ("4n", "2n", "1n", "2.0.0", "4.0.0", "8.0.0"))
    assert g.reaches(g.param("Path Rate"), (phasor, 0))
    metro = g.one("metro 50")
    assert g.reaches(g.param("Path Mode"), (metro, 0))
    # each path sum (+~ of LFO and walk) feeds the +~ after knob 1 or 2, and nothing else
    for axis in range(2):
        (knob_sum,) = [s for s in g.sources(g.nn, axis) if g.text(s) == "+~"]
        (path_sum,) = g.sources(knob_sum, 1)
        assert g.text(path_sum) == "+~"
        assert g.reaches(phasor, (path_sum, 0)) and g.reaches(metro, (path_sum, 1))
        assert g.reaches(g.param("Path Depth"), (path_sum, 0))  # the LFO is scaled by Depth
    assert not any(g.reaches(phasor, (g.nn, k)) for k in range(2, 8))
    # Shape: the y axis lags by a quarter turn (circle) or not at all (line)
    lag = g.one("-~ 0.25")
    assert sorted(g.text(s) for s in g.sources(lag, 1)) == ["0.0", "0.25"]
    assert g.reaches(g.param("Path Shape"), (lag, 1))


def test_grain_dials_set_nn_attributes_only_on_change_and_after_a_load(devices: dict[int, Path]) -> None:
    g = Graph(devices[8])
    loaded = g.one("t b l l")  # the model box's load fan: outlet 0 bangs after "load <path>"
    for name, longname in ATTRIBUTES.items():
        changed, store, setter = g.chain(g.param(longname), "change 0.", "f", f"prepend set {name}")
        assert g.out(setter) == [(g.nn, 0)]
        assert (store, 0) in g.out(loaded, 0)
    assert g.valueof("Density")["parameter_initial"] == [40.0]
    assert g.valueof("Grain Length")["parameter_mmin"] == 0.1


def test_notes_set_the_transposition_from_the_root_note(devices: dict[int, Path]) -> None:
    g = Graph(devices[8])
    semitones = g.one("- 60")
    assert g.reaches(g.one("midiin"), (semitones, 0))
    assert g.sources(semitones, 1) == [g.param("Root Note")]
    assert g.valueof("Root Note")["parameter_initial"] == [60]
    _, store, setter = g.chain(semitones, "change", "i", "prepend set transpose")
    assert g.out(setter) == [(g.nn, 0)]
    assert (store, 0) in g.out(g.one("t b l l"), 0)  # re-sent to a freshly loaded model


def test_gate_envelope_with_attack_and_release_shapes_the_audio(devices: dict[int, Path]) -> None:
    g = Graph(devices[8])
    attack, release = g.one("pack 0. 10.0"), g.one("pack 0. 300.0")
    assert g.sources(attack, 1) == [g.param("Attack")] and g.sources(release, 1) == [g.param("Release")]
    (envelope,) = {d for d, _ in g.out(attack)} & {d for d, _ in g.out(release)}
    assert g.text(envelope) == "line~"
    route = g.one("gate 2")  # outlet 0: note on, outlet 1: note off
    assert g.reaches(g.one("midiin"), (route, 1))
    assert g.reaches(route, (attack, 0)) and g.reaches(route, (release, 0))
    (on,) = [d for d, _ in g.out(route, 0)]
    (off,) = [d for d, _ in g.out(route, 1)]
    assert not g.reaches(off, (attack, 0))  # a note off never opens the envelope
    assert g.text(off) == "==" and g.sources(off, 1) == [on]  # only the sounding note releases
    # envelope + Hold --> clip~ --> delay~ (nn~ and model delay) --> *~ with the audio --> gain --> plugout~
    both, bounded = g.chain(envelope, "+~", "clip~ 0. 1.")
    ((late, _),) = g.out(bounded)
    size, delay = (int(a) for a in g.text(late).split()[1:])
    assert g.text(late).startswith("delay~ ") and delay == 2 * 1024 - 64 + LATENCY and size >= delay
    ((voice, _),) = g.out(late)
    assert g.text(voice) == "*~"
    assert g.reaches(g.param("Hold"), (both, 1))
    assert g.out(g.nn) == [(voice, 0)] and (voice, 1) in g.out(late)
    out = g.one("plugout~ 1 2")
    assert g.reaches(voice, (out, 0)) and g.reaches(voice, (out, 1))


def test_model_drop_and_missing_model_status(devices: dict[int, Path]) -> None:
    g = Graph(devices[8])
    assert g.chain(g.one("prepend load"), g.text(g.nn))
    assert g.chain(g.one("absolutepath"), "route notfound")
    assert any("Model missing" in (b.get("text") or "") for b in g.boxes.values())


def test_model_defaults_become_the_initial_dial_values(tmp_path: Path) -> None:
    metadata = grain_metadata(8)
    metadata["attributes"] = {"density": 80.0, "spray": 0.5}
    g = Graph(build_grains_device(tmp_path, MODEL, metadata))
    assert g.valueof("Density")["parameter_initial"] == [80.0]
    assert g.valueof("Spray")["parameter_initial"] == [0.5]
    assert g.valueof("Jitter")["parameter_initial"] == [1.0]  # the export's default (a cloud) when not given


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model": "techno"}, "not 'grain'"),
        ({"latent_size": None}, "lacks or mangles"),
        ({"latent_size": 33}, "latent_size=33"),
        ({"latent_ratio": 512}, "latent_ratio=512"),
        ({"methods": {"forward": {"in_channels": 3, "out_channels": 1}}}, "in_channels=3"),
        ({"latency_samples": -5}, "latency"),
        ({"attributes": {"density": 1000.0}}, "density=1000.0"),
        ({"attributes": {"grain_length": "long"}}, "grain_length='long'"),
    ],
)
def test_bad_metadata_is_a_one_line_user_error(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message) as err:
        build_grains_device(tmp_path, MODEL, grain_metadata(8) | change)
    assert "\n" not in str(err.value) and MODEL in str(err.value)
    assert not list(tmp_path.iterdir())


def test_preview_writes_a_png(devices: dict[int, Path], tmp_path: Path) -> None:
    out = draw_presentation(devices[32], tmp_path / "grains.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000

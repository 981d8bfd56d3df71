"""LatentBand.amxd: structure, parameters, metadata errors, and its MIDI logic run message by message."""

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from device_graph import DeviceGraph

from latentlive import registry
from latentlive.cli import main
from latentlive.core.errors import UserError
from latentlive.export.metadata import read_metadata
from latentlive.m4l_devices.amxd import read_amxd
from latentlive.m4l_devices.band import LOOK_AHEAD, NN_BUFFER, build_band_device, part_channels
from latentlive.m4l_devices.max_objects import split_box_text
from latentlive.m4l_devices.preview import draw_presentation
from latentlive.m4l_devices.validate import validate_device

MODEL = "/models/my band/band.ts"
CHORALE = (["soprano", "alto", "tenor", "bass"], ["mono", "mono", "mono", "mono"], 4)
COMBO = (["lead", "keys", "bass"], ["mono", "poly", "mono"], 3)  # keys: 3 voices -> 5 lanes


def band_metadata(names: list[str], kinds: list[str], voices: int, ahead: int = 1) -> dict[str, Any]:
    """Hand-written metadata in the shape export.metadata.read_metadata returns for band.ts (voices per part)."""
    per_part = [1 if k == "mono" else voices for k in kinds]
    lanes = sum(per_part)
    method = {"in_channels": lanes + 1, "in_ratio": 1, "out_channels": lanes, "out_ratio": 1}
    return {
        "model": "band",
        "part_names": names,
        "part_kinds": kinds,
        "voices": per_part,
        "lanes": lanes,
        "midi_channels": part_channels(len(names)),
        "steps": 16,
        "ahead": ahead,
        "latent_size": 8,
        "attributes": {"temperature": 1.0, "part": 0, "ahead": ahead, "latency": 0},
        "methods": {"next": dict(method), "fill": dict(method)},
    }


def lane_count(metadata: dict[str, Any]) -> int:
    return metadata["methods"]["next"]["out_channels"]


@pytest.fixture(scope="module")
def devices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    out = tmp_path_factory.mktemp("band")
    built = {}
    for name, (names, kinds, voices) in (("chorale", CHORALE), ("combo", COMBO)):
        metadata = band_metadata(names, kinds, voices, ahead=2 if name == "combo" else 1)
        built[name] = (build_band_device(out / name, MODEL, metadata), metadata)
    # the short form: one voice count for every poly part, default channels
    short = band_metadata(*COMBO) | {"voices": 3, "midi_channels": None}
    del short["midi_channels"], short["lanes"]
    built["short"] = (build_band_device(out / "short", MODEL, short), short)
    return built


# --- structure -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["chorale", "combo", "short"])
def test_band_device_validates_as_a_169px_midi_effect(devices: dict, name: str) -> None:
    path, _ = devices[name]
    assert path.name == "LatentBand.amxd"
    assert validate_device(path) == []
    device = read_amxd(path)
    patcher = device.patcher["patcher"]
    assert device.device_type == "mmmm"
    assert patcher["openinpresentation"] == 1 and patcher["openrect"][3] == 169


@pytest.mark.parametrize("name", ["chorale", "combo", "short"])
def test_nn_boxes_name_next_and_fill_with_lanes_plus_position_in_and_lanes_out(
    devices: dict, name: str
) -> None:
    path, metadata = devices[name]
    g, lanes = DeviceGraph(path), lane_count(metadata)
    nns = {split_box_text(g.text(i))[1][1]: i for i in g.find("nn~")}
    assert set(nns) == {"next", "fill"}
    for method, nn in nns.items():
        assert g.text(nn) == f"nn~ band.ts {method} 1024 {lanes + 1} {lanes}"
        assert (g.boxes[nn]["numinlets"], g.boxes[nn]["numoutlets"]) == (lanes + 1, lanes)
        # lanes 0..L-1 come from sig~ (the sounding pitch, -1 at rest), inlet L from the position chain
        for lane in range(lanes):
            ((lane_out, _),) = [(s, o) for s, o in g.into(nn, lane) if not g.text(s).startswith("prepend")]
            ((gated, _),) = g.into(lane_out, 0)
            ((lifted, _),) = g.into(gated, 0)
            ((pitch, _),) = g.into(lifted, 0)
            ((still, _),) = g.into(gated, 1)
            ((moved, _),) = g.into(still, 0)
            ((count, _),) = g.into(moved, 0)
            texts = [g.text(b) for b in (lane_out, gated, lifted, pitch, still, moved, count)]
            assert texts == ["-~ 1.", "*~", "+~ 1.", "sig~ -1", "==~ 0.", "delta~", "sig~"]
        ((plus, _),) = g.into(nn, lanes)
        ((times, _),) = g.into(plus, 0)
        ((phasor, _),) = g.into(times, 0)
        assert [g.text(b) for b in (plus, times, phasor)] == [
            "+~ 0.5",
            "*~ 16384.",
            "phasor~ 1024.0.0 @lock 1",
        ]
        # every outlet is sampled by a snapshot~ banged through the method gate
        for lane in range(lanes):
            ((snap, inlet),) = g.out(nn, lane)
            assert g.text(snap) == "snapshot~" and inlet == 0
            assert [g.text(s) for s, _ in g.into(snap, 0) if s != nn] == ["gate 2"]
        # "load <path>" reaches both
        assert [g.text(s) for s, _ in g.into(nn, 0) if g.text(s) == "prepend load"] == ["prepend load"]


@pytest.mark.parametrize("name", ["chorale", "combo", "short"])
def test_each_part_plays_on_its_own_channel_skipping_ten(devices: dict, name: str) -> None:
    path, metadata = devices[name]
    g = DeviceGraph(path)
    parts = len(metadata["part_names"])
    formats = sorted(g.find("midiformat"), key=lambda i: int(split_box_text(g.text(i))[1][0]))
    channels = metadata.get("midi_channels", part_channels(parts))
    assert [int(split_box_text(g.text(f))[1][0]) for f in formats] == channels
    assert part_channels(15) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16]
    midiout = g.find("midiout")
    assert len(midiout) == 1 and all(g.out(f, 0) == [(midiout[0], 0)] for f in formats)
    params = g.params()
    for name_, fmt, channel in zip(metadata["part_names"], formats, channels, strict=True):
        numbox = params[f"Channel {name_}"]
        valueof = numbox["saved_attribute_attributes"]["valueof"]
        assert (valueof["parameter_mmin"], valueof["parameter_mmax"], valueof["parameter_initial"]) == (
            1,
            16,
            [channel],
        )
        ((order, _),) = g.out(numbox["id"], 0)
        assert (fmt, 6) in g.out(order, 0)  # the number box sets the channel inlet of its part's midiformat
    assert (midiout[0], 0) in g.out(g.find("midiin")[0], 0)  # the user's own MIDI passes through


def test_the_metadata_channels_are_the_defaults(tmp_path: Path) -> None:
    metadata = band_metadata(*COMBO) | {"midi_channels": [3, 5, 7]}
    g = DeviceGraph(build_band_device(tmp_path, MODEL, metadata))
    assert sorted(g.text(f) for f in g.find("midiformat")) == ["midiformat 3", "midiformat 5", "midiformat 7"]
    initial = [
        g.params()[f"Channel {n}"]["saved_attribute_attributes"]["valueof"]["parameter_initial"]
        for n in COMBO[0]
    ]
    assert initial == [[3], [5], [7]]


@pytest.mark.parametrize("name", ["chorale", "combo", "short"])
def test_ui_parameters_and_their_ranges(devices: dict, name: str) -> None:
    path, metadata = devices[name]
    g = DeviceGraph(path)
    params = g.params()
    names = [
        b["saved_attribute_attributes"]["valueof"]["parameter_longname"]
        for b in g.boxes.values()
        if b.get("parameter_enable")
    ]
    assert len(names) == len(set(names))
    assert all(b["maxclass"].startswith("live.") for b in params.values())
    assert {"On", "Played Part", "Method", "Ahead", "Temperature", "Model File"} <= set(params)

    def valueof(longname: str) -> dict[str, Any]:
        return params[longname]["saved_attribute_attributes"]["valueof"]

    assert params["Played Part"]["maxclass"] == "live.menu"
    assert valueof("Played Part")["parameter_enum"] == metadata["part_names"]
    assert params["Ahead"]["maxclass"] == "live.tab" and valueof("Ahead")["parameter_enum"] == ["1", "2"]
    assert valueof("Ahead")["parameter_initial"] == [metadata["ahead"] - 1]
    assert params["Method"]["maxclass"] == "live.tab" and valueof("Method")["parameter_enum"] == [
        "next",
        "fill",
    ]
    assert (valueof("Temperature")["parameter_mmin"], valueof("Temperature")["parameter_mmax"]) == (0.0, 2.0)
    assert valueof("Temperature")["parameter_initial"] == [1.0]
    assert valueof("On")["parameter_enum"] == ["off", "on"] and valueof("On")["parameter_initial"] == [1]
    shown = [b for b in g.boxes.values() if b.get("presentation")]
    assert all(b.get("presentation") for b in params.values())
    assert max(b["presentation_rect"][1] + b["presentation_rect"][3] for b in shown) <= 169
    # part, ahead (as 1 / 2) and temperature set the nn~ attributes of both methods
    ((plus, _),) = g.out(g.param("Ahead"), 0)
    assert g.text(plus) == "+ 1"
    for source, attribute in (
        (g.param("Played Part"), "part"),
        (plus, "ahead"),
        (g.param("Temperature"), "temperature"),
    ):
        (setter,) = [d for d, _ in g.out(source, 0) if g.text(d).startswith("prepend set")]
        assert g.text(setter) == f"prepend set {attribute}"
        assert sorted(split_box_text(g.text(d))[1][1] for d, _ in g.out(setter, 0)) == ["fill", "next"]


def test_metadata_errors_are_one_line_user_errors(tmp_path: Path) -> None:
    good = band_metadata(*CHORALE)
    cases = [
        ({"model": "drums"}, "not 'band'"),
        ({"part_kinds": ["mono"]}, "expected 1..15"),
        ({"part_kinds": ["mono", "mono", "mono", "chords"]}, "not all 'mono' or 'poly'"),
        (
            {"part_kinds": ["mono"] * 3 + ["poly"], "voices": [1, 1, 1, 0]},
            "voices [1, 1, 1, 0] are not all >= 1",
        ),
        ({"steps": 12}, "steps=12"),
        ({"ahead": 3}, "ahead=3"),
        ({"methods": {"next": {"in_channels": 4, "out_channels": 4}}}, "next in_channels=4, expected 5"),
        ({"part_names": [f"p{i}" for i in range(16)], "part_kinds": ["mono"] * 16}, "expected 1..15"),
        ({"voices": [1, 1, 1]}, "voices has 3 entries for 4 parts"),
        ({"lanes": 5}, "lanes=5 but the voices make 4"),
        ({"midi_channels": [1, 2, 3, 17]}, "midi_channels [1, 2, 3, 17]"),
    ]
    for change, message in cases:
        with pytest.raises(UserError, match=re.escape(message)) as err:
            build_band_device(tmp_path, MODEL, good | change)
        assert "\n" not in str(err.value)
    bad = dict(good)
    del bad["part_names"]
    with pytest.raises(UserError, match="part_names"):
        build_band_device(tmp_path, MODEL, bad)
    assert not list(tmp_path.iterdir())


def test_build_registers_the_band_builder() -> None:
    assert registry.load(registry.find("band").device) is build_band_device


def test_preview_writes_a_png(devices: dict, tmp_path: Path) -> None:
    out = draw_presentation(devices["combo"][0], tmp_path / "band.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


# --- the patch, run message by message ---------------------------------------------------------------


class Machine:
    """A message-level run of the device's control logic, for the objects its MIDI paths use.

    Signals are values: ``sig~`` keeps its last value (what nn~ would read), a ``snapshot~`` bang reads
    the value the test gave the nn~ outlet it listens to. Fan-out follows Max (right to left). Named
    messages (``forward`` -> ``receive``) travel on ``bus`` (name -> the receiving machines and boxes),
    shared by the devices of one Live set.
    """

    def __init__(self, path: Path, bus: dict[str, list[tuple["Machine", str]]] | None = None) -> None:
        self.g = DeviceGraph(path)
        self.bus = {} if bus is None else bus
        self.state: dict[str, Any] = {}
        self.nn_out: dict[tuple[str, int], float] = {}
        self.midi: list[int] = []
        self.attributes: dict[str, dict[str, Any]] = {}
        for box_id, box in self.g.boxes.items():
            valueof = box.get("saved_attribute_attributes", {}).get("valueof", {})
            if "parameter_initial" in valueof:
                self.state[box_id] = valueof["parameter_initial"][0]
            elif box.get("maxclass") == "newobj":
                self.state[box_id] = self._initial(*split_box_text(box["text"])[:2])

    @staticmethod
    def _initial(name: str, args: list[str]) -> Any:
        numbers = [float(a) if "." in a else int(a) for a in args if re.fullmatch(r"-?\d+(\.\d*)?", a)]
        if name in ("gate",):
            return numbers[1] if len(numbers) > 1 else 0
        if name in ("pack", "pak", "midiformat", "expr"):
            return list(numbers) or [0, 0, 0, 0]
        if name in ("flush", "sprintf"):
            return []
        if name in ("forward", "receive"):
            return None  # the name it sends to / listens on
        if name == "change":
            return 0
        return numbers[0] if numbers else 0

    def emit(self, box_id: str, outlet: int, value: Any) -> None:
        for dst, inlet in self.g.out(box_id, outlet):
            self.send(dst, inlet, value)

    def ui(self, longname: str, value: Any) -> None:
        box_id = self.g.param(longname)
        self.state[box_id] = value
        self.emit(box_id, 0, value)

    def play(self, status: int, pitch: int, velocity: int) -> None:
        for byte in (status, pitch, velocity):
            self.emit(self.g.find("midiin")[0], 0, byte)

    def _upstream(self, lane: int, inlet: int) -> str:
        """The sig~ behind nn~ lane ``lane``: the pitch (``inlet`` 0 of the ``*~``) or the note count (1)."""
        nn = self.g.find("nn~")[0]
        box = next(s for s, _ in self.g.into(nn, lane) if self.g.text(s) == "-~ 1.")
        box = self.g.into(self.g.into(box, 0)[0][0], inlet)[0][0]
        while not self.g.text(box).startswith("sig~"):
            box = self.g.into(box, 0)[0][0]
        return box

    def lanes(self) -> list[float]:
        """The pitch each lane carries (what nn~ reads between note-ons)."""
        count = self.g.boxes[self.g.find("nn~")[0]]["numoutlets"]
        return [self.state[self._upstream(k, 0)] for k in range(count)]

    def notes(self) -> list[int]:
        """The note count of each lane: each note-on moves it, so nn~ reads -1 for that one sample."""
        count = self.g.boxes[self.g.find("nn~")[0]]["numoutlets"]
        return [self.state[self._upstream(k, 1)] for k in range(count)]

    def messages(self) -> list[tuple[int, int, int]]:
        """MIDI out as (status, pitch, velocity), then cleared."""
        out = [tuple(self.midi[k : k + 3]) for k in range(0, len(self.midi), 3)]
        self.midi.clear()
        return out

    def send(self, box_id: str, inlet: int, value: Any) -> None:  # noqa: C901 - one branch per object
        box = self.g.boxes[box_id]
        if box["maxclass"] != "newobj":
            if box["maxclass"].startswith("live.") and value == "bang" and box_id in self.state:
                self.emit(box_id, 0, self.state[box_id])  # a bang re-sends a live.* control's value
            return
        name, args = split_box_text(box["text"])[:2]
        op: Callable[..., Any] | None = OPERATORS.get(name)
        s = self.state
        if op is not None:
            if inlet == 1:
                s[box_id] = value
                return
            if value == "bang":
                return
            self.emit(box_id, 0, int(op(value, s[box_id])))
        elif name in ("t", "trigger"):
            for k in reversed(range(len(args))):
                a = args[k]
                out = "bang" if a == "b" else value if a in "ilfa" else int(a)
                self.emit(box_id, k, out)
        elif name == "unpack":
            for k in reversed(range(len(value))):
                self.emit(box_id, k, value[k])
        elif name == "gate":
            if inlet == 0:
                s[box_id] = value
            elif s[box_id]:
                self.emit(box_id, s[box_id] - 1, value)
        elif name == "sel":
            matches = [k for k, a in enumerate(args) if int(a) == value]
            self.emit(box_id, matches[0], "bang") if matches else self.emit(box_id, len(args), value)
        elif name == "sig~":
            s[box_id] = value
        elif name == "i":
            if inlet == 1:
                s[box_id] = value
            else:
                if value != "bang":
                    s[box_id] = value
                self.emit(box_id, 0, s[box_id])
        elif name in ("pack", "pak"):
            values = s[box_id]
            if isinstance(value, int | float):
                values[inlet] = value
            if inlet == 0 or name == "pak":
                self.emit(box_id, 0, list(values))
        elif name == "expr":
            inputs = value if isinstance(value, list) else [value]
            code = re.sub(
                r"\$[if](\d)",
                lambda m: f"x[{int(m.group(1)) - 1}]",
                args[0] if len(args) == 1 else " ".join(args),
            )
            code = code.replace("&&", " and ")
            self.emit(box_id, 0, int(eval(code, {"int": int}, {"x": inputs})))  # noqa: S307 - the device's own expr
        elif name == "change":
            if value != s[box_id]:
                s[box_id] = value
                self.emit(box_id, 0, value)
        elif name == "midiparse":
            s[box_id] = (s[box_id] if isinstance(s[box_id], list) else []) + [value]
            if len(s[box_id]) == 3:
                status, pitch, velocity = s[box_id]
                s[box_id] = []
                self.emit(box_id, 0, [pitch, velocity if status & 0xF0 == 0x90 else 0])
        elif name == "midiformat":
            if inlet == 6:
                s[box_id][0] = value
            elif inlet == 0:
                for byte in (0x90 | (s[box_id][0] - 1), *value):
                    self.emit(box_id, 0, byte)
        elif name == "midiout":
            self.midi.append(value)
        elif name == "snapshot~" and value == "bang":
            ((nn, outlet),) = [
                (s_, o) for s_, o in self.g.into(box_id, 0) if self.g.text(s_).startswith("nn~")
            ]
            self.emit(box_id, 0, float(self.nn_out.get((nn, outlet), -2.0)))
        elif name == "prepend":
            self.emit(box_id, 0, [*args, value])
        elif name == "nn~" and isinstance(value, list) and value[0] == "set":
            self.attributes.setdefault(args[1], {})[value[1]] = value[2]
        elif name == "midiin":
            self.emit(box_id, 0, value)
        else:
            self._named(box_id, name, args, inlet, value)

    def _named(self, box_id: str, name: str, args: list[str], inlet: int, value: Any) -> None:
        """sprintf, forward, receive and flush: the objects of the named path to LatentBandPart."""
        s = self.state
        if name == "sprintf":
            values = s[box_id] or [0] * self.g.boxes[box_id]["numinlets"]
            for k, v in enumerate(value if isinstance(value, list) else [value]):
                values[inlet + k] = v
            s[box_id] = values
            if inlet == 0:
                self.emit(box_id, 0, (" ".join(args).replace("%ld", "%d") % tuple(values)).split())
        elif name == "forward" and isinstance(value, list) and value[0] == "send":
            s[box_id] = value[1]
        elif name == "forward":
            for machine, receive in list(self.bus.get(s[box_id], [])):
                machine.emit(receive, 0, value)
        elif name == "receive" and isinstance(value, list) and value[0] == "set":
            if s[box_id] is not None:
                self.bus[s[box_id]].remove((self, box_id))
            s[box_id] = value[1]
            self.bus.setdefault(value[1], []).append((self, box_id))
        elif name == "flush" and value == "bang":
            for pitch in s[box_id]:
                self.emit(box_id, 1, 0)
                self.emit(box_id, 0, pitch)
            s[box_id] = []
        elif name == "flush":
            pitch, velocity = value
            if velocity:
                s[box_id].append(pitch)
            elif pitch in s[box_id]:
                s[box_id].remove(pitch)
            self.emit(box_id, 1, velocity)
            self.emit(box_id, 0, pitch)


OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "==": lambda a, b: a == b,
    "+": lambda a, b: a + b,
}


def loaded(path: Path, bus: dict[str, list[tuple[Machine, str]]] | None = None) -> Machine:
    """The device loaded into a Live set (sharing ``bus``): Live's device on, controls re-sent."""
    m = Machine(path, bus)
    for box in m.g.find("live.thisdevice"):
        m.emit(box, 1, 1)
        m.emit(box, 0, "bang")
    return m


def started(path: Path, bus: dict[str, list[tuple[Machine, str]]] | None = None) -> Machine:
    """The device loaded into a running Live set: controls re-sent, Live's device on, transport playing."""
    m = loaded(path, bus)
    m.emit(m.g.find("plugsync~")[0], 0, 1)
    return m


def tick(m: Machine, method: str, tokens: list[float]) -> list[tuple[int, int, int]]:
    """One 16th: the nn~ of ``method`` outputs ``tokens``, the other holds (-2); returns the MIDI sent."""
    for nn in m.g.find("nn~"):
        for lane, token in enumerate(tokens):
            m.nn_out[(nn, lane)] = token if f" {method} " in m.g.text(nn) else -2
    m.emit(m.g.find("metro")[0], 0, "bang")
    return m.messages()


def test_played_notes_go_to_the_lanes_of_the_played_part(devices: dict) -> None:
    path, _ = devices["combo"]  # lanes: lead 0, keys 1..3, bass 4
    m = started(path)
    assert m.lanes() == [-1] * 5
    assert m.attributes["next"] == {"part": 0, "ahead": 2, "temperature": 1.0} == m.attributes["fill"]
    m.play(0x90, 60, 90)
    m.play(0x90, 64, 90)  # a mono part: the newest note takes the lane
    assert m.lanes() == [64, -1, -1, -1, -1]
    m.play(0x80, 60, 0)  # not the sounding note: ignored
    assert m.lanes()[0] == 64
    m.play(0x90, 64, 0)  # note-on velocity 0 is a note-off
    assert m.lanes()[0] == -1
    assert m.messages() == [(0x90, 60, 90), (0x90, 64, 90), (0x80, 60, 0), (0x90, 64, 0)]  # MIDI thru
    assert m.notes()[0] == 2
    m.play(0x90, 64, 90)  # the same pitch again (a clip may end and restart it in one signal vector)
    assert m.lanes()[0] == 64 and m.notes()[0] == 3
    m.play(0x80, 64, 0)

    m.ui("Played Part", 1)  # keys: 3 voices
    assert m.attributes["next"]["part"] == 1 == m.attributes["fill"]["part"]
    for pitch in (48, 52, 55):
        m.play(0x90, pitch, 80)
    assert m.lanes() == [-1, 48, 52, 55, -1]
    m.play(0x80, 52, 0)
    m.play(0x90, 59, 80)  # takes the freed lane
    m.play(0x90, 62, 80)  # all held: the last lane takes it
    assert m.lanes() == [-1, 48, 59, 62, -1]
    m.play(0x80, 55, 0)  # was taken over: ignored
    m.play(0x80, 48, 0)
    assert m.lanes() == [-1, -1, 59, 62, -1]
    m.ui("Played Part", 2)  # a change of part releases every lane
    assert m.lanes() == [-1] * 5


def test_tokens_become_notes_on_each_part_channel_and_the_played_part_is_silent(devices: dict) -> None:
    path, _ = devices["combo"]  # lead ch 1 (played), keys ch 2 (lanes 1..3), bass ch 3 (lane 4)
    m = started(path)
    m.messages()
    first = tick(m, "next", [70, 60, 64, -1, 36])
    assert sorted(first) == [(0x91, 60, 100), (0x91, 64, 100), (0x92, 36, 100)]  # nothing on channel 1
    # -2 holds, -1 ends the note, a pitch ends the sounding note and starts its own
    second = tick(m, "next", [-2, -2, -1, 67, 38])
    assert sorted(second) == [(0x91, 64, 0), (0x91, 67, 100), (0x92, 36, 0), (0x92, 38, 100)]
    assert second.index((0x92, 36, 0)) < second.index((0x92, 38, 100))
    same = tick(m, "next", [-2, 60, -2, -2, -2])  # the same pitch again: a new note
    assert same == [(0x91, 60, 0), (0x91, 60, 100)]
    # the fill outputs are read once Method is fill
    assert tick(m, "fill", [-1, -1, -1, -1, 40]) == []
    m.ui("Method", 1)
    assert tick(m, "fill", [-2, -2, -2, -2, 40]) == [(0x92, 38, 0), (0x92, 40, 100)]
    # a new channel: the sounding notes end on the old one first
    m.ui("Channel keys", 5)
    assert sorted(m.messages()) == [(0x91, 60, 0), (0x91, 67, 0)]
    assert tick(m, "fill", [-2, 50, -2, -2, -2]) == [(0x94, 50, 100)]


@pytest.mark.parametrize(
    "stop",
    [
        lambda m: m.emit(m.g.find("plugsync~")[0], 0, 0),  # transport stops
        lambda m: m.ui("On", 0),  # the device's On button
        lambda m: [m.emit(b, 1, 0) for b in m.g.find("live.thisdevice")],  # Live switches the device off
    ],
)
def test_every_note_on_gets_its_note_off(devices: dict, stop: Callable[[Machine], Any]) -> None:
    m = started(devices["combo"][0])
    m.messages()
    played = tick(m, "next", [70, 60, 64, 67, 36])
    stop(m)
    assert sorted(m.messages()) == sorted((status, pitch, 0) for status, pitch, _ in played)
    assert tick(m, "next", [71, 61, 65, 68, 37]) == []  # silent until started again


def test_the_part_you_take_over_falls_silent_and_the_one_you_leave_plays(devices: dict) -> None:
    m = started(devices["combo"][0])
    m.messages()
    tick(m, "next", [70, 60, 64, 67, 36])
    m.ui("Played Part", 1)  # the keys
    assert sorted(m.messages()) == [(0x91, p, 0) for p in (60, 64, 67)]
    assert tick(m, "next", [72, 50, 52, -2, -2]) == [(0x90, 72, 100)]  # the lead is free again


# --- timing: the device's signals through nn~ ----------------------------------------------------------


@pytest.mark.parametrize("sample_rate, bpm", [(44100, 160), (48000, 180)])
def test_nn_delay_stays_inside_the_look_ahead(sample_rate: int, bpm: int) -> None:
    """Tokens read at Live's 16th tick are those of the step that begins, up to these tempos."""
    per_step = sample_rate * 15 / bpm
    assert 0 < (2 * NN_BUFFER - 64) / per_step < LOOK_AHEAD


# soprano, measure 0: (start step, steps, pitch, samples off the grid: a player is never exact)
# and when it ends (samples before the next sixteenth; 0: legato into the next note, as a clip plays)
PLAYED = [
    (0, 4, 60, 900, 200),
    (4, 2, 62, -1200, 200),
    (8, 3, 64, 300, 200),
    (12, 2, 65, -600, 0),
    (14, 2, 65, 0, 200),
]


def through_nn(ts: Path, method: str, sample_rate: int, bpm: int, measures: int = 3) -> np.ndarray:
    """The tokens the device reads at each 16th tick ``[steps, L]``: ``PLAYED`` on lane 0 (the played
    part), -1 on the others, the position half a step ahead, buffers of ``NN_BUFFER`` and nn~'s delay."""
    module = torch.jit.load(str(ts))
    lanes = read_metadata(ts)["lanes"]
    per_step = sample_rate * 15 / bpm
    n = int(measures * 16 * per_step) // NN_BUFFER * NN_BUFFER
    x = np.full((1, lanes + 1, n), -1.0, dtype=np.float32)
    for start, length, pitch, early_late, early_end in PLAYED:
        on = int(start * per_step + early_late)
        x[0, 0, on : int((start + length) * per_step - early_end)] = pitch
        x[0, 0, on] = -1  # the device's one-sample mark of a note-on
    x[0, lanes] = np.arange(n) / per_step + LOOK_AHEAD
    y = np.concatenate(
        [
            getattr(module, method)(torch.from_numpy(x[..., k : k + NN_BUFFER])).numpy()
            for k in range(0, n, NN_BUFFER)
        ],
        2,
    )
    heard = np.concatenate([np.full((1, lanes, 2 * NN_BUFFER - 64), -1.0, dtype=np.float32), y], 2)
    return heard[0, :, [round(s * per_step) for s in range(int(n / per_step))]]


# --- a real export -------------------------------------------------------------------------------------


@pytest.fixture
def band_model(band_ts: Path) -> Path:
    """The tiny band export of tests/conftest.py."""
    return band_ts


def test_devices_command_builds_the_band_device_of_a_tiny_run(band_model: Path, tmp_path: Path) -> None:
    run = band_model.parent.parent
    assert main(["devices", "--run", str(run), "--out", str(tmp_path), "--preview"]) == 0
    device = tmp_path / "LatentBand.amxd"
    assert validate_device(device) == [] and (tmp_path / "LatentBand.png").is_file()
    metadata = read_metadata(band_model)
    g = DeviceGraph(device)
    lanes = metadata["methods"]["next"]["out_channels"]
    assert sorted(g.text(i).split()[2:] for i in g.find("nn~")) == [
        ["fill", "1024", str(lanes + 1), str(lanes)],
        ["next", "1024", str(lanes + 1), str(lanes)],
    ]
    assert g.params()["Played Part"]["saved_attribute_attributes"]["valueof"]["parameter_enum"] == list(
        metadata["part_names"]
    )
    assert len(g.find("midiformat")) == len(metadata["part_names"])


@pytest.mark.parametrize("sample_rate, bpm", [(48000, 120), (44100, 160)])
def test_played_notes_come_back_on_their_steps_through_fill(
    band_model: Path, sample_rate: int, bpm: int
) -> None:
    """``fill`` returns the played part of the measure before unchanged: what the device feeds is recorded on
    the nearest steps, and what it reads at each tick is the token of that step."""
    tokens = through_nn(band_model, "fill", sample_rate, bpm)
    assert (tokens[:16] == -1).all()  # nothing is known before the first measure ends
    soprano = tokens[16:32, 0].astype(int).tolist()
    onsets = [(k, soprano[k]) for k in range(16) if soprano[k] >= 0]
    assert onsets == [(0, 60), (4, 62), (8, 64), (12, 65), (14, 65)]  # the repeated 65 is two notes
    # inside each note it holds; the step right after a release on the grid is left to the export's rule
    assert [soprano[k] for k in (1, 2, 3, 5, 9, 10, 13, 15)] == [-2] * 8
    assert soprano[7] == -1
    assert ((tokens >= -2) & (tokens <= 127)).all()


def test_next_answers_one_measure_after_the_played_one(band_model: Path) -> None:
    tokens = through_nn(band_model, "next", 48000, 120)
    assert (tokens[:16] == -1).all()
    assert ((tokens >= -2) & (tokens <= 127) & (tokens == np.round(tokens))).all()

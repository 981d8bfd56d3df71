"""LatentBandPart.amxd, the receiver that plays one LatentBand part on its own track: structure, the named
path from the band device, and a note-off for every note whatever is switched, run message by message."""

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from device_graph import DeviceGraph
from test_m4l_band import COMBO, MODEL, Machine, band_metadata, loaded, started, tick

from latentlive import registry
from latentlive.core.errors import UserError
from latentlive.export.metadata import read_metadata
from latentlive.m4l_devices.amxd import read_amxd
from latentlive.m4l_devices.band import BANDS, build_band_device, part_bus
from latentlive.m4l_devices.band_part import DEVICE_NAME, build_band_part_device
from latentlive.m4l_devices.build import build_devices_for_run
from latentlive.m4l_devices.validate import validate_device

Bus = dict[str, list[tuple[Machine, str]]]
# combo: lead (lane 0, played by the user), keys (lanes 1..3), bass (lane 4)
FIRST = [70, 60, 64, -1, 36]  # keys 60 + 64, bass 36
SECOND = [71, 62, -2, -2, 38]  # keys 60 -> 62 (64 holds), bass 36 -> 38


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """LatentBand and LatentBandPart of the combo metadata, side by side."""
    out = tmp_path_factory.mktemp("band_part")
    metadata = band_metadata(*COMBO)
    return build_band_device(out, MODEL, metadata), build_band_part_device(out, MODEL, metadata)


def live_set(built: tuple[Path, Path]) -> tuple[Machine, list[Machine], Bus]:
    """A playing band device and one receiver per part (receiver i plays part i), on one bus."""
    bus: Bus = {}
    band = started(built[0], bus)
    receivers = [loaded(built[1], bus) for _ in COMBO[0]]
    for part, receiver in enumerate(receivers):
        receiver.ui("Part", part)
    band.messages()
    return band, receivers, bus


def hanging(log: list[tuple[int, int, int]]) -> Counter:
    """(channel, pitch) of the notes a MIDI log leaves sounding."""
    count: Counter = Counter()
    for status, pitch, velocity in log:
        note = (status & 0x0F, pitch)
        if status & 0xF0 == 0x90 and velocity:
            count[note] += 1
        elif status & 0xF0 in (0x80, 0x90) and count[note]:  # a stray note-off ends nothing
            count[note] -= 1
    return +count


# --- structure -----------------------------------------------------------------------------------


def test_receiver_validates_as_a_169px_midi_effect_with_the_part_names(built: tuple[Path, Path]) -> None:
    _, path = built
    assert path.name == "LatentBandPart.amxd" and validate_device(path) == []
    device = read_amxd(path)
    assert device.device_type == "mmmm" and device.patcher["patcher"]["openrect"][3] == 169
    g = DeviceGraph(path)
    assert set(g.params()) == {"On", "Band", "Part"}
    assert g.valueof("Part")["parameter_enum"] == COMBO[0]
    assert g.valueof("Part")["parameter_initial"] == [1]  # the first part the band device plays
    assert (
        g.valueof("Band")["parameter_enum"]
        == list(BANDS)
        == DeviceGraph(built[0]).valueof("Band")["parameter_enum"]
    )
    assert not g.find("nn~")  # no model: the band device plays, the receiver routes
    (receive,) = g.find("receive")
    assert g.text(receive) == "receive"  # no name typed in: "set latentband_<band>_<part>" names it
    assert [g.text(s) for s in g.sources(receive, 0)] == ["sprintf set latentband_%ld_%ld"]


def test_the_band_device_forwards_each_part_to_its_name(built: tuple[Path, Path]) -> None:
    g = DeviceGraph(built[0])
    for part in range(len(COMBO[0])):
        (name,) = g.find(f"sprintf send latentband_%ld_{part + 1}")
        ((forward, _),) = g.out(name, 0)
        assert g.text(forward) == "forward"
        # every note of the part goes both to its channel and to its receivers
        packs = [s for s in g.sources(forward, 0) if s != name]
        assert packs and all(g.text(p).startswith("pack 0") for p in packs)
        (midiformat,) = {d for p in packs for d, _ in g.out(p, 0) if g.text(d).startswith("midiformat")}
        assert all((midiformat, 0) in g.out(p, 0) for p in packs)


def test_registry_builds_the_receiver_beside_the_band_device() -> None:
    assert registry.find("band").companions == (
        (DEVICE_NAME, "latentlive.m4l_devices.band_part:build_band_part_device"),
    )
    assert registry.load(registry.find("band").companions[0][1]) is build_band_part_device
    devices = [spec.device_name for spec in registry.MODELS] + [
        name for spec in registry.MODELS for name, _ in spec.companions
    ]
    assert len(devices) == len(set(devices))  # one file name per device in the shared folder


# --- the named path, message by message ------------------------------------------------------------


def test_each_receiver_plays_its_part_and_only_it(built: tuple[Path, Path]) -> None:
    band, (lead, keys, bass), bus = live_set(built)
    assert {name for name, boxes in bus.items() if boxes} == {part_bus(0, p) for p in range(3)}
    played = tick(band, "next", FIRST)
    assert sorted(played) == [(0x91, 60, 100), (0x91, 64, 100), (0x92, 36, 100)]  # the channels stay
    assert lead.messages() == []  # the user plays the lead on the band's own track
    assert sorted(keys.messages()) == [(0x90, 60, 100), (0x90, 64, 100)]
    assert bass.messages() == [(0x90, 36, 100)]
    tick(band, "next", SECOND)
    assert keys.messages() == [(0x90, 60, 0), (0x90, 62, 100)] and bass.messages() == [
        (0x90, 36, 0),
        (0x90, 38, 100),
    ]
    keys.play(0x90, 48, 90)  # the receiver's own track still plays through it
    assert keys.messages() == [(0x90, 48, 90)]


def test_two_bands_in_one_set_keep_their_parts_apart(built: tuple[Path, Path]) -> None:
    bus: Bus = {}
    band_a, band_b = started(built[0], bus), started(built[0], bus)
    band_b.ui("Band", 1)
    keys_a, keys_b = loaded(built[1], bus), loaded(built[1], bus)
    keys_b.ui("Band", 1)
    tick(band_a, "next", FIRST)
    assert sorted(keys_a.messages()) == [(0x90, 60, 100), (0x90, 64, 100)] and keys_b.messages() == []
    tick(band_b, "next", [-2, 50, -2, -2, -2])
    assert keys_b.messages() == [(0x90, 50, 100)] and keys_a.messages() == []


def _stop_receiver(receiver: int, action: Callable[[Machine], Any]) -> Callable[[Machine, list], Any]:
    return lambda band, receivers: action(receivers[receiver])


def _emit(text: str, outlet: int, value: Any) -> Callable[[Machine], None]:
    return lambda m: [m.emit(box, outlet, value) for box in m.g.find(text)]


KEYS, BASS = 1, 2
STOPS = {  # what is switched -> the receivers whose notes must all end
    "receiver changes part": (_stop_receiver(KEYS, lambda r: r.ui("Part", 0)), [KEYS]),
    "receiver changes band": (_stop_receiver(KEYS, lambda r: r.ui("Band", 3)), [KEYS]),
    "receiver On button off": (_stop_receiver(KEYS, lambda r: r.ui("On", 0)), [KEYS]),
    "receiver off in Live": (_stop_receiver(KEYS, _emit("live.thisdevice", 1, 0)), [KEYS]),
    "receiver deleted": (_stop_receiver(BASS, _emit("freebang", 0, "bang")), [BASS]),
    "band plays the part itself": (lambda b, r: b.ui("Played Part", KEYS), [KEYS]),
    "band changes the part's channel": (lambda b, r: b.ui("Channel bass", 9), [BASS]),
    "band changes band letter": (lambda b, r: b.ui("Band", 2), [KEYS, BASS]),
    "transport stops": (lambda b, r: _emit("plugsync~", 0, 0)(b), [KEYS, BASS]),
    "band On button off": (lambda b, r: b.ui("On", 0), [KEYS, BASS]),
    "band off in Live": (lambda b, r: _emit("live.thisdevice", 1, 0)(b), [KEYS, BASS]),
    "band deleted": (lambda b, r: _emit("freebang", 0, "bang")(b), [KEYS, BASS]),
}


def notes_left(
    built: tuple[Path, Path], stop: Callable[[Machine, list], Any], broken: tuple[str, str] = ("", "")
) -> list[Counter]:
    """Two 16ths of notes through the receivers, then ``stop``: the notes each receiver leaves sounding.
    ``broken``: ("band" or "receivers", the text of boxes whose outgoing lines are cut there first)."""
    band, receivers, _ = live_set(built)
    where, text = broken
    for m in [band] if where == "band" else receivers if where == "receivers" else []:
        m.g.lines = [line for line in m.g.lines if m.g.text(line[0]) != text]
    logs: list[list[tuple[int, int, int]]] = [[] for _ in receivers]
    for tokens in (FIRST, SECOND):
        tick(band, "next", tokens)
        for log, receiver in zip(logs, receivers, strict=True):
            log += receiver.messages()
    assert [sorted(hanging(log)) for log in logs[1:]] == [[(0, 62), (0, 64)], [(0, 38)]]
    stop(band, receivers)
    left = []
    for log, receiver in zip(logs, receivers, strict=True):
        log += receiver.messages()
        left.append(hanging(log))
    return left


@pytest.mark.parametrize("what", list(STOPS))
def test_every_note_a_receiver_plays_gets_its_note_off(built: tuple[Path, Path], what: str) -> None:
    stop, silenced = STOPS[what]
    left = notes_left(built, stop)
    assert [part for part in silenced if left[part]] == []
    assert all(left[part] for part in (KEYS, BASS) if part not in silenced)  # the others play on


@pytest.mark.parametrize(
    "what, broken",
    [
        ("receiver changes part", ("receivers", "t i b")),
        ("receiver On button off", ("receivers", "sel 0")),
        ("band deleted", ("band", "freebang")),
    ],
)
def test_the_note_off_check_fails_without_the_path_that_ends_the_notes(
    built: tuple[Path, Path], what: str, broken: tuple[str, str]
) -> None:
    stop, silenced = STOPS[what]
    left = notes_left(built, stop, broken=broken)
    assert all(left[part] for part in silenced)


# --- latentlive devices ------------------------------------------------------------------------------


def test_devices_command_writes_the_receiver_beside_the_band_device(band_ts: Path, tmp_path: Path) -> None:
    run = band_ts.parent.parent
    written = build_devices_for_run(run, out=tmp_path, preview=True)
    assert [p.name for p in written] == [
        "LatentBand.amxd",
        "band.ts",
        "LatentBandPart.amxd",
        "LatentBand.png",
        "LatentBandPart.png",
    ]
    receiver = tmp_path / "LatentBandPart.amxd"
    assert validate_device(receiver) == []
    assert DeviceGraph(receiver).valueof("Part")["parameter_enum"] == list(
        read_metadata(band_ts)["part_names"]
    )
    receiver.write_bytes(receiver.read_bytes().replace(b"Band Part", b"Old Part!"))  # an earlier build
    build_devices_for_run(run, out=tmp_path)  # ours: replaced without --force
    assert b"Old Part!" not in receiver.read_bytes() and validate_device(receiver) == []

    elsewhere = tmp_path / "mine"
    elsewhere.mkdir()
    (elsewhere / "LatentBandPart.amxd").write_text("my own device")
    with pytest.raises(UserError) as err:
        build_devices_for_run(run, out=elsewhere)
    assert "\n" not in str(err.value) and "LatentBandPart.amxd" in str(err.value)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["LatentBandPart.amxd"]  # nothing written

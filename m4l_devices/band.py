"""LatentBand.amxd: the band player, a MIDI effect around ``nn~ band.ts next`` and ``nn~ band.ts fill``.

Signal flow (the contract is docs/band_encoding.md; ``L`` lanes, one per mono part and ``voices``
per poly part, in part order)::

    midiin --> midiparse --> note on / off --> gate (the played part) --> the voice lanes of that part:
        sig~ pitch (-1 when released), -1 for one sample at each note-on (delta~ of a note count) ---.
    phasor~ <N>.0.0 @lock 1 --> *~ 16N --> +~ 0.5 (sixteenths since the start) -----> nn~ <model> next 1024 L+1 L
                                                                                    nn~ <model> fill 1024 L+1 L
    metro 16n @quantize 16n --> gate (part on, not played) --> gate (method) --> snapshot~ per lane
        --> token: p >= 0 note-off + note-on p, -1 note-off, -2 nothing --> midiformat <channel of the part>
    midiin ----------------------------------------------------------------------------------> midiout

Recording: a note-on takes the first free lane of the played part (the last lane takes it when all
are held: a mono part plays legato, the newest note wins); a note-off frees the lane that holds it.
The position runs half a step ahead of Live's: a played note counts for the nearest step, and when the
16th tick comes the tokens of the step that begins are out of nn~ (its threaded buffer delays results
by ``2 x 1024 - 64`` samples, under half a 16th up to about 180 BPM at 48 kHz). The locked phasor~
counts ``POSITION_BARS`` bars from the start of the song, then wraps.

Output: each part has its own MIDI channel (the metadata's ``midi_channels``, else part i on channel
i + 1 skipping 10; a number box per part changes it) for a synth that routes by channel; the played part
is not echoed, the user's own MIDI passes through. The same notes go, as ``pitch velocity`` lists, to
the named receive ``latentband_<band>_<part>`` (both from 1; ``forward``), where the LatentBandPart
device on another track picks them up (m4l_devices/band_part.py): a Live track that takes MIDI from
another track takes all of it, whatever the channel. The Band menu (A..H) keeps the parts of several
LatentBand devices in one set apart.
A part falls silent (note-offs of its sounding notes, on its channel and to its receivers) when it
becomes the played part, when its channel changes, when the Band letter changes, when the transport
stops, when the device is switched off (its On button or Live's) and when it is deleted (``freebang``).
Both methods run side by side, so switching between next and fill keeps their histories.
Dropping a ``.ts`` on the model box loads it into both nn~ (m4l_devices/common.py).
"""

from dataclasses import dataclass
from typing import Any

from latentlive import registry
from latentlive.core.errors import UserError
from latentlive.m4l_devices.amxd import MIDI_EFFECT
from latentlive.m4l_devices.common import (
    device_builder,
    metadata_where,
    model_file_name,
    model_loading,
    quote_atom,
    reading_metadata,
    section_header,
)
from latentlive.m4l_devices.loops import check_method
from latentlive.m4l_devices.patcher import Box, Param, Patcher

DEVICE_NAME = registry.device_name("band")
STEPS = 16
METHODS = ("next", "fill")
AHEAD = (1, 2)
KINDS = ("mono", "poly")
DEFAULT_VOICES = 4
NN_BUFFER = 1024  # 21 ms at 48 kHz: room for a next-measure prediction (p99 goal 20 ms) per buffer
POSITION_BARS = 1024  # the transport-locked phasor~ counts this many bars, then wraps
LOOK_AHEAD = 0.5  # steps: notes count for the nearest step, tokens are ready when the step begins
NOTE_VELOCITY = 100  # velocity is not modelled
DRUM_CHANNEL = 10  # left to drums: parts skip it
MAX_PARTS = 15
TEMPERATURE_RANGE = (0.0, 2.0)  # 0: the most likely measure
BANDS = tuple(f"Band {letter}" for letter in "ABCDEFGH")  # several LatentBand devices in one set
BUS_PREFIX = "latentband"  # global send/receive names (a "---" name would be private to the device)

# presentation layout, in pixels
TOP = 20.0
PLAY_W = 104.0
ON_W = 40.0
LABEL_W = 38.0
ROW_STEP = 22.0
DIAL_W, DIAL_H = 44.0, 48.0
CHANNEL_ROWS = 8
CHANNEL_ROW_H = 16.0
CHANNEL_COL_W = 96.0
MODEL_W = 96.0


def part_bus(band: int, part: int) -> str:
    """The send/receive name that carries ``part``'s notes from the LatentBand set to ``band`` (both from 0)."""
    return f"{BUS_PREFIX}_{band + 1}_{part + 1}"


def part_channels(parts: int) -> list[int]:
    """Default MIDI channel (1..16) of each part: part i on channel i + 1, skipping the drum channel."""
    return [c for c in range(1, 17) if c != DRUM_CHANNEL][:parts]


def _lanes(metadata: dict[str, Any], kinds: tuple[str, ...]) -> tuple[int, ...]:
    """Lanes per part: 1 per mono part, ``voices`` (one number, or one per part) per poly part."""
    voices = metadata.get("voices", DEFAULT_VOICES)
    if isinstance(voices, list):
        per_part = [int(v) for v in voices]
        if len(per_part) != len(kinds):
            raise ValueError(f"voices has {len(per_part)} entries for {len(kinds)} parts")
    else:
        per_part = [int(voices)] * len(kinds)
    return tuple(1 if kind == "mono" else v for kind, v in zip(kinds, per_part, strict=True))


@dataclass(frozen=True)
class BandSpec:
    """What the device needs from the metadata of ``band.ts``."""

    model_file: str  # a bare file name: nn~ finds it beside the device
    part_names: tuple[str, ...]
    part_kinds: tuple[str, ...]
    lanes: tuple[int, ...]  # lanes of each part
    channels: tuple[int, ...]  # default MIDI channel of each part
    ahead: int = 1
    temperature: float = 1.0
    part: int = 0  # the part played by default

    @property
    def parts(self) -> int:
        return len(self.part_names)

    @property
    def total_lanes(self) -> int:
        return sum(self.lanes)

    def lanes_of(self, part: int) -> range:
        """Indices of ``part``'s lanes among the ``L`` nn~ channels."""
        start = sum(self.lanes[:part])
        return range(start, start + self.lanes[part])

    @classmethod
    def from_metadata(
        cls, model_path: str, metadata: dict[str, Any], model_file: str | None = None
    ) -> "BandSpec":
        """Check the metadata of ``band.ts`` (see docs/band_encoding.md); UserError if unusable."""
        where, fix = metadata_where(model_path, metadata, "band", "band model")
        with reading_metadata(where, fix):
            names = tuple(str(n) for n in metadata["part_names"])
            kinds = tuple(str(k) for k in metadata["part_kinds"])
        if not 1 <= len(names) <= MAX_PARTS or len(kinds) != len(names):
            raise UserError(
                f"{where} has {len(names)} part names / {len(kinds)} kinds, expected 1..{MAX_PARTS} of each; {fix}"
            )
        if any(k not in KINDS for k in kinds):
            raise UserError(f"{where} part_kinds {list(kinds)} are not all 'mono' or 'poly'; {fix}")
        with reading_metadata(where, fix):
            lanes = _lanes(metadata, kinds)
            channels = tuple(int(c) for c in metadata.get("midi_channels", part_channels(len(names))))
            steps = int(metadata.get("steps", STEPS))
            ahead = int(metadata.get("ahead", 1))
            attrs = metadata.get("attributes", {})
            temperature = float(attrs.get("temperature", 1.0))
            part = int(attrs.get("part", 0))
        if any(n < 1 for n in lanes):
            raise UserError(f"{where} voices {list(lanes)} are not all >= 1; {fix}")
        if steps != STEPS:
            raise UserError(f"{where} steps={steps}; the device plays 16-step measures, {fix} with steps 16")
        if ahead not in AHEAD:
            raise UserError(f"{where} ahead={ahead}; the device plays 1 or 2 measures ahead, {fix}")
        if len(channels) != len(names) or not all(1 <= c <= 16 for c in channels):
            raise UserError(
                f"{where} midi_channels {list(channels)} are not one channel 1..16 per part; {fix}"
            )
        total = sum(lanes)
        if int(metadata.get("lanes", total)) != total:
            raise UserError(f"{where} lanes={metadata['lanes']} but the voices make {total}; {fix}")
        for method in METHODS:
            check_method(where, metadata, method, total + 1, total, fix)
        lo, hi = TEMPERATURE_RANGE
        return cls(
            model_file_name(model_file or model_path),
            names,
            kinds,
            lanes,
            channels,
            ahead,
            min(max(temperature, lo), hi),
            part if 0 <= part < len(names) else 0,
        )


@dataclass(frozen=True)
class Layout:
    """x positions of the presentation sections and the device width."""

    play_x: float
    channels_x: float
    channel_cols: int
    model_x: float
    width: float

    @classmethod
    def for_parts(cls, parts: int) -> "Layout":
        cols = -(-parts // CHANNEL_ROWS)
        channels_x = 6.0 + PLAY_W + 12.0
        model_x = channels_x + cols * CHANNEL_COL_W + 8.0
        return cls(6.0, channels_x, cols, model_x, model_x + MODEL_W + 6.0)


def _unique(names: list[str]) -> list[str]:
    return [f"{n} {i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]


@dataclass(frozen=True)
class Controls:
    """The Live parameters of the Band section."""

    on: Box
    band: Box
    part: Box
    method: Box
    ahead: Box
    temperature: Box


def _labelled(p: Patcher, label: str, y: float) -> tuple[float, float, float, float]:
    """A label on the left of a Band row; returns the rect of the control on its right."""
    p.comment(label, (520, y, 60, 18), presentation_rect=(6.0, y, LABEL_W, 16), maxclass="live.comment")
    return (6.0 + LABEL_W, y, PLAY_W - LABEL_W, 16.0)


def _controls(p: Patcher, spec: BandSpec, lay: Layout, nns: list[Box]) -> Controls:
    """On, the Band letter, the played part, method, ahead and temperature; part / ahead / temperature set
    nn~ attributes."""
    section_header(p, "Band", lay.play_x, PLAY_W)
    on = p.ui(
        "live.text",
        (20, 40, 60, 16),
        param=Param("On", "On", kind="enum", enum=("off", "on"), initial="on"),
        presentation_rect=(lay.play_x, TOP, ON_W, 16),
        text="On",
        texton="On",  # lit while on, as Live's device buttons
        mode=1,
    )
    band = p.ui(
        "live.menu",
        (20, 70, 70, 15),
        param=Param("Band", "Band", kind="enum", enum=BANDS, initial=BANDS[0]),
        presentation_rect=(lay.play_x + ON_W + 4, TOP, PLAY_W - ON_W - 4, 16),
    )
    part = p.ui(
        "live.menu",
        (100, 40, 100, 15),
        param=Param("Played Part", "Part", kind="enum", enum=spec.part_names, initial=spec.part),
        presentation_rect=_labelled(p, "You play", TOP + ROW_STEP),
    )
    method = p.ui(
        "live.tab",
        (220, 40, 80, 16),
        param=Param("Method", "Method", kind="enum", enum=METHODS, initial="next"),
        presentation_rect=_labelled(p, "Method", TOP + 2 * ROW_STEP),
        num_lines_patching=1,
        num_lines_presentation=1,
    )
    ahead = p.ui(
        "live.tab",
        (320, 40, 80, 16),
        param=Param(
            "Ahead", "Ahead", kind="enum", enum=tuple(str(a) for a in AHEAD), initial=AHEAD.index(spec.ahead)
        ),
        presentation_rect=_labelled(p, "Ahead", TOP + 3 * ROW_STEP),
        num_lines_patching=1,
        num_lines_presentation=1,
    )
    lo, hi = TEMPERATURE_RANGE
    temperature = p.ui(
        "live.dial",
        (420, 40, DIAL_W, DIAL_H),
        param=Param("Temperature", "Temp", mmin=lo, mmax=hi, initial=spec.temperature, unitstyle="float"),
        presentation_rect=(lay.play_x + (PLAY_W - DIAL_W) / 2, TOP + 4 * ROW_STEP + 2, DIAL_W, DIAL_H),
    )
    ahead_bars = p.obj("+ 1", (320, 80))
    p.connect(ahead, 0, ahead_bars, 0)
    for source, attribute, x in (
        (part, "part", 100),
        (ahead_bars, "ahead", 320),
        (temperature, "temperature", 420),
    ):
        setter = p.obj(f"prepend set {attribute}", (x, 120))
        p.connect(source, 0, setter, 0)
        for nn in nns:
            p.connect(setter, 0, nn, 0)
    return Controls(on, band, part, method, ahead, temperature)


def _position(p: Patcher, spec: BandSpec, nns: list[Box]) -> None:
    """Sixteenths since the start of the song, half a step ahead, into the last inlet of each nn~."""
    phase = p.obj(f"phasor~ {POSITION_BARS}.0.0 @lock 1", (20, 340))
    sixteenths = p.obj(f"*~ {POSITION_BARS * STEPS}.", (20, 380))
    ahead = p.obj(f"+~ {LOOK_AHEAD}", (20, 420))
    p.connect(phase, 0, sixteenths, 0)
    p.connect(sixteenths, 0, ahead, 0)
    for nn in nns:
        p.connect(ahead, 0, nn, spec.total_lanes)


def _lane_signal(p: Patcher, pitch: Box, notes: Box, x: float) -> Box:
    """The lane as nn~ reads it: ``pitch`` (sig~, -1 when released), but -1 for the one sample where the
    note count ``notes`` (sig~) moves, so a note that follows the same pitch within one signal vector (a
    clip's legato repeat: note-off and note-on at once) still shows the module a new onset."""
    moved = p.obj("delta~", (x + 60, 960))
    still = p.obj("==~ 0.", (x + 60, 990))
    lifted = p.obj("+~ 1.", (x, 960))
    gated = p.obj("*~", (x, 1020))
    lane = p.obj("-~ 1.", (x, 1050))
    p.connect(notes, 0, moved, 0)
    p.connect(moved, 0, still, 0)
    p.connect(pitch, 0, lifted, 0)
    p.connect(lifted, 0, gated, 0)
    p.connect(still, 0, gated, 1)
    p.connect(gated, 0, lane, 0)
    return lane


def _record_lanes(
    p: Patcher, lanes: range, on: tuple[Box, int], off: tuple[Box, int], reset: Box, nns: list[Box], x: float
) -> None:
    """One part's voice lanes: a note-on takes the first free lane, a note-off frees the lane holding it.

    Per lane, ``gate 2 1`` is the lane's state (outlet 0: free, takes the pitch; outlet 1: held, offers
    it to the next lane), ``==`` holds the sounding pitch (-1: none) to recognise its note-off and a
    counter numbers the notes the lane took (see :func:`_lane_signal`).
    """
    offer = on
    for n, lane in enumerate(lanes):
        lx = x + n * 120.0
        state = p.obj("gate 2 1", (lx, 760))
        p.connect(*offer, state, 1)
        take = p.obj("t 2 i i b", (lx, 800))  # right to left: count, remember, sound, mark held
        p.connect(state, 0, take, 0)
        if n == len(lanes) - 1:
            p.connect(state, 1, take, 0)  # every lane held: the last one takes the new note
        offer = (state, 1)
        count = p.obj("i", (lx + 90, 840))
        next_count = p.obj("+ 1", (lx + 90, 870))
        notes = p.obj("sig~", (lx + 90, 900))
        p.connect(take, 3, count, 0)
        p.connect(count, 0, next_count, 0)
        p.connect(next_count, 0, count, 1)
        p.connect(next_count, 0, notes, 0)
        sounding = p.obj("== -1", (lx + 60, 840))
        pitch = p.obj("sig~ -1", (lx, 900))
        p.connect(take, 2, sounding, 1)
        p.connect(take, 1, pitch, 0)
        p.connect(take, 0, state, 0)
        p.connect(off[0], off[1], sounding, 0)
        mine = p.obj("sel 1", (lx + 60, 870))
        release = p.obj("t 1 -1 -1", (lx + 60, 900))  # forget the pitch, silence the lane, mark free
        p.connect(sounding, 0, mine, 0)
        p.connect(mine, 0, release, 0)
        p.connect(reset, 0, release, 0)
        p.connect(release, 2, sounding, 1)
        p.connect(release, 1, pitch, 0)
        p.connect(release, 0, state, 0)
        lane_signal = _lane_signal(p, pitch, notes, lx)
        for nn in nns:
            p.connect(lane_signal, 0, nn, lane)


def _recording(p: Patcher, spec: BandSpec, controls: Controls, nns: list[Box], midiout: Box) -> Box:
    """MIDI in --> the voice lanes of the played part (the others stay -1); MIDI thru. Returns the reset."""
    midiin = p.obj("midiin", (20, 600))
    p.connect(midiin, 0, midiout, 0)
    parse = p.obj("midiparse", (20, 630))
    note = p.obj("unpack 0 0", (20, 660))
    p.connect(midiin, 0, parse, 0)
    p.connect(parse, 0, note, 0)
    # unpack sends the velocity first: it picks the gate outlet (1 note on, 2 note off)
    is_off = p.obj("== 0", (100, 680))
    which = p.obj("+ 1", (100, 700))
    p.connect(note, 1, is_off, 0)
    p.connect(is_off, 0, which, 0)
    on_off = p.obj("gate 2", (20, 720))
    p.connect(which, 0, on_off, 0)
    p.connect(note, 0, on_off, 1)
    # the played part chooses the lanes; a change of part releases every lane
    to_part = p.obj("+ 1", (200, 680))
    p.connect(controls.part, 0, to_part, 0)
    reset = p.obj("t b", (300, 680))
    p.connect(controls.part, 0, reset, 0)
    ons, offs = (p.obj(f"gate {spec.parts}", (x, 740)) for x in (20.0, 160.0))
    for outlet, route in enumerate((ons, offs)):
        p.connect(to_part, 0, route, 0)
        p.connect(on_off, outlet, route, 1)
    x = 20.0
    for i in range(spec.parts):
        _record_lanes(p, spec.lanes_of(i), (ons, i), (offs, i), reset, nns, x)
        x += 120.0 * spec.lanes[i] + 40.0
    return reset


def _playing_parts(p: Patcher, spec: BandSpec, controls: Controls, ready: Box) -> list[Box]:
    """Per part: 1 while it may sound (On, Live's device on, transport running, not the played part).

    Returns each part's ``change`` box (a 0 after a 1 releases the part, its value opens the tick gate).
    """
    state = p.obj("pak 1 0 1 0", (600, 200))  # On, transport running, device on, played part
    p.connect(controls.on, 0, state, 0)
    sync = p.obj("plugsync~", (700, 140))
    running = p.obj("change", (700, 170))
    p.connect(sync, 0, running, 0)
    p.connect(running, 0, state, 1)
    p.connect(ready, 1, state, 2)
    p.connect(controls.part, 0, state, 3)
    changes = []
    for i in range(spec.parts):
        sounds = p.obj(f"expr $i1 && $i2 && $i3 && $i4 != {i}", (600 + i * 160, 240))
        changed = p.obj("change", (600 + i * 160, 270))
        p.connect(state, 0, sounds, 0)
        p.connect(sounds, 0, changed, 0)
        changes.append(changed)
    return changes


def _play_lane(p: Patcher, snapshots: list[Box], outputs: list[Box], release: Box, x: float) -> None:
    """One lane's token at the tick --> ``pitch velocity`` into each of ``outputs`` (the part's midiformat
    and its forward): p >= 0 note-off then note-on p, -1 note-off, -2 nothing."""
    token = p.obj("expr int($f1 + 2.5) - 2", (x, 1200))  # the token, rounded
    for snapshot in snapshots:
        p.connect(snapshot, 0, token, 0)
    kind = p.obj("sel -2 -1", (x, 1230))
    p.connect(token, 0, kind, 0)
    start = p.obj("t i i b", (x, 1260))  # right to left: end the sounding note, remember, play
    stop = p.obj("t -1 b", (x + 60, 1290))  # right to left: note-off of the sounding pitch, forget it
    p.connect(kind, 2, start, 0)
    p.connect(kind, 1, stop, 0)
    p.connect(start, 2, stop, 0)
    p.connect(release, 0, stop, 0)
    sounding = p.obj("i -1", (x + 60, 1320))
    p.connect(stop, 1, sounding, 0)
    p.connect(stop, 0, sounding, 1)
    p.connect(start, 1, sounding, 1)
    if_any = p.obj("sel -1", (x + 60, 1350))
    note_off = p.obj("pack 0 0", (x + 60, 1380))
    note_on = p.obj(f"pack 0 {NOTE_VELOCITY}", (x, 1380))
    p.connect(sounding, 0, if_any, 0)
    p.connect(if_any, 1, note_off, 0)
    p.connect(start, 0, note_on, 0)
    for output in outputs:
        p.connect(note_off, 0, output, 0)
        p.connect(note_on, 0, output, 0)


def _channels(p: Patcher, spec: BandSpec, lay: Layout) -> list[Box]:
    """A name and a MIDI channel number box per part, in columns of ``CHANNEL_ROWS``."""
    section_header(p, "Channels", lay.channels_x, lay.channel_cols * CHANNEL_COL_W - 4)
    boxes = []
    longnames = _unique([f"Channel {n}" for n in spec.part_names])
    for i, (name, channel) in enumerate(zip(spec.part_names, spec.channels, strict=True)):
        col, row = divmod(i, CHANNEL_ROWS)
        x, y = lay.channels_x + col * CHANNEL_COL_W, TOP + row * CHANNEL_ROW_H
        p.comment(
            name, (900 + i * 160, 1460, 60, 18), presentation_rect=(x, y, 58, 15), maxclass="live.comment"
        )
        numbox = p.ui(
            "live.numbox",
            (900 + i * 160, 1490, 40, 15),
            param=Param(longnames[i], f"Ch {i + 1}", kind="int", mmin=1, mmax=16, initial=channel),
            presentation_rect=(x + 58, y, 32, 15),
        )
        boxes.append(numbox)
    return boxes


def _playback(
    p: Patcher,
    spec: BandSpec,
    lay: Layout,
    nns: list[Box],
    controls: Controls,
    changes: list[Box],
    midiout: Box,
) -> list[Box]:
    """The 16th tick, per part its gates, lanes, channel and named send, into ``midiout`` and the part's
    receivers (LatentBandPart). Returns the channel boxes."""
    metro = p.obj("metro 16n @quantize 16n @active 1", (900, 1000))
    method = p.obj("+ 1", (1000, 1000))
    p.connect(controls.method, 0, method, 0)
    numboxes = _channels(p, spec, lay)
    # a new Band letter: first end every part's notes on the old names; deleting the device ends them too
    rebus = p.obj("t i b", (1100, 940))
    band_number = p.obj("+ 1", (1100, 970))
    freed = p.obj("freebang", (1200, 940))
    p.connect(controls.band, 0, rebus, 0)
    p.connect(rebus, 0, band_number, 0)
    x = 20.0
    for i, channel in enumerate(spec.channels):
        sounds = p.obj("t i i", (x, 1040))  # right to left: open or close the tick, then maybe release
        p.connect(changes[i], 0, sounds, 0)
        silenced = p.obj("sel 0", (x + 60, 1070))
        release = p.obj("t b", (x + 60, 1100))
        p.connect(sounds, 0, silenced, 0)
        p.connect(silenced, 0, release, 0)
        tick = p.obj("gate 1", (x, 1070))
        p.connect(sounds, 1, tick, 0)
        p.connect(metro, 0, tick, 1)
        which = p.obj("gate 2", (x, 1100))
        p.connect(method, 0, which, 0)
        p.connect(tick, 0, which, 1)
        midiformat = p.obj(f"midiformat {channel}", (x, 1440))
        p.connect(midiformat, 0, midiout, 0)
        # a new channel: first release the notes sounding on the old one
        rechannel = p.obj("t i b", (x + 120, 1400))
        p.connect(numboxes[i], 0, rechannel, 0)
        p.connect(rechannel, 1, release, 0)
        p.connect(rechannel, 0, midiformat, 6)
        bus = p.obj(f"sprintf send {BUS_PREFIX}_%ld_{i + 1}", (x + 120, 1440))
        forward = p.obj("forward", (x + 120, 1470))
        p.connect(band_number, 0, bus, 0)
        p.connect(bus, 0, forward, 0)
        p.connect(rebus, 1, release, 0)
        p.connect(freed, 0, release, 0)
        for n, lane in enumerate(spec.lanes_of(i)):
            lx = x + n * 120.0
            snapshots = []
            for k, nn in enumerate(nns):
                snapshot = p.obj("snapshot~", (lx + 60 * k, 1160))
                p.connect(nn, lane, snapshot, 0)
                p.connect(which, k, snapshot, 0)
                snapshots.append(snapshot)
            _play_lane(p, snapshots, [midiformat, forward], release, lx)
        x += 120.0 * spec.lanes[i] + 40.0
    return numboxes


def band_patcher(spec: BandSpec) -> dict[str, Any]:
    """The ``{"patcher": {...}}`` document of LatentBand for ``spec``."""
    lay = Layout.for_parts(spec.parts)
    p = Patcher(device_width=lay.width)
    total = spec.total_lanes
    model = quote_atom(spec.model_file)
    nns = [
        p.obj(f"nn~ {model} {method} {NN_BUFFER} {total + 1} {total}", (20, 500 + 600 * k), width=1600)
        for k, method in enumerate(METHODS)
    ]
    controls = _controls(p, spec, lay, nns)
    _position(p, spec, nns)
    midiout = p.obj("midiout", (20, 1500))
    reset = _recording(p, spec, controls, nns, midiout)
    ready = p.obj("live.thisdevice", (600, 140))
    changes = _playing_parts(p, spec, controls, ready)
    numboxes = _playback(p, spec, lay, nns, controls, changes, midiout)
    # once loaded: every control sends its value again (channels, gates, attributes); lanes start free
    for box in (
        controls.on,
        controls.band,
        controls.part,
        controls.method,
        controls.ahead,
        controls.temperature,
        *numboxes,
    ):
        p.connect(ready, 0, box, 0)
    p.connect(ready, 0, reset, 0)
    section_header(p, "Model", lay.model_x, MODEL_W)
    model_loading(
        p,
        nns,
        spec.model_file,
        "band",
        drop_rect=(lay.model_x, TOP, MODEL_W, 46),
        status_rect=(lay.model_x, TOP + 50, MODEL_W, 42),
        resend=[controls.part, controls.ahead, controls.temperature],
        at=(2200.0, 40.0),
    )
    return p.to_dict(MIDI_EFFECT, description="LatentBand: play one part, the model plays the others.")


build_band_device = device_builder(BandSpec, band_patcher, DEVICE_NAME, MIDI_EFFECT)

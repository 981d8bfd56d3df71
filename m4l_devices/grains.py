"""LatentGrains.amxd: the granular instrument around ``nn~ grain.ts forward``.

Signal flow (the contract is the metadata of the grain export: ``forward`` takes D latent-knob
signals in PCA units at in_ratio 256 and returns audio)::

    XY pad --> Latent 1 / Latent 2 dials; Latent 1..D dials --> line~ ----------.
    path generator (x, y) ------------------------------> +~ on knobs 1 and 2 --> nn~ <model> forward 1024 D 1
        Off | LFO: phasor~ <rate> @lock 1 --> cos~ (x), cos~ (phase - q) (y), x Depth
            | Walk: metro 50 --> random step x Step, pulled back to 0, clipped to +-Depth --> line~
    Density / Jitter / Spray / Length dials --> change 0. --> f --> "set <attribute> $1" --> nn~
    midiin --> note on: "set transpose (pitch - Root)" --> nn~; velocity / 127 in Attack ms --> line~ (envelope)
               note off of the sounding note: 0 in Release ms --> line~
    envelope + Hold --> clip~ 0 1 --> delay~ (nn~ and model delay) --> x nn~ audio --> output gain --> plugout~ 1 2

Attributes: nn~ 1.6 sets a model attribute with the message ``set <name> <value>``. Each grain dial
passes ``change 0.`` (repeated values from automation or a held mouse are dropped) into an ``f`` that
keeps the last value, so a freshly loaded model (its attributes back at their defaults) gets every
value again from the load bang of the model box, together with the last transposition.

Path: "Circle" moves the first two knobs around a circle of radius Depth (y is the cosine a quarter
turn later); "Line" moves them back and forth along the diagonal (y = x). The LFO is a ``phasor~``
locked to Live's transport (one turn per 1/4 bar .. 8 bars), so it stands still when Live stops.
"Walk" is free-running: every 50 ms each axis takes a uniform step in ``+-Step``, is pulled 2 %
back towards the knob and is clipped to ``+-Depth`` (a bounded random walk that does not stick to
the walls). The path is added to the knob values, so the pad sets its centre.

Notes: monophonic, last note priority; a note-off only releases the note that sounds. nn~ delays
attribute changes like its audio (``2 x buffer - 64`` samples, plus at most the model's ``latency``: the
export applies them to the next block of grains it renders), so the envelope is delayed by the whole of
that: a new note starts at its own pitch rather than with a blip of the previous one. The device does not report that delay to Live. "Hold" keeps the texture sounding
without notes (a drone for sound design). Dropping a ``.ts`` on the model box loads it (see
m4l_devices/common.py); the status line says when the file is missing.
"""

from dataclasses import dataclass
from typing import Any

from latentlive import registry
from latentlive.core.errors import UserError
from latentlive.m4l_devices.amxd import INSTRUMENT
from latentlive.m4l_devices.common import (
    device_builder,
    host_rates_of,
    metadata_where,
    model_file_name,
    model_loading,
    quote_atom,
    reading_metadata,
    section_header,
)
from latentlive.m4l_devices.loops import (
    DIAL_H,
    DIAL_STEP_X,
    DIAL_STEP_Y,
    DIAL_W,
    SMALL_STEP_X,
    SMALL_STEP_Y,
    TOP,
    check_latent_ratio,
    check_method,
    check_range,
    grid_position,
    model_latency,
    nn_delay,
    output_stage,
    small_dial,
    smoothed,
)
from latentlive.m4l_devices.patcher import Box, Param, Patcher

DEVICE_NAME = registry.device_name("grain")
NN_BUFFER = 1024  # four latent frames per call; threaded delay 2 x 1024 - 64 samples, ~45 ms at 44.1 kHz
LATENT_SIZES = (2, 32)  # the pad needs two knobs; the grain model has 8..32 (tiny variants fewer)
KNOB_RANGE = 3.0  # knobs span -3..3 PCA units (standard deviations along the global PCA axes)
KNOB_ROWS = 4
ROOT_NOTE = 60  # the MIDI note that plays untransposed
MODES = ("Off", "LFO", "Walk")
SHAPES = ("Circle", "Line")
SHAPE_LAG = (0.25, 0.0)  # y is cos(2 pi (phase - lag)): a quarter turn makes a circle, none a line
RATES = ("1/4 bar", "1/2 bar", "1 bar", "2 bars", "4 bars", "8 bars")
RATE_INTERVALS = ("4n", "2n", "1n", "2.0.0", "4.0.0", "8.0.0")  # phasor~ periods, in Live's time
DEFAULT_RATE = "2 bars"
DEPTH_RANGE, DEFAULT_DEPTH = (0.0, 3.0), 1.5
STEP_RANGE, DEFAULT_STEP = (0.0, 1.0), 0.2
WALK_TICK_MS = 50
WALK_PULL = 0.98  # the walk keeps 98 % of its offset per tick: a time constant of ~2.5 s
SMOOTH_MS = 20
PAD_X, PAD_SIZE = 6.0, 140.0
ATTACK_MS, RELEASE_MS = 10.0, 300.0


@dataclass(frozen=True)
class GrainAttribute:
    """A grain setting of ``grain.ts``: its nn~ attribute, Live parameter names and range."""

    name: str  # the nn~ attribute
    longname: str
    shortname: str
    lo: float
    hi: float
    default: float
    unitstyle: str = "float"
    exponent: float | None = None


ATTRIBUTES = (
    # initial values where the metadata has none: the export's (a cloud, grains at random intervals)
    GrainAttribute("density", "Density", "Density", 1.0, 200.0, 100.0, "hz", exponent=2.0),
    GrainAttribute("jitter", "Jitter", "Jitter", 0.0, 1.0, 1.0),
    GrainAttribute("spray", "Spray", "Spray", 0.0, 3.0, 0.0),
    GrainAttribute("grain_length", "Grain Length", "Length", 0.1, 1.0, 1.0),
)


@dataclass(frozen=True)
class GrainSpec:
    """What the device needs from the metadata of ``grain.ts``."""

    model_file: str  # a bare file name: nn~ finds it beside the device
    latent_size: int
    latency: int
    defaults: tuple[float, ...]  # initial value of each of ATTRIBUTES
    host_rates: tuple[int, ...] | None = None  # the rates the model supports (metadata)

    @classmethod
    def from_metadata(
        cls, model_path: str, metadata: dict[str, Any], model_file: str | None = None
    ) -> "GrainSpec":
        """Check the metadata of the grain export; UserError (one line) if the device cannot use it."""
        where, fix = metadata_where(model_path, metadata, "grain", "grain model")
        with reading_metadata(where, fix):
            d = int(metadata["latent_size"])
        check_range(where, "latent_size", d, LATENT_SIZES, fix)
        check_latent_ratio(where, metadata, fix)
        check_method(where, metadata, "forward", d, 1, fix)
        attrs = metadata.get("attributes", {})
        if not isinstance(attrs, dict):
            raise UserError(f"{where} attributes={attrs!r} is not a mapping of defaults; {fix}")
        defaults = tuple(_attribute_default(where, a, attrs.get(a.name, a.default), fix) for a in ATTRIBUTES)
        return cls(
            model_file_name(model_file or model_path),
            d,
            model_latency(where, metadata, fix),
            defaults,
            host_rates_of(metadata),
        )


def _attribute_default(where: str, attr: GrainAttribute, value: Any, fix: str) -> float:
    """The model's default of ``attr`` as the dial's initial value; UserError outside the dial's range."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not attr.lo <= v <= attr.hi:
        raise UserError(f"{where} attribute {attr.name}={value!r} is outside {attr.lo:g}..{attr.hi:g}; {fix}")
    return v


@dataclass(frozen=True)
class Layout:
    """x positions of the presentation sections and the device width."""

    knobs_x: float
    knob_cols: int
    path_x: float
    grains_x: float
    notes_x: float
    out_x: float
    width: float

    @classmethod
    def for_spec(cls, spec: GrainSpec) -> "Layout":
        knob_cols = -(-spec.latent_size // KNOB_ROWS)
        knobs_x = PAD_X + PAD_SIZE + 10.0
        path_x = knobs_x + max(knob_cols * SMALL_STEP_X, 64.0) + 10.0
        grains_x = path_x + 96.0 + 10.0
        notes_x = grains_x + 2 * DIAL_STEP_X + 10.0
        out_x = notes_x + 2 * DIAL_STEP_X + 10.0
        return cls(knobs_x, knob_cols, path_x, grains_x, notes_x, out_x, out_x + 96.0 + 6.0)


def _knobs(p: Patcher, spec: GrainSpec, lay: Layout) -> list[Box]:
    """The XY pad and D automatable knob dials. Returns the dials."""
    section_header(p, "Latent", PAD_X, PAD_SIZE)
    section_header(p, "Knobs", lay.knobs_x, max(lay.knob_cols * SMALL_STEP_X, 64.0))
    dials = []
    for k in range(spec.latent_size):
        dial = small_dial(
            p,
            Param(
                f"Latent {k + 1}",
                f"L{k + 1}",
                mmin=-KNOB_RANGE,
                mmax=KNOB_RANGE,
                initial=0.0,
                unitstyle="float",
            ),
            (20.0 + k * 60.0, 1000.0),
            grid_position(k, KNOB_ROWS, lay.knobs_x, SMALL_STEP_X, SMALL_STEP_Y),
        )
        dials.append(dial)
    r100 = int(KNOB_RANGE * 100)
    pad = p.ui(
        "pictslider",
        (20, 200, 140, 140),
        presentation_rect=(PAD_X, TOP + 2, PAD_SIZE, PAD_SIZE),
        leftvalue=-r100,
        rightvalue=r100,
        bottomvalue=-r100,
        topvalue=r100,
    )
    # pad -> knobs 1 / 2 (hundredths); the knobs -> pad with "set" (no output, so no loop)
    back = p.obj("pak 0. 0.", (20, 380))
    for axis, dial in enumerate(dials[:2]):
        to_dial = p.obj("/ 100.", (200 + axis * 70, 200))
        p.connect(pad, axis, to_dial, 0)
        p.connect(to_dial, 0, dial, 0)
        to_pad = p.obj("* 100.", (200 + axis * 70, 360))
        p.connect(dial, 0, to_pad, 0)
        p.connect(to_pad, 0, back, axis)
    set_pad = p.obj("prepend set", (20, 410))
    p.connect(back, 0, set_pad, 0)
    p.connect(set_pad, 0, pad, 0)
    return dials


def _to_nn(p: Patcher, dials: list[Box], path: tuple[Box, Box], nn: Box) -> None:
    """Knob k --> line~ (--> +~ path on knobs 1 and 2) --> nn~ inlet k."""
    for k, dial in enumerate(dials):
        x = 20.0 + k * 60.0
        line = smoothed(p, dial, (x, 1060), SMOOTH_MS)
        if k < 2:
            moved = p.obj("+~", (x, 1130))
            p.connect(line, 0, moved, 0)
            p.connect(path[k], 0, moved, 1)
            line = moved
        p.connect(line, 0, nn, k)


def _path_controls(p: Patcher, lay: Layout) -> dict[str, Box]:
    """Mode, Shape and Rate menus, Depth and Step dials of the path generator."""
    section_header(p, "Path", lay.path_x, 96)
    boxes = {}
    menus = (("Path Mode", "Mode", MODES, "Off"), ("Path Shape", "Shape", SHAPES, "Circle"))
    for row, (longname, short, items, initial) in enumerate(
        (*menus, ("Path Rate", "Rate", RATES, DEFAULT_RATE))
    ):
        boxes[short] = p.ui(
            "live.menu",
            (1200 + row * 110, 20, 90, 15),
            param=Param(longname, short, kind="enum", enum=items, initial=initial),
            presentation_rect=(lay.path_x, TOP + row * 18, 96, 15),
        )
    ready = p.obj("live.thisdevice", (1200, -20))
    for menu in boxes.values():
        p.connect(ready, 0, menu, 0)  # a bang re-sends the stored choice once the set is loaded
    for i, (longname, short, (lo, hi), initial) in enumerate(
        (("Path Depth", "Depth", DEPTH_RANGE, DEFAULT_DEPTH), ("Path Step", "Step", STEP_RANGE, DEFAULT_STEP))
    ):
        boxes[short] = p.ui(
            "live.dial",
            (1560 + i * 60, 20, DIAL_W, DIAL_H),
            param=Param(longname, short, mmin=lo, mmax=hi, initial=initial, unitstyle="float"),
            presentation_rect=(lay.path_x + i * 48, TOP + 56, DIAL_W, DIAL_H),
        )
    return boxes


def _lfo(p: Patcher, controls: dict[str, Box]) -> tuple[Box, Box]:
    """Transport-locked phasor~ --> (cos, cos a lag later). Returns the two cos~ (unscaled, +-1)."""
    x, y = 1200.0, 80.0
    which = p.obj("sel " + " ".join(str(i) for i in range(len(RATES))), (x, y))
    p.connect(controls["Rate"], 0, which, 0)
    phasor = p.obj(f"phasor~ {RATE_INTERVALS[RATES.index(DEFAULT_RATE)]} @lock 1", (x, y + 60))
    for i, interval in enumerate(RATE_INTERVALS):
        rate = p.message(f"frequency {interval}", (x + i * 115, y + 30))
        p.connect(which, i, rate, 0)
        p.connect(rate, 0, phasor, 0)
    shape = p.obj("sel 0 1", (x + 300, y + 60))
    p.connect(controls["Shape"], 0, shape, 0)
    lagged = p.obj(f"-~ {SHAPE_LAG[0]}", (x + 100, y + 100))
    for i, lag in enumerate(SHAPE_LAG):
        message = p.message(f"{lag}", (x + 300 + i * 50, y + 90))
        p.connect(shape, i, message, 0)
        p.connect(message, 0, lagged, 1)
    cos_x = p.obj("cos~", (x, y + 130))
    cos_y = p.obj("cos~", (x + 100, y + 130))
    p.connect(phasor, 0, cos_x, 0)
    p.connect(phasor, 0, lagged, 0)
    p.connect(lagged, 0, cos_y, 0)
    return cos_x, cos_y


def _walk(p: Patcher, controls: dict[str, Box], running: Box) -> tuple[Box, Box]:
    """Bounded random walk on two axes, one step per tick. Returns the two smoothed line~."""
    x, y = 1600.0, 300.0
    metro = p.obj(f"metro {WALK_TICK_MS}", (x, y))
    p.connect(running, 0, metro, 0)
    tick = p.obj("t b b", (x, y + 30))
    p.connect(metro, 0, tick, 0)
    negate = p.obj("* -1.", (x + 200, y))
    p.connect(controls["Depth"], 0, negate, 0)
    lines = []
    for axis in range(2):
        ax = x + axis * 260
        draw = p.obj("random 2001", (ax, y + 60))
        centre = p.obj("- 1000", (ax, y + 90))
        # offset = offset x pull + step x uniform(-1, 1); $f3 is the last offset (a cold feedback)
        step = p.obj(f"expr $f1 * $f2 / 1000. + $f3 * {WALK_PULL}", (ax, y + 120))
        floor = p.obj(f"max -{DEFAULT_DEPTH}", (ax, y + 150))
        ceiling = p.obj(f"min {DEFAULT_DEPTH}", (ax, y + 180))
        keep = p.obj("t f f", (ax, y + 210))
        p.connect(tick, axis, draw, 0)
        p.connect(draw, 0, centre, 0)
        p.connect(centre, 0, step, 0)
        p.connect(controls["Step"], 0, step, 1)
        p.connect(step, 0, floor, 0)
        p.connect(negate, 0, floor, 1)
        p.connect(floor, 0, ceiling, 0)
        p.connect(controls["Depth"], 0, ceiling, 1)
        p.connect(ceiling, 0, keep, 0)
        p.connect(keep, 1, step, 2)
        lines.append(smoothed(p, keep, (ax, y + 240), WALK_TICK_MS))
    return lines[0], lines[1]


def _path(p: Patcher, lay: Layout) -> tuple[Box, Box]:
    """The path generator: LFO x Depth in mode LFO, the walk in mode Walk. Returns the (x, y) sums."""
    controls = _path_controls(p, lay)
    mode = p.obj("t i i", (1200, 600))
    p.connect(controls["Mode"], 0, mode, 0)
    is_lfo = p.obj("== 1", (1200, 630))
    is_walk = p.obj("== 2", (1300, 630))
    p.connect(mode, 1, is_lfo, 0)
    p.connect(mode, 0, is_walk, 0)
    lfo_gain = p.obj("*~", (1200, 720))
    p.connect(smoothed(p, is_lfo, (1200, 660), SMOOTH_MS), 0, lfo_gain, 0)
    p.connect(smoothed(p, controls["Depth"], (1260, 660), SMOOTH_MS), 0, lfo_gain, 1)
    walk_gain = smoothed(p, is_walk, (1400, 660), SMOOTH_MS)
    lfo = _lfo(p, controls)
    walk = _walk(p, controls, is_walk)
    sums = []
    for axis in range(2):
        ax = 1200.0 + axis * 200
        from_lfo = p.obj("*~", (ax, 760))
        p.connect(lfo[axis], 0, from_lfo, 0)
        p.connect(lfo_gain, 0, from_lfo, 1)
        from_walk = p.obj("*~", (ax + 60, 760))
        p.connect(walk[axis], 0, from_walk, 0)
        p.connect(walk_gain, 0, from_walk, 1)
        total = p.obj("+~", (ax, 800))
        p.connect(from_lfo, 0, total, 0)
        p.connect(from_walk, 0, total, 1)
        sums.append(total)
    return sums[0], sums[1]


def _grain_settings(p: Patcher, spec: GrainSpec, lay: Layout, nn: Box) -> list[Box]:
    """Density, Jitter, Spray, Length dials --> change --> f --> "set <attribute> $1" --> nn~.

    Returns the ``f`` boxes: a bang re-sends their value (after a model load)."""
    section_header(p, "Grains", lay.grains_x, 2 * DIAL_STEP_X)
    stores = []
    for i, (attr, initial) in enumerate(zip(ATTRIBUTES, spec.defaults, strict=True)):
        x = 560.0 + i * 150
        row, col = divmod(i, 2)
        dial = p.ui(
            "live.dial",
            (x, 20, DIAL_W, DIAL_H),
            param=Param(
                attr.longname,
                attr.shortname,
                mmin=attr.lo,
                mmax=attr.hi,
                initial=initial,
                unitstyle=attr.unitstyle,
                exponent=attr.exponent,
            ),
            presentation_rect=(lay.grains_x + col * DIAL_STEP_X, TOP + row * DIAL_STEP_Y, DIAL_W, DIAL_H),
        )
        changed = p.obj("change 0.", (x, 80))
        store = p.obj("f", (x, 110))
        setter = p.obj(f"prepend set {attr.name}", (x, 140))
        p.connect(dial, 0, changed, 0)
        p.connect(changed, 0, store, 0)
        p.connect(store, 0, setter, 0)
        p.connect(setter, 0, nn, 0)
        stores.append(store)
    return stores


@dataclass(frozen=True)
class NoteBoxes:
    """What the note section hands on: the envelope signal and the transposition store."""

    envelope: Box  # clip~ 0 1 of the envelope plus Hold (not yet delayed)
    transpose: Box  # i: the last transposition, banged after a model load


def _note_controls(p: Patcher, lay: Layout) -> dict[str, Box]:
    """Root note, Attack, Release and Hold."""
    section_header(p, "Notes", lay.notes_x, 2 * DIAL_STEP_X)
    boxes = {}
    p.comment(
        "Root", (600, 300, 40, 18), presentation_rect=(lay.notes_x, TOP, 40, 15), maxclass="live.comment"
    )
    boxes["Root"] = p.ui(
        "live.numbox",
        (640, 300, 44, 15),
        param=Param("Root Note", "Root", kind="int", mmin=0, mmax=127, initial=ROOT_NOTE, unitstyle="midi"),
        presentation_rect=(lay.notes_x + 44, TOP, 44, 15),
    )
    for i, (name, initial, top) in enumerate(
        (("Attack", ATTACK_MS, 2000.0), ("Release", RELEASE_MS, 5000.0))
    ):
        boxes[name] = p.ui(
            "live.dial",
            (700 + i * 60, 300, DIAL_W, DIAL_H),
            param=Param(name, name[:3], mmin=1.0, mmax=top, initial=initial, unitstyle="time", exponent=3.0),
            presentation_rect=(lay.notes_x + i * DIAL_STEP_X, TOP + 20, DIAL_W, DIAL_H),
        )
    boxes["Hold"] = p.ui(
        "live.text",
        (820, 300, 60, 16),
        param=Param("Hold", "Hold", kind="enum", enum=("off", "on")),
        presentation_rect=(lay.notes_x, TOP + 74, 2 * DIAL_STEP_X - 2, 16),
        text="Hold",
        texton="Hold",
        mode=1,
    )
    return boxes


def _notes(p: Patcher, lay: Layout, nn: Box) -> NoteBoxes:
    """MIDI notes --> "set transpose <pitch - root>" and the gate envelope (last note priority)."""
    controls = _note_controls(p, lay)
    x, y = 600.0, 360.0
    midiin = p.obj("midiin", (x, y))
    parse = p.obj("midiparse", (x, y + 30))
    note = p.obj("unpack 0 0", (x, y + 60))
    p.connect(midiin, 0, parse, 0)
    p.connect(parse, 0, note, 0)
    # unpack sends the velocity first: it picks the gate outlet (1 note on, 2 note off) and the level
    velocity = p.obj("t i i", (x + 80, y + 90))
    p.connect(note, 1, velocity, 0)
    is_off = p.obj("== 0", (x + 80, y + 120))
    which = p.obj("+ 1", (x + 80, y + 150))
    level = p.obj("/ 127.", (x + 160, y + 120))
    held = p.obj("f", (x + 160, y + 240))
    p.connect(velocity, 0, is_off, 0)
    p.connect(is_off, 0, which, 0)
    p.connect(velocity, 1, level, 0)
    p.connect(level, 0, held, 1)
    route = p.obj("gate 2", (x, y + 180))
    p.connect(which, 0, route, 0)
    p.connect(note, 0, route, 1)

    # note on: right to left, remember the sounding note, transpose, then open the envelope
    on = p.obj("t b i i", (x, y + 210))
    p.connect(route, 0, on, 0)
    sounding = p.obj("==", (x + 260, y + 240))
    p.connect(on, 2, sounding, 1)
    semitones = p.obj(f"- {ROOT_NOTE}", (x + 80, y + 240))
    p.connect(controls["Root"], 0, semitones, 1)
    p.connect(on, 1, semitones, 0)
    changed = p.obj("change", (x + 80, y + 270))
    transpose = p.obj("i", (x + 80, y + 300))
    setter = p.obj("prepend set transpose", (x + 80, y + 330))
    p.connect(semitones, 0, changed, 0)
    p.connect(changed, 0, transpose, 0)
    p.connect(transpose, 0, setter, 0)
    p.connect(setter, 0, nn, 0)
    p.connect(on, 0, held, 0)

    envelope = p.obj("line~", (x, y + 400))
    attack = p.obj(f"pack 0. {ATTACK_MS}", (x + 160, y + 270))
    p.connect(held, 0, attack, 0)
    p.connect(controls["Attack"], 0, attack, 1)
    p.connect(attack, 0, envelope, 0)
    # note off: release only when it is the sounding note
    p.connect(route, 1, sounding, 0)
    release_it = p.obj("sel 1", (x + 260, y + 270))
    zero = p.message("0.", (x + 260, y + 300))
    release = p.obj(f"pack 0. {RELEASE_MS}", (x + 260, y + 330))
    p.connect(sounding, 0, release_it, 0)
    p.connect(release_it, 0, zero, 0)
    p.connect(zero, 0, release, 0)
    p.connect(controls["Release"], 0, release, 1)
    p.connect(release, 0, envelope, 0)

    hold = smoothed(p, controls["Hold"], (x + 400, y + 340), SMOOTH_MS)
    both = p.obj("+~", (x, y + 430))
    p.connect(envelope, 0, both, 0)
    p.connect(hold, 0, both, 1)
    bounded = p.obj("clip~ 0. 1.", (x, y + 460))
    p.connect(both, 0, bounded, 0)
    return NoteBoxes(bounded, transpose)


def _voice(p: Patcher, spec: GrainSpec, nn: Box, envelope: Box) -> Box:
    """nn~ audio x the envelope delayed by nn~ and the model. Returns the enveloped audio (*~)."""
    delay = nn_delay(NN_BUFFER) + spec.latency
    size = 1 << max(delay, 1).bit_length()  # delay~'s buffer must hold the delay
    late = p.obj(f"delay~ {size} {delay}", (600, 900))
    p.connect(envelope, 0, late, 0)
    voice = p.obj("*~", (20, 1260))
    p.connect(nn, 0, voice, 0)
    p.connect(late, 0, voice, 1)
    return voice


def grains_patcher(spec: GrainSpec) -> dict[str, Any]:
    """The ``{"patcher": {...}}`` document of LatentGrains for ``spec``."""
    lay = Layout.for_spec(spec)
    p = Patcher(device_width=lay.width)
    d = spec.latent_size
    nn = p.obj(f"nn~ {quote_atom(spec.model_file)} forward {NN_BUFFER} {d} 1", (20, 1200), width=1900)
    dials = _knobs(p, spec, lay)
    _to_nn(p, dials, _path(p, lay), nn)
    stores = _grain_settings(p, spec, lay, nn)
    notes = _notes(p, lay, nn)
    section_header(p, "Output", lay.out_x, 96)
    output_stage(p, _voice(p, spec, nn, notes.envelope), 1900.0, (lay.out_x + 26, TOP, DIAL_W, DIAL_H))
    model_loading(
        p,
        [nn],
        spec.model_file,
        "grain",
        drop_rect=(lay.out_x, TOP + 52, 96, 44),
        status_rect=(lay.out_x, TOP + 100, 96, 44),
        resend=[*stores, notes.transpose],
        at=(2200.0, 40.0),
        host_rates=spec.host_rates,
    )
    return p.to_dict(
        INSTRUMENT, description="LatentGrains: play textures by moving through a space of grains."
    )


build_grains_device = device_builder(GrainSpec, grains_patcher, DEVICE_NAME, INSTRUMENT)

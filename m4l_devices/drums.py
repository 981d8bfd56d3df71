"""LatentDrums.amxd: the latent drum sequencer, a MIDI effect around ``nn~ drums.ts decode``.

Signal flow (the contract is docs/drums_encoding.md)::

    XY pad / dials z1..zD --> sig~ ----------------------------------.
    phasor~ 1n @lock 1 --> *~ 16. --> +~ 1. (step, read ahead) --> nn~ <model> decode 512 D+2 18
    style menu --> sig~ -------------------------------------------'      |  (9 hit levels, 9 offsets)
    metro 32n @quantize 32n (Live's transport) -- every 32nd half a step before a 16th --> snapshot~ x 18
        --> level > 0 ? velocity round(127 level), delay (0.5 + offset + swing) steps at Live's tempo
            (the grid's 0.5 steps with Quantise) --> one of two delay lanes per drum --> makenote
            --> midiformat --> midiout
    midiin ---------------------------------------------------------------------------------> midiout

A step is read half a step before it begins (the 32nd tick between two 16ths), so a note the model plays
early (offset down to -0.5) is still on time: each note waits 0.5 + offset (+ swing on every second 16th)
steps, converted to ms from Live's tempo (``transport``) at that tick. Two delay lanes per drum, chosen by the
step's parity, keep a late note of one step from being cancelled by the next step's note. The step input
runs a whole step ahead of Live's bar position, so at that tick the levels of the coming step are already
out of nn~ (its threaded buffer of 512 samples delays results by about 1024 samples, under half a 16th up to
~300 BPM). Two-bar models (32 steps) run their phasor over two bars. Dropping a ``.ts`` on the model box
sends ``load <path>`` to nn~ and the file is kept with the Live set; a status line says which model is
loaded or that the file is missing.
Left out of this version: learning a clip (the ``encode`` method).
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
    pad_links,
    quote_atom,
    reading_metadata,
    section_header,
)
from latentlive.m4l_devices.patcher import Box, Param, Patcher

DEVICE_NAME = registry.device_name("drums")
N_INSTRUMENTS = 9
STEPS = 16  # one bar of 16ths
STEP_CHOICES = {16: "1n", 32: "2.0.0"}  # steps of a pattern -> the phasor's period (one bar, two bars)
OUTPUTS = 2 * N_INSTRUMENTS  # decode: 9 hit levels, then 9 offsets
NN_BUFFER = 512
LATENT_RANGE = 3.0  # the pad and dials span -3..3 (the prior is N(0, 1))
NOTE_LENGTH_MS = 50  # short notes: drum racks ignore note-off, synths get a clean gate

# presentation layout, in pixels
DIAL_W, DIAL_H, DIAL_STEP_X, DIAL_STEP_Y = 44.0, 48.0, 46.0, 50.0
TOP = 20.0  # first row under the section headers
MAX_LATENTS = 16  # two rows of 8 dials
ROW_H = 16.0  # one instrument row of the drum map and the pattern grid
CELL_W = 12.0
SAMPLING_W = 146.0  # three dials, and the Quantise toggle beside the model box


@dataclass(frozen=True)
class DrumsSpec:
    """What the device needs from the model's metadata."""

    model_file: str  # a bare file name: nn~ finds it beside the device
    latent_size: int
    style_names: tuple[str, ...]
    instrument_names: tuple[str, ...]
    gm_notes: tuple[int, ...]
    threshold: float = 0.5
    temperature: float = 1.0
    steps: int = STEPS

    @classmethod
    def from_metadata(
        cls, model_path: str, metadata: dict[str, Any], model_file: str | None = None
    ) -> "DrumsSpec":
        """Check the metadata of ``drums.ts`` (see docs/drums_encoding.md); UserError if unusable."""
        where, fix = metadata_where(model_path, metadata, None, "drums model")
        with reading_metadata(where, fix):
            d = int(metadata["latent_size"])
            styles = tuple(str(s) for s in metadata.get("style_names", []))
            names = tuple(str(s) for s in metadata["instrument_names"])
            notes = tuple(int(n) for n in metadata["gm_notes"])
            steps = int(metadata.get("steps", STEPS))
        if not 2 <= d <= MAX_LATENTS:
            raise UserError(
                f"{where} latent_size={d} is outside 2..{MAX_LATENTS} (the dials the device shows); {fix}"
            )
        if len(names) != N_INSTRUMENTS or len(notes) != N_INSTRUMENTS:
            raise UserError(f"{where} has {len(names)} instruments / {len(notes)} notes, expected 9; {fix}")
        if not all(0 <= n <= 127 for n in notes):
            raise UserError(f"{where} gm_notes {list(notes)} are not all MIDI notes 0..127; {fix}")
        if steps not in STEP_CHOICES:
            raise UserError(
                f"{where} steps={steps}; the device plays one- or two-bar patterns (16 or 32 steps), {fix}"
            )
        decode = metadata.get("methods", {}).get("decode", {})
        if "out_channels" in decode and int(decode["out_channels"]) == N_INSTRUMENTS:
            raise UserError(
                f"{where} decode gives 9 hit levels without offsets (an export from before velocities and "
                "offsets); export the run again with `latentlive export --run RUN --streaming`"
            )
        for key, want in (("in_channels", d + 2), ("out_channels", OUTPUTS)):
            if key in decode and int(decode[key]) != want:
                raise UserError(f"{where} decode {key}={decode[key]}, expected {want}; {fix}")
        attrs = metadata.get("attributes", {})
        return cls(
            model_file=model_file_name(model_file or model_path),
            latent_size=d,
            style_names=styles,
            instrument_names=names,
            gm_notes=notes,
            threshold=float(attrs.get("threshold", 0.5)),
            temperature=float(attrs.get("temperature", 1.0)),
            steps=steps,
        )


@dataclass(frozen=True)
class Layout:
    """x positions of the four presentation sections and the device width."""

    pad_x: float
    dials_x: float
    dial_cols: int
    sampling_x: float
    map_x: float
    grid_x: float
    width: float
    cell_w: float

    @classmethod
    def for_latents(cls, latent_size: int, steps: int = STEPS) -> "Layout":
        # up to 8 dials in rows of 4; more in two rows, so that the style menu still fits under them
        cols = max(min(latent_size, 4), -(-latent_size // 2))
        dials_x = 6.0 + 144.0 + 10.0
        sampling_x = dials_x + max(cols * DIAL_STEP_X, 96.0) + 10.0
        map_x = sampling_x + SAMPLING_W + 12.0
        grid_x = map_x + 98.0
        cell_w = CELL_W * STEPS / steps  # two bars fit the width of one
        return cls(6.0, dials_x, cols, sampling_x, map_x, grid_x, grid_x + steps * cell_w + 8.0, cell_w)


def _unique_note_names(names: tuple[str, ...]) -> list[str]:
    longnames = [f"{n} Note" for n in names]
    return [f"{ln} {i + 1}" if longnames.count(ln) > 1 else ln for i, ln in enumerate(longnames)]


def _latents(p: Patcher, spec: DrumsSpec, lay: Layout, nn: Box) -> None:
    """XY pad for z1/z2, a dial per latent (the parameters), one sig~ per nn~ latent inlet."""
    d = spec.latent_size
    section_header(p, "Latent z1 / z2", lay.pad_x, 144)
    section_header(p, "Latents", lay.dials_x, lay.dial_cols * DIAL_STEP_X)
    r100 = int(LATENT_RANGE * 100)
    pad = p.ui(
        "pictslider",
        (20, 40, 140, 140),
        presentation_rect=(lay.pad_x, TOP, 144, 144),
        leftvalue=-r100,
        rightvalue=r100,
        bottomvalue=-r100,
        topvalue=r100,
    )
    dials = []
    for k in range(d):
        row, col = divmod(k, lay.dial_cols)
        param = Param(
            f"Latent {k + 1}",
            f"z{k + 1}",
            mmin=-LATENT_RANGE,
            mmax=LATENT_RANGE,
            initial=0.0,
            unitstyle="float",
        )
        dial = p.ui(
            "live.dial",
            (200 + k * 60, 40, DIAL_W, DIAL_H),
            param=param,
            presentation_rect=(lay.dials_x + col * DIAL_STEP_X, TOP + row * DIAL_STEP_Y, DIAL_W, DIAL_H),
        )
        sig = p.obj("sig~", (200 + k * 60, 420))
        p.connect(dial, 0, sig, 0)
        p.connect(sig, 0, nn, k)
        dials.append(dial)
    pad_links(p, pad, dials, (200, 260, 300, 340))  # x = z1, y = z2


def _style_and_step(p: Patcher, spec: DrumsSpec, lay: Layout, nn: Box) -> Box:
    """Style menu -> sig~, and the step signal locked to Live's bar. Returns the S x phase box."""
    d = spec.latent_size
    rows = -(-d // lay.dial_cols)
    menu_y = TOP + rows * DIAL_STEP_Y + 8.0
    w = lay.dial_cols * DIAL_STEP_X - 2
    p.comment(
        "Style", (700, 40, 40, 18), presentation_rect=(lay.dials_x, menu_y, w, 18), maxclass="live.comment"
    )
    items = (*spec.style_names, "Any")  # "Any": an index outside the styles averages them
    menu = p.ui(
        "live.menu",
        (700, 60, 100, 15),
        param=Param("Style", "Style", kind="enum", enum=items, initial="Any"),
        presentation_rect=(lay.dials_x, menu_y + 18, w, 15),
    )
    style_sig = p.obj(f"sig~ {len(spec.style_names)}", (700, 420))
    p.connect(menu, 0, style_sig, 0)
    p.connect(style_sig, 0, nn, d + 1)

    phase = p.obj(f"phasor~ {STEP_CHOICES[spec.steps]} @lock 1", (560, 340))
    steps = p.obj(f"*~ {spec.steps}.", (560, 380))
    ahead = p.obj("+~ 1.", (560, 420))
    p.connect(phase, 0, steps, 0)
    p.connect(steps, 0, ahead, 0)
    p.connect(ahead, 0, nn, d)
    return steps


@dataclass(frozen=True)
class Feel:
    """The boxes of the feel controls: the swing dial and the quantise toggle."""

    swing: Box
    quantise: Box


def _sampling(p: Patcher, spec: DrumsSpec, lay: Layout, nn: Box) -> tuple[list[Box], Feel]:
    """Threshold and temperature dials -> ``set <attribute> <value>`` to nn~; the swing dial and the quantise
    toggle (read by the scheduler). Returns the nn~ dials and the feel controls."""
    section_header(p, "Sampling and feel", lay.sampling_x, SAMPLING_W)
    dials = []
    specs = [
        ("Threshold", "Thresh", 0.0, 1.0, spec.threshold),
        ("Temperature", "Temp", 0.1, 3.0, spec.temperature),
    ]
    for i, (longname, short, lo, hi, initial) in enumerate(specs):
        param = Param(longname, short, mmin=lo, mmax=hi, initial=initial, unitstyle="float")
        dial = p.ui(
            "live.dial",
            (840 + i * 100, 40, DIAL_W, DIAL_H),
            param=param,
            presentation_rect=(lay.sampling_x + i * 50, TOP, DIAL_W, DIAL_H),
        )
        setter = p.obj(f"prepend set {longname.lower()}", (840 + i * 100, 100))
        p.connect(dial, 0, setter, 0)
        p.connect(setter, 0, nn, 0)
        dials.append(dial)
    swing = p.ui(
        "live.dial",
        (1040, 40, DIAL_W, DIAL_H),
        param=Param("Swing", "Swing", mmin=0.0, mmax=1.0, initial=0.0, unitstyle="float"),
        presentation_rect=(lay.sampling_x + 100, TOP, DIAL_W, DIAL_H),
    )
    p.comment(
        "Quantise",
        (1100, 40, 50, 18),
        presentation_rect=(lay.sampling_x + 100, 74, 46, 15),
        maxclass="live.comment",
    )
    quantise = p.ui(
        "live.toggle",
        (1100, 60, 15, 15),
        param=Param("Quantise", "Quantise", kind="enum", enum=("off", "on"), initial="off"),
        presentation_rect=(lay.sampling_x + 115, 92, 15, 15),
    )
    return dials, Feel(swing, quantise)


@dataclass(frozen=True)
class StepParts:
    """What the coming step sends to every instrument, in the order the tick fires: the delay lane (1 or 2,
    by the step's parity), the swing shift and the quantise gate (into the delay expression), Live's ms per
    step, then the sampling of offsets and levels, then the column (grid cell and playhead)."""

    lane: Box
    swing_shift: Box
    unquantised: Box
    ms_per_step: Box
    sample_offsets: tuple[Box, int]
    sample_levels: tuple[Box, int]
    column: Box


# delay of a note, in ms, from the look-ahead tick: (0.5 + offset (unless quantised) + swing shift) steps,
# kept within the 0 .. 1.5 steps the lanes can hold ($f1: a bang evaluates it; $f2 offset, $f3 swing shift,
# $f4 1 - quantise, $f5 ms per step)
DELAY_EXPR = "expr max(0., min(1.5, 0.5 + $f3 + $f4 * $f2)) * $f5"
VELOCITY_EXPR = "expr min(127, max(1, int($f1 * 127. + 0.5)))"


def _instrument(
    p: Patcher,
    spec: DrumsSpec,
    lay: Layout,
    i: int,
    nn: Box,
    parts: StepParts,
    makenote: Box,
    grid: Box,
    note_name: str,
) -> None:
    """One instrument: sample its level and offset at the look-ahead tick; a hit waits its delay in one of two
    lanes, then plays its velocity; light its grid cell."""
    x, y0 = 20.0 + i * 130.0, 560.0
    y = TOP + i * ROW_H
    p.comment(
        spec.instrument_names[i],
        (x, y0 + 620, 60, 18),
        presentation_rect=(lay.map_x, y, 56, 15),
        maxclass="live.comment",
    )
    numbox = p.ui(
        "live.numbox",
        (x + 60, y0 + 560, 40, 15),
        param=Param(
            note_name,
            spec.instrument_names[i][:8],
            kind="int",
            mmin=0,
            mmax=127,
            initial=spec.gm_notes[i],
            unitstyle="midi",
        ),
        presentation_rect=(lay.map_x + 58, y, 36, 15),
    )
    offset = p.obj("snapshot~", (x + 60, y0 - 40))
    p.connect(nn, N_INSTRUMENTS + i, offset, 0)
    p.connect(parts.sample_offsets[0], parts.sample_offsets[1], offset, 0)
    delay_ms = p.obj(DELAY_EXPR, (x, y0 + 120), width=120)
    p.connect(offset, 0, delay_ms, 1)
    p.connect(parts.swing_shift, 0, delay_ms, 2)
    p.connect(parts.unquantised, 0, delay_ms, 3)
    p.connect(parts.ms_per_step, 0, delay_ms, 4)

    level = p.obj("snapshot~", (x, y0))
    p.connect(nn, i, level, 0)
    p.connect(parts.sample_levels[0], parts.sample_levels[1], level, 0)
    fan = p.obj("t f f", (x, y0 + 40))
    p.connect(level, 0, fan, 0)
    # display: "column row state" once the column is known (it arrives last, in the hot inlet)
    on = p.obj("> 0.", (x + 60, y0 + 80))
    cell = p.obj(f"pack 0 {i + 1} 0", (x + 60, y0 + 160))
    p.connect(fan, 1, on, 0)
    p.connect(on, 0, cell, 2)
    p.connect(parts.column, 0, cell, 0)
    p.connect(cell, 0, grid, 0)
    # a hit: its velocity (cold), then its delay (hot) -> (ms, velocity) into the step's lane
    hit = p.obj("split 0.000001 1.", (x, y0 + 80))
    hit_fan = p.obj("t b f", (x, y0 + 100))
    velocity = p.obj(VELOCITY_EXPR, (x + 40, y0 + 140), width=90)
    note = p.obj("pack 0. 0", (x, y0 + 200))
    lane_gate = p.obj("gate 2", (x, y0 + 240))
    p.connect(fan, 0, hit, 0)
    p.connect(hit, 0, hit_fan, 0)
    p.connect(hit_fan, 1, velocity, 0)
    p.connect(velocity, 0, note, 1)
    p.connect(hit_fan, 0, delay_ms, 0)
    p.connect(delay_ms, 0, note, 0)
    p.connect(parts.lane, 0, lane_gate, 0)
    p.connect(note, 0, lane_gate, 1)
    pitch = p.obj(f"i {spec.gm_notes[i]}", (x, y0 + 520))
    p.connect(numbox, 0, pitch, 1)
    for lane in range(2):
        lx = x + lane * 60
        parts_of = p.obj("unpack 0. 0", (lx, y0 + 280))
        kept = p.obj("i", (lx + 30, y0 + 320))
        timing = p.obj("t b f", (lx, y0 + 320))
        wait = p.obj("delay", (lx, y0 + 360))
        play = p.obj("t b i", (lx, y0 + 440))
        p.connect(lane_gate, lane, parts_of, 0)
        p.connect(parts_of, 1, kept, 1)
        p.connect(parts_of, 0, timing, 0)
        p.connect(timing, 1, wait, 1)
        p.connect(timing, 0, wait, 0)
        p.connect(wait, 0, kept, 0)
        p.connect(kept, 0, play, 0)
        p.connect(play, 1, makenote, 1)
        p.connect(play, 0, pitch, 0)
    p.connect(pitch, 0, makenote, 0)


def _step_parts(p: Patcher, spec: DrumsSpec, step_phase: Box, feel: Feel) -> StepParts:
    """The 32nd tick of Live's transport and, at the one half a step before each 16th, what that step needs."""
    metro = p.obj("metro 32n @quantize 32n @active 1", (1240, 400))
    now = p.obj("snapshot~", (1400, 400))
    p.connect(step_phase, 0, now, 0)
    p.connect(metro, 0, now, 0)
    position = p.obj("t f f", (1400, 430))
    kept = p.obj("f", (1460, 460))
    p.connect(now, 0, position, 0)
    p.connect(position, 1, kept, 1)
    ahead = p.obj("expr int($f1 * 2. + 0.5) % 2", (1400, 460))  # 1: half a step before a 16th
    is_ahead = p.obj("sel 1", (1400, 490))
    p.connect(position, 0, ahead, 0)
    p.connect(ahead, 0, is_ahead, 0)
    # right to left: 4) which step comes, 3) Live's tempo, 2) offsets, 1) levels and notes, 0) the column
    tick = p.obj("t b b b b b", (1400, 520))
    p.connect(is_ahead, 0, tick, 0)

    p.connect(tick, 4, kept, 0)
    coming = p.obj("+ 1.", (1460, 550))  # (k - 0.5) + 1 -> step k
    whole = p.obj("i", (1460, 580))
    wrapped = p.obj(f"% {spec.steps}", (1460, 610))
    step_fan = p.obj("t i i i", (1460, 640))
    p.connect(kept, 0, coming, 0)
    p.connect(coming, 0, whole, 0)
    p.connect(whole, 0, wrapped, 0)
    p.connect(wrapped, 0, step_fan, 0)
    parity = p.obj("% 2", (1560, 670))
    lane = p.obj("+ 1", (1560, 700))
    p.connect(step_fan, 2, parity, 0)
    p.connect(parity, 0, lane, 0)
    swing_shift = p.obj("expr ($i1 % 2) * $f2 * 0.5 * $f3", (1500, 700), width=160)
    p.connect(step_fan, 1, swing_shift, 0)
    p.connect(feel.swing, 0, swing_shift, 1)
    unquantised = p.obj("!- 1", (1600, 560))
    p.connect(feel.quantise, 0, unquantised, 0)
    p.connect(unquantised, 0, swing_shift, 2)
    one_based = p.obj("+ 1", (1460, 700))
    column = p.obj("i", (1300, 740))
    p.connect(step_fan, 0, one_based, 0)
    p.connect(one_based, 0, column, 1)
    p.connect(tick, 0, column, 0)

    transport = p.obj("transport", (1640, 600))
    ms_per_step = p.obj("!/ 15000.", (1640, 640))  # 60000 ms / (tempo * 4 16ths)
    p.connect(tick, 3, transport, 0)
    p.connect(transport, 4, ms_per_step, 0)
    # a loaded device sends its feel controls' values (parameters restore without output otherwise)
    ready = p.obj("live.thisdevice", (1600, 480))
    resend = p.obj("t b b", (1600, 510))
    p.connect(ready, 0, resend, 0)
    p.connect(resend, 1, feel.swing, 0)
    p.connect(resend, 0, feel.quantise, 0)
    return StepParts(lane, swing_shift, unquantised, ms_per_step, (tick, 2), (tick, 1), column)


def _sequencer(p: Patcher, spec: DrumsSpec, lay: Layout, nn: Box, step_phase: Box, feel: Feel) -> None:
    """The look-ahead tick, the step it prepares, the nine instruments, MIDI out and MIDI thru."""
    section_header(p, "Drum map", lay.map_x, 94)
    section_header(p, "Pattern", lay.grid_x, spec.steps * lay.cell_w)
    grid = p.ui(
        "live.grid",
        (1240, 560, 192, 108),
        param=Param("Pattern View", "Pattern", kind="blob", visibility="hidden"),
        presentation_rect=(lay.grid_x, TOP, spec.steps * lay.cell_w, N_INSTRUMENTS * ROW_H),
        columns=spec.steps,
        rows=N_INSTRUMENTS,
        matrixmode=1,
        direction=0,
        ignoreclick=1,
    )
    parts = _step_parts(p, spec, step_phase, feel)
    p.connect(parts.column, 0, grid, 0)  # an int moves the playhead

    makenote = p.obj(f"makenote 100 {NOTE_LENGTH_MS}", (20, 1260))
    pitch_velocity = p.obj("pack 0 0", (20, 1300))
    midiformat = p.obj("midiformat", (20, 1340))
    midiout = p.obj("midiout", (20, 1380))
    midiin = p.obj("midiin", (200, 1340))
    p.connect(makenote, 1, pitch_velocity, 1)
    p.connect(makenote, 0, pitch_velocity, 0)
    p.connect(pitch_velocity, 0, midiformat, 0)
    p.connect(midiformat, 0, midiout, 0)
    p.connect(midiin, 0, midiout, 0)
    for i, note_name in enumerate(_unique_note_names(spec.instrument_names)):
        _instrument(p, spec, lay, i, nn, parts, makenote, grid, note_name)


def drums_patcher(spec: DrumsSpec) -> dict[str, Any]:
    """The ``{"patcher": {...}}`` document of LatentDrums for ``spec``."""
    lay = Layout.for_latents(spec.latent_size, spec.steps)
    p = Patcher(device_width=lay.width)
    d = spec.latent_size
    nn = p.obj(
        f"nn~ {quote_atom(spec.model_file)} decode {NN_BUFFER} {d + 2} {OUTPUTS}", (20, 500), width=1160
    )
    _latents(p, spec, lay, nn)
    step_phase = _style_and_step(p, spec, lay, nn)
    dials, feel = _sampling(p, spec, lay, nn)
    model_loading(
        p,
        [nn],
        spec.model_file,
        "drums",
        drop_rect=(lay.sampling_x, 74, 96, 46),
        status_rect=(lay.sampling_x, 124, 96, 42),
        resend=dials,
    )
    _sequencer(p, spec, lay, nn, step_phase, feel)
    return p.to_dict(
        MIDI_EFFECT, description="LatentDrums: move in the latent space, it plays the pattern with its feel."
    )


build_drums_device = device_builder(DrumsSpec, drums_patcher, DEVICE_NAME, MIDI_EFFECT)

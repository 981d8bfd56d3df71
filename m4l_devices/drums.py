"""LatentDrums.amxd: the latent drum sequencer, a MIDI effect around ``nn~ drums.ts decode``.

Signal flow (the contract is docs/drums_encoding.md)::

    XY pad / dials z1..zD --> sig~ ----------------------------.
    phasor~ 1n @lock 1 --> *~ 16. --> +~ 0.5 (step, looks ahead) --> nn~ <model> decode 512 D+2 9
    style menu --> sig~ -------------------------------------'      |  (9 hit levels)
    metro 16n @quantize 16n (Live's transport) --> snapshot~ x 9 ---'
        --> level > 0 ? velocity round(40 + 87 level) --> makenote --> midiformat --> midiout
    midiin ---------------------------------------------------------------------> midiout

The step input runs half a step ahead of Live's bar position, so when the 16th-note tick
arrives the levels of the step that begins are already out of nn~ (its threaded buffer of
512 samples delays results by about 1024 samples, well under half a 16th up to ~300 BPM).
Dropping a ``.ts`` on the model box sends ``load <path>`` to nn~ and the file is kept with
the Live set; a status line says which model is loaded or that the file is missing.
Left out of this first version: learning a clip (the ``encode`` method).
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
STEPS = 16
NN_BUFFER = 512
LATENT_RANGE = 3.0  # the pad and dials span -3..3 (the prior is N(0, 1))
NOTE_LENGTH_MS = 50  # short notes: drum racks ignore note-off, synths get a clean gate

# presentation layout, in pixels
DIAL_W, DIAL_H, DIAL_STEP_X, DIAL_STEP_Y = 44.0, 48.0, 46.0, 50.0
TOP = 20.0  # first row under the section headers
ROW_H = 16.0  # one instrument row of the drum map and the pattern grid
CELL_W = 12.0


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
        if not 2 <= d <= 8:
            raise UserError(f"{where} latent_size={d} is outside 2..8; {fix}")
        if len(names) != N_INSTRUMENTS or len(notes) != N_INSTRUMENTS:
            raise UserError(f"{where} has {len(names)} instruments / {len(notes)} notes, expected 9; {fix}")
        if not all(0 <= n <= 127 for n in notes):
            raise UserError(f"{where} gm_notes {list(notes)} are not all MIDI notes 0..127; {fix}")
        if steps != STEPS:
            raise UserError(f"{where} steps={steps}; the device plays 16-step patterns, {fix} with steps 16")
        decode = metadata.get("methods", {}).get("decode", {})
        for key, want in (("in_channels", d + 2), ("out_channels", N_INSTRUMENTS)):
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

    @classmethod
    def for_latents(cls, latent_size: int) -> "Layout":
        cols = min(latent_size, 4)
        dials_x = 6.0 + 144.0 + 10.0
        sampling_x = dials_x + max(cols * DIAL_STEP_X, 96.0) + 10.0
        map_x = sampling_x + 96.0 + 12.0
        grid_x = map_x + 98.0
        return cls(6.0, dials_x, cols, sampling_x, map_x, grid_x, grid_x + STEPS * CELL_W + 8.0)


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
    """Style menu -> sig~, and the step signal locked to Live's bar. Returns the 16 x phase box."""
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

    phase = p.obj("phasor~ 1n @lock 1", (560, 340))
    steps = p.obj(f"*~ {STEPS}.", (560, 380))
    ahead = p.obj("+~ 0.5", (560, 420))
    p.connect(phase, 0, steps, 0)
    p.connect(steps, 0, ahead, 0)
    p.connect(ahead, 0, nn, d)
    return steps


def _sampling(p: Patcher, spec: DrumsSpec, lay: Layout, nn: Box) -> list[Box]:
    """Threshold and temperature dials -> ``set <attribute> <value>`` to nn~. Returns the dials."""
    section_header(p, "Sampling", lay.sampling_x, 96)
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
    return dials


def _instrument(
    p: Patcher,
    spec: DrumsSpec,
    lay: Layout,
    i: int,
    nn: Box,
    tick: Box,
    column: Box,
    makenote: Box,
    grid: Box,
    note_name: str,
) -> None:
    """One instrument: sample its level at the tick, send a note if above 0, light its grid cell."""
    x, y0 = 20.0 + i * 130.0, 560.0
    y = TOP + i * ROW_H
    p.comment(
        spec.instrument_names[i],
        (x, y0 + 420, 60, 18),
        presentation_rect=(lay.map_x, y, 56, 15),
        maxclass="live.comment",
    )
    numbox = p.ui(
        "live.numbox",
        (x + 60, y0 + 320, 40, 15),
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
    level = p.obj("snapshot~", (x, y0))
    p.connect(nn, i, level, 0)
    p.connect(tick, 1, level, 0)
    fan = p.obj("t f f", (x, y0 + 40))
    p.connect(level, 0, fan, 0)
    # display: "column row state" once the column is known (it arrives last, in the hot inlet)
    on = p.obj("> 0.", (x + 60, y0 + 80))
    cell = p.obj(f"pack 0 {i + 1} 0", (x + 60, y0 + 120))
    p.connect(fan, 1, on, 0)
    p.connect(on, 0, cell, 2)
    p.connect(column, 0, cell, 0)
    p.connect(cell, 0, grid, 0)
    # note: velocity round(40 + 87 level) into makenote's cold inlet, then the pitch
    hit = p.obj("split 0.000001 1.", (x, y0 + 80))
    scale = p.obj("* 87.", (x, y0 + 160))
    offset = p.obj("+ 40.5", (x, y0 + 200))
    velocity = p.obj("i", (x, y0 + 240))
    order = p.obj("t b i", (x, y0 + 280))
    pitch = p.obj(f"i {spec.gm_notes[i]}", (x, y0 + 360))
    p.connect(fan, 0, hit, 0)
    p.connect(hit, 0, scale, 0)
    p.connect(scale, 0, offset, 0)
    p.connect(offset, 0, velocity, 0)
    p.connect(velocity, 0, order, 0)
    p.connect(order, 1, makenote, 1)
    p.connect(numbox, 0, pitch, 1)
    p.connect(order, 0, pitch, 0)
    p.connect(pitch, 0, makenote, 0)


def _sequencer(p: Patcher, spec: DrumsSpec, lay: Layout, nn: Box, step_phase: Box) -> None:
    """The 16th tick, the column it plays, the nine instruments, MIDI out and MIDI thru."""
    section_header(p, "Drum map", lay.map_x, 94)
    section_header(p, "Pattern", lay.grid_x, STEPS * CELL_W)
    grid = p.ui(
        "live.grid",
        (1240, 560, 192, 108),
        param=Param("Pattern View", "Pattern", kind="blob", visibility="hidden"),
        presentation_rect=(lay.grid_x, TOP, STEPS * CELL_W, N_INSTRUMENTS * ROW_H),
        columns=STEPS,
        rows=N_INSTRUMENTS,
        matrixmode=1,
        direction=0,
        ignoreclick=1,
    )
    metro = p.obj("metro 16n @quantize 16n @active 1", (1240, 440))
    # right to left: 2) which column this is, 1) sample the levels and play, 0) light the column
    tick = p.obj("t b b b", (1240, 480))
    p.connect(metro, 0, tick, 0)
    now = p.obj("snapshot~", (1400, 480))
    p.connect(step_phase, 0, now, 0)
    p.connect(tick, 2, now, 0)
    rounded = p.obj("+ 0.5", (1400, 510))
    whole = p.obj("i", (1400, 540))
    wrapped = p.obj(f"% {STEPS}", (1400, 570))
    one_based = p.obj("+ 1", (1400, 600))
    column = p.obj("i", (1300, 640))
    p.connect(now, 0, rounded, 0)
    p.connect(rounded, 0, whole, 0)
    p.connect(whole, 0, wrapped, 0)
    p.connect(wrapped, 0, one_based, 0)
    p.connect(one_based, 0, column, 1)
    p.connect(tick, 0, column, 0)
    p.connect(column, 0, grid, 0)  # an int moves the playhead

    makenote = p.obj(f"makenote 100 {NOTE_LENGTH_MS}", (20, 1060))
    pitch_velocity = p.obj("pack 0 0", (20, 1100))
    midiformat = p.obj("midiformat", (20, 1140))
    midiout = p.obj("midiout", (20, 1180))
    midiin = p.obj("midiin", (200, 1140))
    p.connect(makenote, 1, pitch_velocity, 1)
    p.connect(makenote, 0, pitch_velocity, 0)
    p.connect(pitch_velocity, 0, midiformat, 0)
    p.connect(midiformat, 0, midiout, 0)
    p.connect(midiin, 0, midiout, 0)
    for i, note_name in enumerate(_unique_note_names(spec.instrument_names)):
        _instrument(p, spec, lay, i, nn, tick, column, makenote, grid, note_name)


def drums_patcher(spec: DrumsSpec) -> dict[str, Any]:
    """The ``{"patcher": {...}}`` document of LatentDrums for ``spec``."""
    lay = Layout.for_latents(spec.latent_size)
    p = Patcher(device_width=lay.width)
    d = spec.latent_size
    nn = p.obj(
        f"nn~ {quote_atom(spec.model_file)} decode {NN_BUFFER} {d + 2} {N_INSTRUMENTS}", (20, 500), width=1160
    )
    _latents(p, spec, lay, nn)
    step_phase = _style_and_step(p, spec, lay, nn)
    dials = _sampling(p, spec, lay, nn)
    model_loading(
        p,
        [nn],
        spec.model_file,
        "drums",
        drop_rect=(lay.sampling_x, 74, 96, 46),
        status_rect=(lay.sampling_x, 124, 96, 42),
        resend=dials,
    )
    _sequencer(p, spec, lay, nn, step_phase)
    return p.to_dict(MIDI_EFFECT, description="LatentDrums: move in the latent space, it plays the pattern.")


build_drums_device = device_builder(DrumsSpec, drums_patcher, DEVICE_NAME, MIDI_EFFECT)

"""LatentKit.amxd: the drum synth instrument around ``nn~ drumsynth.ts forward``.

Signal flow (the contract is the docstring of export/drumsynth.py)::

    midiin --> midiparse --> unpack pitch velocity
        velocity > 0 opens the pitch; velocity / 127 waits in [f]
        pitch --> sel <note of class c> (one per class; its right inlet is the class's note number box)
            --> bang the knobs of class c --> class c --> sig~ (class) ; knobs --> sig~ x D (knob1..knobD)
            --> velocity --> "$1, 0 2" --> line~ (gate) --.
    gate, class, knob1..knobD -------------------------> nn~ <model> forward 512 D+2 1
        --> *~ output gain (dB dial --> line~) --> plugout~ 1 2

Per-class settings: every class has its own D automatable dials, ``"<Class> Knob k"`` (not shown:
8 x D dials do not fit 169 px). The shown editor -- a class menu, an XY pad over knob1 / knob2 and
D dials ``"Knob k"`` -- edits the class picked in the menu: moving an editor dial writes the class's
dial, and picking a class (or automating its dials) sets the editor back without output. The editor
dials are hidden parameters (neither stored nor automated), so Live sees each value once.
Editing a class also sends its class and knobs to nn~, which previews the new sound two buffers later and
refines it in the background (export/drumsynth.py).
"Randomise" sets the selected class's knobs to uniform values in -2..2. The note of each class is a
number box (General MIDI drum notes by default; a class name not in ``GM_NOTES`` gets 60 + its index).
Dropping a ``.ts`` on the model box loads it (see m4l_devices/common.py); the status line says when
the file is missing.

The gate is a short pulse, velocity then a 2 ms ramp to 0, rather than a level held while the note
is on: nn~ starts a hit on a rise above 0, so held notes that overlap (legato drum clips) would
swallow every hit after the first. Limits of the model's contract: the class and knobs are read once
per nn~ buffer, so two hits of different classes within one buffer (512 samples) both play the later
class, and notes in the same Max signal vector make one hit.
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
    pad_links,
    quote_atom,
    reading_metadata,
    section_header,
)
from latentlive.m4l_devices.patcher import Box, Param, Patcher

DEVICE_NAME = registry.device_name("drumsynth")
NN_BUFFER = 512  # nn~ threaded delay: 2 x 512 - 64 samples, about 22 ms at 44.1 kHz
KNOB_RANGE = 3.0  # the knobs span -3..3 standard deviations along the class's PCA axes
RANDOM_RANGE = 2.0  # "Randomise" draws uniformly in -2..2
GATE_RAMP_MS = 2  # the gate pulse falls back to 0 so that the next note rises again
GAIN_RAMP_MS = 20
# General MIDI drum notes of the model's classes; a class not listed here gets 60 + its index
GM_NOTES = {
    "kick": 36,
    "snare": 38,
    "clap": 39,
    "closed_hat": 42,
    "open_hat": 46,
    "tom": 45,
    "rim": 37,
    "cymbal": 49,
}

# presentation layout, in pixels
DIAL_W, DIAL_H, DIAL_STEP_X, DIAL_STEP_Y = 44.0, 48.0, 46.0, 50.0
TOP = 20.0  # first row under the section headers
ROW_H = 16.0  # one class row of the note map
EDIT_X, PAD = 6.0, 128.0
KNOBS_X = EDIT_X + 144.0 + 10.0
KNOB_COLS = 4
NOTES_X = KNOBS_X + KNOB_COLS * DIAL_STEP_X + 10.0
OUT_X = NOTES_X + 98.0 + 12.0
WIDTH = OUT_X + 96.0 + 8.0


@dataclass(frozen=True)
class KitSpec:
    """What the device needs from the model's metadata."""

    model_file: str  # a bare file name: nn~ finds it beside the device
    latent_size: int
    class_names: tuple[str, ...]
    host_rates: tuple[int, ...] | None = None  # the rates the model supports (metadata)

    @classmethod
    def from_metadata(
        cls, model_path: str, metadata: dict[str, Any], model_file: str | None = None
    ) -> "KitSpec":
        """Check the metadata of ``drumsynth.ts`` (see export/drumsynth.py); UserError if unusable."""
        where, fix = metadata_where(model_path, metadata, "drumsynth", "drum synth")
        with reading_metadata(where, fix):
            d = int(metadata["latent_size"])
            names = tuple(str(s) for s in metadata["class_names"])
        if not 2 <= d <= 8:
            raise UserError(f"{where} latent_size={d} is outside 2..8 (the knobs the device shows); {fix}")
        if not 1 <= len(names) <= 16 or len(set(names)) != len(names):
            raise UserError(f"{where} class_names {list(names)} must be 1..16 distinct names; {fix}")
        forward = metadata.get("methods", {}).get("forward", {})
        for key, want in (("in_channels", d + 2), ("out_channels", 1)):
            if key in forward and int(forward[key]) != want:
                raise UserError(f"{where} forward {key}={forward[key]}, expected {want}; {fix}")
        return cls(
            model_file=model_file_name(model_file or model_path),
            latent_size=d,
            class_names=names,
            host_rates=host_rates_of(metadata),
        )

    @property
    def labels(self) -> list[str]:
        """Class names as Live shows them: ``closed_hat`` -> ``Closed Hat``."""
        return [
            n.replace("_", " ").strip().title() or f"Class {i + 1}" for i, n in enumerate(self.class_names)
        ]

    @property
    def default_notes(self) -> list[int]:
        return [GM_NOTES.get(n.lower(), 60 + i) for i, n in enumerate(self.class_names)]


def _knob_param(longname: str, shortname: str, visibility: str = "automated") -> Param:
    return Param(
        longname,
        shortname,
        mmin=-KNOB_RANGE,
        mmax=KNOB_RANGE,
        initial=0.0,
        unitstyle="float",
        visibility=visibility,
    )


def _to_nn(p: Patcher, spec: KitSpec, nn: Box) -> tuple[Box, Box, Box]:
    """The gate, class and knob signals. Returns (gate line~, class sig~, knob unpack)."""
    d = spec.latent_size
    gate = p.obj("line~", (20, 700))
    p.connect(gate, 0, nn, 0)
    klass = p.obj("sig~", (100, 700))
    p.connect(klass, 0, nn, 1)
    knobs = p.obj("unpack " + " ".join(["0."] * d), (200, 640))
    for k in range(d):
        sig = p.obj("sig~", (200 + k * 60, 700))
        p.connect(knobs, k, sig, 0)
        p.connect(sig, 0, nn, 2 + k)
    return gate, klass, knobs


def _class_settings(
    p: Patcher, spec: KitSpec, klass: Box, knobs: Box
) -> tuple[list[list[Box]], list[Box], list[Box]]:
    """Per class: D automatable dials (not shown) -> pak -> class and knob signals.

    Returns the dials ``[class][knob]``, the paks (a bang re-sends the class) and one gate per
    class that passes its knob list back to the editor while the class is selected.
    """
    d = spec.latent_size
    dials: list[list[Box]] = []
    paks, feedback = [], []
    for c, label in enumerate(spec.labels):
        x, y = 20.0 + c * 160.0, 1000.0
        pak = p.obj("pak " + " ".join(["0."] * d), (x, y + 60))
        dials.append([])
        for k in range(d):
            dial = p.ui(
                "live.dial",
                (x + (k % 4) * 40, y + (k // 4) * 30, 36, 24),
                param=_knob_param(f"{label} Knob {k + 1}", f"{label[:6]} K{k + 1}"),
            )
            p.connect(dial, 0, pak, k)
            dials[c].append(dial)
        order = p.obj("t l b", (x, y + 90))
        which = p.message(str(c), (x + 60, y + 120))
        p.connect(pak, 0, order, 0)
        p.connect(order, 1, which, 0)
        p.connect(which, 0, klass, 0)
        p.connect(order, 0, knobs, 0)
        shown = p.obj("gate 1", (x, y + 150))
        p.connect(order, 0, shown, 1)
        paks.append(pak)
        feedback.append(shown)
    return dials, paks, feedback


def _editor(
    p: Patcher, spec: KitSpec, class_dials: list[list[Box]], paks: list[Box], feedback: list[Box]
) -> list[Box]:
    """Class menu, XY pad, D editor dials and Randomise, writing the selected class's dials.

    Returns the editor dials.
    """
    d, n = spec.latent_size, len(spec.class_names)
    section_header(p, "Class", EDIT_X, 38)
    menu = p.ui(
        "live.menu",
        (20, 40, 100, 15),
        param=Param("Edit Class", "Class", kind="enum", enum=tuple(spec.labels), visibility="stored"),
        presentation_rect=(EDIT_X + 40, 3, 104, 15),
    )
    r100 = int(KNOB_RANGE * 100)
    pad = p.ui(
        "pictslider",
        (20, 80, 120, 120),
        presentation_rect=(EDIT_X + 8, TOP + 2, PAD, PAD),
        leftvalue=-r100,
        rightvalue=r100,
        bottomvalue=-r100,
        topvalue=r100,
    )
    section_header(p, "Knobs", KNOBS_X, KNOB_COLS * DIAL_STEP_X)
    pick = p.obj("t i i", (20, 220))
    p.connect(menu, 0, pick, 0)
    ready = p.obj("live.thisdevice", (140, 40))  # once the set is loaded, show the selected class
    p.connect(ready, 0, menu, 0)
    plus_one = p.obj("+ 1", (80, 250))
    p.connect(pick, 1, plus_one, 0)
    recall = p.obj("sel " + " ".join(str(c) for c in range(n)), (20, 280))
    p.connect(pick, 0, recall, 0)
    for c in range(n):
        p.connect(recall, c, paks[c], 0)  # a bang re-sends the class's knobs (and pre-renders it)
        is_shown = p.obj(f"== {c}", (200 + c * 50, 250))
        p.connect(pick, 1, is_shown, 0)
        p.connect(is_shown, 0, feedback[c], 0)
    back = p.obj("unpack " + " ".join(["0."] * d), (200, 320))
    for shown in feedback:
        p.connect(shown, 0, back, 0)

    randomise = p.ui(
        "live.text",
        (700, 40, 80, 18),
        param=Param("Randomise", "Random", kind="enum", enum=("val1", "val2")),
        presentation_rect=(
            KNOBS_X + 2,
            TOP + -(-d // KNOB_COLS) * DIAL_STEP_Y + 6,
            90,
            18,
        ),  # under the dials
        text="Randomise",
        texton="Randomise",
        mode=0,
    )
    spread = p.obj("t " + " ".join(["b"] * d), (700, 80))
    p.connect(randomise, 0, spread, 0)

    dials = []
    for k in range(d):
        row, col = divmod(k, KNOB_COLS)
        x = 300.0 + k * 70.0
        dial = p.ui(
            "live.dial",
            (x, 400, DIAL_W, DIAL_H),
            param=_knob_param(f"Knob {k + 1}", f"Knob {k + 1}", visibility="hidden"),
            presentation_rect=(KNOBS_X + col * DIAL_STEP_X, TOP + row * DIAL_STEP_Y, DIAL_W, DIAL_H),
        )
        to_class = p.obj(f"gate {n}", (x, 470))
        p.connect(plus_one, 0, to_class, 0)
        p.connect(dial, 0, to_class, 1)
        set_dial = p.obj("prepend set", (x, 360))
        p.connect(back, k, set_dial, 0)
        p.connect(set_dial, 0, dial, 0)
        draw = p.obj(f"random {int(RANDOM_RANGE * 2000) + 1}", (x, 120))
        centre = p.obj(f"- {int(RANDOM_RANGE * 1000)}", (x, 150))
        scale = p.obj("/ 1000.", (x, 180))
        p.connect(spread, k, draw, 0)
        p.connect(draw, 0, centre, 0)
        p.connect(centre, 0, scale, 0)
        p.connect(scale, 0, dial, 0)
        dials.append(dial)
        for c in range(n):
            p.connect(to_class, c, class_dials[c][k], 0)  # the dial outputs: automation sees the edit
    pad_links(p, pad, dials, (560, 590, 620, 650), back)
    return dials


def _notes(p: Patcher, spec: KitSpec, paks: list[Box], gate: Box) -> list[Box]:
    """MIDI in -> the class of each note (its number box) -> knobs, class, then the gate pulse.
    Returns the note number boxes."""
    section_header(p, "Notes", NOTES_X, 98)
    midiin = p.obj("midiin", (600, 220))
    parse = p.obj("midiparse", (600, 250))
    note = p.obj("unpack 0 0", (600, 280))
    p.connect(midiin, 0, parse, 0)
    p.connect(parse, 0, note, 0)
    velocity = p.obj("t i i", (680, 310))
    p.connect(note, 1, velocity, 0)
    is_on = p.obj("> 0", (720, 340))
    level = p.obj("/ 127.", (680, 370))
    held = p.obj("f", (680, 400))
    p.connect(velocity, 1, is_on, 0)
    p.connect(velocity, 0, level, 0)
    p.connect(level, 0, held, 1)
    pitch = p.obj("gate 1", (600, 370))
    p.connect(is_on, 0, pitch, 0)
    p.connect(note, 0, pitch, 1)
    pulse = p.message(f"$1, 0 {GATE_RAMP_MS}", (680, 440))
    p.connect(held, 0, pulse, 0)
    p.connect(pulse, 0, gate, 0)

    numboxes = []
    for c, (label, default) in enumerate(zip(spec.labels, spec.default_notes, strict=True)):
        x, y = 800.0 + c * 90.0, 220.0
        p.comment(
            label,
            (x, y - 30, 80, 18),
            presentation_rect=(NOTES_X, TOP + c * ROW_H, 58, 15),
            maxclass="live.comment",
        )
        numbox = p.ui(
            "live.numbox",
            (x, y, 40, 15),
            param=Param(
                f"{label} Note",
                f"{label[:8]}",
                kind="int",
                mmin=0,
                mmax=127,
                initial=default,
                unitstyle="midi",
            ),
            presentation_rect=(NOTES_X + 60, TOP + c * ROW_H, 36, 15),
        )
        match = p.obj(f"sel {default}", (x, y + 40))
        p.connect(numbox, 0, match, 1)
        p.connect(pitch, 0, match, 0)
        hit = p.obj("t b b", (x, y + 80))  # right first: class and knobs, then the gate
        p.connect(match, 0, hit, 0)
        p.connect(hit, 1, paks[c], 0)
        p.connect(hit, 0, held, 0)
        numboxes.append(numbox)
    return numboxes


def _output(p: Patcher, nn: Box) -> Box:
    """Output gain dial (dB) -> smoothed gain on the model's mono audio -> both channels of plugout~."""
    section_header(p, "Output", OUT_X, 96)
    dial = p.ui(
        "live.dial",
        (1000, 600, DIAL_W, DIAL_H),
        param=Param("Output Gain", "Gain", mmin=-70.0, mmax=6.0, initial=0.0, unitstyle="db"),
        presentation_rect=(OUT_X + 26, TOP, DIAL_W, DIAL_H),
    )
    amplitude = p.obj("expr pow(10.\\, $f1 / 20.)", (1000, 660))
    ramp = p.message(f"$1 {GAIN_RAMP_MS}", (1000, 690))
    smooth = p.obj("line~", (1000, 720))
    gain = p.obj("*~", (900, 760))
    out = p.obj("plugout~ 1 2", (900, 800))
    p.connect(dial, 0, amplitude, 0)
    p.connect(amplitude, 0, ramp, 0)
    p.connect(ramp, 0, smooth, 0)
    p.connect(smooth, 0, gain, 1)
    p.connect(nn, 0, gain, 0)
    p.connect(gain, 0, out, 0)
    p.connect(gain, 0, out, 1)
    return dial


def kit_patcher(spec: KitSpec) -> dict[str, Any]:
    """The ``{"patcher": {...}}`` document of LatentKit for ``spec``."""
    p = Patcher(device_width=WIDTH)
    d = spec.latent_size
    nn = p.obj(f"nn~ {quote_atom(spec.model_file)} forward {NN_BUFFER} {d + 2} 1", (20, 740), width=700)
    gate, klass, knobs = _to_nn(p, spec, nn)
    class_dials, paks, feedback = _class_settings(p, spec, klass, knobs)
    _editor(p, spec, class_dials, paks, feedback)
    _notes(p, spec, paks, gate)
    _output(p, nn)
    model_loading(
        p,
        [nn],
        spec.model_file,
        "drumsynth",
        drop_rect=(OUT_X, 74, 96, 46),
        status_rect=(OUT_X, 124, 96, 42),
        at=(1500.0, 40.0),
        host_rates=spec.host_rates,
    )
    return p.to_dict(
        INSTRUMENT, description="LatentKit: MIDI notes play drum classes shaped by latent knobs."
    )


build_kit_device = device_builder(KitSpec, kit_patcher, DEVICE_NAME, INSTRUMENT)

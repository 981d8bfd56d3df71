"""LatentLoops.amxd: the techno loop instrument around ``nn~ techno_prior.ts trajectory`` and ``decode``.

Signal flow (the contract is the metadata of the techno_prior export, see the module docstring of
export's techno prior wrapper)::

    Macro 1..M dials --> line~ ------------------------------------------.
    phasor~ <bars>.0.0 @lock 1 (Live's transport) --> + look-ahead --> nn~ <model> trajectory 2048 M+1 L
        |                                                                |  (L latent signals)
        |        Mode "Macro": g = 1, "Latent": g = 0 (line~ crossfade)  |
        |   traj_k * g  +  Latent k dial * (1 - g)   <-------------------'   (the offset stage, one per k)
        |        --> nn~ <model> decode 2048 L 1 --> * transport running --> * output gain --> plugout~ 1 2
        '--> traj_k / 6 --> live.modulate~ (Latent k's parameter id, Macro mode only)

Transport: the loop phase is ``phasor~`` with a bars.beats.units interval of 1, 2 or 4 bars and
``@lock 1``; a locked phasor~ derives its phase from the transport position (so a 2-bar loop starts
on odd bars and follows relocations) and stands still while the transport is stopped. It runs in the
audio thread, so the phase is sample-accurate; ``plugsync~`` / ``transport`` only report at control
rate and would need a ramp rebuilt from bar counts. The "Loop Bars" menu sends ``frequency N.0.0``.
The results of nn~ come out ``2 x buffer - 64`` samples late per nn~ and the model adds its
``latency``; the phase fed to the trajectory runs ahead by that many samples (the per-sample phase
increment, ``delta~`` wrapped into 0..1, times the delay), so the loop lands on Live's grid.

Transport stopped: silence. ``plugsync~``'s first outlet (1 while Live plays) ramps the output to 0
in 50 ms; a stopped locked phasor~ would otherwise hold one latent frame, a drone nobody asked for.

Modes: in "Macro" the trajectory drives the stage-1 latents and the Latent dials only show it: each
trajectory signal modulates its dial through ``live.modulate~`` (scaled by 1 / (max - min) so the
ring shows ``base + trajectory``), which neither writes the parameter nor an undo step, as Ableton
asks of internal modulation. A modulated live.dial outputs its modulated value, so in Macro mode the
dials' outputs are muted by ``1 - g`` (no feedback); in "Latent" mode the modulation stops (``id 0``)
and the dials (automatable) drive the latents directly. The dials' parameter ids are looked up once the
device is loaded: ``this_device parameters`` -> each id's ``name`` -> ``route "Latent 1" ...``.

Latent-mode automation reaches the audio ``2 x buffer - 64 + latency`` samples late (no look-ahead
for automation). Dropping a ``.ts`` on the model box loads it into both nn~ (m4l_devices/common.py).
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
from latentlive.m4l_devices.patcher import Box, Param, Patcher

DEVICE_NAME = registry.device_name("techno_prior")
NN_BUFFER = 2048  # a multiple of the latent ratio 256; nn~ delay 2 x 2048 - 64 samples per nn~
LATENT_RATIO = 256  # host samples per latent frame (the export's contract)
MACRO_RANGE = 3.0  # macro and latent dials span -3..3 prior standard deviations
LOOP_BARS = (1, 2, 4)
LATENT_SIZES = (4, 32)
MACRO_SIZES = (2, 16)
SMOOTH_MS = 20  # dial -> signal ramps
MODE_MS = 30  # Macro <-> Latent crossfade
STOP_MS = 50  # fade out when the transport stops
MAX_PHASE_STEP = 0.001  # per-sample phase increment bound: a relocation is not a tempo
MODMODE_BIPOLAR = 2  # parameter_modmode: modulation adds to the base value (live.modulate~ docs)

# presentation layout, in pixels
DIAL_W, DIAL_H, DIAL_STEP_X, DIAL_STEP_Y = 44.0, 48.0, 46.0, 50.0
SMALL_W, SMALL_H, SMALL_STEP_X, SMALL_STEP_Y = 30.0, 36.0, 32.0, 36.0
TOP = 20.0  # first row under the section headers
MACRO_ROWS, LATENT_ROWS = 3, 4


@dataclass(frozen=True)
class LoopsSpec:
    """What the device needs from the metadata of ``techno_prior.ts``."""

    model_file: str  # a bare file name: nn~ finds it beside the device
    latent_size: int
    macro_size: int
    bars: int
    latency: int
    host_rates: tuple[int, ...] | None = None  # the rates the model supports (metadata)

    @classmethod
    def from_metadata(
        cls, model_path: str, metadata: dict[str, Any], model_file: str | None = None
    ) -> "LoopsSpec":
        """Check the metadata of the techno_prior export; UserError (one line) if the device cannot use it."""
        where, fix = metadata_where(model_path, metadata, "techno_prior", "techno prior")
        with reading_metadata(where, fix):
            latent = int(metadata["latent_size"])
            macro = int(metadata["macro_size"])
            bars = int(metadata["bars"])
        check_range(where, "latent_size", latent, LATENT_SIZES, fix)
        check_range(where, "macro_size", macro, MACRO_SIZES, fix)
        if bars not in LOOP_BARS:
            raise UserError(f"{where} bars={bars}; the device plays loops of 1, 2 or 4 bars, {fix}")
        check_latent_ratio(where, metadata, fix)
        check_method(where, metadata, "trajectory", macro + 1, latent, fix)
        check_method(where, metadata, "decode", latent, 1, fix)
        return cls(
            model_file_name(model_file or model_path),
            latent,
            macro,
            bars,
            model_latency(where, metadata, fix),
            host_rates_of(metadata),
        )


def check_range(where: str, key: str, value: int, bounds: tuple[int, int], fix: str) -> None:
    """UserError when ``value`` of metadata ``key`` is outside ``bounds`` (inclusive)."""
    lo, hi = bounds
    if not lo <= value <= hi:
        raise UserError(f"{where} {key}={value} is outside {lo}..{hi}; {fix}")


def check_latent_ratio(where: str, metadata: dict[str, Any], fix: str) -> None:
    """UserError unless the export's ``latent_ratio`` (when given) is the agreed 256 host samples."""
    ratio = metadata.get("latent_ratio", LATENT_RATIO)
    if ratio != LATENT_RATIO:
        raise UserError(f"{where} latent_ratio={ratio}, the devices expect {LATENT_RATIO}; {fix}")


def check_method(where: str, metadata: dict[str, Any], name: str, n_in: int, n_out: int, fix: str) -> None:
    """UserError when the method ``name`` declares other channel counts than the device wires."""
    method = metadata.get("methods", {}).get(name, {})
    for key, want in (("in_channels", n_in), ("out_channels", n_out)):
        if key in method and int(method[key]) != want:
            raise UserError(f"{where} {name} {key}={method[key]}, expected {want}; {fix}")


def model_latency(where: str, metadata: dict[str, Any], fix: str) -> int:
    """The model's own delay in host samples (``latency``, or ``latency_samples`` as older exports say)."""
    value = metadata.get("latency", metadata.get("latency_samples", 0))
    try:
        latency = int(value)
    except (TypeError, ValueError):
        latency = -1
    if latency < 0:
        raise UserError(f"{where} latency={value!r} is not a sample count >= 0; {fix}")
    return latency


def nn_delay(buffer: int = NN_BUFFER) -> int:
    """Samples a threaded nn~ with ``buffer`` delays its results (measured with nn~ 1.6)."""
    return 2 * buffer - 64


def smoothed(p: Patcher, source: Box, at: tuple[float, float], ms: int = SMOOTH_MS) -> Box:
    """``source`` outlet 0 -> ``"$1 ms"`` -> line~; returns the line~ (a click-free control signal)."""
    ramp = p.message(f"$1 {ms}", at)
    line = p.obj("line~", (at[0], at[1] + 30))
    p.connect(source, 0, ramp, 0)
    p.connect(ramp, 0, line, 0)
    return line


def small_dial(p: Patcher, param: Param, at: tuple[float, float], presentation: tuple[float, float]) -> Box:
    """A compact live.dial (knob and number, no name: the section header says what it is)."""
    return p.ui(
        "live.dial",
        (at[0], at[1], SMALL_W, SMALL_H),
        param=param,
        presentation_rect=(presentation[0], presentation[1], SMALL_W, SMALL_H),
        showname=0,
        shownumber=1,
        fontsize=8.0,
    )


def grid_position(index: int, rows: int, x0: float, step_x: float, step_y: float) -> tuple[float, float]:
    """Presentation position of the ``index``-th control in a column-major grid of ``rows`` rows."""
    col, row = divmod(index, rows)
    return x0 + col * step_x, TOP + row * step_y


def output_stage(p: Patcher, audio: Box, x: float, dial_rect: tuple[float, float, float, float]) -> Box:
    """Output gain dial (dB, smoothed) on mono ``audio`` -> both channels of plugout~. Returns the dial."""
    dial = p.ui(
        "live.dial",
        (x, 1300, DIAL_W, DIAL_H),
        param=Param("Output Gain", "Gain", mmin=-70.0, mmax=6.0, initial=0.0, unitstyle="db"),
        presentation_rect=dial_rect,
    )
    amplitude = p.obj("expr pow(10.\\, $f1 / 20.)", (x, 1360))
    gain = p.obj("*~", (x - 100, 1460))
    out = p.obj("plugout~ 1 2", (x - 100, 1500))
    p.connect(dial, 0, amplitude, 0)
    p.connect(smoothed(p, amplitude, (x, 1390)), 0, gain, 1)
    p.connect(audio, 0, gain, 0)
    p.connect(gain, 0, out, 0)
    p.connect(gain, 0, out, 1)
    return dial


@dataclass(frozen=True)
class Layout:
    """x positions of the presentation sections and the device width."""

    macro_x: float
    macro_cols: int
    latent_x: float
    latent_cols: int
    loop_x: float
    model_x: float
    width: float

    @classmethod
    def for_spec(cls, spec: LoopsSpec) -> "Layout":
        macro_cols = -(-spec.macro_size // MACRO_ROWS)
        latent_cols = -(-spec.latent_size // LATENT_ROWS)
        latent_x = 6.0 + max(macro_cols * DIAL_STEP_X, 60.0) + 10.0
        loop_x = latent_x + max(latent_cols * SMALL_STEP_X, 60.0) + 10.0
        model_x = loop_x + 96.0 + 8.0
        return cls(6.0, macro_cols, latent_x, latent_cols, loop_x, model_x, model_x + 96.0 + 6.0)


def _phase(p: Patcher, spec: LoopsSpec, lay: Layout, trajectory: Box) -> None:
    """Loop-length menu -> transport-locked phasor~ -> look-ahead -> the trajectory's phase inlet."""
    section_header(p, "Loop", lay.loop_x, 96)
    labels = tuple(f"{n} bar" if n == 1 else f"{n} bars" for n in LOOP_BARS)
    menu = p.ui(
        "live.menu",
        (700, 40, 80, 15),
        param=Param("Loop Bars", "Bars", kind="enum", enum=labels, initial=LOOP_BARS.index(spec.bars)),
        presentation_rect=(lay.loop_x, TOP + 22, 96, 15),
    )
    ready = p.obj("live.thisdevice", (800, 10))
    p.connect(ready, 0, menu, 0)  # a bang re-sends the stored length once the set is loaded
    which = p.obj("sel 0 1 2", (700, 70))
    p.connect(menu, 0, which, 0)
    phasor = p.obj(f"phasor~ {spec.bars}.0.0 @lock 1", (700, 160))
    for i, n in enumerate(LOOP_BARS):
        length = p.message(f"frequency {n}.0.0", (700 + i * 110, 110))
        p.connect(which, i, length, 0)
        p.connect(length, 0, phasor, 0)

    # phase + increment x delay, wrapped: the increment is delta~ wrapped into 0..1 (the jump at the
    # loop's end becomes the usual step) and bounded, so a relocation moves the phase only once
    delay = 2 * nn_delay() + spec.latency
    step = p.obj("delta~", (860, 200))
    lift = p.obj("+~ 1.", (860, 230))
    wrap_step = p.obj("%~ 1.", (860, 260))
    bound = p.obj(f"clip~ 0. {MAX_PHASE_STEP}", (860, 290))
    ahead = p.obj(f"*~ {delay}.", (860, 320))
    moved = p.obj("+~", (700, 360))
    wrapped = p.obj("%~ 1.", (700, 390))
    p.connect(phasor, 0, step, 0)
    p.connect(step, 0, lift, 0)
    p.connect(lift, 0, wrap_step, 0)
    p.connect(wrap_step, 0, bound, 0)
    p.connect(bound, 0, ahead, 0)
    p.connect(ahead, 0, moved, 0)
    p.connect(phasor, 0, moved, 1)
    p.connect(moved, 0, wrapped, 0)
    p.connect(wrapped, 0, trajectory, spec.macro_size)


def _macros(p: Patcher, spec: LoopsSpec, lay: Layout, trajectory: Box) -> list[Box]:
    """M automatable macro dials -> smoothed signals -> the trajectory's macro inlets."""
    section_header(p, "Macros", lay.macro_x, lay.macro_cols * DIAL_STEP_X)
    dials = []
    for k in range(spec.macro_size):
        x = 20.0 + k * 60.0
        dial = p.ui(
            "live.dial",
            (x, 40, DIAL_W, DIAL_H),
            param=Param(
                f"Macro {k + 1}",
                f"Macro {k + 1}",
                mmin=-MACRO_RANGE,
                mmax=MACRO_RANGE,
                initial=0.0,
                unitstyle="float",
            ),
            presentation_rect=(
                *grid_position(k, MACRO_ROWS, lay.macro_x, DIAL_STEP_X, DIAL_STEP_Y),
                DIAL_W,
                DIAL_H,
            ),
        )
        p.connect(smoothed(p, dial, (x, 100)), 0, trajectory, k)
        dials.append(dial)
    return dials


@dataclass(frozen=True)
class ModeBoxes:
    """The Macro / Latent switch: its tab, the crossfade gains and the boxes that follow a change."""

    tab: Box
    macro_gain: Box  # line~: 1 in Macro mode, 0 in Latent mode
    latent_gain: Box  # 1 - macro_gain
    is_macro: Box  # int 1 / 0: opens the gates of the modulation ids
    switch: Box  # sel 0 1: outlet 0 bangs on Macro, outlet 1 on Latent


def _mode(p: Patcher, lay: Layout) -> ModeBoxes:
    """The Macro / Latent tab and the signals and messages a change of mode sends."""
    tab = p.ui(
        "live.tab",
        (1000, 40, 96, 16),
        param=Param("Mode", "Mode", kind="enum", enum=("Macro", "Latent"), initial="Macro"),
        presentation_rect=(lay.loop_x, TOP, 96, 16),
        num_lines_patching=1,
        num_lines_presentation=1,
    )
    # right first: the gains and the modulation gates, then (re)send or stop the modulation ids
    order = p.obj("t i i", (1000, 70))
    p.connect(tab, 0, order, 0)
    is_macro = p.obj("== 0", (1060, 100))
    p.connect(order, 1, is_macro, 0)
    g = smoothed(p, is_macro, (1060, 130), MODE_MS)
    one_minus = p.obj("!-~ 1.", (1060, 190))
    p.connect(g, 0, one_minus, 0)
    switch = p.obj("sel 0 1", (1000, 220))
    p.connect(order, 0, switch, 0)
    return ModeBoxes(tab, g, one_minus, is_macro, switch)


def _parameter_ids(p: Patcher, spec: LoopsSpec, tab: Box) -> list[Box]:
    """Look up the Live parameter id of every Latent dial once the device is loaded.

    ``this_device parameters`` lists ``id a id b ...``; each id's ``name`` (the long name) routes
    the id into the register of its dial; then the mode tab is banged, which sends the ids on in
    Macro mode. Returns the L registers (``zl reg``, holding ``id n``).
    """
    x, y = 1200.0, 40.0
    ready = p.obj("live.thisdevice", (x, y))
    start = p.obj("t b b b", (x, y + 30))
    where = p.message("path this_device", (x + 60, y + 60))
    path = p.obj("live.path", (x + 60, y + 90))
    device = p.obj("live.object", (x, y + 150))
    ask = p.message("get parameters", (x, y + 120))
    p.connect(ready, 0, start, 0)
    p.connect(start, 2, where, 0)
    p.connect(where, 0, path, 0)
    p.connect(path, 0, device, 1)
    p.connect(start, 1, ask, 0)
    p.connect(ask, 0, device, 0)
    p.connect(start, 0, tab, 0)
    listed = p.obj("route parameters", (x, y + 180))
    each = p.obj("zl iter 2", (x, y + 210))
    fan = p.obj("t b l l", (x, y + 240))
    p.connect(device, 0, listed, 0)
    p.connect(listed, 0, each, 0)
    p.connect(each, 0, fan, 0)
    param = p.obj("live.object", (x + 60, y + 300))
    get_name = p.message("get name", (x, y + 270))
    p.connect(fan, 1, param, 1)
    p.connect(fan, 0, get_name, 0)
    p.connect(get_name, 0, param, 0)
    named = p.obj("route name", (x + 60, y + 330))
    joined = p.obj("tosymbol", (x + 60, y + 360))  # "Latent 1" as one symbol, however it arrives
    names = " ".join(f'"Latent {k + 1}"' for k in range(spec.latent_size))
    match = p.obj(f"route {names}", (x + 60, y + 390), width=600)
    p.connect(param, 0, named, 0)
    p.connect(named, 0, joined, 0)
    p.connect(joined, 0, match, 0)
    registers = []
    for k in range(spec.latent_size):
        reg = p.obj("zl reg", (x + 60 + k * 50, y + 430))
        p.connect(fan, 2, reg, 1)  # every id is a candidate; the name's bang keeps the right one
        p.connect(match, k, reg, 0)
        registers.append(reg)
    return registers


def _latents(
    p: Patcher, spec: LoopsSpec, lay: Layout, trajectory: Box, decode: Box, mode: ModeBoxes
) -> list[Box]:
    """Per latent k: the offset stage ``traj_k * g + dial_k * (1 - g)`` -> decode inlet k, and the
    trajectory shown on dial k with live.modulate~ in Macro mode. Returns the Latent dials."""
    section_header(p, "Latents", lay.latent_x, max(lay.latent_cols * SMALL_STEP_X, 60.0))
    registers = _parameter_ids(p, spec, mode.tab)
    stop = p.message("id 0", (1000, 260))
    p.connect(mode.switch, 1, stop, 0)
    span = 2.0 * MACRO_RANGE
    dials = []
    for k in range(spec.latent_size):
        x, y = 20.0 + k * 90.0, 1000.0
        dial = small_dial(
            p,
            Param(
                f"Latent {k + 1}",
                f"z{k + 1}",
                mmin=-MACRO_RANGE,
                mmax=MACRO_RANGE,
                initial=0.0,
                unitstyle="float",
            ),
            (x, y),
            grid_position(k, LATENT_ROWS, lay.latent_x, SMALL_STEP_X, SMALL_STEP_Y),
        )
        dial.attrs["saved_attribute_attributes"]["valueof"]["parameter_modmode"] = MODMODE_BIPOLAR
        from_dial = p.obj("*~", (x, y + 110))
        p.connect(smoothed(p, dial, (x, y + 50)), 0, from_dial, 0)
        p.connect(mode.latent_gain, 0, from_dial, 1)
        from_trajectory = p.obj("*~", (x + 40, y + 110))
        p.connect(trajectory, k, from_trajectory, 0)
        p.connect(mode.macro_gain, 0, from_trajectory, 1)
        offset = p.obj("+~", (x, y + 140))
        p.connect(from_trajectory, 0, offset, 0)
        p.connect(from_dial, 0, offset, 1)
        p.connect(offset, 0, decode, k)

        # display only: the ring shows base + trajectory (modulation spans max - min of the dial)
        ring = p.obj(f"*~ {1.0 / span:.6f}", (x + 40, y + 170))
        modulate = p.obj("live.modulate~", (x + 40, y + 230))
        shown = p.obj("gate 1", (x, y + 200))
        p.connect(trajectory, k, ring, 0)
        p.connect(ring, 0, modulate, 0)
        p.connect(mode.is_macro, 0, shown, 0)
        p.connect(registers[k], 0, shown, 1)
        p.connect(shown, 0, modulate, 1)
        p.connect(mode.switch, 0, registers[k], 0)  # back to Macro: modulate again
        p.connect(stop, 0, modulate, 1)  # Latent: the dial is the user's again
        dials.append(dial)
    return dials


def _transport_gate(p: Patcher, audio: Box) -> Box:
    """Decoded audio x (1 while Live's transport plays, ramped). Returns the gated signal."""
    sync = p.obj("plugsync~", (1600, 900))
    state = p.obj("change", (1600, 930))
    p.connect(sync, 0, state, 0)
    running = smoothed(p, state, (1600, 960), STOP_MS)
    gated = p.obj("*~", (1500, 1400))
    p.connect(audio, 0, gated, 0)
    p.connect(running, 0, gated, 1)
    return gated


def loops_patcher(spec: LoopsSpec) -> dict[str, Any]:
    """The ``{"patcher": {...}}`` document of LatentLoops for ``spec``."""
    lay = Layout.for_spec(spec)
    p = Patcher(device_width=lay.width)
    m, latent = spec.macro_size, spec.latent_size
    model = quote_atom(spec.model_file)
    trajectory = p.obj(f"nn~ {model} trajectory {NN_BUFFER} {m + 1} {latent}", (20, 600), width=1400)
    decode = p.obj(f"nn~ {model} decode {NN_BUFFER} {latent} 1", (20, 1200), width=1400)
    _macros(p, spec, lay, trajectory)
    _phase(p, spec, lay, trajectory)
    mode = _mode(p, lay)
    _latents(p, spec, lay, trajectory, decode, mode)
    output_stage(p, _transport_gate(p, decode), 1700.0, (lay.loop_x + 26, TOP + 44, DIAL_W, DIAL_H))
    model_loading(
        p,
        [trajectory, decode],
        spec.model_file,
        "techno_prior",
        drop_rect=(lay.model_x, TOP, 96, 56),
        status_rect=(lay.model_x, TOP + 62, 96, 60),
        at=(2000.0, 40.0),
        host_rates=spec.host_rates,
    )
    return p.to_dict(INSTRUMENT, description="LatentLoops: macro knobs drive a bar-synced techno loop.")


build_loops_device = device_builder(LoopsSpec, loops_patcher, DEVICE_NAME, INSTRUMENT)

"""LatentLoopsFX.amxd: resynthesis through the stage-1 techno model, an audio effect on ``techno.ts``.

Signal flow::

    plugin~ 1 2 --> (L + R) / 2 --> nn~ <model> encode 2048 1 L
        latent k --> * Scale k --> + Offset k --> nn~ <model> decode 2048 L 1 --> wet (mono, both sides)
    plugin~ L, R --> delay~ (the wet path's delay) --> dry
    dry x (1 - mix) + wet x mix --> * output gain --> plugout~ 1 2

Scale k (-2..2, default 1) and Offset k (-3..3 prior standard deviations, default 0) are automatable
live.dials, smoothed by line~. The wet path is late by two threaded nn~ (``2 x buffer - 64`` samples
each, nn~ 1.6) plus the model's own ``latency``; ``delay~`` holds the dry signal back by exactly that
many samples so that the Dry/Wet mix is phase-aligned (no comb filtering at 50 %). The device does
not report that delay to Live, so the whole track is late by it. Dropping a ``.ts`` on the model box
loads it into both nn~; the status line says when the file is missing (the dry signal still passes).
"""

from dataclasses import dataclass
from typing import Any

from latentlive import registry
from latentlive.m4l_devices.amxd import AUDIO_EFFECT
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
    DIAL_W,
    LATENT_SIZES,
    MACRO_RANGE,
    NN_BUFFER,
    SMALL_STEP_X,
    SMALL_STEP_Y,
    TOP,
    check_latent_ratio,
    check_method,
    check_range,
    model_latency,
    nn_delay,
    small_dial,
    smoothed,
)
from latentlive.m4l_devices.patcher import Box, Param, Patcher

DEVICE_NAME = registry.device_name("techno")
SCALE_RANGE = 2.0  # Scale k spans -2..2 (negative flips the dimension)
ONE_BAND_MAX = 12  # up to 12 latents fit one band of scale / offset dials
LABEL_W = 36.0  # the "Scale" / "Offset" row labels


@dataclass(frozen=True)
class FxSpec:
    """What the device needs from the metadata of ``techno.ts``."""

    model_file: str  # a bare file name: nn~ finds it beside the device
    latent_size: int
    latency: int
    host_rates: tuple[int, ...] | None = None  # the rates the model supports (metadata)

    @classmethod
    def from_metadata(
        cls, model_path: str, metadata: dict[str, Any], model_file: str | None = None
    ) -> "FxSpec":
        """Check the metadata of the stage-1 export; UserError (one line) if the device cannot use it."""
        where, fix = metadata_where(model_path, metadata, "techno", "techno model")
        with reading_metadata(where, fix):
            latent = int(metadata["latent_size"])
        check_range(where, "latent_size", latent, LATENT_SIZES, fix)
        check_latent_ratio(where, metadata, fix)
        check_method(where, metadata, "encode", 1, latent, fix)
        check_method(where, metadata, "decode", latent, 1, fix)
        # the wet path runs encode then decode: their latencies add (``latency`` is the one-call ``forward``'s)
        per_method = metadata.get("method_latency", {})
        if "encode" in per_method and "decode" in per_method:
            latency = model_latency(where, {"latency": per_method["encode"] + per_method["decode"]}, fix)
        else:
            latency = model_latency(where, metadata, fix)
        return cls(model_file_name(model_file or model_path), latent, latency, host_rates_of(metadata))

    @property
    def wet_delay(self) -> int:
        """Samples from plugin~ to the decoded audio: encode and decode nn~, plus the model."""
        return 2 * nn_delay(NN_BUFFER) + self.latency


@dataclass(frozen=True)
class Layout:
    """Columns and bands of the latent dials, the x of the Mix section and the device width."""

    bands: int
    cols: int
    mix_x: float
    width: float

    @classmethod
    def for_latents(cls, latent_size: int) -> "Layout":
        bands = 1 if latent_size <= ONE_BAND_MAX else 2
        cols = -(-latent_size // bands)
        mix_x = 6.0 + LABEL_W + cols * SMALL_STEP_X + 10.0
        return cls(bands, cols, mix_x, mix_x + 96.0 + 6.0)

    def dial_at(self, k: int, row: int) -> tuple[float, float]:
        """Presentation (x, y) of latent ``k``'s dial in ``row`` 0 (Scale) or 1 (Offset)."""
        band, col = divmod(k, self.cols)
        return 6.0 + LABEL_W + col * SMALL_STEP_X, TOP + (2 * band + row) * SMALL_STEP_Y


def _latent_controls(p: Patcher, spec: FxSpec, lay: Layout, encode: Box, decode: Box) -> None:
    """Per latent k: encode outlet k --> * Scale k --> + Offset k --> decode inlet k."""
    section_header(p, "Latents: scale / offset", 6.0, LABEL_W + lay.cols * SMALL_STEP_X)
    for band in range(lay.bands):
        for row, label in enumerate(("Scale", "Offset")):
            y = TOP + (2 * band + row) * SMALL_STEP_Y + 10.0
            p.comment(label, (20, 900 + y, LABEL_W, 18), presentation_rect=(6.0, y, LABEL_W, 18))
    for k in range(spec.latent_size):
        x, y = 20.0 + k * 90.0, 400.0
        scale = small_dial(
            p,
            Param(
                f"Scale {k + 1}",
                f"s{k + 1}",
                mmin=-SCALE_RANGE,
                mmax=SCALE_RANGE,
                initial=1.0,
                unitstyle="float",
            ),
            (x, y),
            lay.dial_at(k, 0),
        )
        offset = small_dial(
            p,
            Param(
                f"Offset {k + 1}",
                f"o{k + 1}",
                mmin=-MACRO_RANGE,
                mmax=MACRO_RANGE,
                initial=0.0,
                unitstyle="float",
            ),
            (x + 40, y),
            lay.dial_at(k, 1),
        )
        scaled = p.obj("*~", (x, y + 200))
        shifted = p.obj("+~", (x, y + 230))
        p.connect(encode, k, scaled, 0)
        p.connect(smoothed(p, scale, (x, y + 50)), 0, scaled, 1)
        p.connect(scaled, 0, shifted, 0)
        p.connect(smoothed(p, offset, (x + 40, y + 110)), 0, shifted, 1)
        p.connect(shifted, 0, decode, k)


def _mix(p: Patcher, spec: FxSpec, lay: Layout, source: Box, decode: Box) -> None:
    """Dry (delayed by the wet path's delay) / wet mix, output gain, both channels to plugout~."""
    section_header(p, "Mix", lay.mix_x, 96)
    mix = p.ui(
        "live.dial",
        (1500, 300, DIAL_W, DIAL_H),
        param=Param("Dry/Wet", "Dry/Wet", mmin=0.0, mmax=100.0, initial=100.0, unitstyle="percent"),
        presentation_rect=(lay.mix_x, TOP, DIAL_W, DIAL_H),
    )
    gain_dial = p.ui(
        "live.dial",
        (1600, 300, DIAL_W, DIAL_H),
        param=Param("Output Gain", "Gain", mmin=-70.0, mmax=6.0, initial=0.0, unitstyle="db"),
        presentation_rect=(lay.mix_x + DIAL_STEP_X + 4, TOP, DIAL_W, DIAL_H),
    )
    fraction = p.obj("/ 100.", (1500, 360))
    p.connect(mix, 0, fraction, 0)
    wet_gain = smoothed(p, fraction, (1500, 390))
    dry_gain = p.obj("!-~ 1.", (1500, 450))
    p.connect(wet_gain, 0, dry_gain, 0)
    amplitude = p.obj("expr pow(10.\\, $f1 / 20.)", (1600, 360))
    p.connect(gain_dial, 0, amplitude, 0)
    gain = smoothed(p, amplitude, (1600, 390))

    wet = p.obj("*~", (1300, 1300))
    p.connect(decode, 0, wet, 0)
    p.connect(wet_gain, 0, wet, 1)
    out = p.obj("plugout~ 1 2", (1300, 1500))
    delay = spec.wet_delay
    for side in (0, 1):
        x = 1300.0 + side * 150.0
        dry = p.obj(f"delay~ {delay + 64} {delay}", (x, 1200))
        p.connect(source, side, dry, 0)
        dry_level = p.obj("*~", (x, 1340))
        p.connect(dry, 0, dry_level, 0)
        p.connect(dry_gain, 0, dry_level, 1)
        both = p.obj("+~", (x, 1380))
        p.connect(wet, 0, both, 0)
        p.connect(dry_level, 0, both, 1)
        level = p.obj("*~", (x, 1420))
        p.connect(both, 0, level, 0)
        p.connect(gain, 0, level, 1)
        p.connect(level, 0, out, side)


def loops_fx_patcher(spec: FxSpec) -> dict[str, Any]:
    """The ``{"patcher": {...}}`` document of LatentLoopsFX for ``spec``."""
    lay = Layout.for_latents(spec.latent_size)
    p = Patcher(device_width=lay.width)
    latent = spec.latent_size
    model = quote_atom(spec.model_file)
    source = p.obj("plugin~ 1 2", (20, 20))
    both = p.obj("+~", (20, 60))
    mono = p.obj("*~ 0.5", (20, 90))
    p.connect(source, 0, both, 0)
    p.connect(source, 1, both, 1)
    p.connect(both, 0, mono, 0)
    encode = p.obj(f"nn~ {model} encode {NN_BUFFER} 1 {latent}", (20, 300), width=1400)
    p.connect(mono, 0, encode, 0)
    decode = p.obj(f"nn~ {model} decode {NN_BUFFER} {latent} 1", (20, 1000), width=1400)
    _latent_controls(p, spec, lay, encode, decode)
    _mix(p, spec, lay, source, decode)
    model_loading(
        p,
        [encode, decode],
        spec.model_file,
        "techno",
        drop_rect=(lay.mix_x, 74, 96, 46),
        status_rect=(lay.mix_x, 124, 96, 42),
        at=(2000.0, 40.0),
        host_rates=spec.host_rates,
    )
    return p.to_dict(AUDIO_EFFECT, description="LatentLoopsFX: resynthesis with latent scales and offsets.")


build_loops_fx_device = device_builder(FxSpec, loops_fx_patcher, DEVICE_NAME, AUDIO_EFFECT)

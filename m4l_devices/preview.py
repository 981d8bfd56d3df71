"""A PNG of a device's presentation view, drawn with matplotlib, to check a layout without Live.

Each box in presentation is drawn at its ``presentation_rect`` in a style close to Live's
dark theme: dials as arcs with their short name and initial value, number boxes, menus,
the XY pad, the step grid, the drop zone and the comments.
"""

import math
from pathlib import Path
from typing import Any

import matplotlib

from latentlive.core.files import atomic_write

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import patches  # noqa: E402

from latentlive.m4l_devices.amxd import read_amxd  # noqa: E402
from latentlive.m4l_devices.patcher import LIVE_DEVICE_HEIGHT  # noqa: E402

BG = "#1e1e1e"  # device background
PANEL = "#2d2d2d"
LINE = "#5a5a5a"
TEXT = "#d2d2d2"
ACCENT = "#ffad56"  # Live's orange
SCALE = 2.5  # pixels of the PNG per device pixel, times dpi 100


def _valueof(box: dict[str, Any]) -> dict[str, Any]:
    return box.get("saved_attribute_attributes", {}).get("valueof", {})


def _initial(box: dict[str, Any]) -> float:
    v = _valueof(box)
    initial = v.get("parameter_initial", [v.get("parameter_mmin", 0.0)])
    return float(initial[0] if isinstance(initial, list) else initial)


def _fmt(value: float, unit: int | None) -> str:
    if unit == 8:  # MIDI note name
        n = int(value)
        return f"{['C', 'C#', 'D', 'D#', 'E', 'F', 'F#', 'G', 'G#', 'A', 'A#', 'B'][n % 12]}{n // 12 - 2}"
    if unit == 0 or float(value).is_integer() and unit is None:
        return f"{int(value)}"
    return f"{value:.2f}"


def _text(ax: Any, x: float, y: float, s: str, size: float = 6.5, color: str = TEXT, **kw: Any) -> None:
    ax.text(x, y, s, fontsize=size, color=color, family="DejaVu Sans", **kw)


def _dial(ax: Any, box: dict[str, Any], x: float, y: float, w: float, h: float) -> None:
    v = _valueof(box)
    lo, hi = float(v.get("parameter_mmin", 0.0)), float(v.get("parameter_mmax", 1.0))
    value = _initial(box)
    frac = 0.0 if hi == lo else (value - lo) / (hi - lo)
    r = min(w, h - 20) / 2 - 1
    cx, cy = x + w / 2, y + 12 + r + 1
    # The y axis points down, so a visual angle a is the data angle -a: the track runs
    # clockwise (visually) from lower left (225) to lower right (-45) through the top.
    start, span = 225.0, 270.0
    ax.add_patch(patches.Arc((cx, cy), 2 * r, 2 * r, theta1=-start, theta2=span - start, color=LINE, lw=1.6))
    zero = (0.0 - lo) / (hi - lo) if lo < 0.0 < hi else 0.0  # bipolar dials fill from their centre
    a, b = sorted((zero, frac))
    if b > a:
        ax.add_patch(
            patches.Arc(
                (cx, cy),
                2 * r,
                2 * r,
                theta1=-start + span * a,
                theta2=-start + span * b,
                color=ACCENT,
                lw=1.6,
            )
        )
    ang = math.radians(start - span * frac)
    ax.plot([cx, cx + r * math.cos(ang)], [cy, cy - r * math.sin(ang)], color=TEXT, lw=1.0)
    _text(ax, cx, y + 9, v.get("parameter_shortname", ""), ha="center")
    _text(ax, cx, y + h - 1, _fmt(value, v.get("parameter_unitstyle")), ha="center", size=6)


def _numbox(ax: Any, box: dict[str, Any], x: float, y: float, w: float, h: float) -> None:
    v = _valueof(box)
    ax.add_patch(patches.Rectangle((x, y), w, h, facecolor=PANEL, edgecolor=LINE, lw=0.6))
    _text(ax, x + w / 2, y + h - 4, _fmt(_initial(box), v.get("parameter_unitstyle")), ha="center")


def _menu(ax: Any, box: dict[str, Any], x: float, y: float, w: float, h: float) -> None:
    items = _valueof(box).get("parameter_enum", [""])
    ax.add_patch(patches.Rectangle((x, y), w, h, facecolor=PANEL, edgecolor=LINE, lw=0.6))
    _text(ax, x + 4, y + h - 4, str(items[int(_initial(box))]) if items else "")
    _text(ax, x + w - 8, y + h - 4, "v", size=6)


def _pad(ax: Any, box: dict[str, Any], x: float, y: float, w: float, h: float) -> None:
    ax.add_patch(patches.Rectangle((x, y), w, h, facecolor=PANEL, edgecolor=LINE, lw=0.6))
    ax.plot([x + w / 2, x + w / 2], [y, y + h], color=LINE, lw=0.5)
    ax.plot([x, x + w], [y + h / 2, y + h / 2], color=LINE, lw=0.5)
    ax.add_patch(patches.Circle((x + w / 2, y + h / 2), 4, color=ACCENT))


def _grid(ax: Any, box: dict[str, Any], x: float, y: float, w: float, h: float) -> None:
    cols, rows = int(box.get("columns", 16)), int(box.get("rows", 1))
    cw, ch = w / cols, h / rows
    for c in range(cols):
        shade = "#353535" if (c // 4) % 2 == 0 else "#2a2a2a"  # beats alternate, as in Live
        for r in range(rows):
            ax.add_patch(
                patches.Rectangle(
                    (x + c * cw + 0.5, y + r * ch + 0.5), cw - 1, ch - 1, facecolor=shade, edgecolor="none"
                )
            )
    ax.add_patch(patches.Rectangle((x, y), w, h, fill=False, edgecolor=LINE, lw=0.6))


def _drop(ax: Any, box: dict[str, Any], x: float, y: float, w: float, h: float) -> None:
    ax.add_patch(patches.Rectangle((x, y), w, h, facecolor=PANEL, edgecolor=TEXT, lw=0.6, linestyle="--"))
    _text(ax, x + w / 2, y + h / 2 + 3, box.get("legend", "Drop File Here"), ha="center")


def _button(ax: Any, box: dict[str, Any], x: float, y: float, w: float, h: float) -> None:
    ax.add_patch(patches.Rectangle((x, y), w, h, facecolor=PANEL, edgecolor=TEXT, lw=0.6))
    _text(ax, x + w / 2, y + h / 2 + 2.5, box.get("text", ""), ha="center")


def _toggle(ax: Any, box: dict[str, Any], x: float, y: float, w: float, h: float) -> None:
    """A square, filled with the accent colour when its initial value is on."""
    side = min(w, h)
    on = _initial(box) > 0.5
    ax.add_patch(
        patches.Rectangle((x, y), side, side, facecolor=ACCENT if on else PANEL, edgecolor=LINE, lw=0.6)
    )


def _comment(ax: Any, box: dict[str, Any], x: float, y: float, w: float, h: float) -> None:
    size = 6.5 if box.get("maxclass") == "live.comment" else 6.0
    chars = max(int(w / 4.6), 1)  # wrap inside the box, as Max does
    words, lines, line = str(box.get("text", "")).split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > chars:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    for k, s in enumerate(lines):
        _text(ax, x + 1, y + 11 + k * 10, s, size=size)


_DRAW = {
    "live.dial": _dial,
    "live.numbox": _numbox,
    "live.menu": _menu,
    "pictslider": _pad,
    "live.grid": _grid,
    "live.drop": _drop,
    "live.text": _button,
    "live.toggle": _toggle,
    "comment": _comment,
    "live.comment": _comment,
}


def draw_presentation(path_amxd: str | Path, out_png: str | Path) -> Path:
    """Draw the presentation view of the device at ``path_amxd`` into ``out_png``; return its path."""
    patcher = read_amxd(path_amxd).patcher["patcher"]
    width, height = float(patcher.get("devicewidth", 400)), float(LIVE_DEVICE_HEIGHT)
    fig = plt.figure(figsize=(width * SCALE / 100, height * SCALE / 100), dpi=100, facecolor=BG)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)  # Max's y axis points down
    ax.set_axis_off()
    ax.add_patch(patches.Rectangle((0, 0), width, height, facecolor=BG, edgecolor=LINE, lw=1))
    for entry in patcher.get("boxes", []):
        box = entry["box"]
        if not box.get("presentation"):
            continue
        x, y, w, h = box["presentation_rect"]
        draw = _DRAW.get(box.get("maxclass"))
        if draw is None:
            ax.add_patch(patches.Rectangle((x, y), w, h, facecolor=PANEL, edgecolor=LINE, lw=0.6))
            _text(ax, x + 2, y + h - 3, str(box.get("maxclass")), size=5)
        else:
            draw(ax, box, x, y, w, h)
    try:
        return atomic_write(out_png, lambda tmp: fig.savefig(tmp, dpi=100, facecolor=BG, format="png"))
    finally:
        plt.close(fig)

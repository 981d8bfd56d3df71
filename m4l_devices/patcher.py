"""A small builder for Max patchers: boxes, patch lines, Live parameters and presentation.

Inlet and outlet counts come from :mod:`m4l_devices.max_objects`, so a line to an inlet
that does not exist fails when the device is built, not when Live opens it::

    p = Patcher(device_width=300)
    dial = p.ui("live.dial", (10, 10, 44, 48), param=Param("Gain", "gain", mmin=0, mmax=1),
                presentation_rect=(4, 20, 44, 48))
    sig = p.obj("sig~", (10, 80))
    p.connect(dial, 0, sig, 0)
    doc = p.to_dict()              # {"patcher": {...}} for amxd.write_amxd
"""

from dataclasses import dataclass, field
from typing import Any

from latentlive.m4l_devices.max_objects import ObjectIO, object_io

LIVE_DEVICE_HEIGHT = 169  # the height of every device in Live's device view, in pixels

# parameter_type codes of Max's parameter system
PARAM_TYPES = {"float": 0, "int": 1, "enum": 2, "blob": 3, "file": 4}
# parameter_unitstyle codes (the unit Live shows next to the value)
UNIT_STYLES = {
    "int": 0,
    "float": 1,
    "time": 2,
    "hz": 3,
    "db": 4,
    "percent": 5,
    "pan": 6,
    "semitones": 7,
    "midi": 8,
    "custom": 9,
    "native": 10,
}
# parameter_invisible: 0 automatable and stored, 1 stored only, 2 hidden (neither)
VISIBILITY = {"automated": 0, "stored": 1, "hidden": 2}

Rect = tuple[float, float, float, float]


@dataclass(frozen=True)
class Param:
    """A Live parameter: what ``saved_attribute_attributes.valueof`` holds for a live.* box."""

    longname: str
    shortname: str
    kind: str = "float"  # float | int | enum | blob | file
    mmin: float | None = None
    mmax: float | None = None
    initial: float | int | str | None = None
    enum: tuple[str, ...] = ()
    unitstyle: str | None = None
    visibility: str = "automated"
    exponent: float | None = None

    def valueof(self) -> dict[str, Any]:
        """The ``valueof`` dict Max saves for this parameter."""
        v: dict[str, Any] = {
            "parameter_longname": self.longname,
            "parameter_shortname": self.shortname,
            "parameter_type": PARAM_TYPES[self.kind],
        }
        if self.enum:
            v["parameter_enum"] = list(self.enum)
            v["parameter_mmax"] = len(self.enum) - 1
        if self.mmin is not None:
            v["parameter_mmin"] = self.mmin
        if self.mmax is not None:
            v["parameter_mmax"] = self.mmax
        if self.initial is not None:
            initial = self.enum.index(self.initial) if isinstance(self.initial, str) else self.initial
            v["parameter_initial_enable"] = 1
            v["parameter_initial"] = [initial]
        if self.unitstyle is not None:
            v["parameter_unitstyle"] = UNIT_STYLES[self.unitstyle]
        if self.exponent is not None:
            v["parameter_exponent"] = self.exponent
        if self.visibility != "automated":
            v["parameter_invisible"] = VISIBILITY[self.visibility]
        return v


@dataclass
class Box:
    """One box of the patcher; ``attrs`` is the dict saved under ``"box"``."""

    id: str
    attrs: dict[str, Any]
    io: ObjectIO

    @property
    def numinlets(self) -> int:
        return self.io.inlets

    @property
    def numoutlets(self) -> int:
        return self.io.outlets


@dataclass
class Patcher:
    """A patcher under construction. ``device_width`` is the width of the device in Live."""

    device_width: float
    device_height: float = LIVE_DEVICE_HEIGHT
    boxes: list[Box] = field(default_factory=list)
    lines: list[tuple[str, int, str, int]] = field(default_factory=list)
    fontname: str = "Arial Bold"
    fontsize: float = 10.0

    def _add(self, attrs: dict[str, Any], io: ObjectIO | None = None) -> Box:
        box_id = f"obj-{len(self.boxes) + 1}"
        attrs = {"id": box_id, **attrs}
        if io is None:
            io = object_io(attrs)
        if io is None:
            raise ValueError(f"{attrs.get('text', attrs['maxclass'])}: give its inlet/outlet counts (io=...)")
        attrs["numinlets"] = io.inlets
        attrs["numoutlets"] = io.outlets
        if io.outlets:
            attrs["outlettype"] = list(io.outlettype)
        box = Box(box_id, attrs, io)
        self.boxes.append(box)
        return box

    @staticmethod
    def _presentation(attrs: dict[str, Any], presentation_rect: Rect | None) -> None:
        if presentation_rect is not None:
            attrs["presentation"] = 1
            attrs["presentation_rect"] = [float(v) for v in presentation_rect]

    def obj(
        self,
        text: str,
        at: tuple[float, float],
        width: float | None = None,
        io: ObjectIO | None = None,
        **attrs: Any,
    ) -> Box:
        """An object box (``newobj``) such as ``"unpack 0 0 0"`` at patching position ``at``."""
        w = width if width is not None else max(30.0, 7.0 * len(text) + 10.0)
        return self._add(
            {"maxclass": "newobj", "text": text, "patching_rect": [*map(float, at), w, 22.0], **attrs}, io
        )

    def message(self, text: str, at: tuple[float, float], width: float | None = None) -> Box:
        """A message box."""
        w = width if width is not None else max(30.0, 7.0 * len(text) + 10.0)
        return self._add({"maxclass": "message", "text": text, "patching_rect": [*map(float, at), w, 22.0]})

    def comment(
        self,
        text: str,
        rect: Rect,
        presentation_rect: Rect | None = None,
        maxclass: str = "comment",
        **attrs: Any,
    ) -> Box:
        """A comment (``comment`` or ``live.comment``), optionally shown in presentation."""
        a = {"maxclass": maxclass, "text": text, "patching_rect": [float(v) for v in rect], **attrs}
        self._presentation(a, presentation_rect)
        return self._add(a)

    def ui(
        self,
        maxclass: str,
        rect: Rect,
        param: Param | None = None,
        presentation_rect: Rect | None = None,
        **attrs: Any,
    ) -> Box:
        """A UI object; with ``param`` it is a Live parameter (``parameter_enable`` 1)."""
        a: dict[str, Any] = {"maxclass": maxclass, "patching_rect": [float(v) for v in rect], **attrs}
        if param is not None:
            a["parameter_enable"] = 1
            a["saved_attribute_attributes"] = {"valueof": param.valueof()}
            a["varname"] = param.longname
        elif not maxclass.startswith("live.") and "parameter_enable" not in a:
            a["parameter_enable"] = 0
        self._presentation(a, presentation_rect)
        return self._add(a)

    def connect(self, source: Box, outlet: int, destination: Box, inlet: int) -> None:
        """A patch line from ``source`` outlet ``outlet`` to ``destination`` inlet ``inlet``."""
        if not 0 <= outlet < source.numoutlets:
            raise ValueError(f"{source.attrs.get('text', source.attrs['maxclass'])} has no outlet {outlet}")
        if not 0 <= inlet < destination.numinlets:
            raise ValueError(
                f"{destination.attrs.get('text', destination.attrs['maxclass'])} has no inlet {inlet}"
            )
        self.lines.append((source.id, outlet, destination.id, inlet))

    def parameters(self) -> dict[str, Any]:
        """The patcher's ``parameters`` dict: box id -> [long name, short name, 0]."""
        out: dict[str, Any] = {}
        for box in self.boxes:
            valueof = box.attrs.get("saved_attribute_attributes", {}).get("valueof")
            if box.attrs.get("parameter_enable") and valueof:
                out[box.id] = [valueof["parameter_longname"], valueof["parameter_shortname"], 0]
        return out

    def to_dict(self, device_type: str = "mmmm", description: str = "") -> dict[str, Any]:
        """The whole document, ``{"patcher": {...}}``, as Max saves a device that opens in presentation."""
        width, height = float(self.device_width), float(self.device_height)
        return {
            "patcher": {
                "fileversion": 1,
                "appversion": {"major": 8, "minor": 6, "revision": 0, "architecture": "x64", "modernui": 1},
                "classnamespace": "box",
                "rect": [100.0, 100.0, 1400.0, 900.0],
                "openrect": [0.0, 0.0, width, height],
                "bglocked": 0,
                "openinpresentation": 1,
                "default_fontsize": self.fontsize,
                "default_fontface": 0,
                "default_fontname": self.fontname,
                "gridonopen": 1,
                "gridsize": [8.0, 8.0],
                "gridsnaponopen": 1,
                "objectsnaponopen": 1,
                "statusbarvisible": 2,
                "toolbarvisible": 1,
                "boxanimatetime": 200,
                "enablehscroll": 1,
                "enablevscroll": 1,
                "devicewidth": width,
                "description": description,
                "digest": "",
                "tags": "",
                "style": "",
                "subpatcher_template": "",
                "assistshowspatchername": 0,
                "boxes": [{"box": b.attrs} for b in self.boxes],
                "lines": [
                    {"patchline": {"source": [src, outlet], "destination": [dst, inlet]}}
                    for src, outlet, dst, inlet in self.lines
                ],
                "parameters": self.parameters(),
                "dependency_cache": [],
                "latency": 0,
                "is_mpe": 0,
                "platform_compatibility": 0,
                "autosave": 0,
            }
        }

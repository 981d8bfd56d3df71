"""Static checks of a device file: what Live and Max would otherwise only reveal when it is opened.

:func:`validate_device` returns a list of problems, one readable line each; an empty list
means the device is valid: its chunks and JSON parse, every object is known, every patch
line joins existing boxes at inlets and outlets that exist, Live parameter long names are
unique, the presentation view fits the device and opens by default, and every model is named by
file name only (a folder of the building machine would not exist where the device is copied).
"""

from pathlib import Path
from typing import Any

from latentlive.core.errors import UserError
from latentlive.m4l_devices.amxd import DEVICE_TYPES, read_amxd
from latentlive.m4l_devices.max_objects import (
    LIVE_PARAMETER_CLASSES,
    UnknownObjectError,
    object_io,
    object_name,
    split_box_text,
)
from latentlive.m4l_devices.patcher import LIVE_DEVICE_HEIGHT


def validate_device(path: str | Path) -> list[str]:
    """Problems found in the ``.amxd`` at ``path`` (empty list: valid)."""
    try:
        device = read_amxd(path)
    except UserError as err:
        return [str(err)]
    return validate_patcher(device.patcher, device.device_type)


def validate_patcher(document: dict[str, Any], device_type: str) -> list[str]:
    """Problems found in a ``{"patcher": {...}}`` document of a device of type ``device_type``."""
    problems: list[str] = []
    if device_type not in DEVICE_TYPES:
        problems.append(f"device type {device_type!r} is not one of {sorted(DEVICE_TYPES)}")
    patcher = document.get("patcher")
    if not isinstance(patcher, dict):
        return problems + ['no "patcher" object']
    boxes = _boxes(patcher, problems)
    io = _check_objects(boxes, problems)
    _check_lines(patcher, io, problems)
    _check_parameters(boxes, problems)
    _check_presentation(patcher, boxes, problems)
    _check_model_files(boxes, problems)
    return problems


def _boxes(patcher: dict[str, Any], problems: list[str]) -> dict[str, dict[str, Any]]:
    boxes: dict[str, dict[str, Any]] = {}
    for entry in patcher.get("boxes", []):
        box = entry.get("box") if isinstance(entry, dict) else None
        if not isinstance(box, dict) or "id" not in box:
            problems.append(f"a box entry without an id: {entry!r:.80}")
            continue
        if box["id"] in boxes:
            problems.append(f"{box['id']}: duplicate box id")
        boxes[box["id"]] = box
    return boxes


def _label(box: dict[str, Any]) -> str:
    return f"{box['id']} ({box.get('text') or box.get('maxclass')})"


def _check_objects(boxes: dict[str, dict[str, Any]], problems: list[str]) -> dict[str, tuple[int, int]]:
    """Check each box against the object table; return the inlet/outlet counts lines must respect."""
    io: dict[str, tuple[int, int]] = {}
    for box_id, box in boxes.items():
        declared = (box.get("numinlets"), box.get("numoutlets"))
        try:
            expected = object_io(box)
        except UnknownObjectError:
            problems.append(f"{_label(box)}: unknown object {object_name(box)!r}")
            continue
        except ValueError as err:  # unparsable arguments, e.g. "gate x"
            problems.append(f"{_label(box)}: bad arguments ({err})")
            continue
        if expected is None:  # only the box knows (js): trust what it declares
            if not all(isinstance(n, int) and n >= 0 for n in declared):
                problems.append(f"{_label(box)}: numinlets/numoutlets missing")
                continue
            io[box_id] = (declared[0], declared[1])
            continue
        if declared != (expected.inlets, expected.outlets):
            problems.append(
                f"{_label(box)}: declares {declared[0]} inlets / {declared[1]} outlets, "
                f"Max gives it {expected.inlets} / {expected.outlets}"
            )
        io[box_id] = (expected.inlets, expected.outlets)
    return io


def _check_lines(patcher: dict[str, Any], io: dict[str, tuple[int, int]], problems: list[str]) -> None:
    for entry in patcher.get("lines", []):
        line = entry.get("patchline") if isinstance(entry, dict) else None
        try:
            (src, outlet), (dst, inlet) = line["source"], line["destination"]
        except (TypeError, KeyError, ValueError):
            problems.append(f"a malformed patch line: {entry!r:.80}")
            continue
        where = f"line {src}:{outlet} -> {dst}:{inlet}"
        if src not in io or dst not in io:
            missing = ", ".join(b for b in (src, dst) if b not in io)
            problems.append(f"{where}: joins a box that does not exist or is invalid ({missing})")
            continue
        if not 0 <= outlet < io[src][1]:
            problems.append(f"{where}: {src} has {io[src][1]} outlets")
        if not 0 <= inlet < io[dst][0]:
            problems.append(f"{where}: {dst} has {io[dst][0]} inlets")


def _check_parameters(boxes: dict[str, dict[str, Any]], problems: list[str]) -> None:
    seen: dict[str, str] = {}
    for box_id, box in boxes.items():
        maxclass = box.get("maxclass")
        valueof = box.get("saved_attribute_attributes", {}).get("valueof", {})
        if maxclass in LIVE_PARAMETER_CLASSES and not box.get("parameter_enable"):
            problems.append(f"{_label(box)}: a live.* control must be a Live parameter (parameter_enable 1)")
        if not box.get("parameter_enable"):
            continue
        longname = valueof.get("parameter_longname")
        if not longname:
            problems.append(f"{_label(box)}: parameter without a parameter_longname")
            continue
        if longname in seen:
            problems.append(
                f"{_label(box)}: parameter long name {longname!r} is also used by {seen[longname]}"
            )
        seen[longname] = box_id


def _check_presentation(
    patcher: dict[str, Any], boxes: dict[str, dict[str, Any]], problems: list[str]
) -> None:
    if patcher.get("openinpresentation") != 1:
        problems.append("openinpresentation is not 1: Live would show the patching view")
    width = patcher.get("devicewidth")
    if not isinstance(width, (int, float)) or width <= 0:
        problems.append("devicewidth is not set: Live cannot size the device")
        return
    for box in boxes.values():
        if not box.get("presentation"):
            continue
        rect = box.get("presentation_rect")
        if not (isinstance(rect, list) and len(rect) == 4):
            problems.append(f"{_label(box)}: in presentation without a presentation_rect")
            continue
        x, y, w, h = rect
        if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > width + 0.5 or y + h > LIVE_DEVICE_HEIGHT + 0.5:
            size = f"{width:g} x {LIVE_DEVICE_HEIGHT}"
            problems.append(f"{_label(box)}: presentation_rect {rect} does not fit the {size} device")


def _check_model_files(boxes: dict[str, dict[str, Any]], problems: list[str]) -> None:
    """nn~'s model and every ``.ts`` atom must be a bare file name, which Max finds beside the device."""
    for box in boxes.values():
        name, args, _ = split_box_text(str(box.get("text", "")))
        models = [atom for atom in (name, *args) if atom.endswith(".ts")]
        if name in ("nn~", "mc.nn~") and args:
            models.append(args[0])
        for model in dict.fromkeys(models):
            if "/" in model or "\\" in model:
                problems.append(
                    f"{_label(box)}: names its model by a path ({model}); give nn~ the file name only"
                )

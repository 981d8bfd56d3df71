"""The Max / Max for Live objects the suite's devices use, with their inlet and outlet counts.

Counts are the ones Max 8.5+ / Max 9 (the Max inside Live 12) writes into saved patchers,
checked against patchers saved by Max (``"numinlets"`` / ``"numoutlets"`` of real boxes).
Several objects size themselves from their arguments: ``unpack 0 0 0`` has 3 outlets,
``route a b`` has 2 inlets and 3 outlets, ``sel 1 2`` has 3 inlets and 3 outlets, and
``nn~ model.ts decode 512 7 9`` has one signal inlet per model input and one outlet per output.

A box is looked up by its ``maxclass`` (UI objects, ``message``, ``comment``) or, for
``newobj`` boxes, by the first word of its text. Unknown objects raise :class:`UnknownObjectError`.
"""

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class UnknownObjectError(KeyError):
    """A box whose object is not in the table (a typo, or an object the suite does not use)."""


@dataclass(frozen=True)
class ObjectIO:
    """Inlet and outlet counts of one box, with the outlet types Max records."""

    inlets: int
    outlets: int
    outlettype: tuple[str, ...]


# A rule maps (arguments before the first @attribute, the box dict) to the box's I/O, or to None
# when only the box itself can say (``js`` declares its inlets in the script).
Rule = Callable[[list[str], dict[str, Any]], ObjectIO | None]


def _fixed(inlets: int, outlettype: list[str]) -> Rule:
    io = ObjectIO(inlets, len(outlettype), tuple(outlettype))
    return lambda args, box: io


def _comment_like(args: list[str], box: dict[str, Any]) -> ObjectIO:
    # A comment with @suppressinlet 1 has no inlet at all.
    return ObjectIO(0 if box.get("suppressinlet") else 1, 0, ())


def _trigger(args: list[str], box: dict[str, Any]) -> ObjectIO:
    n = max(len(args), 1)
    types = {"b": "bang", "i": "int", "f": "float", "l": "", "s": "", "a": ""}
    return ObjectIO(1, n, tuple(types.get(a, "") for a in (args or ["a"])))


def _pack(args: list[str], box: dict[str, Any]) -> ObjectIO:
    return ObjectIO(max(len(args), 2), 1, ("",))


def _unpack(args: list[str], box: dict[str, Any]) -> ObjectIO:
    n = max(len(args), 2)
    return ObjectIO(1, n, tuple(_atom_type(a) for a in (args or ["0", "0"])))


def _route(args: list[str], box: dict[str, Any]) -> ObjectIO:
    # route / routepass: the right inlet replaces the first selector; one outlet per
    # selector plus the reject outlet.
    n = max(len(args), 1)
    return ObjectIO(2, n + 1, ("",) * (n + 1))


def _select(args: list[str], box: dict[str, Any]) -> ObjectIO:
    # select: one bang outlet per argument plus the reject outlet; since Max 8 every
    # argument has its own right inlet.
    n = max(len(args), 1)
    return ObjectIO(n + 1, n + 1, ("bang",) * n + ("",))


def _gate(args: list[str], box: dict[str, Any]) -> ObjectIO:
    n = int(args[0]) if args else 1
    return ObjectIO(2, n, ("",) * n)


def _makenote(args: list[str], box: dict[str, Any]) -> ObjectIO:
    # A third argument (MIDI channel) adds a channel inlet and a channel outlet.
    if len(args) >= 3:
        return ObjectIO(4, 3, ("float", "float", "float"))
    return ObjectIO(3, 2, ("float", "float"))


def _expr(args: list[str], box: dict[str, Any]) -> ObjectIO:
    indices = [int(m) for m in re.findall(r"\$[ifsx](\d+)", " ".join(args))]
    return ObjectIO(max(indices, default=1), 1, ("",))


def _plugin(args: list[str], box: dict[str, Any]) -> ObjectIO:
    n = len(args) or 2
    return ObjectIO(2, n, ("signal",) * n)


def _plugout(args: list[str], box: dict[str, Any]) -> ObjectIO:
    return ObjectIO(len(args) or 2, 0, ())


def _mc_pack(args: list[str], box: dict[str, Any]) -> ObjectIO:
    return ObjectIO(int(args[0]) if args else 2, 1, ("multichannelsignal",))


def _mc_unpack(args: list[str], box: dict[str, Any]) -> ObjectIO:
    n = int(args[0]) if args else 2
    return ObjectIO(1, n, ("signal",) * n)


def _receive(args: list[str], box: dict[str, Any]) -> ObjectIO:
    # receive: an inlet (for ``set NAME``) only when it has no name argument.
    return ObjectIO(0 if args else 1, 1, ("",))


def _sprintf(args: list[str], box: dict[str, Any]) -> ObjectIO:
    # sprintf: one inlet per conversion (``%ld``, ``%s``; ``%%`` is a percent sign), the left one hot.
    n = len(re.findall(r"%[^%]", " ".join(args).replace("%%", "")))
    return ObjectIO(max(n, 1), 1, ("",))


def _nn_tilde(args: list[str], box: dict[str, Any]) -> ObjectIO | None:
    """``nn~ <model> <method> <buffer> <inlets> <outlets>`` (nn~ 1.6 argument order).

    With the last two arguments the counts are fixed even if the model fails to load, so
    patch lines survive a missing model; without them only the loaded model knows them.
    """
    if len(args) >= 5:
        n_in, n_out = int(args[3]), int(args[4])
        return ObjectIO(n_in, n_out, ("signal",) * n_out)
    return None


_COMPARISONS = {">", "<", ">=", "<=", "==", "!=", "&&", "||"}


def _arithmetic(args: list[str], box: dict[str, Any]) -> ObjectIO:
    # A float argument makes arithmetic compute (and output) floats; comparisons output 0 / 1.
    is_float = (
        bool(args) and _atom_type(args[0]) == "float" and split_box_text(box["text"])[0] not in _COMPARISONS
    )
    return ObjectIO(2, 1, ("float" if is_float else "int",))


def _script_defined(args: list[str], box: dict[str, Any]) -> None:
    return None


def _atom_type(arg: str) -> str:
    if re.fullmatch(r"-?\d+", arg):
        return "int"
    if re.fullmatch(r"-?\d*\.\d*", arg):
        return "float"
    return ""


_ARITHMETIC = [
    "+",
    "-",
    "*",
    "/",
    "%",
    "!-",
    "!/",
    ">",
    "<",
    ">=",
    "<=",
    "==",
    "!=",
    "&&",
    "||",
    "min",
    "max",
]
_SIGNAL_ARITHMETIC = ["+~", "-~", "*~", "/~", "%~", "!-~", "!/~", ">~", "<~", "==~", "!=~"]

# newobj boxes, by the first word of their text.
NEWOBJ_RULES: dict[str, Rule] = {
    # MIDI
    "midiin": _fixed(1, ["int"]),
    "midiout": _fixed(1, []),
    "notein": _fixed(1, ["int", "int", "int"]),
    "flush": _fixed(2, ["int", "int"]),  # remembers held notes, a bang sends their note-offs
    "noteout": _fixed(3, []),
    "makenote": _makenote,
    "midiformat": _fixed(7, ["int", ""]),
    "midiparse": _fixed(1, ["", "", "", "int", "int", "", "int", ""]),
    # time and transport
    "transport": _fixed(2, ["int", "int", "float", "float", "float", "", "int", "float", ""]),
    "metro": _fixed(2, ["bang"]),
    # bang reports: DSP on, sampling rate, signal vector size, I/O vector size (also when the audio starts)
    "dspstate~": _fixed(1, ["int", "float", "int", "int"]),
    "plugsync~": _fixed(1, ["int", "int", "int", "float", "list", "float", "float", "int", "int"]),
    "delay": _fixed(2, ["bang"]),
    "del": _fixed(2, ["bang"]),
    "speedlim": _fixed(2, [""]),
    # MSP
    "sig~": _fixed(1, ["signal"]),
    "snapshot~": _fixed(2, ["float"]),
    "phasor~": _fixed(2, ["signal"]),
    "cos~": _fixed(1, ["signal"]),  # cosine of 2 pi x: a phase 0..1 in, -1..1 out
    "line~": _fixed(2, ["signal", "bang"]),
    "plugin~": _plugin,
    "plugout~": _plugout,
    "nn~": _nn_tilde,
    "delta~": _fixed(1, ["signal"]),
    "clip~": _fixed(3, ["signal"]),
    "delay~": _fixed(2, ["signal"]),
    "mc.pack~": _mc_pack,
    "mc.unpack~": _mc_unpack,
    # Live
    "live.thisdevice": _fixed(1, ["bang", "int", "int"]),
    "live.path": _fixed(1, ["", "", ""]),
    "live.object": _fixed(2, [""]),
    "live.modulate~": _fixed(2, [""]),
    # control flow and data
    "t": _trigger,
    "trigger": _trigger,
    "pack": _pack,
    "pak": _pack,
    "unpack": _unpack,
    "route": _route,
    "routepass": _route,
    "sel": _select,
    "select": _select,
    "gate": _gate,
    "split": _fixed(3, ["", ""]),
    "scale": _fixed(6, [""]),
    "zmap": _fixed(5, [""]),
    "expr": _expr,
    "i": _fixed(2, ["int"]),
    "int": _fixed(2, ["int"]),
    "f": _fixed(2, ["float"]),
    "float": _fixed(2, ["float"]),
    "change": _fixed(1, ["", "int", "int"]),
    "prepend": _fixed(1, [""]),
    "append": _fixed(1, [""]),
    "random": _fixed(2, ["int"]),
    "loadbang": _fixed(1, ["bang"]),
    "freebang": _fixed(0, ["bang"]),  # bangs just before its patcher (the device) is freed
    "loadmess": _fixed(1, [""]),
    "defer": _fixed(1, [""]),
    "deferlow": _fixed(1, [""]),
    "coll": _fixed(1, ["", "", "", ""]),
    "zl": _fixed(2, ["", ""]),  # zl iter / zl reg / ...: data and argument inlets, two outlets
    "tosymbol": _fixed(1, [""]),
    "sprintf": _sprintf,
    # named messages between devices: ``forward`` takes ``send NAME``, ``receive`` takes ``set NAME``
    "forward": _fixed(1, []),
    "receive": _receive,
    "js": _script_defined,
    "thispatcher": _fixed(1, ["", ""]),
    # files
    "absolutepath": _fixed(1, [""]),
    "conformpath": _fixed(1, ["", "int"]),
    "strippath": _fixed(1, ["", "int"]),
}
for _op in _ARITHMETIC:
    NEWOBJ_RULES[_op] = _arithmetic
for _op in _SIGNAL_ARITHMETIC:
    NEWOBJ_RULES[_op] = _fixed(2, ["signal"])

# Boxes whose maxclass is the object (UI objects and the patcher's own box kinds).
MAXCLASS_RULES: dict[str, Rule] = {
    "message": _fixed(2, [""]),
    "comment": _comment_like,
    "live.comment": _comment_like,
    "panel": _fixed(1, []),
    "textedit": _fixed(1, ["", "int", "", ""]),
    "inlet": _fixed(0, [""]),
    "outlet": _fixed(1, []),
    "button": _fixed(1, ["bang"]),
    "toggle": _fixed(1, ["int"]),
    "number": _fixed(1, ["", "bang"]),
    "flonum": _fixed(1, ["", "bang"]),
    "pictslider": _fixed(2, ["int", "int"]),
    "nodes": _fixed(1, ["", "", ""]),
    "live.dial": _fixed(1, ["", "float"]),
    "live.numbox": _fixed(1, ["", "float"]),
    "live.slider": _fixed(1, ["", "float"]),
    "live.menu": _fixed(1, ["", "", "float"]),
    "live.tab": _fixed(1, ["", "", "float"]),
    "live.text": _fixed(1, ["", ""]),
    "live.toggle": _fixed(1, [""]),
    "live.button": _fixed(1, [""]),
    "live.grid": _fixed(2, ["", "", "", "", "", ""]),
    "live.drop": _fixed(1, ["", ""]),
}

# live.* UI objects that are Live parameters (automatable, saved with the Live set).
LIVE_PARAMETER_CLASSES = frozenset(
    {
        "live.dial",
        "live.numbox",
        "live.slider",
        "live.menu",
        "live.tab",
        "live.text",
        "live.toggle",
        "live.button",
        "live.grid",
        "live.drop",
    }
)


def split_box_text(text: str) -> tuple[str, list[str], list[str]]:
    """Split a box's text into (object name, arguments, the ``@attr value ...`` tail).

    Double-quoted atoms stay whole (``nn~ "/a b/drums.ts" decode`` has 2 arguments).
    """
    try:
        atoms = shlex.split(text, posix=True)
    except ValueError:
        atoms = text.split()
    if not atoms:
        return "", [], []
    name, rest = atoms[0], atoms[1:]
    first_attr = next((i for i, a in enumerate(rest) if a.startswith("@")), len(rest))
    return name, rest[:first_attr], rest[first_attr:]


def object_name(box: dict[str, Any]) -> str:
    """The object a box holds: its maxclass, or the first word of a newobj's text."""
    if box.get("maxclass") == "newobj":
        return split_box_text(str(box.get("text", "")))[0]
    return str(box.get("maxclass", ""))


def is_known(box: dict[str, Any]) -> bool:
    """True when the box's object is in the table."""
    if box.get("maxclass") == "newobj":
        return object_name(box) in NEWOBJ_RULES
    return box.get("maxclass") in MAXCLASS_RULES


def object_io(box: dict[str, Any]) -> ObjectIO | None:
    """The inlet / outlet counts Max gives this box, or None where only the box knows (js).

    ``box`` is the inner dict of a patcher box (``maxclass``, ``text``, attributes).
    Raises :class:`UnknownObjectError` for an object that is not in the table.
    """
    if box.get("maxclass") == "newobj":
        name, args, _ = split_box_text(str(box.get("text", "")))
        rule = NEWOBJ_RULES.get(name)
    else:
        name, args = str(box.get("maxclass", "")), []
        rule = MAXCLASS_RULES.get(name)
    if rule is None:
        raise UnknownObjectError(name)
    return rule(args, box)

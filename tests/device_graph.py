"""A built ``.amxd`` read back as a graph of boxes and patch lines, with the lookups the device tests need."""

from pathlib import Path
from typing import Any

from latentlive.m4l_devices.amxd import read_amxd


class DeviceGraph:
    """The boxes (by id) and patch lines ``(source, outlet, destination, inlet)`` of a device."""

    def __init__(self, path: Path) -> None:
        self.patcher = read_amxd(path).patcher["patcher"]
        self.boxes = {b["box"]["id"]: b["box"] for b in self.patcher["boxes"]}
        self.lines = [
            (*ln["patchline"]["source"], *ln["patchline"]["destination"]) for ln in self.patcher["lines"]
        ]

    def text(self, box_id: str) -> str:
        """The box's text, or its class for a box without text (a dial, a button)."""
        return self.boxes[box_id].get("text", self.boxes[box_id]["maxclass"])

    def find(self, prefix: str) -> list[str]:
        """The boxes whose text starts with ``prefix``."""
        return [i for i, b in self.boxes.items() if b.get("text", "").startswith(prefix)]

    def one(self, text: str) -> str:
        """The one box whose text is ``text``."""
        (found,) = [i for i in self.boxes if self.text(i) == text]
        return found

    def param(self, longname: str) -> str:
        """The box of the parameter ``longname``."""
        return next(i for i, b in self.boxes.items() if b.get("varname") == longname)

    def params(self) -> dict[str, dict[str, Any]]:
        """Long name -> box of every parameter."""
        return {
            b["saved_attribute_attributes"]["valueof"]["parameter_longname"]: b
            for b in self.boxes.values()
            if b.get("parameter_enable")
        }

    def valueof(self, longname: str) -> dict[str, Any]:
        """The saved ``valueof`` attributes of the parameter ``longname``."""
        return self.boxes[self.param(longname)]["saved_attribute_attributes"]["valueof"]

    def out(self, box_id: str, outlet: int | None = None) -> list[tuple[str, int]]:
        """(destination, inlet) of the lines leaving ``box_id`` (``outlet``, or any), right to left as Max
        sends them."""
        found = [(d, i) for s, o, d, i in self.lines if s == box_id and outlet in (None, o)]
        return sorted(found, key=lambda di: -self.boxes[di[0]]["patching_rect"][0])

    def into(self, box_id: str, inlet: int | None = None) -> list[tuple[str, int]]:
        """(source, outlet) of the lines reaching ``box_id`` (``inlet``, or any)."""
        return [(s, o) for s, o, d, i in self.lines if d == box_id and inlet in (None, i)]

    def sources(self, box_id: str, inlet: int | None = None) -> list[str]:
        """The boxes of :meth:`into`."""
        return [s for s, _ in self.into(box_id, inlet)]

    def chain(self, start: str, *texts: str) -> list[str]:
        """Follow lines from ``start`` through one box of each text in turn; return those boxes."""
        path, here = [], start
        for text in texts:
            nxt = [d for d, _ in self.out(here) if self.text(d) == text]
            assert len(nxt) == 1, (
                f"{self.text(here)} -> {text!r}: {[self.text(d) for d, _ in self.out(here)]}"
            )
            here = nxt[0]
            path.append(here)
        return path

    def reaches(self, start: str, goal: tuple[str, int], through: str | None = None, depth: int = 12) -> bool:
        """True when a chain of at most ``depth`` lines leads from ``start`` to inlet ``goal[1]`` of box
        ``goal[0]``, through a box whose text is ``through`` when given."""
        frontier, seen = {(start, through is None)}, set()
        for _ in range(depth):
            nxt = set()
            for box, passed in frontier - seen:
                seen.add((box, passed))
                for dst, inlet in self.out(box):
                    ok = passed or self.text(dst) == through
                    if (dst, inlet) == goal and ok:
                        return True
                    nxt.add((dst, ok))
            frontier = nxt
        return False

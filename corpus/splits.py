"""One way to hold data out: whole groups (a source file, the soundfont sample all its variants come from, a
procedural seed, a piece or hymn tune) go to train, validation or test, never to two of them.

Every corpus reader gives each example a group name; :func:`split_groups` deals the group names to the three
sides from a seed and fractions, and the resulting :class:`Split` is written to the run's ``split.json`` and
carried by its checkpoints. Whatever later says "held out" (a second stage, renders, ``latentlive evaluate``)
reads that split instead of drawing a new one.
"""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latentlive.core.errors import UserError
from latentlive.core.files import atomic_write_json

SIDES = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
# Groups needed before validation, then test, gets one: two groups train and evaluate, three also test.
LEAST_GROUPS = (2, 3)


@dataclass(frozen=True)
class Split:
    """The groups on each side (``train``, ``validation``, ``test``), and the seed and fractions that dealt them."""

    seed: int
    fractions: tuple[float, float, float]
    groups: dict[str, tuple[str, ...]]
    by_time: bool = (
        False  # one group only, split in time (see :func:`split_in_time`); its group is on every side
    )

    def side_of(self, group: str) -> str | None:
        """The side that holds ``group``, or None for a group the split never saw."""
        for side in SIDES:
            if group in self.groups[side]:
                return side
        return None

    def indices(self, example_groups: Sequence[str], side: str) -> np.ndarray:
        """Indices (int64, sorted) of the examples whose group is on ``side`` (a split by groups only; a split
        in time needs the examples' places: :func:`split_in_time`)."""
        if self.by_time:
            raise ValueError(
                "a split in time has no sides by group; use split_in_time with the examples' starts"
            )
        wanted = set(self.groups[side])
        return np.array([i for i, g in enumerate(example_groups) if str(g) in wanted], dtype=np.int64)

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "fractions": dict(zip(SIDES, self.fractions, strict=True)),
            "groups": {side: list(self.groups[side]) for side in SIDES},
            "by_time": self.by_time,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Split":
        fractions = data["fractions"]
        return cls(
            seed=int(data["seed"]),
            fractions=tuple(float(fractions[side]) for side in SIDES),  # type: ignore[arg-type]
            groups={side: tuple(str(g) for g in data["groups"][side]) for side in SIDES},
            by_time=bool(data.get("by_time", False)),
        )


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """``fractions`` as a (train, validation, test) tuple; a UserError unless three numbers >= 0 summing to 1
    with train > 0."""
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or min(values) < 0 or abs(sum(values) - 1) > 1e-6 or values[0] <= 0:
        raise UserError(
            f"split fractions = {tuple(fractions)}: give train, validation, test >= 0 summing to 1, "
            "e.g. (0.8, 0.1, 0.1)"
        )
    return values  # type: ignore[return-value]


def split_groups(
    example_groups: Sequence[str], fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0
) -> Split:
    """Deal the distinct groups of ``example_groups`` to train / validation / test.

    Validation and test get round(groups * fraction) groups, validation at least one when its fraction is > 0
    and there are two groups or more, test at least one when its fraction is > 0 and there are three or more;
    train keeps the rest (at least one). The order is a hash of seed and group name, so adding a group to a
    folder moves no other group across sides.
    """
    train_f, val_f, test_f = check_fractions(fractions)
    names = sorted({str(g) for g in example_groups})
    n = len(names)
    sizes = [
        max(round(n * f), 1 if n >= least and f > 0 else 0)
        for f, least in zip((val_f, test_f), LEAST_GROUPS, strict=True)
    ]
    while n and sum(sizes) >= n:  # train keeps at least one group
        sizes[int(np.argmax(sizes))] -= 1
    order = sorted(names, key=lambda name: hashlib.sha256(f"{seed}\n{name}".encode()).hexdigest())
    validation, test = order[: sizes[0]], order[sizes[0] : sizes[0] + sizes[1]]
    train = order[sizes[0] + sizes[1] :]
    groups = {side: tuple(sorted(part)) for side, part in zip(SIDES, (train, validation, test), strict=True)}
    return Split(seed, (train_f, val_f, test_f), groups)


def write_split(path: Path, split: Split) -> None:
    """``split.json`` at ``path``, written atomically."""
    atomic_write_json(path, split.to_json())


def read_split(path: Path) -> Split:
    """The split of ``split.json`` at ``path``; a UserError line when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"{path}: no split.json; the run predates held-out groups, train it again (or a new --name)"
        )
    try:
        return Split.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path}: unreadable split ({error}); train the run again to rewrite it") from None


def split_in_time(
    starts: Sequence[int], extent: int, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> dict[str, np.ndarray]:
    """Split the examples of one source (a recording, a piece), ``starts [N]`` each ``extent`` long, in time:
    the last ``test`` fraction is test, the ``validation`` fraction before it validation (each at least one
    example when its fraction is > 0 and there are enough examples), the rest train. Each side is taken from the
    examples that end before the later side's first one starts, so nothing held out was trained on (an example
    that straddles a boundary is left out). Returns the indices of each side (int64, sorted; any may be empty
    for very short sources)."""
    _, val_f, test_f = check_fractions(fractions)
    starts = np.asarray(starts, dtype=np.int64)
    n = len(starts)
    sizes = {
        side: max(int(round(n * f)), 1 if n >= least and f > 0 else 0)
        for side, f, least in zip(("validation", "test"), (val_f, test_f), LEAST_GROUPS, strict=True)
    }
    while n and sum(sizes.values()) >= n:
        largest = max(sizes, key=sizes.get)
        sizes[largest] -= 1
    remaining = list(np.argsort(starts, kind="stable"))
    boundary = np.iinfo(np.int64).max
    parts = {}
    for side in ("test", "validation"):  # from the end of the source backwards
        fits = [i for i in remaining if starts[i] + extent <= boundary]
        chosen = fits[len(fits) - sizes[side] :] if sizes[side] else []
        parts[side] = chosen
        remaining = fits[: len(fits) - len(chosen)]
        if chosen:
            boundary = int(starts[chosen].min())
    parts["train"] = [i for i in remaining if starts[i] + extent <= boundary]
    return {side: np.sort(np.asarray(parts[side], dtype=np.int64)) for side in SIDES}


def split_examples(
    example_groups: Sequence[str],
    starts: Sequence[int] | None = None,
    extent: int = 0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> tuple[Split, dict[str, np.ndarray]]:
    """The split every task uses: by groups (:func:`split_groups`) when there are two groups or more; one
    group (a folder of one recording or piece) is split in time when the examples' ``starts`` and ``extent``
    are given. Returns the split and the example indices of each side."""
    names = sorted({str(g) for g in example_groups})
    if len(names) == 1 and starts is not None:
        sides = split_in_time(starts, extent, fractions)
        split = Split(seed, check_fractions(fractions), {side: tuple(names) for side in SIDES}, by_time=True)
        return split, sides
    split = split_groups(example_groups, fractions, seed)
    return split, {side: split.indices(example_groups, side) for side in SIDES}


def groups_on_two_sides(example_groups: Sequence[str], indices: dict[str, np.ndarray]) -> list[str]:
    """The groups that have examples on more than one side of ``indices`` (what a split must never produce;
    the tests of every corpus reader check their splits with it)."""
    sides_of: dict[str, set[str]] = {}
    for side, part in indices.items():
        for i in part:
            sides_of.setdefault(str(example_groups[int(i)]), set()).add(side)
    return sorted(group for group, sides in sides_of.items() if len(sides) > 1)

"""The one split of the suite (corpus/splits.py): whole groups per side, stable, recorded and read back."""

import json

import numpy as np
import pytest

from latentlive.core.errors import UserError
from latentlive.corpus.splits import (
    SIDES,
    Split,
    groups_on_two_sides,
    read_split,
    split_examples,
    split_groups,
    split_in_time,
    write_split,
)


def _examples(groups: int, per_group: int) -> list[str]:
    return [f"file{g:02d}.mid" for g in range(groups) for _ in range(per_group)]


def test_no_group_is_on_two_sides_and_every_example_has_a_side() -> None:
    groups = _examples(23, 7)
    split, sides = split_examples(groups, fractions=(0.7, 0.15, 0.15), seed=4)
    assert groups_on_two_sides(groups, sides) == []
    assert sorted(np.concatenate([sides[s] for s in SIDES]).tolist()) == list(range(len(groups)))
    assert [len(split.groups[s]) for s in SIDES] == [17, 3, 3]
    assert not split.by_time


def test_the_overlap_check_finds_a_leaking_split() -> None:
    groups = _examples(5, 4)
    leaking = {"train": np.arange(0, 10), "validation": np.arange(9, 15), "test": np.arange(15, 20)}
    assert groups_on_two_sides(groups, leaking) == ["file02.mid", "file03.mid"]


def test_small_folders_train_first_then_validate_then_test() -> None:
    assert [len(split_groups(_examples(n, 1)).groups[s]) for n in (1, 2, 3) for s in SIDES] == [
        1,
        0,
        0,
        1,
        1,
        0,
        1,
        1,
        1,
    ]


def test_the_seed_decides_and_a_new_group_moves_no_other() -> None:
    names = _examples(40, 1)
    split = split_groups(names, seed=3)
    assert split == split_groups(list(reversed(names)), seed=3) and split != split_groups(names, seed=4)
    grown = split_groups([*names, "zzz.mid"], seed=3)
    for side in SIDES:
        assert set(split.groups[side]) - set(grown.groups[side]) <= set()  # nobody moved out of a side


def test_bad_fractions_are_one_clear_error() -> None:
    with pytest.raises(UserError, match="fractions"):
        split_groups(["a", "b"], (0.5, 0.1, 0.1))
    with pytest.raises(UserError, match="fractions"):
        split_groups(["a", "b"], (0.0, 0.5, 0.5))


def test_one_source_is_split_in_time_without_shared_samples() -> None:
    starts, extent = np.arange(20) * 50, 100  # examples overlap their neighbours by half
    split, sides = split_examples(["one.wav"] * 20, starts, extent, (0.7, 0.15, 0.15), seed=0)
    assert split.by_time and all(len(sides[s]) for s in SIDES)
    spans = {s: (starts[sides[s]].min(), starts[sides[s]].max() + extent) for s in SIDES}
    assert spans["train"][1] <= spans["validation"][0] and spans["validation"][1] <= spans["test"][0]
    # without the trimming, the last training example would reach into the held-out audio
    assert split_in_time(starts, 0, (0.7, 0.15, 0.15))["train"].size > sides["train"].size


def test_split_json_round_trips_and_a_broken_one_is_one_line(tmp_path) -> None:
    split = split_groups(_examples(10, 1), seed=2)
    write_split(tmp_path / "split.json", split)
    assert read_split(tmp_path / "split.json") == split
    assert json.loads((tmp_path / "split.json").read_text())["seed"] == 2
    (tmp_path / "bad.json").write_text('{"seed": 1}')
    with pytest.raises(UserError, match="unreadable split"):
        read_split(tmp_path / "bad.json")
    with pytest.raises(UserError, match="no split.json"):
        read_split(tmp_path / "missing.json")
    assert Split.from_json(split.to_json()).side_of("file03.mid") in SIDES

"""The drum model's held-out data: every example grouped by its performance (a file, a built-in seed), no group on
two sides of a split, a user's folder held out whole, and held-out scores beside a nearest-training-bar lookup."""

from pathlib import Path

import gin
import numpy as np
import pytest
import torch

from latentlive.corpus.drum_corpus import load_drum_corpus, patterns_seen_in_training
from latentlive.corpus.drum_map import INSTRUMENT_NAMES
from latentlive.corpus.drum_styles import STYLE_BPM, STYLE_NAMES, generate_performance, write_midi
from latentlive.corpus.splits import SIDES, Split, groups_on_two_sides, split_examples
from latentlive.models.drums import PatternVAE
from latentlive.training.tasks.base import SplitData, TensorData
from latentlive.training.tasks.drums import DrumsTask, nearest_by_hamming


@pytest.fixture(autouse=True)
def default_bindings() -> None:
    """The tasks here read gin's defaults (``split_fractions`` 0.8 / 0.1 / 0.1), whatever a test before bound."""
    gin.clear_config()


def quiet(_: str) -> None:
    pass


def write_performances(root: Path, files: dict[str, int], bars: int = 3) -> None:
    """One humanized file of ``bars`` one-bar examples per entry ``"style/name.mid": seed`` under ``root``
    (played in that built-in style, house for other folders)."""
    for relative, seed in files.items():
        folder = relative.split("/")[0]
        style = folder if folder in STYLE_NAMES else "house"
        played = generate_performance(style, np.random.default_rng(seed), bars)
        grid, velocity, offset = (np.concatenate(list(array), axis=-1) for array in played)
        write_midi(grid, velocity, root / relative, STYLE_BPM[style], humanize=0.5, seed=seed, offsets=offset)


FOLDER = {f"{style}/take {index}.mid": 10 * number + index for number, style in enumerate(("techno", "rock"))
          for index in range(5)} | {"loose.mid": 99}  # fmt: skip


def leaking(indices: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``indices`` with the first training example moved to the test side: its group is then on two sides."""
    return {**indices, "train": indices["train"][1:], "test": np.r_[indices["test"], indices["train"][:1]]}


def test_builtin_performances_are_groups_and_no_group_is_on_two_sides(tmp_path: Path) -> None:
    corpus = load_drum_corpus(None, builtin_examples_per_style=20, cache_dir=tmp_path, seed=1, log=quiet)
    cached = load_drum_corpus(None, builtin_examples_per_style=20, cache_dir=tmp_path, seed=1, log=quiet)
    np.testing.assert_array_equal(cached.groups, corpus.groups)  # the cache keeps the groups
    np.testing.assert_array_equal(cached.starts, corpus.starts)
    # 8 one-bar examples per performance: 3 performances per style (8 + 8 + 4), each of one style
    names, sizes = np.unique(corpus.groups, return_counts=True)
    assert len(names) == 3 * len(STYLE_NAMES) and sorted(set(sizes.tolist())) == [4, 8]
    assert all(len(set(corpus.styles[corpus.groups == name].tolist())) == 1 for name in names)
    assert corpus.starts[corpus.groups == "rock/performance-0001"].tolist() == list(range(8))

    split, indices = split_examples(corpus.groups, corpus.starts, 1, (0.8, 0.1, 0.1), seed=1)
    held = round(0.1 * len(names))  # validation and test get round(groups * fraction) groups each
    assert not split.by_time and [len(split.groups[side]) for side in SIDES] == [
        len(names) - 2 * held,
        held,
        held,
    ]
    assert sum(len(part) for part in indices.values()) == len(corpus)
    assert groups_on_two_sides(corpus.groups, indices) == []
    moved = str(corpus.groups[indices["train"][0]])
    assert groups_on_two_sides(corpus.groups, leaking(indices)) == [moved]


def test_a_folder_is_grouped_by_file_and_no_file_is_on_two_sides(tmp_path: Path) -> None:
    write_performances(tmp_path / "db", FOLDER)
    corpus = load_drum_corpus(tmp_path / "db", log=quiet)
    assert sorted(set(corpus.groups.tolist())) == sorted(FOLDER)
    assert corpus.starts[corpus.groups == "rock/take 2.mid"].tolist() == [0, 1, 2]

    task = DrumsTask()
    data = task.load_data(tmp_path / "db", seed=3, log=quiet)
    assert [len(data.split.groups[side]) for side in SIDES] == [9, 1, 1]  # 11 files
    for side in SIDES:  # each side holds exactly the bars of its files
        assert len(data.side(side)) == 3 * len(data.split.groups[side])
    split, indices = split_examples(corpus.groups, corpus.starts, 1, (0.8, 0.1, 0.1), seed=3)
    assert split == data.split
    assert groups_on_two_sides(corpus.groups, indices) == []
    assert groups_on_two_sides(corpus.groups, leaking(indices)) != []


def test_one_file_is_split_in_time_and_the_seen_patterns_are_counted(tmp_path: Path) -> None:
    write_performances(tmp_path / "db", {"solo.mid": 5}, bars=10)
    lines: list[str] = []
    data = DrumsTask().load_data(tmp_path / "db", seed=0, log=lines.append)
    assert data.split.by_time and [len(data.side(side)) for side in SIDES] == [8, 1, 1]
    corpus = load_drum_corpus(tmp_path / "db", log=quiet)
    np.testing.assert_array_equal(data.test.tensors["pattern"][0], corpus.grids[9])  # the last bar is test
    assert any("split in time" in line for line in lines)

    grids = np.array([[0, 1], [1, 1], [0, 1], [1, 0]])
    sides = {"train": np.array([0, 1]), "validation": np.array([2]), "test": np.array([3])}
    assert patterns_seen_in_training(grids, sides, "validation") == 1  # row 2 repeats row 0
    assert patterns_seen_in_training(grids, sides, "test") == 0


def test_load_held_out_reads_every_bar_of_a_folder_with_the_runs_styles(tmp_path: Path) -> None:
    write_performances(tmp_path / "db", FOLDER)
    write_performances(tmp_path / "held", {"techno/a.mid": 1, "jazz/b.mid": 2, "c.mid": 3}, bars=4)
    task = DrumsTask()
    task.load_data(tmp_path / "db", seed=0, log=quiet)
    lines: list[str] = []
    held_out = task.load_held_out(tmp_path / "held", log=lines.append)
    assert len(held_out) == 12 and held_out.tensors["pattern"].shape == (12, 9, 16)
    # folders sort as c.mid's "default", jazz, techno: the run knows default and techno, not jazz
    default, techno = task.style_names.index("default"), task.style_names.index("techno")
    assert held_out.tensors["style"].tolist() == [default] * 4 + [-1] * 4 + [techno] * 4
    assert any("jazz" in line and "without a style" in line for line in lines)


def test_nearest_by_hamming_matches_a_brute_force_search_across_chunks() -> None:
    rng = np.random.default_rng(0)
    table = torch.from_numpy(rng.random((50, 9, 16)) < 0.2)
    queries = torch.from_numpy(rng.random((23, 9, 16)) < 0.2)
    brute = (queries[:, None] ^ table[None]).flatten(2).sum(-1).argmin(1)
    assert torch.equal(nearest_by_hamming(queries, table, chunk=5), brute)
    assert torch.equal(nearest_by_hamming(table[[7, 3]], table, chunk=1), torch.tensor([7, 3]))


def played(patterns: torch.Tensor) -> TensorData:
    """Task tensors of ``patterns`` [N, 9, 16] with no style, velocity 0.8 on the hits and no offsets."""
    return TensorData(
        {
            "pattern": patterns,
            "style": torch.zeros(len(patterns), dtype=torch.long),
            "velocity": 0.8 * patterns,
            "offset": torch.zeros_like(patterns),
        }
    )


def tiny_split(patterns: torch.Tensor) -> SplitData:
    train = played(patterns)
    empty = TensorData({key: value[:0] for key, value in train.tensors.items()})
    return SplitData(train, empty, empty, Split(0, (1.0, 0.0, 0.0), {side: () for side in SIDES}))


def test_evaluate_held_out_scores_each_class_beside_the_nearest_training_bar() -> None:
    torch.manual_seed(0)
    task = DrumsTask(style_conditioning=False)
    model = PatternVAE(instruments=9, steps=16, latent_size=2, hidden_sizes=(16,))
    training = (torch.rand(40, 9, 16) < 0.25).float()
    data = tiny_split(training)

    copies = played(training[5:15].clone())
    metrics = task.evaluate_held_out(model, copies, data)
    for name in INSTRUMENT_NAMES:
        for prefix in ("eval", "eval/baseline_nearest_bar"):
            assert {f"{prefix}/{score}/{name}" for score in ("precision", "recall", "f1")} <= set(metrics)
    assert metrics["eval/baseline_nearest_bar/f1"] == 1.0 and metrics["eval/beats_nearest_bar"] == 0.0
    assert metrics["eval/baseline_nearest_bar/f1/kick"] == 1.0
    assert 0.0 <= metrics["eval/f1"] < 1.0 and {"eval/elbo", "eval/kl"} <= set(metrics)

    unseen = played(1 - training[5:15])
    assert task.evaluate_held_out(model, unseen, data)["eval/baseline_nearest_bar/f1"] < 0.9


@pytest.mark.parametrize("bars", [1, 2])
def test_performances_are_one_groove_cut_into_examples(bars: int) -> None:
    grids, velocities, offsets = generate_performance(
        "breakbeat", np.random.default_rng(4), examples=8 // bars, bars=bars
    )
    assert grids.shape == (8 // bars, 9, 16 * bars) and velocities.shape == offsets.shape == grids.shape
    # the kick (one of four options) keeps its groove bar after bar; only its ghost note on step 13 comes and goes
    kick = np.delete(grids[:, 0].reshape(-1, 16), 13, axis=1)
    assert (kick == kick[0]).all()
    assert np.all((velocities > 0) == (grids == 1))

"""The grain corpus held out by sound: every grain's group is its source (a file, a texture's seed, a soundfont
sample), no group is on two sides, a folder of one sound is split in time without shared samples, and a held-out
folder is read whole."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from latentlive.corpus.grains import load_grains
from latentlive.corpus.splits import SIDES, groups_on_two_sides
from latentlive.training.config import parse_gin
from latentlive.training.tasks.base import SplitData, TensorData
from latentlive.training.tasks.grain import GrainTask

ROOT = Path(__file__).resolve().parents[1]
GRAIN, HOP, RATE = 256, 64, 22050  # gin/grain_tiny.gin


def quiet(*_: object) -> None:
    pass


def tiny_task() -> GrainTask:
    parse_gin([str(ROOT / "gin" / "grain_tiny.gin")], [])
    return GrainTask()


def write_sounds(folder: Path, seconds: list[float]) -> Path:
    """One wav per entry of ``seconds``: tones of distinct pitches under a swell, at the model rate."""
    folder.mkdir(parents=True)
    for i, length in enumerate(seconds):
        t = np.arange(int(length * RATE)) / RATE
        tone = 0.5 * np.sin(2 * np.pi * (110 * (i + 1)) * t) * np.sin(np.pi * t / length) ** 0.5
        sf.write(str(folder / f"sound{i}.wav"), tone.astype(np.float32), RATE)
    return folder


def groups_across_sides(data: SplitData, sound_groups: list[str]) -> list[str]:
    """The groups with grains on two sides of ``data`` (each grain's group from its ``sound`` index)."""
    groups = [sound_groups[int(s)] for side in SIDES for s in data.side(side).tensors["sound"]]
    ends = np.cumsum([len(data.side(side)) for side in SIDES])
    indices = {
        side: np.arange(end - len(data.side(side)), end) for side, end in zip(SIDES, ends, strict=True)
    }
    return groups_on_two_sides(groups, indices)


def with_leak(data: SplitData) -> SplitData:
    """``data`` with one training grain copied to the validation side: its sound now leaks."""
    leaked = {k: torch.cat([v, data.train.tensors[k][:1]]) for k, v in data.validation.tensors.items()}
    return SplitData(data.train, TensorData(leaked), data.test, data.split)


@pytest.fixture(scope="module")
def builtin() -> tuple[GrainTask, SplitData]:
    task = tiny_task()
    return task, task.load_data(None, seed=0, log=quiet)


def test_builtin_sounds_are_held_out_whole_on_three_sides(builtin: tuple[GrainTask, SplitData]) -> None:
    task, data = builtin
    corpus = load_grains(None, grain_size=GRAIN, max_grains=300, sounds=8, log=quiet)
    assert not data.split.by_time and all(len(data.side(side)) for side in SIDES)
    assert groups_across_sides(data, corpus.groups) == []
    # every group of the corpus is dealt, and the sounds held out are those re-synthesised whole
    assert sorted(g for side in SIDES for g in data.split.groups[side]) == sorted(set(corpus.groups))
    held_out = {int(s) for side in SIDES[1:] for s in data.side(side).tensors["sound"]}
    assert set(task._held_out_sounds) == held_out


def test_soundfont_variants_of_one_sample_share_a_group() -> None:
    corpus = load_grains(None, grain_size=GRAIN, max_grains=300, sounds=64, log=quiet)
    kit = [g for g in corpus.groups if g.startswith("sf2:")]
    assert len(set(kit)) < len(kit)  # variants of one sample are one group, not one each
    textures = [g for g, s in zip(corpus.groups, corpus.sources, strict=True) if "texture" in s]
    assert len(set(textures)) == len(textures)  # each texture is its own seed


def test_the_check_finds_a_leaking_split(builtin: tuple[GrainTask, SplitData]) -> None:
    _, data = builtin
    corpus = load_grains(None, grain_size=GRAIN, max_grains=300, sounds=8, log=quiet)
    leaking_sound = int(data.train.tensors["sound"][0])
    assert groups_across_sides(with_leak(data), corpus.groups) == [corpus.groups[leaking_sound]]


def test_a_folder_of_several_files_holds_out_whole_files(tmp_path: Path) -> None:
    folder = write_sounds(tmp_path / "sounds", [0.5, 0.6, 0.7, 0.5, 0.8])
    data = tiny_task().load_data(folder, seed=3, log=quiet)
    files = sorted(p.name for p in folder.iterdir())
    assert sorted(g for side in SIDES for g in data.split.groups[side]) == files
    assert [len(data.split.groups[side]) for side in SIDES] == [3, 1, 1]  # 0.5 / 0.25 / 0.25 of 5 files
    assert groups_across_sides(data, files) == []
    assert groups_across_sides(with_leak(data), files) != []


def test_a_folder_of_one_file_is_split_in_time_without_shared_samples(tmp_path: Path) -> None:
    folder = write_sounds(tmp_path / "one", [3.0])
    data = tiny_task().load_data(folder, seed=0, log=quiet)
    assert data.split.by_time and all(len(data.side(side)) for side in SIDES)
    # grain p covers samples (p + 1) * hop - grain_size up to (p + 1) * hop
    spans = {side: data.side(side).tensors["position"].numpy() * HOP for side in SIDES}
    assert spans["train"].max() + HOP <= spans["validation"].min() + HOP - GRAIN
    assert spans["validation"].max() + HOP <= spans["test"].min() + HOP - GRAIN


def test_a_held_out_folder_gives_every_grain_and_its_whole_sounds(
    builtin: tuple[GrainTask, SplitData], tmp_path: Path
) -> None:
    task, _ = builtin
    folder = write_sounds(tmp_path / "held_out", [0.5, 0.7])
    held_out = task.load_held_out(folder, log=quiet)
    corpus = load_grains(folder, grain_size=GRAIN, max_grains=300, log=quiet)
    assert len(held_out) == len(corpus)
    sounds = sorted(set(held_out.tensors["sound"].tolist()))
    assert len(sounds) == 2 and set(sounds) <= set(task._held_out_sounds)
    assert [len(s) for s in task._whole_sounds(held_out, 8)] == [len(s) for s in corpus.sounds]

"""The held-out folder of hand-transcribed grooves (corpus/real_drums): its files are what its transcription says,
and the drum reader gives back every note's step, velocity and microtiming."""

from pathlib import Path

import numpy as np
import pytest
from real_drums_files import FOLDER, STEPS_PER_BAR, TEXT, midi_of, parse, write_all

from latentlive.corpus.drum_corpus import load_drum_corpus
from latentlive.corpus.drum_map import note_to_class
from latentlive.corpus.drum_midi import read_drum_midi

GROOVES = parse(TEXT.read_text())


def test_the_committed_files_are_the_transcriptions(tmp_path: Path) -> None:
    written = write_all(tmp_path)
    assert sorted(p.relative_to(tmp_path) for p in written) == sorted(p.relative_to(FOLDER) for p in
                                                                      FOLDER.rglob("*.mid"))  # fmt: skip
    for path in written:
        assert path.read_bytes() == (FOLDER / path.relative_to(tmp_path)).read_bytes(), path


@pytest.mark.parametrize("groove", GROOVES, ids=[g.path for g in GROOVES])
def test_the_reader_gives_back_every_note_with_its_velocity_and_timing(groove) -> None:
    result = read_drum_midi(FOLDER / groove.path)
    assert result.counts["bars_used"] == groove.bars and result.counts["empty_bars"] == 1  # the count-in
    assert result.counts["merged_notes"] == 0
    grid = np.zeros((groove.bars, 9, STEPS_PER_BAR), dtype=np.uint8)
    velocity = np.zeros(grid.shape, dtype=np.float32)
    offset = np.zeros(grid.shape, dtype=np.float32)
    step_ms = 60_000 / groove.bpm / 4
    for note in groove.notes:
        cls = note_to_class(note.note)
        grid[note.bar, cls, note.step] = 1
        velocity[note.bar, cls, note.step] = note.velocity / 127
        offset[note.bar, cls, note.step] = note.ms / step_ms
    np.testing.assert_array_equal(result.grids, grid)
    np.testing.assert_allclose(result.velocities, velocity, atol=1e-6)
    np.testing.assert_allclose(result.offsets, offset, atol=0.5 / 120 + 1e-6)  # half a tick
    np.testing.assert_allclose(result.bpms, groove.bpm, rtol=1e-3)


def test_the_folder_is_a_corpus_of_humanised_bars_and_a_broken_transcription_is_refused() -> None:
    corpus = load_drum_corpus(FOLDER, log=lambda _: None)
    assert len(corpus) == sum(g.bars for g in GROOVES) >= 30
    assert set(corpus.style_names) == {"breakbeat", "funk", "halftime", "jazz", "rock", "shuffle"}
    hits = corpus.grids == 1
    assert np.abs(corpus.offsets[hits]).mean() > 0.04 and corpus.velocities[hits].std() > 0.15
    with pytest.raises(ValueError, match="line 3"):
        parse("groove a/b.mid bpm=90\nbar\nkick 100 . .\n")
    with pytest.raises(ValueError, match="velocity 128"):
        parse("groove a/b.mid bpm=90\nbar\nkick 128" + " ." * 15 + "\n")
    assert midi_of(GROOVES[0]).ticks_per_beat == 480

"""Audio of any channel count and length is read in bounded memory, and the corpora say what they did.

One reader (``corpus.audio_folder.read_audio``) serves the one-shot, loop and grain corpora: it streams a file
block by block, folds any number of channels to mono and resamples as it goes. The files here are small and
synthetic; "long" means many blocks, which a small ``block_samples`` gives without a long file.
"""

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

import latentlive.corpus.grains
import latentlive.corpus.loops
from latentlive.corpus.audio_folder import read_audio, reading_summary
from latentlive.corpus.grains import load_grains
from latentlive.corpus.loops import load_loops
from latentlive.corpus.one_shots import load_one_shots


def write_noise(path: Path, seconds: float, rate: int, channels: int, seed: int = 0) -> np.ndarray:
    """Decaying noise bursts (one a second) of ``channels`` channels, written as 16-bit; the frames as written."""
    rng = np.random.default_rng(seed)
    frames = int(seconds * rate)
    envelope = np.exp(-8.0 * (np.arange(frames) % rate) / rate)[:, None]
    audio = (0.5 * envelope * rng.uniform(-1, 1, (frames, channels))).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), audio, rate, subtype="PCM_16")
    return soundfile.read(str(path), dtype="float32", always_2d=True)[0]


def test_six_channels_fold_to_their_mean_at_the_model_rate(tmp_path: Path) -> None:
    written = write_noise(tmp_path / "surround.wav", 1.0, 48000, 6)
    read = read_audio(tmp_path / "surround.wav", 22050, 10.0, block_samples=6 * 4096)
    assert read is not None and read.channels == 6 and not read.cut
    expected = soxr.resample(written.mean(axis=1), 48000, 22050, quality="HQ")
    np.testing.assert_allclose(read.samples, expected, atol=1e-6)
    assert reading_summary("grains", [read]) == "grains: folded 1 file(s) to mono (1 of 6 channels)"


def test_a_long_file_streams_in_bounded_memory_and_is_cut_at_max_seconds(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    written = write_noise(path, 20.0, 48000, 6)
    whole_bytes = written.nbytes  # 23 MB: what reading the file in one piece would hold at once
    tracemalloc.start()
    try:
        read = read_audio(path, 8000, 12.0, block_samples=6 * 4096)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert read is not None and read.cut and read.read_seconds == pytest.approx(12.0)
    assert read.file_seconds == pytest.approx(20.0)
    # the mono result at 8 kHz is 0.4 MB; a block of 4096 six-channel frames is 0.1 MB
    assert peak < 2 * 2**20 < whole_bytes / 10, f"peak {peak / 2**20:.1f} MB"
    expected = soxr.resample(written[: 12 * 48000].mean(axis=1), 48000, 8000, quality="HQ")
    np.testing.assert_allclose(read.samples, expected, atol=1e-6)
    summary = reading_summary("loops", [read])
    assert summary == (
        "loops: folded 1 file(s) to mono (1 of 6 channels); read the first 12 s of 1 longer file(s) "
        "(the longest lasts 20.0 s)"
    )


def test_mono_files_read_whole_need_no_summary_and_bad_files_read_as_none(tmp_path: Path) -> None:
    write_noise(tmp_path / "mono.wav", 0.5, 22050, 1)
    read = read_audio(tmp_path / "mono.wav", 22050, 10.0)
    assert read is not None and len(read.samples) == 11025 and reading_summary("grains", [read]) is None
    (tmp_path / "junk.wav").write_bytes(b"RIFF....WAVEjunk")
    assert read_audio(tmp_path / "junk.wav", 22050, 10.0) is None
    soundfile.write(str(tmp_path / "nan.wav"), np.full(100, np.nan, np.float32), 8000, subtype="FLOAT")
    assert read_audio(tmp_path / "nan.wav", 8000, 10.0) is None


def test_the_drum_synth_corpus_reads_six_channel_one_shots(tmp_path: Path) -> None:
    for name in ("kick", "snare"):
        write_noise(tmp_path / "kit" / name / f"{name}.wav", 0.4, 44100, 6, seed=len(name))
    lines: list[str] = []
    corpus = load_one_shots(tmp_path / "kit", sample_rate=22050, length=4096, log=lines.append)
    assert corpus.class_names == ["kick", "snare"] and corpus.audio.shape == (2, 4096)
    assert "one-shots: folded 2 file(s) to mono (2 of 6 channels)" in lines


def test_loop_and_grain_corpora_take_the_first_part_of_a_long_file_and_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the readers' limits (10 and 15 minutes) scaled down to seconds, so the file stays small
    monkeypatch.setattr(latentlive.corpus.grains, "MAX_READ_S", 3.0)
    monkeypatch.setattr(latentlive.corpus.loops, "MAX_READ_S", 9.0)
    write_noise(tmp_path / "one" / "take 120bpm.wav", 12.0, 16000, 2)
    lines: list[str] = []
    grains = load_grains(tmp_path / "one", grain_size=256, max_grains=200, log=lines.append)
    assert len(grains) == 200 and int(grains.position.max()) * grains.hop <= 3.0 * 22050
    assert lines[0].startswith(
        "grains: folded 1 file(s) to mono (1 of 2 channels); read the first 3 s of 1 longer file(s)"
    ), lines
    lines.clear()
    loops = load_loops(tmp_path / "one", sample_rate=16000, length=32000, bars=1, log=lines.append)
    starts = [float(source.rpartition("@")[2]) for source in loops.sources]
    # one-bar loops of 2 s at 120 bpm on the fitted grid, all within the first 9 s (the whole file: up to 12 s)
    assert len(loops) >= 2 and max(starts) + 2.0 <= 9.0, loops.sources
    assert any(line.startswith("loops: folded 1 file(s) to mono") and "first 9 s" in line for line in lines)

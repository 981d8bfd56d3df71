"""Small data trains and evaluates: a folder that yields one training and one held-out example trains, evaluates
and logs its figures, for every model; less is refused before training, in one line with the counts found."""

import json
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile
from cli_process import assert_one_clear_line, run_cli
from midi_files import save_midi
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from latentlive.cli import main
from latentlive.corpus.splits import SIDES, split_groups, split_in_time

ROOT = Path(__file__).resolve().parents[1]
TPQ = 96
BAR = 4 * TPQ
# three different 4/4 bars of (sixteenth, GM note): kick, snare, closed hat, open hat
BARS = [
    [(0, 36), (4, 38), (8, 36), (12, 38), *((s, 42) for s in range(0, 16, 2))],
    [(0, 36), (6, 36), (4, 38), (12, 38), *((s, 42) for s in range(1, 16, 2))],
    [(0, 36), (10, 36), (8, 38), (14, 46), *((s, 42) for s in range(0, 16, 4))],
]


def drum_track(bars: list[list[tuple[int, int]]], first_tick: int = 0) -> list[tuple[int, mido.Message]]:
    """Timed channel-10 notes of consecutive 4/4 bars from ``first_tick``."""
    events = []
    for index, bar in enumerate(bars):
        for step, note in bar:
            tick = first_tick + index * BAR + step * TPQ // 4
            events.append((tick, mido.Message("note_on", channel=9, note=note, velocity=100)))
            events.append((tick + TPQ // 8, mido.Message("note_off", channel=9, note=note, velocity=0)))
    return events


def meter(tick: int, numerator: int, denominator: int) -> tuple[int, mido.MetaMessage]:
    return tick, mido.MetaMessage("time_signature", numerator=numerator, denominator=denominator)


def type_0_unicode(folder: Path) -> Path:
    """One type 0 file in 4/4 with a name a musician might give it."""
    return save_midi(folder / "Grüße – groove ♪.mid", [drum_track(BARS)], TPQ, midi_type=0)


def type_2_mixed_meters(folder: Path) -> Path:
    """One type 2 file: a song of 4/4, 3/4 and 4/4 again, and a second song of one bar."""
    first = [meter(0, 4, 4), *drum_track(BARS[:1]), meter(BAR, 3, 4), meter(BAR + 3 * TPQ, 4, 4)]
    first += drum_track(BARS[1:], first_tick=BAR + 3 * TPQ)
    return save_midi(folder / "mixed.mid", [first, drum_track(BARS[2:])], TPQ, midi_type=2)


def image_tags(run: Path) -> set[str]:
    return set(EventAccumulator(str(run), size_guidance={"images": 0}).Reload().Tags()["images"])


def train(gin: str, db: Path, out: Path, *extra: str) -> int:
    args = ["train", "--gin", str(ROOT / "gin" / gin), "--db", str(db), "--out", str(out), "--name", "small"]
    return main([*args, "--max_steps", "2", *extra])


def exports(run: Path) -> bool:
    """The run exports for nn~ (the exporter verifies the contract) to ``RUN/export/<model>.ts``, from a process
    of its own as a user runs it (training in this process has registered what a fresh one must import)."""
    done = run_cli("export", "--run", str(run), "--streaming", cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return any((run / "export").glob("*.ts"))


def held_out_metrics(run: Path) -> dict[str, float]:
    return json.loads((run / "metrics.json").read_text())["eval"]


def write_noise(path: Path, seconds: float, rate: int, channels: int = 1, beat_hz: float = 2.0) -> None:
    """Decaying noise bursts, ``beat_hz`` a second (2: quarter notes at 120 bpm)."""
    frames = int(seconds * rate)
    envelope = np.exp(-10.0 * (np.arange(frames) * beat_hz % rate) / rate)[:, None]
    audio = 0.5 * envelope * np.random.default_rng(len(path.name)).uniform(-1, 1, (frames, channels))
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), audio.astype(np.float32), rate, subtype="PCM_16")


# -- the splits: one example held out as soon as there are two ---------------------------------------


def test_splits_hold_out_one_example_of_two_and_never_overlap_in_time() -> None:
    # two sources: one trains, one is held out; a third is the test side
    assert [len(split_groups(["a", "b"]).groups[side]) for side in SIDES] == [1, 1, 0]
    assert [len(split_groups(["a", "b", "c"]).groups[side]) for side in SIDES] == [1, 1, 1]
    # one source, crops of 100 samples every 50: each side ends before the next one starts
    sides = split_in_time(np.arange(10) * 50, 100, (0.8, 0.2, 0.0))
    assert list(sides["validation"]) == [8, 9] and list(sides["train"]) == [0, 1, 2, 3, 4, 5, 6]
    # two crops that do not overlap: one trains, one is held out
    assert [len(split_in_time([0, 100], 100)[side]) for side in SIDES] == [1, 1, 0]


# -- drums ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("write", [type_0_unicode, type_2_mixed_meters])
def test_one_drum_midi_file_trains_evaluates_logs_figures_and_exports(write, tmp_path: Path) -> None:
    write(tmp_path / "db")
    assert train("drums_tiny.gin", tmp_path / "db", tmp_path / "runs") == 0
    run = tmp_path / "runs" / "small"
    assert 0.0 <= held_out_metrics(run)["eval/f1"] <= 1.0
    expected = {"patterns/input_vs_reconstruction", "patterns/samples_by_style", "latent/map_by_style"}
    assert expected <= image_tags(run)
    assert exports(run)


def test_too_little_drum_data_is_refused_before_training_in_one_line(tmp_path: Path) -> None:
    save_midi(tmp_path / "db" / "one bar.mid", [drum_track(BARS[:1])], TPQ, midi_type=0)
    args = ["train", "--gin", str(ROOT / "gin/drums_tiny.gin"), "--db", str(tmp_path / "db")]
    done = run_cli(*args, "--out", str(tmp_path / "runs"), "--name", "small", cwd=ROOT)
    counts = "1 training and 0 held-out examples of 1 bar(s) after the split, need at least 1 and 1"
    assert_one_clear_line(done, str(tmp_path / "db"), counts)
    assert not list(tmp_path.glob("runs/*/checkpoints/*.pt"))


# -- audio models --------------------------------------------------------------------------------------


def test_two_six_channel_one_shots_train_the_drum_synth_and_log_figures(tmp_path: Path) -> None:
    for name in ("kick", "snare"):
        write_noise(tmp_path / "kit" / name / f"{name}.wav", 0.3, 44100, channels=6)
    assert train("drumsynth_tiny.gin", tmp_path / "kit", tmp_path / "runs") == 0
    run = tmp_path / "runs" / "small"
    assert np.isfinite(held_out_metrics(run)["eval/lsd"])
    expected = {"spectrograms/input_vs_reconstruction", "spectrograms/prior_by_class", "latent/map_by_class"}
    assert expected <= image_tags(run)


def test_one_one_shot_is_refused_with_the_counts(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_noise(tmp_path / "kit" / "kick" / "kick.wav", 0.3, 22050)
    assert train("drumsynth_tiny.gin", tmp_path / "kit", tmp_path / "runs") == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "1 training and 0 held-out one-shots" in message and "need at least 1 and 1" in message


def test_one_recording_trains_the_techno_model_split_in_time(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    write_noise(tmp_path / "db" / "jam 120bpm.wav", 20.0, 16000)
    assert train("techno_tiny.gin", tmp_path / "db", tmp_path / "runs") == 0
    # loops of 4.1 s every 2 bars (4 s): the last one is the test side, the last one that ends before it
    # starts validation, and the one that ends before that trains
    assert (
        "loops: 1 for training, 1 for validation, 1 for test (one file split in time)"
        in capsys.readouterr().out
    )
    run = tmp_path / "runs" / "small"
    assert np.isfinite(held_out_metrics(run)["eval/spectral_distance"])
    assert {"latent/spearman", "interpolation/features"} <= image_tags(run)


def test_one_sound_trains_the_grain_model_split_in_time_and_exports(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    write_noise(tmp_path / "db" / "texture.wav", 1.5, 22050, channels=2)
    assert train("grain_tiny.gin", tmp_path / "db", tmp_path / "runs") == 0
    # 287 loud grains: the last quarter is the test side, the quarter before it validation (gin/grain_tiny.gin),
    # and no grain of one side reaches into the next
    assert "grains: 140 train, 72 validation, 72 test (one sound split in time)" in capsys.readouterr().out
    run = tmp_path / "runs" / "small"
    assert np.isfinite(held_out_metrics(run)["eval/lsd"])
    assert "latent/map_by_sound" in image_tags(run)
    assert exports(run)


# -- band ----------------------------------------------------------------------------------------------


def band_song(path: Path, measures: int) -> Path:
    """One type 1 song of three named parts: a lead walking up the scale, held chords and a bass on roots."""
    tracks: dict[str, list[tuple[int, mido.Message]]] = {"Lead": [], "Keys": [], "Bass": []}

    def note(part: str, step: int, length: int, pitch: int) -> None:
        channel = list(tracks).index(part)
        tracks[part] += [
            (step * TPQ // 4, mido.Message("note_on", channel=channel, note=pitch, velocity=90)),
            ((step + length) * TPQ // 4, mido.Message("note_off", channel=channel, note=pitch, velocity=0)),
        ]

    for measure in range(measures):
        root = 60 + (0, 7, 9, 5)[measure % 4]
        for beat in range(4):
            note("Lead", 16 * measure + 4 * beat, 4, 72 + (2 * beat + measure) % 12)
        for pitch in (root, root + 4, root + 7):
            note("Keys", 16 * measure, 16, pitch - 12)
        note("Bass", 16 * measure, 8, root - 24)
    named = [[(0, mido.MetaMessage("track_name", name=name)), *events] for name, events in tracks.items()]
    return save_midi(path, named, TPQ)


def test_one_band_piece_trains_split_in_time_and_logs_piano_rolls(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    band_song(tmp_path / "db" / "só uma canção.mid", measures=16)
    binds = ["BandTask.busiest = 3", "BandTask.ablations = ()"]
    assert (
        train("band_tiny.gin", tmp_path / "db", tmp_path / "runs", *(w for b in binds for w in ("--bind", b)))
        == 0
    )
    # 16 measures in blocks of 5 (one window): the last block is the test side, the one before it validation,
    # and training keeps the windows that end before validation starts
    out = capsys.readouterr().out
    assert "band: 2 training windows, 1 validation windows, 1 test windows of 5 measures (one group" in out
    run = tmp_path / "runs" / "small"
    metrics = held_out_metrics(run)
    assert metrics and all(np.isfinite(value) for value in metrics.values())
    assert "piano_rolls/window_0" in image_tags(run)

"""``latentlive render band``: continue a piece, refill one part, or redo every part, from a seed MIDI file.

- ``continue``: append ``measures`` measures after the seed, each predicted from the ones before.
- ``fill``: regenerate one part over the whole piece, measure by measure, from the other parts of the
  measure and the measures before (already refilled).
- ``redo``: every part in turn, each pass a ``fill`` of that part over the piece the passes before left.

The seed is read with the model's parts (corpus.band_midi.read_seed_midi: parts named after the model's,
else its busiest) and transposed as the model was trained; the result is transposed back and written with
one track and channel per part.
"""

from pathlib import Path
from typing import Any

import mido
import numpy as np

from latentlive.core.errors import UserError
from latentlive.core.files import check_output_file
from latentlive.corpus.band_midi import read_seed_midi, rolls_to_notes, write_band_midi
from latentlive.corpus.band_rolls import measure_rolls
from latentlive.live.band_model import BandModel

TASKS = ("continue", "fill", "redo")
DEFAULT_BPM = 100.0


def _seed_tempo(path: Path) -> float:
    """The first tempo of a MIDI file (default 100 bpm)."""
    try:
        for track in mido.MidiFile(path).tracks:
            for msg in track:
                if msg.type == "set_tempo":
                    return float(mido.tempo2bpm(msg.tempo))
    except (OSError, ValueError, EOFError, KeyError):
        pass  # read_seed_midi already accepted the file: its tempo is a detail
    return DEFAULT_BPM


def continue_piece(
    model: BandModel, rolls: np.ndarray, measures: int, temperature: float, seed: int
) -> np.ndarray:
    """``rolls [M, P, 3, 128, S]`` followed by ``measures`` predicted measures."""
    history = list(rolls)
    for n in range(measures):
        history.append(model.next_measure(np.stack(history), temperature, seed + n, ahead=1))
    return np.stack(history)


def fill_part(model: BandModel, rolls: np.ndarray, part: int, temperature: float, seed: int) -> np.ndarray:
    """``rolls [M, P, 3, 128, S]`` with ``part`` regenerated measure by measure."""
    present = [p != part for p in range(model.parts)]
    result = np.array(rolls, np.float32)
    for m in range(len(result)):
        measure = result[m].copy()
        measure[part] = 0.0
        result[m] = model.fill_measure(result[:m], measure, present, temperature, seed + m)
    return result


def render_band(
    model_path: str | Path | BandModel,
    seed_midi: str | Path,
    task: str,
    out_path: str | Path,
    part: str | int | None = None,
    measures: int = 8,
    temperature: float = 1.0,
    seed: int = 0,
    force: bool = False,
) -> Path:
    """Render ``task`` on ``seed_midi`` and write ``out_path`` (atomically; an existing file is replaced only
    with ``force``, a folder never)."""
    model = model_path if isinstance(model_path, BandModel) else BandModel(model_path)
    if task not in TASKS:
        raise UserError(f"--task {task}: use one of {', '.join(TASKS)}")
    if task == "fill" and part is None:
        raise UserError(f"--task fill needs --part, the part to regenerate: one of {model.part_list()}")
    part_index = None if part is None else model.part_index(part)
    if task == "continue" and not 1 <= measures <= 1000:
        raise UserError(f"--measures {measures}: must be between 1 and 1000")
    temperature = model.check_temperature(temperature)
    out = Path(out_path)
    if not out.parent.is_dir():
        raise UserError(f"{out}: the folder {out.parent} does not exist; create it or pick another --out")
    check_output_file(out, force, example="band.mid")
    transpose = "normalise" if model.transpose == "normalise" else "none"
    piece = read_seed_midi(Path(seed_midi), model.part_names, model.part_kinds, transpose=transpose)
    if piece.measures < 1 or len(piece.notes) == 0:
        raise UserError(f"{seed_midi}: the seed has no notes in the model's parts ({model.part_list()})")
    rolls = measure_rolls(piece, 0, piece.measures, model.parts).astype(np.float32)
    if task == "continue":
        result = continue_piece(model, rolls, measures, temperature, seed)
    elif task == "fill":
        result = fill_part(model, rolls, part_index, temperature, seed)
    else:
        result = rolls
        for p in range(model.parts):
            result = fill_part(model, result, p, temperature, seed + p * len(rolls))
    notes = rolls_to_notes(result)
    notes[:, 3] = np.clip(notes[:, 3] - piece.shift, 0, 127)
    return write_band_midi(notes, model.part_names, out, bpm=_seed_tempo(Path(seed_midi)))


# `latentlive render band`: the options it reads besides --out and --force, and their ranges
OPTIONS = frozenset({"model", "seed_midi", "task", "part", "measures", "temperature", "seed"})
RANGES = {"temperature": (0.0, 10.0, "0 is the most likely; 1 is as trained")}


def render_command(args: Any) -> list[Path]:
    """``latentlive render band``: the command line's options to :func:`render_band`."""
    if args.model is None or args.seed_midi is None or args.task is None:
        raise UserError("render band needs --model BAND.ts, --seed-midi IN.mid and --task continue|fill|redo")
    return [
        render_band(
            args.model,
            args.seed_midi,
            args.task,
            args.out,
            part=args.part,
            measures=args.measures,
            temperature=1.0 if args.temperature is None else args.temperature,
            seed=args.seed,
            force=args.force,
        )
    ]

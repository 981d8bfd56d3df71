"""``latentlive render loop``: the sequencer chooses the pattern, the drum synth the sounds, written as a WAV loop.

Each of the sequencer's 9 instruments is played by a class of the kit (toms by ``tom``, crash and ride by
``cymbal`` where the kit has no class of that name). The loop plays the notes of the ``.mid`` written beside
it (``live.render.loop_note_ons``): the model's velocities and timing offsets plus ``--swing``, or the grid
with ``--quantise``. Sound tails that pass the end of the loop wrap around to its start, so the file loops
without a click.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from latentlive.core.errors import UserError
from latentlive.core.files import atomic_write, check_output_file
from latentlive.live.drum_model import DrumModel, pattern_notes
from latentlive.live.model_file import load_module, read_model_metadata
from latentlive.live.render import TICKS_PER_STEP, loop_note_ons, pattern_repeats, render_drums_midi

# Kit classes to try, in order, for each instrument of the sequencer (``corpus.drum_map`` order).
KIT_CLASS_CHOICES = {
    "kick": ("kick",),
    "snare": ("snare", "clap"),
    "closed_hat": ("closed_hat", "hat"),
    "open_hat": ("open_hat", "closed_hat", "hat"),
    "low_tom": ("low_tom", "tom"),
    "mid_tom": ("mid_tom", "tom"),
    "high_tom": ("high_tom", "tom"),
    "crash": ("crash", "cymbal"),
    "ride": ("ride", "cymbal"),
}
PEAK = 0.89  # -1 dBFS
MAX_LOOP_S = 600.0  # ten minutes of audio: 100 MB of float32 while mixing


def kit_classes(instrument_names: Sequence[str], class_names: Sequence[str], kit_path: Path) -> list[int]:
    """The kit class index that plays each instrument; UserError when the kit has none that fits."""
    chosen = []
    for instrument in instrument_names:
        choices = KIT_CLASS_CHOICES.get(instrument, (instrument,))
        match = next((class_names.index(c) for c in choices if c in class_names), None)
        if match is None:
            raise UserError(
                f"{kit_path}: no kit class plays {instrument!r} (classes: {', '.join(class_names)}); "
                f"train the kit with a class folder named one of {', '.join(choices)}"
            )
        chosen.append(match)
    return chosen


def mix_loop(
    note_ons: Sequence[tuple[int, int, int]], sounds: np.ndarray, total_ticks: int, samples_per_tick: float
) -> np.ndarray:
    """Note ons ``(tick, instrument, velocity)`` of a loop of ``total_ticks``, ``sounds [I, L]`` -> the mono loop
    (each sound at gain ``velocity / 127`` from the sample nearest its tick), tails wrapped, peak at most
    ``PEAK``."""
    total = int(round(total_ticks * samples_per_tick))
    loop = np.zeros(total, dtype=np.float64)
    for tick, instrument, velocity in note_ons:
        start = int(round(tick * samples_per_tick))
        positions = (start + np.arange(sounds.shape[1])) % total
        np.add.at(loop, positions, velocity / 127.0 * sounds[instrument])
    peak = np.abs(loop).max()
    return (loop * (PEAK / peak if peak > PEAK else 1.0)).astype(np.float32)


def render_loop_wav(
    drums_path: str | Path,
    kit_path: str | Path,
    z: Sequence[float] | None,
    style: int,
    bars: int,
    bpm: float,
    out_path: str | Path,
    sample_rate: int = 44100,
    knobs: Sequence[float] | None = None,
    force: bool = False,
    swing: float = 0.0,
    quantise: bool = False,
) -> list[Path]:
    """Write ``out_path`` (WAV) and the same notes as ``.mid`` beside it, with the model's feel plus ``swing``
    (or on the grid with ``quantise``); return both paths. Existing files there are replaced only with
    ``force``, a folder never."""
    out, kit_path = Path(out_path), Path(kit_path)
    if out.suffix.lower() != ".wav":
        raise UserError(f"{out}: the loop is written as WAV; give --out a .wav name")
    for target in (out, out.with_suffix(".mid")):
        check_output_file(target, force, example="loop.wav")
    seconds = bars * 4 * 60.0 / bpm if bpm > 0 else float("inf")
    if seconds > MAX_LOOP_S:
        raise UserError(
            f"--bars {bars} at --bpm {bpm}: a loop of {seconds:.0f} s; the longest is {MAX_LOOP_S:.0f} s, "
            "so pass fewer --bars or a higher --bpm"
        )
    drums = DrumModel(drums_path)
    kit_meta = read_model_metadata(kit_path, "drumsynth", "pass --kit drumsynth.ts")
    midi = render_drums_midi(
        drums, z, style, bars, bpm, out.with_suffix(".mid"), force=True, swing=swing, quantise=quantise
    )  # the file was checked above
    levels, offsets = drums.groove(drums.check_latent(z), style)
    instruments = list(range(len(drums.instrument_names)))  # each instrument plays its own index as a "note"
    notes = pattern_notes(levels, offsets, instruments, swing, quantise)
    repeats = pattern_repeats(bars, drums.steps)  # as the MIDI file beside it
    classes = kit_classes(drums.instrument_names, kit_meta["class_names"], kit_path)
    kit = load_module(kit_path, ("generate",))
    kit.set_sample_rate(sample_rate)
    latent = list(knobs or []) + [0.0] * (kit_meta["latent_size"] - len(knobs or []))
    with torch.no_grad():
        sounds = kit.generate(torch.tensor(classes), torch.tensor([latent] * len(classes))).numpy()
    samples_per_tick = sample_rate * 60.0 / bpm / 4 / TICKS_PER_STEP
    total_ticks = repeats * drums.steps * TICKS_PER_STEP
    loop = mix_loop(loop_note_ons(notes, repeats), sounds, total_ticks, samples_per_tick)
    atomic_write(out, lambda tmp: sf.write(str(tmp), loop, sample_rate, format="WAV", subtype="PCM_16"))
    return [out, midi]


# `latentlive render loop` (drums + kit): the options it reads besides --out and --force
OPTIONS = frozenset({"drums", "kit", "z", "style", "bars", "bpm", "swing", "quantise"})
RANGES: dict[str, tuple[float, float, str]] = {}  # --swing is checked by render_drums_midi


def render_command(args: Any) -> list[Path]:
    """``latentlive render loop``: the command line's options to :func:`render_loop_wav`."""
    if args.drums is None or args.kit is None:
        raise UserError("render loop needs --drums DRUMS.ts and --kit DRUMSYNTH.ts")
    return render_loop_wav(
        args.drums,
        args.kit,
        z=args.z,
        style=args.style,
        bars=args.bars,
        bpm=args.bpm,
        out_path=args.out,
        force=args.force,
        swing=args.swing or 0.0,
        quantise=args.quantise,
    )

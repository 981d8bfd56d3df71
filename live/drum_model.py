"""An exported drum model (``drums.ts``) seen as a pattern generator: latent + style -> hit levels and timing
offsets [9, S].

It speaks the signal encoding of docs/drums_encoding.md: ``decode`` takes a buffer of ``D + 2`` channels
(``z1 .. zD``, ``step``, ``style``) and returns 9 channels of hit levels (the velocity 0..1 where a hit plays)
and 9 of offsets (fraction of a step, -0.5..0.5), one sample per sample. A buffer of S samples whose ``step``
channel ramps 0 .. S-1 therefore yields the whole pattern at once.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from latentlive.core.errors import UserError, check_range
from latentlive.live.model_file import load_module, metadata_fields, read_model_metadata

NO_STYLE = -1  # any style index outside 0 .. len(style_names)-1 means "no style" (styles averaged)
TEMPERATURE_RANGE = (0.01, 10.0)  # sigmoid(logit / t): below 0.01 every hit is 0 or 1 already
LATENT_REACH = 10.0  # |z| the export contract checks; the pad and the CCs reach 3
SWING_RANGE = (0.0, 1.0)  # 1 delays every second 16th by half a step (0.33 is the triplet feel)
MAX_SHIFT = (-0.5, 1.0)  # steps a note may move: an offset's -0.5..0.5 and at most half a step of swing
GROOVE_OUTPUTS = 18  # decode's channels: 9 hit levels, then 9 offsets


def level_to_velocity(level: float) -> int:
    """MIDI velocity of a hit level in (0, 1], as the encoding says: ``round(127 * level)``, at least 1."""
    return int(min(127, max(1, np.floor(127.0 * float(level) + 0.5))))


def pattern_hits(pattern: np.ndarray, notes: Sequence[int]) -> list[list[tuple[int, int]]]:
    """The notes of each step of a pattern [9, S]: for step s, ``[(note, velocity), ...]`` in instrument order."""
    return [
        [
            (int(notes[i]), level_to_velocity(pattern[i, s]))
            for i in range(pattern.shape[0])
            if pattern[i, s] > 0
        ]
        for s in range(pattern.shape[1])
    ]


def swing_shift(step: int, swing: float) -> float:
    """Steps by which swing delays ``step``: every second 16th (the odd ones) by ``swing / 2``."""
    return 0.5 * float(swing) if step % 2 == 1 else 0.0


def pattern_notes(
    levels: np.ndarray,
    offsets: np.ndarray,
    notes: Sequence[int],
    swing: float = 0.0,
    quantise: bool = False,
) -> list[list[tuple[int, int, float]]]:
    """What each step plays, with its feel: for step s, ``[(note, velocity, shift), ...]`` in instrument order.

    ``shift`` (in steps, -0.5 .. 1.0) is the note's offset plus the step's swing; 0 with ``quantise`` (the
    grid only). ``levels`` / ``offsets`` are [9, S] as :meth:`DrumModel.groove` gives them.
    """
    low, high = MAX_SHIFT
    return [
        [
            (
                note,
                velocity,
                0.0 if quantise else min(high, max(low, float(offsets[i, s]) + swing_shift(s, swing))),
            )
            for i, (note, velocity) in _hits_of_step(levels, notes, s)
        ]
        for s in range(levels.shape[1])
    ]


def _hits_of_step(levels: np.ndarray, notes: Sequence[int], step: int) -> list[tuple[int, tuple[int, int]]]:
    return [
        (i, (int(notes[i]), level_to_velocity(levels[i, step])))
        for i in range(levels.shape[0])
        if levels[i, step] > 0
    ]


class DrumModel:
    """A loaded ``drums.ts`` and its metadata.

    Attributes: ``latent_size`` (D), ``steps`` (S), ``style_names``, ``instrument_names``, ``gm_notes`` (9 notes).
    """

    def __init__(self, ts_path: str | Path) -> None:
        self.path = Path(ts_path)
        meta = read_model_metadata(self.path, "drums")
        with metadata_fields(self.path, "drums"):
            self.latent_size = int(meta["latent_size"])
            self.steps = int(meta["steps"])
            self.style_names = [str(s) for s in meta["style_names"]]
            self.gm_notes = [int(n) for n in meta["gm_notes"]]
            self.instrument_names = [str(s) for s in meta.get("instrument_names", [])]
        self.metadata = meta
        outputs = meta.get("methods", {}).get("decode", {}).get("out_channels", GROOVE_OUTPUTS)
        if int(outputs) != GROOVE_OUTPUTS:
            raise UserError(
                f"{self.path}: decode gives {outputs} channels, an export from before velocities and offsets "
                f"({GROOVE_OUTPUTS}); export the run again with `latentlive export --run RUN --streaming`"
            )
        self.module = load_module(self.path, ("decode",))

    def __repr__(self) -> str:
        return (
            f"DrumModel({str(self.path)!r}, D={self.latent_size}, S={self.steps}, styles={self.style_names})"
        )

    def style_label(self, style: int) -> str:
        return self.style_names[style] if 0 <= style < len(self.style_names) else "no style"

    def set_temperature(self, temperature: float) -> None:
        """Bernoulli temperature of the hits (``sigmoid(logit / temperature)``), > 0."""
        low, high = TEMPERATURE_RANGE
        check_range("--temperature", temperature, low, high, "1 is the trained distribution")
        self.module.set_temperature(float(temperature))

    def set_threshold(self, threshold: float) -> None:
        """The threshold knob (0..1): 0.5 plays the run's per-class thresholds, 0 every cell, 1 none."""
        check_range("--threshold", threshold, 0.0, 1.0, "0.5 plays the trained per-class thresholds")
        self.module.set_threshold(float(threshold))

    def check_latent(self, z: Sequence[float] | None) -> list[float]:
        """``z`` as a list of D floats (zeros when None), or UserError when its length is not D."""
        if z is None:
            return [0.0] * self.latent_size
        values = [
            float(check_range("--z", v, -LATENT_REACH, LATENT_REACH, "each latent coordinate")) for v in z
        ]
        if len(values) != self.latent_size:
            raise UserError(
                f"z {values}: the model has a {self.latent_size}-D latent; pass {self.latent_size} comma-separated values"
            )
        return values

    def pattern(
        self,
        z: Sequence[float],
        style: int,
        temperature: float | None = None,
        threshold: float | None = None,
    ) -> np.ndarray:
        """Hit levels [9, S] in 0..1 (the velocity where a hit plays, 0: no hit) at latent ``z`` and ``style``."""
        return self.groove(z, style, temperature, threshold)[0]

    @torch.no_grad()
    def groove(
        self,
        z: Sequence[float],
        style: int,
        temperature: float | None = None,
        threshold: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Hit levels [9, S] in 0..1 (0: no hit) and timing offsets [9, S] in -0.5..0.5 of a step (0 where no
        hit), decoded at latent ``z`` [D] and ``style``.

        ``temperature`` / ``threshold``, when given, are set on the model (and stay set) before decoding;
        the threshold shifts the run's per-class thresholds (0.5: as chosen on the validation split).
        """
        if temperature is not None:
            self.set_temperature(temperature)
        if threshold is not None:
            self.set_threshold(threshold)
        latent = torch.tensor(self.check_latent(z), dtype=torch.float32)
        x = torch.empty(1, self.latent_size + 2, self.steps)
        x[0, : self.latent_size] = latent[:, None]
        x[0, self.latent_size] = torch.arange(self.steps, dtype=torch.float32)
        x[0, self.latent_size + 1] = float(style)
        out = self.module.decode(x)[0]
        levels = out[:9].clamp(0.0, 1.0).numpy().astype(np.float32)
        offsets = out[9:].clamp(-0.5, 0.5).numpy().astype(np.float32)
        return levels, offsets

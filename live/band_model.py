"""An exported band model (``band.ts``) seen as a measure predictor: rolls in, rolls and lanes out.

Rolls are numpy arrays ``[P, 3, 128, S]`` (channels onset, sounding, duration; docs/band_encoding.md),
histories ``[M, P, 3, 128, S]``. The model's plain TorchScript methods do the work: ``next_measure``,
``fill_measure`` and ``measure_lanes`` (a roll as the lanes the players and the device play).
"""

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from latentlive.core.errors import UserError, check_range
from latentlive.live.model_file import load_module, metadata_fields, read_model_metadata

Result = TypeVar("Result")


def plain_execution(function: Callable[..., Result]) -> Callable[..., Result]:
    """Run ``function`` without autograd and with TorchScript's plain executor: the optimising one spends up
    to half a second on the first calls of each graph in every new thread (a player's first measures), and
    gains nothing on graphs this small."""

    @functools.wraps(function)
    def plain(*args, **kwargs) -> Result:
        with torch.no_grad(), torch.jit.optimized_execution(False):
            return function(*args, **kwargs)

    return plain


METHODS = ("next_measure", "fill_measure", "measure_lanes", "encode_history", "next_from_encoded")
DRUM_CHANNEL = 10  # 1-based; no part plays there
DEFAULT_CHANNELS = (*range(1, 10), *range(11, 17))


class BandModel:
    """A loaded ``band.ts`` and its metadata.

    Attributes: ``part_names``, ``part_kinds``, ``voices`` (lanes per part), ``lane_parts`` (the part of each
    lane), ``steps``, ``ahead`` (the model's own), ``context`` (history measures it reads), ``channels``
    (mido's 0-based MIDI channel of each part: part i on channel i + 1, skipping 10).
    """

    def __init__(self, ts_path: str | Path) -> None:
        self.path = Path(ts_path)
        meta = read_model_metadata(self.path, "band")
        with metadata_fields(self.path, "band"):
            self.part_names = [str(n) for n in meta["part_names"]]
            self.part_kinds = [str(k) for k in meta["part_kinds"]]
            self.voices = [int(v) for v in meta["voices"]]
            self.steps = int(meta["steps"])
            self.ahead = int(meta["ahead"])
            self.context = int(meta["context"])
            channels = [int(c) for c in meta.get("midi_channels", DEFAULT_CHANNELS[: len(self.part_names)])]
        if not (len(self.part_names) == len(self.part_kinds) == len(self.voices) == len(channels)):
            raise UserError(f"{self.path}: the metadata lists parts of different lengths; re-export it")
        self.channels = [c - 1 for c in channels]
        self.lane_parts = [part for part, count in enumerate(self.voices) for _ in range(count)]
        self.transpose = str(meta.get("transpose", "none"))
        self.metadata = meta
        self.module = load_module(self.path, METHODS)

    def warm_up(self) -> None:
        """Run every method once (in the thread that will predict), so that the first measure a player
        predicts is not the slowest."""
        history = self.history()
        history.push(self.empty_roll())
        roll = history.next_measure(0.0, 0, ahead=1)
        self.lanes(roll)
        self.next_measure(roll[None], 0.0, 0, ahead=1)
        self.fill_measure(roll[None], roll, [True] * self.parts, 0.0, 0)
        self.module.set_ahead(self.ahead)

    def __repr__(self) -> str:
        return f"BandModel({str(self.path)!r}, parts={self.part_names}, ahead={self.ahead})"

    @property
    def parts(self) -> int:
        return len(self.part_names)

    def part_list(self) -> str:
        return ", ".join(f"{i}={name}" for i, name in enumerate(self.part_names))

    def part_index(self, part: str | int, flag: str = "--part") -> int:
        """A part given by index or name (case-insensitive) -> its index; UserError naming the choices."""
        text = str(part).strip()
        if text.lstrip("-").isdigit() and 0 <= int(text) < self.parts:
            return int(text)
        lowered = [name.lower() for name in self.part_names]
        if text.lower() in lowered:
            return lowered.index(text.lower())
        raise UserError(f"{flag} {text}: the model has no such part; use one of {self.part_list()}")

    def empty_roll(self) -> np.ndarray:
        return np.zeros((self.parts, 3, 128, self.steps), np.float32)

    @plain_execution
    def next_measure(self, history: np.ndarray, temperature: float, seed: int, ahead: int = 1) -> np.ndarray:
        """The measure ``ahead`` (1 or 2) after ``history [M, P, 3, 128, S]`` (M >= 1) -> ``[P, 3, 128, S]``."""
        self.module.set_ahead(int(ahead))
        tensor = torch.from_numpy(np.ascontiguousarray(history[-self.context :], np.float32))[None]
        return self.module.next_measure(tensor, float(temperature), int(seed))[0].numpy()

    @plain_execution
    def fill_measure(
        self, history: np.ndarray, measure: np.ndarray, present: Sequence[bool], temperature: float, seed: int
    ) -> np.ndarray:
        """``measure [P, 3, 128, S]`` after ``history [M, P, 3, 128, S]`` (M >= 0) with the parts not
        ``present`` drawn; the present ones come back unchanged."""
        tensor = torch.from_numpy(np.ascontiguousarray(history[-self.context :], np.float32))
        if tensor.shape[0] == 0:
            tensor = torch.zeros(0, self.parts, 3, 128, self.steps)
        now = torch.from_numpy(np.ascontiguousarray(measure, np.float32))[None]
        mask = torch.tensor([list(present)], dtype=torch.bool)
        return self.module.fill_measure(tensor[None], now, mask, float(temperature), int(seed))[0].numpy()

    @plain_execution
    def lanes(self, roll: np.ndarray) -> np.ndarray:
        """A measure ``[P, 3, 128, S]`` -> lanes ``[L, S]`` (int): a pitch where a note starts, -2 while it
        holds, -1 for silence (docs/band_encoding.md)."""
        tensor = torch.from_numpy(np.ascontiguousarray(roll, np.float32))[None]
        return self.module.measure_lanes(tensor)[0].numpy().astype(np.int64)

    def history(self) -> "EncodedHistory":
        """An empty history to push measures into and predict from (what the player keeps)."""
        return EncodedHistory(self)

    def check_temperature(self, temperature: float) -> float:
        return float(
            check_range("--temperature", temperature, 0.0, 10.0, "0 is the most likely; 1 as trained")
        )


class EncodedHistory:
    """The last ``context`` measures of a performance, each encoded once, when it is pushed: a prediction then
    costs the recurrence and the decoding only (``next_measure`` of a whole history encodes every measure)."""

    def __init__(self, model: BandModel) -> None:
        self.model = model
        self._encoded: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._last: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._encoded)

    @plain_execution
    def push(self, measure: np.ndarray, present: Sequence[bool] | None = None) -> None:
        """Append a measure ``[P, 3, 128, S]``, read from the parts ``present`` (default: all). A player gives
        the parts played: its own, fed back, would reinforce its own silences; they still carry held notes
        over into the next measure."""
        roll = np.ascontiguousarray(measure, np.float32)
        mask = torch.tensor([list(present) if present is not None else [True] * self.model.parts])
        encoded = self.model.module.encode_history(torch.from_numpy(roll)[None, None], mask)
        self._encoded = [*self._encoded, encoded]
        self._encoded = self._encoded[-self.model.context :]
        self._last = roll

    @plain_execution
    def next_measure(self, temperature: float, seed: int, ahead: int = 1) -> np.ndarray:
        """The measure ``ahead`` (1 or 2) after the last one pushed, as :meth:`BandModel.next_measure` gives it."""
        if self._last is None:
            raise ValueError("push a measure before predicting")
        self.model.module.set_ahead(int(ahead))
        mean, logvar, mask = (torch.cat(parts, 1) for parts in zip(*self._encoded, strict=True))
        last = torch.from_numpy(self._last)[None]
        return self.model.module.next_from_encoded(mean, logvar, mask, last, float(temperature), int(seed))[
            0
        ].numpy()

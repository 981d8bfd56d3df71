"""The interface between the trainer and one model of the suite."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import gin
import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.tensorboard import SummaryWriter

from latentlive.core.errors import UserError
from latentlive.corpus.splits import SIDES, Split, check_fractions

# A task trains on one example or more and evaluates on one or more held-out examples; every figure and
# metric of every task works from these sizes up.
MIN_TRAIN_EXAMPLES = 1
MIN_VALIDATION_EXAMPLES = 1


@dataclass
class TensorData:
    """Examples held in memory as tensors that share their first dimension."""

    tensors: dict[str, Tensor]

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def take(self, index: Tensor | slice, device: torch.device | str = "cpu") -> dict[str, Tensor]:
        return {key: value[index].to(device) for key, value in self.tensors.items()}


@dataclass
class SplitData:
    """The examples on each side of a run's split, and the split that dealt them (``split.json``)."""

    train: TensorData
    validation: TensorData
    test: TensorData
    split: Split

    def side(self, name: str) -> TensorData:
        if name not in SIDES:
            raise UserError(f"split {name!r}: use one of {', '.join(SIDES)}")
        return getattr(self, name)


def take_sides(data: TensorData, indices: dict[str, np.ndarray], split: Split) -> SplitData:
    """``data`` dealt to the sides of ``split`` by ``indices`` (as returned by ``corpus.splits.split_examples``)."""
    parts = {side: TensorData(data.take(torch.as_tensor(indices[side], dtype=torch.long))) for side in SIDES}
    return SplitData(parts["train"], parts["validation"], parts["test"], split)


@gin.configurable
def split_fractions(
    train: float = 0.8, validation: float = 0.1, test: float = 0.1
) -> tuple[float, float, float]:
    """The shares of groups (files, sounds, pieces) each task deals to train / validation / test; bind e.g.
    ``split_fractions.validation = 0.2``. A second stage reads its first stage's split instead."""
    return check_fractions((train, validation, test))


def require_enough_data(source: str, train: TensorData, val: TensorData, unit: str, fix: str) -> None:
    """Refuse, before training, data too small to train and evaluate: a :class:`UserError` line naming
    ``source`` with the counts found (in ``unit``: "bars", "one-shots") and the minimum, then ``fix``."""
    if len(train) >= MIN_TRAIN_EXAMPLES and len(val) >= MIN_VALIDATION_EXAMPLES:
        return
    raise UserError(
        f"{source}: too little data: {len(train)} training and {len(val)} held-out {unit} after the split, "
        f"need at least {MIN_TRAIN_EXAMPLES} and {MIN_VALIDATION_EXAMPLES}; {fix}"
    )


class Task(Protocol):
    """What the trainer calls; see ``latentlive.training.tasks.drums`` for the reference implementation."""

    name: str

    def load_data(self, db: Path | None, seed: int, log: Any) -> SplitData:
        """Read the corpus (``db`` or the built-in one), give each example its group (source file, sample,
        seed, piece) and deal the groups to train / validation / test (``corpus.splits``)."""

    def load_held_out(self, db: Path, log: Any) -> TensorData:
        """Every example of the user's folder ``db``, prepared as held-out examples, for
        ``latentlive evaluate --db`` (called after :meth:`load_data` has read the run's own corpus)."""

    def build_model(self) -> tuple[nn.Module, dict[str, Any]]:
        """Return the model and the constructor arguments stored in checkpoints."""

    def losses(self, model: nn.Module, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        """Scalar losses keyed by log names (``"loss/reconstruction"``); ``model`` may be DDP-wrapped."""

    def loss_weights(self, step: int) -> dict[str, float]:
        """The weight of each loss at ``step``, keyed like :meth:`losses` (the trainer applies them)."""

    def evaluate(self, model: nn.Module, data: TensorData) -> dict[str, float]:
        """Held-out metrics keyed by log names (``"eval/f1"``), logged while training."""

    def log_media(self, writer: SummaryWriter, model: nn.Module, data: TensorData, step: int) -> None:
        """Figures and audio for TensorBoard."""

    def metadata(self) -> dict[str, Any]:
        """Facts about the data that export needs (style names, ...), stored in checkpoints."""


class HeldOutReport(Task, Protocol):
    """A task whose ``latentlive evaluate`` report holds more than its training-time metrics (optional; the
    command uses :meth:`Task.evaluate` otherwise): per-class figures, baselines beside the model."""

    def evaluate_held_out(self, model: nn.Module, held_out: TensorData, data: SplitData) -> dict[str, float]:
        """Metrics of ``model`` on ``held_out`` (a test split or a user's folder), keyed like :meth:`Task.evaluate`;
        ``data`` holds the run's own sides (its training side for lookup baselines)."""


class AdversarialTask(Task, Protocol):
    """A task whose decoder is also trained against a discriminator (optional; see ``latentlive.training.tasks.techno``).

    The trainer builds the discriminator once, gives it its own optimizer and checkpoints both. On the steps
    where :meth:`adversarial` is true it first updates the discriminator on :meth:`discriminator_losses`, then
    the model on :meth:`losses` as usual (which then include the generator's adversarial terms).
    """

    def build_discriminator(self) -> nn.Module | None:
        """The discriminator, or None when this configuration trains without one."""

    def adversarial(self, step: int) -> bool:
        """Whether ``step`` belongs to the adversarial phase."""

    def discriminator_losses(
        self, model: nn.Module, discriminator: nn.Module, batch: dict[str, Tensor], step: int
    ) -> dict[str, Tensor]:
        """Scalar losses of the discriminator, weighted by :meth:`loss_weights` like the model's."""

"""What the techno and grain priors share: a :class:`TrajectoryVAE` trained on windows of another run's
posteriors (``batch["mean"]``, ``batch["logvar"]``, ``[B, D, K]``) with a warmed-up macro KL."""

from pathlib import Path
from typing import Any

from torch import Tensor, nn
from torch.nn import functional as F

from latentlive.core.errors import UserError
from latentlive.core.runs import RunFolder, load_checkpoint
from latentlive.corpus.splits import Split, read_split
from latentlive.models.trajectory_vae import OBJECTIVES, TARGETS, TrajectoryVAE, objective_terms
from latentlive.models.vae import BetaSchedule
from latentlive.training.config import configured_arguments


def load_first_level(
    run_path: str | Path, task: str, model_class: type[nn.Module], refusal: str
) -> tuple[nn.Module, dict]:
    """The trained model a prior learns from (eval mode, CPU) and its checkpoint; a run of another task is
    one line: ``RUN: {refusal}, not a 'TASK' run``."""
    run = RunFolder(Path(run_path)).require_trained()
    checkpoint = load_checkpoint(run.checkpoint)
    if checkpoint.get("task") != task:
        raise UserError(f"{run.root}: {refusal.format(found=repr(checkpoint.get('task')))}")
    model = model_class(**checkpoint["model_args"])
    model.load_state_dict(checkpoint["model_state"])
    return model.eval(), checkpoint


def first_level_split(run_path: str | Path) -> tuple[Split, Path]:
    """The split a prior trains on: the one its first-level run recorded (``split.json``), never a new draw;
    with the file's path. One UserError line when the run has none."""
    split_file = RunFolder(Path(run_path)).split_file
    return read_split(split_file), split_file


class TrajectoryPriorTask:
    """The objective, model and losses of a prior over latent trajectories; a subclass loads the data and sets
    ``source_latent_size`` (D of the run it reads) and ``frames`` (K) before :meth:`build_model`."""

    source_latent_size: int
    frames: int

    def _set_objective(
        self, objective: str, target: str, beta: float, beta_schedule: str, warmup_steps: int
    ) -> None:
        name = type(self).__name__
        if objective not in OBJECTIVES:
            raise ValueError(f"{name}.objective must be one of {OBJECTIVES}, got {objective!r}")
        if target not in TARGETS:
            raise ValueError(f"{name}.target must be one of {TARGETS}, got {target!r}")
        self.objective, self.target = objective, target
        self.beta = BetaSchedule(beta_schedule, 0.0, beta, warmup_steps)
        self._model: TrajectoryVAE | None = None

    def build_model(self) -> tuple[TrajectoryVAE, dict[str, Any]]:
        args = configured_arguments(TrajectoryVAE)
        args.update(latent_size=self.source_latent_size, frames=self.frames)
        self._model = TrajectoryVAE(**args)
        return self._model, args

    def _terms(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Per example: the objective ``[B]`` and the macro KL ``[B]``."""
        return objective_terms(model, batch["mean"], batch["logvar"], self.objective, self.target)

    def _fit_metrics(
        self, model: nn.Module, batch: dict[str, Tensor], rmse_name: str
    ) -> tuple[dict[str, float], Tensor]:
        """Held-out objective, macro KL (``eval/macro_kl``: ``eval/kl`` is the objective ``kl``), their total and
        the RMS error ``eval/{rmse_name}`` of the decoded mean against the source means; with that decoded
        mean ``[B, D, K]`` (from each macro posterior mean)."""
        fit, kl = self._terms(model, batch)
        macro, _ = model.encode(batch["mean"])
        decoded, _ = model.decode(macro)
        metrics = {
            f"eval/{self.objective}": fit.mean().item(),
            "eval/macro_kl": kl.mean().item(),
            "eval/total": (fit + kl).mean().item(),
            f"eval/{rmse_name}": F.mse_loss(decoded, batch["mean"]).sqrt().item(),
        }
        return metrics, decoded

    def losses(self, model: nn.Module, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        fit, kl = self._terms(model, batch)
        return {f"loss/{self.objective}": fit.mean(), "loss/divergence": kl.mean()}

    def loss_weights(self, step: int) -> dict[str, float]:
        return {f"loss/{self.objective}": 1.0, "loss/divergence": self.beta(step)}

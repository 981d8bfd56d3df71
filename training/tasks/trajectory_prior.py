"""What the techno and grain priors share: a :class:`TrajectoryVAE` trained on windows of another run's
posteriors (``batch["mean"]``, ``batch["logvar"]``, ``[B, D, K]``) with a warmed-up macro KL."""

from typing import Any

from torch import Tensor, nn

from latentlive.models.trajectory_vae import OBJECTIVES, TARGETS, TrajectoryVAE, objective_terms
from latentlive.models.vae import BetaSchedule
from latentlive.training.config import configured_arguments


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

    def losses(self, model: nn.Module, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        fit, kl = self._terms(model, batch)
        return {f"loss/{self.objective}": fit.mean(), "loss/divergence": kl.mean()}

    def loss_weights(self, step: int) -> dict[str, float]:
        return {f"loss/{self.objective}": 1.0, "loss/divergence": self.beta(step)}

"""Training tasks: what each model of the suite needs from data, losses, evaluation and logging.

A task turns a corpus into tensors, builds its model from gin-configured constructor arguments,
returns its losses keyed by log names with the weights to apply, evaluates on held-out data and
logs figures. The trainer (``latentlive.training.loop``) is the same for every task.
"""

from latentlive.training.tasks.band import BandTask
from latentlive.training.tasks.base import Task, TensorData
from latentlive.training.tasks.drums import DrumsTask
from latentlive.training.tasks.drumsynth import DrumSynthTask
from latentlive.training.tasks.grain import GrainTask
from latentlive.training.tasks.grain_prior import GrainPriorTask
from latentlive.training.tasks.techno import TechnoTask
from latentlive.training.tasks.techno_prior import TechnoPriorTask

TASKS: dict[str, type[Task]] = {
    "drums": DrumsTask,
    "drumsynth": DrumSynthTask,
    "techno": TechnoTask,
    "techno_prior": TechnoPriorTask,
    "grain": GrainTask,
    "grain_prior": GrainPriorTask,
    "band": BandTask,
}

__all__ = ["TASKS", "Task", "TensorData"]

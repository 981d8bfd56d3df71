"""Training tasks: what each model of the suite needs from data, losses, evaluation and logging.

A task turns a corpus into tensors, builds its model from gin-configured constructor arguments,
returns its losses keyed by log names with the weights to apply, evaluates on held-out data and
logs figures. The trainer (``latentlive.training.loop``) is the same for every task.
"""

import importlib
import pkgutil

from latentlive.training.tasks.base import SplitData, Task, TensorData

# Every task module, imported so that gin knows each configurable before a config is parsed. Which task
# trains which model is said in latentlive.registry.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["SplitData", "Task", "TensorData"]

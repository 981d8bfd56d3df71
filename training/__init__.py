"""Training: gin config, the tasks of every model and the loop that trains them.

Importing the package registers every gin configurable (``train`` and each task's), so that any config of
the suite parses wherever :func:`latentlive.training.config.parse_gin` is called.
"""

import latentlive.training.loop  # noqa: F401 - train (a run's config.gin binds it; export re-reads it)
import latentlive.training.tasks  # noqa: F401 - every task

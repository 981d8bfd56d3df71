"""Where preprocessed corpora are cached: ``$LATENTLIVE_CACHE``, else ``~/.cache/latentlive``."""

import os
from pathlib import Path


def cache_dir() -> Path:
    """The folder for preprocessing caches (created on demand by the writers)."""
    override = os.environ.get("LATENTLIVE_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "latentlive"

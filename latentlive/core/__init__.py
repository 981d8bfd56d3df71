"""The floor of the suite: errors, atomic files, the cache location and the run folder. Imports nothing of the project."""

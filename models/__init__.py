"""Torch models of the suite: no files, no CLI, no Max. One file per model, shared blocks beside them."""

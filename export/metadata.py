"""The metadata that every exported ``.ts`` carries, readable without torch.

``torch.jit.save(..., _extra_files={METADATA_NAME: json})`` stores it in the TorchScript zip
archive under ``<archive>/extra/latentlive.json``; devices and players read it with
:func:`read_metadata` so they need neither torch nor the training code.
"""

import json
import zipfile
from pathlib import Path
from typing import Any

from latentlive.core.errors import UserError

METADATA_NAME = "latentlive.json"


def read_metadata(ts_path: str | Path) -> dict[str, Any]:
    """Return the latentlive metadata dict stored in an exported TorchScript file."""
    path = Path(ts_path)
    if not path.is_file():
        raise UserError(f"{path}: no such model file; pass the .ts written by `latentlive export`")
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(f"/extra/{METADATA_NAME}")]
            if not names:
                raise UserError(
                    f"{path}: not a latentlive export (no {METADATA_NAME}); re-export it with `latentlive export`"
                )
            return json.loads(archive.read(names[0]).decode("utf-8"))
    except zipfile.BadZipFile:
        raise UserError(
            f"{path}: not a TorchScript file; pass the .ts written by `latentlive export`"
        ) from None

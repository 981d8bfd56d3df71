"""Where a gin file named on the command line is found: as given, else under the project's root (whose gin/
holds the model configs). No gin import here: the CLI refuses a wrong name before torch and gin load."""

from pathlib import Path

from latentlive.core.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def resolve_gin_file(file: str | Path) -> Path:
    """``file`` itself when it exists, else ``PROJECT_ROOT / file``; one line naming it when neither does."""
    path = Path(file)
    if path.is_file():
        return path
    if (PROJECT_ROOT / path).is_file():
        return PROJECT_ROOT / path
    raise UserError(f"{file}: no such gin file; see gin/ for the model configs (e.g. gin/drums.gin)")

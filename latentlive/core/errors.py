"""What the command line turns into a single clear line: ``UserError``, range checks, and the log of a fault."""

import math
import numbers
import os
import tempfile
import time
import traceback
from pathlib import Path

from latentlive.core.cache import cache_dir


class UserError(Exception):
    """Bad input from the user: a file, a setting or a run that cannot be used.

    The message is one line that names the file or setting, says what is wrong and
    how to fix it. The CLI prints it as ``latentlive: error: <message>`` and exits 2,
    without a traceback and without writing anything.
    """


def check_range(flag: str, value: float, low: float, high: float, meaning: str = "") -> float:
    """``value`` when it is a finite number from ``low`` to ``high`` (both included), else a UserError.

    ``flag`` names the option (``--bars``); ``meaning`` says what the number is (``bars of the loop``).
    The one shared range check of the CLI and the players: NaN and infinities are refused too, since
    every comparison with NaN is false and a check written as ``if value < low`` lets it through.
    """
    span = f"from {_plain(low)} to {_plain(high)}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UserError(f"{flag} {value!r}: not a number; pass a number {span}")
    if not (math.isfinite(value) and low <= value <= high):
        what = f" ({meaning})" if meaning else ""
        raise UserError(f"{flag} {value}: out of range; pass a number {span}{what}")
    return value


def _plain(bound: float) -> str:
    """A range bound as a person writes it: whole numbers in full (4294967295, not 4.29497e+09)."""
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def log_folder() -> Path:
    """Where the tracebacks of internal faults go: ``<cache>/logs`` (see ``latentlive.core.cache``)."""
    return cache_dir() / "logs"


def write_fault_log(error: BaseException, command: str) -> Path | None:
    """Write the traceback of ``error`` (raised by ``command``) to a new file of :func:`log_folder`, or of
    the temporary folder when that one cannot be written; the file, or None when neither can be."""
    text = f"latentlive {command}\n\n" + "".join(traceback.format_exception(error))
    name = f"error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    for folder in (log_folder(), Path(tempfile.gettempdir()) / "latentlive-logs"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue  # a read-only or full cache folder: try the next one
    return None

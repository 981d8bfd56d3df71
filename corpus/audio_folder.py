"""Reading a user's folder of sounds, shared by every audio corpus (one-shots, loops, grains).

Sub-folders are searched; names starting with ``.`` are skipped; every format soundfile reads counts as
audio. Files are read to float32 mono (channels averaged) and resampled with soxr.
"""

from pathlib import Path

import numpy as np
import soundfile
import soxr

from latentlive.errors import UserError

AUDIO_SUFFIXES = frozenset(
    {f".{name.lower()}" for name in soundfile.available_formats()}
    | {".aif", ".aifc", ".oga", ".opus", ".wave", ".snd"}
)


def list_audio_files(db: Path, kind: str, wanted: str, add: str) -> tuple[list[Path], int]:
    """The audio files under ``db``, sorted, and the number of other (ignored) files.

    A missing folder, a file, or a folder without audio is a :class:`UserError` naming ``kind`` (``"loop
    folder"``), what ``--db`` should be (``wanted``: ``"a folder of audio loops or tracks"``) and what to
    ``add`` to an empty one.
    """
    if not db.exists():
        raise UserError(f"{db}: {kind} does not exist; pass --db with {wanted}")
    if not db.is_dir():
        raise UserError(f"{db}: not a folder; pass --db with {wanted} (wav, flac, ...)")
    visible = [
        path
        for path in db.rglob("*")
        if not any(part.startswith(".") for part in path.relative_to(db).parts) and path.is_file()
    ]
    files = sorted((p for p in visible if p.suffix.lower() in AUDIO_SUFFIXES), key=lambda p: p.as_posix())
    if not files:
        raise UserError(
            f"{db}: no audio files found (searched sub-folders for wav, flac, ogg, aiff, ...); {add}"
        )
    return files, len(visible) - len(files)


def read_mono(path: Path, sample_rate: int, max_seconds: float) -> np.ndarray | None:
    """float32 ``[T]`` mono at ``sample_rate`` from at most the first ``max_seconds`` of ``path``, or None
    when soundfile cannot read it or it holds non-finite samples."""
    try:
        info = soundfile.info(str(path))
        frames = int(np.ceil(max_seconds * info.samplerate))
        audio, file_rate = soundfile.read(str(path), frames=frames, dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError, TypeError, soundfile.SoundFileError):
        return None
    if not np.all(np.isfinite(audio)):
        return None
    mono = audio.mean(axis=1)
    if file_rate != sample_rate and len(mono):
        mono = soxr.resample(mono, file_rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)

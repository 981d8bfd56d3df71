"""Reading a user's folder of sounds, shared by every audio corpus (one-shots, loops, grains).

Sub-folders are searched; names starting with ``.`` are skipped; every format soundfile reads counts as
audio. Files are streamed block by block to float32 mono (any number of channels averaged) and resampled
with soxr as they are read, so memory is bounded by the mono result at the model rate, whatever the file.
:func:`reading_summary` tells the corpus log what was done (channels folded, long files read in part).
"""

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from latentlive.core.errors import UserError

BLOCK_SAMPLES = 1 << 18  # samples (frames x channels) decoded at once: 1 MB of float32, whatever the channels

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


@dataclass(frozen=True)
class MonoAudio:
    """What :func:`read_audio` made of one file.

    samples: float32 ``[T]`` mono at the requested rate. channels: the file's channels, averaged into one.
    file_seconds: the length of the whole file (0 when the format does not say). read_seconds: how much
    of it was read (less than file_seconds when the file is longer than the reader's ``max_seconds``).
    """

    samples: np.ndarray
    channels: int
    file_seconds: float
    read_seconds: float

    @property
    def cut(self) -> bool:
        return self.file_seconds > self.read_seconds + 1e-6


def read_audio(
    path: Path, sample_rate: int, max_seconds: float, block_samples: int = BLOCK_SAMPLES
) -> MonoAudio | None:
    """At most the first ``max_seconds`` of ``path`` as mono at ``sample_rate``, or None when soundfile cannot
    read it or it holds non-finite samples.

    The file is streamed in blocks of ``block_samples`` samples (``block_samples // channels`` frames): each
    block is folded to mono (any number of channels) and resampled (soxr, streaming) before the next is
    read, so memory holds the mono result and one block, whatever the file's channels, length or format.
    """
    try:
        with soundfile.SoundFile(str(path)) as audio_file:
            file_rate, channels = int(audio_file.samplerate), int(audio_file.channels)
            frames = int(np.ceil(max_seconds * file_rate))
            resampler = (
                None
                if file_rate == sample_rate
                else soxr.ResampleStream(file_rate, sample_rate, 1, dtype="float32", quality="HQ")
            )
            parts, read = [], 0
            block_frames = max(1, block_samples // channels)
            blocks = audio_file.blocks(block_frames, frames=frames, dtype="float32", always_2d=True)
            for block in blocks:
                if not np.all(np.isfinite(block)):
                    return None
                mono = block.mean(axis=1, dtype=np.float32)
                read += len(mono)
                parts.append(mono if resampler is None else resampler.resample_chunk(mono, last=False))
            if resampler is not None and read:
                parts.append(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
            file_frames = max(int(audio_file.frames), read) if audio_file.frames > 0 else read
    except (RuntimeError, OSError, ValueError, TypeError, soundfile.SoundFileError):
        return None
    samples = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return MonoAudio(
        np.ascontiguousarray(samples, dtype=np.float32), channels, file_frames / file_rate, read / file_rate
    )


def read_mono(path: Path, sample_rate: int, max_seconds: float) -> np.ndarray | None:
    """float32 ``[T]`` mono at ``sample_rate`` from at most the first ``max_seconds`` of ``path``, or None
    when soundfile cannot read it or it holds non-finite samples (:func:`read_audio`, samples only)."""
    audio = read_audio(path, sample_rate, max_seconds)
    return None if audio is None else audio.samples


def reading_summary(label: str, reads: list[MonoAudio]) -> str | None:
    """One log line saying what reading a folder did beyond decoding: files folded to mono (by channel
    count) and files longer than the reader reads; None when every file was mono and read whole."""
    notes = []
    folded = Counter(read.channels for read in reads if read.channels > 1)
    if folded:
        kinds = ", ".join(f"{count} of {channels} channels" for channels, count in sorted(folded.items()))
        notes.append(f"folded {sum(folded.values())} file(s) to mono ({kinds})")
    cut = [read for read in reads if read.cut]
    if cut:
        longest = max(read.file_seconds for read in cut)
        notes.append(
            f"read the first {cut[0].read_seconds:.0f} s of {len(cut)} longer file(s) (the longest lasts "
            f"{_duration(longest)})"
        )
    return f"{label}: " + "; ".join(notes) if notes else None


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.1f} s"

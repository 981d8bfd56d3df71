"""``latentlive render grain``: an exported grain model played along a knob path, written as a WAV file.

The ``.ts`` runs as nn~ runs it (``export.host.NNHost``, 2048-sample buffers, the host rate set as the
device sets it), its attributes set as the device sets them. The knob path is one of:

* ``line``: knob 1 from -2 to +2 over the render while knob 2 goes from +2 to -2;
* ``circle``: radius 2 in the plane of knobs 1 and 2, one turn every :data:`CIRCLE_PERIOD_S` seconds;
* ``walk``: a seeded random walk over every knob, reflected at +-:data:`WALK_BOUND`;
* an audio file: the sound (mono, resampled to the host rate) through the model's ``encode``, whose knob
  path then drives ``forward``: the sound re-played as a cloud of its own grains.

Every knob not named stays at 0 (the mean of the training codes). The declared latencies are trimmed, so
the texture starts at the file's first sample and a sound's path lines up with the sound.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
import torch
from torch import Tensor

from latentlive.core.errors import UserError, check_range
from latentlive.core.files import atomic_write, check_output_file
from latentlive.export.grain import DEFAULT_SETTINGS
from latentlive.export.host import NNHost
from latentlive.live.model_file import load_module, read_model_metadata

PATH_KINDS = ("line", "circle", "walk")
HOST_RATES = (44100, 48000)
BUFFER_SIZE = 2048
LINE_REACH = 2.0  # knob units at the ends of the line, and the radius of the circle
CIRCLE_PERIOD_S = 4.0
WALK_BOUND = 2.0
WALK_SPEED = 1.0  # knob units of spread after one second of walking (the std of the steps, per sqrt(s))
PEAK = 0.89  # -1 dBFS: a louder render is scaled down to this instead of clipping
MAX_FILE_S = 600.0  # seconds of a FILE read at most
SUBTYPE = "PCM_16"


def knob_path(kind: str, latent_size: int, frames: int, frame_rate: float, seed: int = 0) -> np.ndarray:
    """Knob values ``[D, frames]`` of a built-in path (``line``, ``circle`` or ``walk``), one frame every
    ``1 / frame_rate`` seconds; knobs the path does not move stay at 0."""
    path = np.zeros((latent_size, frames), dtype=np.float64)
    seconds = np.arange(frames) / frame_rate
    if kind == "line":
        sweep = np.linspace(-LINE_REACH, LINE_REACH, frames)
        path[0] = sweep
        if latent_size > 1:
            path[1] = -sweep
    elif kind == "circle":
        angle = 2.0 * np.pi * seconds / CIRCLE_PERIOD_S
        path[0] = LINE_REACH * np.cos(angle)
        if latent_size > 1:
            path[1] = LINE_REACH * np.sin(angle)
    elif kind == "walk":
        rng = np.random.default_rng(seed)
        steps = rng.normal(0.0, WALK_SPEED / np.sqrt(frame_rate), (latent_size, frames))
        steps[:, 0] = 0.0  # the walk starts at the centre
        position = np.zeros(latent_size)
        for i in range(frames):
            position = _reflect(position + steps[:, i], WALK_BOUND)
            path[:, i] = position
    else:
        raise UserError(f"--path {kind}: not a path; pass line, circle, walk or an audio file")
    return path.astype(np.float32)


def _reflect(x: np.ndarray, bound: float) -> np.ndarray:
    """``x`` folded back into ``[-bound, bound]`` as a ball bouncing off both walls."""
    period = 4.0 * bound
    folded = np.mod(x + bound, period)
    return np.where(folded > 2.0 * bound, period - folded, folded) - bound


def held(frames: Tensor, ratio: int) -> Tensor:
    """Frames ``[..., F]`` -> host signal ``[..., F * ratio]``, each frame held ``ratio`` samples (what nn~
    decimates back to the frames)."""
    return frames.repeat_interleave(ratio, dim=-1)


def read_sound(path: Path, sample_rate: int, max_seconds: float = MAX_FILE_S) -> np.ndarray:
    """Mono float32 ``[T]`` of an audio file at ``sample_rate`` (at most ``max_seconds``); UserError when the
    file cannot be read or holds no samples."""
    try:
        info = sf.info(str(path))
        audio, file_rate = sf.read(
            str(path), frames=int(max_seconds * info.samplerate), dtype="float32", always_2d=True
        )
    except (RuntimeError, OSError, ValueError, TypeError, sf.SoundFileError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(
            f"{path}: not a readable audio file ({reason}); pass a WAV, FLAC, OGG or AIFF file"
        ) from None
    if len(audio) == 0:
        raise UserError(f"{path}: holds no samples; pass a sound to follow")
    if not np.all(np.isfinite(audio)):
        raise UserError(f"{path}: holds NaN or infinite samples; pass a clean audio file")
    mono = audio.mean(axis=1)
    if file_rate != sample_rate:
        mono = soxr.resample(mono, file_rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def load_grain_model(model_path: str | Path) -> tuple[torch.jit.ScriptModule, dict]:
    """The exported grain ``.ts`` and its metadata; one-line errors for a missing or foreign file."""
    path = Path(model_path)
    meta = read_model_metadata(path, "grain")
    module = load_module(path)
    return module, meta


def _check_settings(
    seconds: float,
    density: float | None,
    jitter: float | None,
    spray: float | None,
    grain_length: float,
    transpose: float,
    rate: int,
) -> None:
    """One line for a setting out of range (None: the model's default, checked by the model)."""
    check_range("--seconds", seconds, 0.01, MAX_FILE_S, "seconds of the render")
    if density is not None:
        check_range("--density", density, 0, 1000, "grains per second")
    if jitter is not None:
        check_range("--jitter", jitter, 0, 1, "0 is a steady pulse, 1 a cloud")
    if spray is not None:
        check_range("--spray", spray, 0, 10, "latent noise in knob units")
    check_range("--grain-length", grain_length, 0.1, 1, "a share of the grain")
    check_range("--transpose", transpose, -24, 24, "semitones")
    if rate not in HOST_RATES:
        raise UserError(f"--rate {rate}: the grain model runs at 44100 or 48000 Hz")


def _set_attributes(module: torch.jit.ScriptModule, settings: dict[str, float]) -> None:
    for name, value in settings.items():
        if getattr(module, f"set_{name}")(float(value)) != 0:
            raise UserError(f"--{name.replace('_', '-')} {value}: refused by the model")


def follow_sound(module: torch.jit.ScriptModule, meta: dict, sound: Tensor, rate: int) -> Tensor:
    """Knob path ``[1, D, T]`` (held at host samples) of ``sound [T]`` through ``encode``, moved earlier by
    the encoder's latency so that the knobs at sample ``t`` describe the sound around ``t``."""
    latency = int(meta["method_latency"]["encode"])
    padded = torch.cat([sound, sound.new_zeros(latency)])[None, None]
    knobs = NNHost(module, "encode", BUFFER_SIZE, rate).process(padded)
    return knobs[..., latency : latency + sound.shape[0]]


def play_path(module: torch.jit.ScriptModule, meta: dict, knobs: Tensor, rate: int) -> Tensor:
    """Audio ``[T]`` of ``forward`` along the held knob signal ``knobs [1, D, T]``, the latency trimmed (the
    path's last knobs are held while the latency plays out)."""
    latency = int(meta["latency_samples"])
    total = knobs.shape[-1]
    hold = knobs[..., -1:].expand(-1, -1, latency)
    audio = NNHost(module, "forward", BUFFER_SIZE, rate).process(torch.cat([knobs, hold], dim=-1))
    return audio[0, 0, latency : latency + total]


def render_grain(
    model_path: str | Path,
    path: str,
    out_path: str | Path,
    seconds: float | None = None,
    density: float | None = None,
    jitter: float | None = None,
    spray: float | None = None,
    grain_length: float = 1.0,
    transpose: float = 0.0,
    seed: int = 0,
    rate: int = 44100,
    log: Callable[[str], None] = print,
    force: bool = False,
) -> Path:
    """Write ``out_path`` (mono WAV at ``rate``) of the grain model played along ``path`` (a kind of
    :data:`PATH_KINDS` or an audio file) for ``seconds`` (default 10 s; a file: its length, or its first
    ``seconds``). ``density``, ``jitter`` and ``spray`` left None take the model's defaults (a cloud: grains at
    random intervals; ``jitter=0`` plays them evenly spaced, synchronous). Replaces an existing ``out_path``
    only with ``force``, a folder never. ``seed`` fixes the walk and spray (the jitter restarts with the model)."""
    out = Path(out_path)
    _check_settings(
        10.0 if seconds is None else seconds, density, jitter, spray, grain_length, transpose, rate
    )
    if out.suffix.lower() != ".wav":
        raise UserError(f"{out}: the texture is written as WAV; give --out a .wav name")
    check_output_file(out, force, example="texture.wav")
    module, meta = load_grain_model(model_path)
    latent_size, ratio = int(meta["latent_size"]), int(meta["latent_ratio"])
    defaults = {**DEFAULT_SETTINGS, **meta.get("attributes", {})}
    chosen = {"density": density, "jitter": jitter, "spray": spray}
    settings = {name: defaults[name] if value is None else value for name, value in chosen.items()}
    settings.update(grain_length=grain_length, transpose=transpose)
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)  # spray draws from torch's global generator inside the model
        if path in PATH_KINDS:
            total = int(round((10.0 if seconds is None else seconds) * rate))
            frames = -(-total // ratio)
            knobs = held(torch.from_numpy(knob_path(path, latent_size, frames, rate / ratio, seed)), ratio)
            knobs = knobs[None, :, :total]
        else:
            sound_path = Path(path)
            if not sound_path.is_file():
                raise UserError(f"--path {path}: no such file; pass line, circle, walk or an audio file")
            sound = read_sound(sound_path, rate, MAX_FILE_S if seconds is None else min(seconds, MAX_FILE_S))
            log(f"following {sound_path} ({len(sound) / rate:.2f} s)")
            knobs = follow_sound(module, meta, torch.from_numpy(sound), rate)
        _set_attributes(module, settings)
        audio = play_path(module, meta, knobs, rate).numpy()
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > PEAK:
        log(f"peak {peak:.2f}: scaled to -1 dBFS")
        audio = audio * (PEAK / peak)
    return atomic_write(out, lambda tmp: sf.write(str(tmp), audio, rate, format="WAV", subtype=SUBTYPE))


# `latentlive render grain`: the options it reads besides --out and --force
OPTIONS = frozenset(
    {"model", "path", "seconds", "density", "jitter", "spray", "grain_length", "transpose", "seed", "rate"}
)
RANGES: dict[str, tuple[float, float, str]] = {}


def render_command(args: Any) -> list[Path]:
    """``latentlive render grain``: the command line's options to :func:`render_grain`."""
    if args.model is None or args.path is None:
        raise UserError("render grain needs --model GRAIN.ts and --path line|circle|walk|SOUND_FILE")
    return [
        render_grain(
            args.model,
            args.path,
            args.out,
            seconds=args.seconds,
            density=args.density,
            jitter=args.jitter,
            spray=args.spray,
            grain_length=args.grain_length,
            transpose=args.transpose,
            seed=args.seed,
            rate=args.rate,
            force=args.force,
        )
    ]

"""``latentlive render techno --run PRIOR_RUN --out DIR``: techno loops from a techno_prior run, as WAV files.

Written into ``DIR`` (16-bit PCM, mono, at the model rate: 16 kHz), never over an existing file:

* ``seed{S}_sample{i}.wav``: a new loop, its macros drawn where the training loops' codes lie (their mean, and
  their spread times ``temperature``: ``TrajectoryVAE.draw_macros``), played
  ``repeats`` times in a row, so that the seam where the loop wraps is heard;
* ``seed{S}_interpolation.wav``: ``steps`` loops along the straight line between the macro latents of two
  loops that neither stage trained on (the test side of the run's ``split.json``, then its validation side),
  one after the other.

Loops are played as LatentLoops plays them: the decoded trajectory is read at the loop phase of every
stage-1 frame and decoded as one continuous stream, so successive loops join without a restart of the
decoder. Every stage-1 frame is a draw from the decoded Gaussian (``trajectory_vae.sample_frames``, seeded by
``seed``), not its mean: the mean alone is too smooth, and the stage-1 decoder turns smooth latents into a buzz
at the latent frame rate (issue #18). The loop length is ``bars`` bars (the run's) at ``bpm``. The whole model comes from the techno_prior
checkpoint, which carries the techno model's weights.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from latentlive.core.errors import UserError
from latentlive.core.files import atomic_write, check_output_file, check_writable_folder
from latentlive.core.runs import RunFolder, load_checkpoint
from latentlive.corpus.loops import builtin_loop_seed
from latentlive.corpus.splits import Split, read_split
from latentlive.corpus.techno_synth import loop_samples_for, render_techno_loop
from latentlive.models.trajectory_vae import TrajectoryVAE, read_at_phase, sample_frames
from latentlive.models.waveform_vae import WaveformVAE
from latentlive.training.tasks.techno_prior import loop_positions, resample_frames

SUBTYPE = "PCM_16"


@dataclass
class TechnoModels:
    """Both stages of a techno_prior run (offline layers, eval mode) and the loop settings of its corpus."""

    stage1: WaveformVAE
    prior: TrajectoryVAE
    sample_rate: int
    bars: int
    corpus: dict[str, Any]  # the stage-1 run's metadata: sample_rate, length, bars, examples, db
    run: RunFolder


def load_techno_models(run_path: str | Path) -> TechnoModels:
    """Both stages from the checkpoint of the techno_prior run ``run_path``; one-line errors for a bad run."""
    run = RunFolder(Path(run_path)).require_trained()
    checkpoint = load_checkpoint(run.checkpoint)
    if checkpoint.get("task") != "techno_prior":
        raise UserError(
            f"{run.root}: a {checkpoint.get('task')!r} run; render techno needs a techno_prior run "
            "(gin/techno_prior.gin), which carries both stages"
        )
    facts = checkpoint["metadata"]
    stage1 = WaveformVAE(**facts["stage1_args"])  # whole loops at once: the offline (zero-padded) layers
    stage1.load_state_dict(facts["stage1_state"])
    prior = TrajectoryVAE(**checkpoint["model_args"])
    prior.load_state_dict(checkpoint["model_state"])
    return TechnoModels(
        stage1.eval(),
        prior.eval(),
        int(facts["sample_rate"]),
        int(facts["bars"]),
        dict(facts.get("stage1_metadata", {})),
        run,
    )


@torch.no_grad()
def play_loops(
    stage1: WaveformVAE,
    trajectories: Tensor,
    loop_samples: int,
    logscales: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Audio ``[N * loop_samples]`` of ``N`` loops played back to back, loop ``n`` from the phase-indexed
    trajectory ``trajectories[n]`` (``[N, L, K]``): every stage-1 frame reads its own loop at its phase, and
    the frames are decoded as one stream. With the decoded ``logscales [N, L, K]`` each frame is a draw from
    the decoded Gaussian (``N(0, I)`` noise from ``generator``, one draw per frame); without, the mean alone:
    for one loop that is ``techno_prior.decoded_loop``."""
    count, ratio = len(trajectories), stage1.ratio
    total = count * loop_samples
    frames = -(-total // ratio)
    position = torch.arange(frames, dtype=torch.float64) * ratio / loop_samples
    which = position.floor().long().clamp(max=count - 1)
    phase = (position - position.floor()).to(trajectories.dtype)[None].expand(count, frames)
    if logscales is None:
        every = read_at_phase(trajectories, phase)  # [N, L, frames]
    else:
        noise = torch.randn(trajectories.shape[1], frames, generator=generator)  # one draw per played frame
        every = sample_frames(trajectories, logscales, phase, noise[None].expand(count, -1, -1))
    latents = every[which, :, torch.arange(frames)].T[None]  # frame k from loop which[k]: [1, L, frames]
    return stage1.decode(latents)[0, 0, :total]


@torch.no_grad()
def macro_of_loops(models: TechnoModels, audio: Tensor, loop_samples: Tensor) -> Tensor:
    """Macro posterior means ``[B, M, F]`` of loops ``audio [B, T]`` (from their downbeat, ``T`` a multiple of
    the stage-1 ratio) of ``loop_samples [B]`` samples each: stage-1 encoder, then the techno_prior encoder."""
    mean, _ = models.stage1.encode(audio.unsqueeze(1))
    positions = loop_positions(loop_samples, models.stage1.ratio, models.prior.frames)
    return models.prior.encode(resample_frames(mean, positions))[0]


def unseen_loops(
    models: TechnoModels, split: Split, seed: int, log: Callable[[str], None] = print
) -> tuple[Tensor, Tensor] | None:
    """Two loops that neither stage trained on, ``(audio [2, T], loop_samples [2])``, or None.

    The held-out loops are those of the test side of ``split`` (the run's ``split.json``), then of its
    validation side; ``seed`` picks the pair (loops ``2 * seed`` and the next, wrapping). Built-in loops are
    rendered again from their procedural seeds (the groups); a folder's are read again. None when the folder
    is gone or fewer than two loops are held out.
    """
    corpus = models.corpus
    length, ratio = int(corpus.get("length", 65536)), models.stage1.ratio
    length -= length % ratio
    if not corpus.get("db"):
        held_out = [g for side in ("test", "validation") for g in split.groups[side]]
        if len(held_out) < 2:
            log("fewer than two held-out loops in the run's split; interpolating between two prior samples")
            return None
        first = 2 * (seed % (len(held_out) // 2))
        pair = held_out[first : first + 2]
        seeds = [builtin_loop_seed(g) for g in pair]
        if None in seeds:
            raise UserError(f"{models.run.split_file}: {pair} are not built-in loops; train the run again")
        loops = [render_techno_loop(int(s), models.sample_rate, models.bars, length=length) for s in seeds]
        log(f"interpolation between held-out built-in loops {pair[0]} and {pair[1]}")
        audio = torch.from_numpy(np.stack([loop.audio for loop in loops]).astype(np.float32))
        return audio, torch.tensor([loop.loop_samples for loop in loops])
    db = Path(corpus["db"])
    if not db.is_dir():
        log(f"{db}: the run's corpus folder is gone; interpolating between two prior samples instead")
        return None
    from latentlive.training.tasks.techno import load_loop_tensors, loop_sides

    settings = {key: corpus[key] for key in ("sample_rate", "length", "bars", "examples")}
    data, groups = load_loop_tensors(db, settings, log=lambda _: None)
    sides = loop_sides(data, groups, split, int(corpus["length"]), models.run.split_file)
    held_out = np.concatenate([sides["test"], sides["validation"]])
    if len(held_out) < 2:
        log(f"{db}: fewer than two held-out loops; interpolating between two prior samples instead")
        return None
    first = 2 * (seed % (len(held_out) // 2))
    pair = held_out[first : first + 2]
    log(f"interpolation between two held-out loops of {db} (of {groups[pair[0]]} and {groups[pair[1]]})")
    index = torch.as_tensor(pair)
    return data.tensors["audio"][index, :length], data.tensors["loop_samples"][index]


def _write_wav(path: Path, audio: Tensor, sample_rate: int) -> Path:
    samples = audio.clamp(-1.0, 1.0).cpu().numpy()
    return atomic_write(
        path, lambda tmp: sf.write(str(tmp), samples, sample_rate, format="WAV", subtype=SUBTYPE)
    )


def _check_settings(samples: int, steps: int, repeats: int, bpm: float, temperature: float) -> None:
    if samples < 0:
        raise UserError(f"--samples {samples}: must be 0 or more")
    if steps < 2:
        raise UserError(f"--steps {steps}: an interpolation needs at least 2 steps (its two ends)")
    if repeats < 1:
        raise UserError(f"--repeats {repeats}: must be at least 1")
    if not 0 < bpm <= 999:
        raise UserError(f"--bpm {bpm}: must be between 0 and 999")
    if not temperature > 0:
        raise UserError(f"--temperature {temperature}: must be positive")


@torch.no_grad()
def render_techno(
    run_path: str | Path,
    out_dir: str | Path,
    samples: int = 4,
    seed: int = 0,
    steps: int = 5,
    repeats: int = 2,
    bpm: float = 124.0,
    temperature: float = 1.0,
    log: Callable[[str], None] = print,
    force: bool = False,
) -> list[Path]:
    """Write ``samples`` prior loops (each played ``repeats`` times) and one ``steps``-step interpolation
    into ``out_dir`` (created if missing) as WAV at the model rate; return the paths written.

    Refuses, before writing anything, when one of the files exists (unless ``force``) or is a folder.
    """
    _check_settings(samples, steps, repeats, bpm, temperature)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: not a folder; --out takes the folder the WAV files go into")
    targets = [out / f"seed{seed}_sample{i + 1}.wav" for i in range(samples)]
    interpolation_path = out / f"seed{seed}_interpolation.wav"
    check_writable_folder(out)
    for target in [*targets, interpolation_path]:
        if target.exists() and not target.is_dir() and not force:
            raise UserError(f"{target}: exists; pick another --out or --seed, or pass --force to replace it")
        check_output_file(target, force=True, example="loops")  # a folder of that name: never replaced
    models = load_techno_models(run_path)
    split = read_split(models.run.split_file)  # before anything is written: a run without one is refused
    loop_samples = loop_samples_for(bpm, models.bars, models.sample_rate)
    prior = models.prior
    generator = torch.Generator().manual_seed(seed)
    draws = prior.draw_macros(samples + 2, temperature, generator)  # where the training loops' codes lie
    trajectories, logscales = prior.decode(draws)
    written = []
    for target, trajectory, logscale in zip(targets, trajectories[:samples], logscales, strict=False):
        mean, scale = (part[None].expand(repeats, -1, -1) for part in (trajectory, logscale))
        audio = play_loops(models.stage1, mean, loop_samples, scale, generator)
        written.append(_write_wav(target, audio, models.sample_rate))

    ends = unseen_loops(models, split, seed, log)
    if ends is None:
        macro_a, macro_b = draws[samples : samples + 1], draws[samples + 1 :]
    else:
        macro_a, macro_b = macro_of_loops(models, *ends).split(1)
    weights = torch.linspace(0.0, 1.0, steps)[:, None, None]
    path = (1.0 - weights) * macro_a + weights * macro_b
    path_mean, path_logscale = prior.decode(path)
    audio = play_loops(models.stage1, path_mean, loop_samples, path_logscale, generator)
    written.append(_write_wav(interpolation_path, audio, models.sample_rate))
    return written


# `latentlive render techno`: the options it reads besides --out and --force, and their ranges
OPTIONS = frozenset({"run", "samples", "seed", "steps", "repeats", "bpm", "temperature"})
RANGES = {"temperature": (0.01, 10.0, "the spread of the draws; 1 is the training loops' own")}


def render_command(args: Any) -> list[Path]:
    """``latentlive render techno``: the command line's options to :func:`render_techno`."""
    if args.run is None:
        raise UserError("render techno needs --run PRIOR_RUN (a run of gin/techno_prior.gin)")
    return render_techno(
        args.run,
        args.out,
        samples=args.samples,
        seed=args.seed,
        steps=args.steps,
        repeats=args.repeats,
        bpm=args.bpm,
        temperature=1.0 if args.temperature is None else args.temperature,
        force=args.force,
    )

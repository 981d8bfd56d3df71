"""``make demo``: short runs of every model on the built-in corpora, exports, devices and renders.

Re-running it continues or reuses the runs it made before, so nothing is trained twice.
"""

import argparse
import dataclasses
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import gin
import torch

from latentlive import registry
from latentlive.cli import guarded, main
from latentlive.core.errors import UserError
from latentlive.core.runs import RunFolder, load_checkpoint
from latentlive.registry import ModelSpec
from latentlive.training.config import parse_gin
from latentlive.training.decoder_finetune import FinetuneSettings, finetune_decoder
from latentlive.training.run_plan import TrainRequest, plan_run

DEMO_MODELS = [spec for spec in registry.MODELS if spec.demo]
# New techno loops decode through a copy of the techno run whose decoder learnt the latents the prior hands it
# (training/decoder_finetune.py): with the decoder as trained they buzz at its frame rate (docs/techno.md).
# model -> (the demo run the models that need it train on, how it is made from the model's demo run)
# frames_per_bar is gin/techno_prior_demo.gin's (tests/test_demo.py checks it): the decoder learns the latents as
# that prior reads them back; three batches in four decode them (half: a frame-rate share of 0.028 against the
# validation loops' 0.010, above the goal of twice theirs; 0.75: 0.016).
FINETUNED = {
    "techno": (
        "techno_ft_demo",
        FinetuneSettings(steps=3000, adversarial=0.5, critic="frame", frames_per_bar=64, prior_share=0.75),
    )
}


def demo_run_name(model: str) -> str:
    """The demo run that the models needing ``model`` train on: its fine-tuned copy where there is one."""
    return FINETUNED[model][0] if model in FINETUNED else f"{model}_demo"


def demo_steps(spec: ModelSpec) -> int:
    """The training steps of the model's demo run: ``train.max_steps`` of its demo gin file."""
    parse_gin([spec.demo_gin])
    return int(gin.query_parameter("train.max_steps"))


def _train_or_continue(runs: Path, spec: ModelSpec, steps: int) -> RunFolder:
    """Train the model's demo run, continue it up to ``steps``, or keep it; trained again from step 0 when
    :func:`outdated` says why."""
    run = RunFolder(runs / f"{spec.name}_demo")
    bindings = [f"{binding} = '{runs / demo_run_name(other)}'" for binding, other in spec.needs]
    command = ["train", "--gin", spec.demo_gin, "--name", run.name, "--out", str(runs)]
    for binding in bindings:
        command += ["--bind", binding]
    if run.checkpoint.is_file():
        reason = outdated(run, spec, runs, bindings)
        if reason is not None:
            print(f"{run.root}: {reason}; trained again")
            shutil.rmtree(run.root)
        elif load_checkpoint(run.checkpoint)["step"] >= steps:
            print(f"{run.root}: already trained")
            return run
        else:
            command.append("--resume")
    if main(command) != 0:
        raise SystemExit(f"demo: training {spec.name} failed")
    return run


def outdated(run: RunFolder, spec: ModelSpec, runs: Path, bindings: list[str]) -> str | None:
    """Why the trained demo ``run`` cannot be continued: a run it reads was trained (or fine-tuned) after it, or
    its config differs from the demo gin file with ``bindings`` (a changed gin file); None when it can."""
    for _, other in spec.needs:
        source = RunFolder(runs / demo_run_name(other))
        if source.checkpoint.is_file() and source.checkpoint.stat().st_mtime > run.checkpoint.stat().st_mtime:
            return f"{source.root} was made after it"
    try:
        plan_run(run, TrainRequest(gin=(spec.demo_gin,), bindings=tuple(bindings), resume=True))
    except UserError as error:
        return f"its config differs from {spec.demo_gin} ({str(error).split(':')[0]})"
    return None


def _finetune(runs: Path, model: str) -> None:
    """Make the fine-tuned copy of ``model``'s demo run (:data:`FINETUNED`), again when the run was trained
    since or the copy was made with other settings."""
    name, settings = FINETUNED[model]
    source, out = RunFolder(runs / f"{model}_demo"), RunFolder(runs / name)
    if out.checkpoint.is_file():
        made_with = _finetune_settings(out)
        if out.checkpoint.stat().st_mtime < source.checkpoint.stat().st_mtime:
            print(f"{out.root}: made from an older {source.root}; made again")
        elif made_with != dataclasses.replace(settings, threads=1):
            print(f"{out.root}: made with other settings ({made_with}); made again")
        else:
            print(f"{out.root}: already fine-tuned")
            return
    if out.root.exists():
        shutil.rmtree(out.root)
    threads = torch.get_num_threads()  # as the demo's training runs: every core
    finetune_decoder(source.root, out.root, dataclasses.replace(settings, threads=threads))


def _finetune_settings(run: RunFolder) -> FinetuneSettings | None:
    """The settings ``run/finetune.json`` records (threads as 1: they do not change the decoder), or None."""
    try:
        record = json.loads((run.root / "finetune.json").read_text())
        fields = {field.name for field in dataclasses.fields(FinetuneSettings)} - {"threads"}
        return FinetuneSettings(**{key: value for key, value in record.items() if key in fields}, threads=1)
    except (OSError, ValueError, TypeError):
        return None


def _step(argv: list[str]) -> None:
    if main(argv) != 0:
        raise SystemExit(f"demo: `latentlive {' '.join(argv)}` failed")


def needs_render(output: Path, run: RunFolder) -> bool:
    """Whether the demo renders ``output`` (again): it is missing, or older than ``run``'s last checkpoint (the
    run was trained since, e.g. after a change of its demo gin file)."""
    return not output.exists() or output.stat().st_mtime < run.checkpoint.stat().st_mtime


def _band_seed(path: Path, run: RunFolder, measures: int = 4) -> Path:
    """The first measures of a chorale on the test side of the band demo run's ``split.json``, as MIDI."""
    from latentlive.core.cache import cache_dir
    from latentlive.corpus.band_midi import load_band_corpus, write_band_midi
    from latentlive.corpus.splits import read_split

    split = read_split(run.split_file)
    corpus = load_band_corpus(None, transpose="none", max_pieces=150, cache_dir=cache_dir(), log=print)
    piece = next(
        p for p, g in zip(corpus.pieces, corpus.piece_groups(), strict=True) if split.side_of(g) == "test"
    )
    notes = piece.notes[piece.notes[:, 1] < measures * 16]
    return write_band_midi(notes, corpus.part_names, path)


def _render_band(out: Path, models: Path, run: RunFolder) -> None:
    """A held-out chorale's opening continued for 8 measures, and its alto redone from the other voices."""
    seed = out / "band_seed.mid"
    if not needs_render(out / "band_fill_alto.mid", run):  # rendered once per training of the run
        return
    _band_seed(seed, run)
    band = ["render", "band", "--model", str(models / "band.ts"), "--seed-midi", str(seed), "--force"]
    _step([*band, "--task", "continue", "--measures", "8", "--out", str(out / "band_continue.mid")])
    _step([*band, "--task", "fill", "--part", "alto", "--out", str(out / "band_fill_alto.mid")])


class Stages:
    """Prints ``[k/n] what`` before each stage of the demo and its time after it."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.started = total, 0, time.monotonic()

    @contextmanager
    def stage(self, what: str) -> Iterator[None]:
        self.done += 1
        print(f"\n[{self.done}/{self.total}] {what}", flush=True)
        began = time.monotonic()
        yield
        elapsed, total = time.monotonic() - began, time.monotonic() - self.started
        print(
            f"[{self.done}/{self.total}] {what}: done in {_minutes(elapsed)} ({_minutes(total)} so far)",
            flush=True,
        )


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s" if seconds >= 60 else f"{seconds:.0f} s"


def _renders(runs: Path, out: Path) -> list[tuple[str, Callable[[], None]]]:
    """The example renders: (what, how). The drum renders are made on every run; the others once per
    training of their run (:func:`needs_render`)."""
    models = out / "devices"

    def drums() -> None:
        _step(
            [
                "render",
                "drums",
                "--model",
                str(models / "drums.ts"),
                "--bars",
                "8",
                "--out",
                str(out / "drums_loop.mid"),
                "--force",  # the demo's own render, replaced on every run
            ]
        )

    def loop() -> None:
        kit = ["--drums", str(models / "drums.ts"), "--kit", str(models / "drumsynth.ts")]
        _step(
            ["render", "loop", *kit, "--bars", "4", "--bpm", "124", "--out", str(out / "loop.wav"), "--force"]
        )

    def techno() -> None:  # sampled loops and an interpolation
        prior = RunFolder(runs / "techno_prior_demo")
        if needs_render(out / "techno" / "seed0_sample1.wav", prior):
            techno = ["render", "techno", "--run", str(prior.root), "--out", str(out / "techno"), "--force"]
            _step([*techno, "--samples", "4", "--steps", "5"])

    def texture() -> None:  # ten seconds of grains along a circle through the first two knobs, twice
        model = str(models / "grain.ts")
        grain = ["render", "grain", "--model", model, "--path", "circle", "--seconds", "10", "--force"]
        run = RunFolder(runs / "grain_demo")
        # asynchronous, the instrument's default: a cloud of grains at random intervals, 100 a second
        if needs_render(out / "texture.wav", run):
            _step([*grain, "--density", "100", "--jitter", "1", "--out", str(out / "texture.wav")])
        # synchronous: 40 evenly spaced grains a second, heard as a 40 Hz pitch (the old default)
        if needs_render(out / "texture_sync.wav", run):
            _step([*grain, "--density", "40", "--jitter", "0", "--out", str(out / "texture_sync.wav")])

    return [
        ("render 8 bars of drums as MIDI (drums_loop.mid)", drums),
        ("render a drum loop through the kit (loop.wav)", loop),
        ("sample techno loops from techno_prior (techno/)", techno),
        ("render grain textures (texture.wav: a cloud; texture_sync.wav: synchronous)", texture),
        (
            "continue and re-harmonise a held-out chorale (band_*.mid)",
            lambda: _render_band(out, models, RunFolder(runs / "band_demo")),
        ),
    ]


def run_demo(runs: Path, out: Path) -> None:
    """Train (or continue) every demo run, export it, build its device beside its model in ``out/devices``
    (one folder for Live's User Library), then render examples into ``out``."""
    devices = out / "devices"
    devices.mkdir(parents=True, exist_ok=True)
    renders = _renders(runs, out)
    stages = Stages(2 * len(DEMO_MODELS) + sum(s.name in FINETUNED for s in DEMO_MODELS) + len(renders))
    for spec in DEMO_MODELS:
        steps = demo_steps(spec)
        with stages.stage(f"train {spec.name} ({steps} steps of {spec.demo_gin})"):
            run = _train_or_continue(runs, spec, steps)
        with stages.stage(f"export {spec.name} and build its device"):
            _step(["export", "--run", str(run.root), "--streaming"])
            _step(["devices", "--run", str(run.root), "--out", str(devices), "--preview"])
        if spec.name in FINETUNED:
            name, settings = FINETUNED[spec.name]
            what = f"fine-tune {spec.name}'s decoder for new loops ({settings.steps} steps, runs/{name})"
            with stages.stage(what):
                _finetune(runs, spec.name)
    for what, render in renders:
        with stages.stage(what):
            render()
    print(f"\ndemo ready in {_minutes(time.monotonic() - stages.started)}")
    print(f"  devices and models: {devices} (copy the folder into Live's User Library; see README)")
    print(f"  renders: {out}")
    print(
        f"next: listen to {out / 'loop.wav'}, then .venv/bin/tensorboard --logdir {runs} (or make tensorboard)"
    )


def cli() -> int:
    parser = argparse.ArgumentParser(prog="python -m latentlive.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=Path("build/demo"))
    args = parser.parse_args()
    return guarded(lambda: run_demo(args.runs, args.out))


if __name__ == "__main__":
    sys.exit(cli())

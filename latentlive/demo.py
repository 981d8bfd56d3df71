"""``make demo``: short runs of every model on the built-in corpora, exports, devices and renders.

Re-running it continues or reuses the runs it made before, so nothing is trained twice.
"""

import argparse
import shutil
import sys
from pathlib import Path

from latentlive.cli import guarded, main
from latentlive.runs import RunFolder, load_checkpoint

# model -> (gin file, training steps): minutes on 2 CPU cores each
DEMO_RUNS = {
    "drums": ("gin/drums.gin", 3000),
    "drumsynth": ("gin/drumsynth_demo.gin", 400),
    "techno": ("gin/techno_demo.gin", 2000),
    "techno_prior": ("gin/techno_prior_demo.gin", 600),
    "grain": ("gin/grain_demo.gin", 1500),
    "band": ("gin/band_demo.gin", 600),
}
# runs that train on another demo run: model -> the binding that names it
DEMO_DEPENDENCIES = {"techno_prior": ("TechnoPriorTask.stage1_run", "techno")}


def _train_or_continue(runs: Path, model: str) -> RunFolder:
    gin_file, steps = DEMO_RUNS[model]
    run = RunFolder(runs / f"{model}_demo")
    command = ["train", "--gin", gin_file, "--name", run.name, "--out", str(runs), "--max_steps", str(steps)]
    if model in DEMO_DEPENDENCIES:
        binding, other = DEMO_DEPENDENCIES[model]
        command += ["--bind", f"{binding} = '{runs / f'{other}_demo'}'"]
    if run.checkpoint.is_file():
        if load_checkpoint(run.checkpoint)["step"] >= steps:
            print(f"{run.root}: already trained")
            return run
        command.append("--resume")
    if main(command) != 0:
        raise SystemExit(f"demo: training {model} failed")
    return run


def _step(argv: list[str]) -> None:
    if main(argv) != 0:
        raise SystemExit(f"demo: `latentlive {' '.join(argv)}` failed")


def _band_seed(path: Path, measures: int = 4) -> Path:
    """The first measures of a chorale the band demo never trained on (the test split), as MIDI."""
    from corpus.band_midi import load_band_corpus, write_band_midi
    from latentlive.cache import cache_dir

    corpus = load_band_corpus(None, transpose="none", max_pieces=150, cache_dir=cache_dir(), log=print)
    piece = corpus.pieces[corpus.split["test"][0]]
    notes = piece.notes[piece.notes[:, 1] < measures * 16]
    return write_band_midi(notes, corpus.part_names, path)


def _render_band(out: Path) -> None:
    """A held-out chorale's opening continued for 8 measures, and its alto redone from the other voices."""
    seed = out / "band_seed.mid"
    if (out / "band_fill_alto.mid").exists():  # rendered once
        return
    _band_seed(seed)
    band = ["render", "band", "--model", str(out / "band.ts"), "--seed-midi", str(seed)]
    _step([*band, "--task", "continue", "--measures", "8", "--out", str(out / "band_continue.mid")])
    _step([*band, "--task", "fill", "--part", "alto", "--out", str(out / "band_fill_alto.mid")])


def run_demo(runs: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for model in DEMO_RUNS:
        run = _train_or_continue(runs, model)
        _step(["export", "--run", str(run.root), "--streaming"])
        shutil.copy2(run.exported_model, out / f"{model}.ts")
        _step(
            [
                "devices",
                "--run",
                str(run.root),
                "--model",
                str(out / f"{model}.ts"),
                "--out",
                str(out),
                "--preview",
            ]
        )
    _step(
        [
            "render",
            "drums",
            "--model",
            str(out / "drums.ts"),
            "--bars",
            "8",
            "--out",
            str(out / "drums_loop.mid"),
        ]
    )
    loop = ["render", "loop", "--drums", str(out / "drums.ts"), "--kit", str(out / "drumsynth.ts")]
    _step([*loop, "--bars", "4", "--bpm", "124", "--out", str(out / "loop.wav")])
    techno = ["render", "techno", "--run", str(runs / "techno_prior_demo"), "--out", str(out / "techno")]
    if not (out / "techno").is_dir():  # sampled loops and an interpolation; rendered once
        _step([*techno, "--samples", "4", "--steps", "5"])
    texture = out / "texture.wav"
    if not texture.exists():  # ten seconds of grains along a circle through the first two knobs
        _step(
            [
                "render",
                "grain",
                "--model",
                str(out / "grain.ts"),
                "--path",
                "circle",
                "--seconds",
                "10",
                "--out",
                str(texture),
            ]
        )
    _render_band(out)
    print(f"\ndemo ready in {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")
    print(f"runs in {runs}: tensorboard --logdir {runs}")


def cli() -> int:
    parser = argparse.ArgumentParser(prog="python -m latentlive.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=Path("build/demo"))
    args = parser.parse_args()
    return guarded(lambda: run_demo(args.runs, args.out))


if __name__ == "__main__":
    sys.exit(cli())

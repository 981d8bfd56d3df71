"""The ``latentlive`` command: train, export, devices, play, render, bench.

Whatever reaches the top level ends as one line on stderr: bad input (``UserError``, an option out of its
range, a gin binding of the wrong type) as ``latentlive: error: ...`` with exit status 2; any other
exception, an internal fault, as ``latentlive: internal error: ...`` with exit status 1 and its traceback
in a log file that the line names (see ``guarded``).
"""

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from latentlive import registry
from latentlive.core.errors import UserError, check_range, write_fault_log
from latentlive.core.gin_files import PROJECT_ROOT, resolve_gin_file
from latentlive.core.runs import RunFolder

# Idle OpenMP threads sleep instead of spinning: with Live, jackd or a second job on the same cores,
# spinning threads slowed CPU training by 2 to 20 times here. Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


SEED_MAX = 2**32 - 1  # what numpy's generators take
# The models shipped with the project (one run folder each, see pretrained/README.md) and where
# `latentlive devices --pretrained` writes their devices by default.
PRETRAINED = PROJECT_ROOT / "pretrained"
PRETRAINED_DEVICES = Path("build/devices/pretrained")
OPTION_RANGES: dict[str, dict[str, tuple[float, float, str]]] = {
    "report": {"seeds": (0, SEED_MAX, "training seeds")},
    "play": {
        "bpm": (20.0, 999.0, "beats per minute"),
        "bars": (1, 1_000_000, "bars to play; leave it out to play until Ctrl-C"),
        "style": (-1, 127, "a style index of the model; -1: no style"),
        "z": (-10.0, 10.0, "each latent coordinate"),
        "ahead": (1, 2, "measures predicted ahead"),
        "seed": (0, SEED_MAX, "seed of the sampling"),
    },
    "render": {
        "bars": (1, 1000, "bars of the loop"),
        "bpm": (20.0, 999.0, "beats per minute"),
        "style": (-1, 127, "a style index of the model; -1: no style"),
        "z": (-10.0, 10.0, "each latent coordinate"),
        "threshold": (0.0, 1.0, "the lowest hit level written"),
        "measures": (1, 1000, "measures to add"),
        "samples": (0, 1000, "loops sampled from the prior"),
        "seed": (0, SEED_MAX, "seed"),
        "steps": (2, 1000, "loops along the interpolation"),
        "repeats": (1, 100, "times each loop is played"),
        "seconds": (0.01, 600.0, "seconds of the render"),
        "density": (0.0, 1000.0, "grains per second"),
        "jitter": (0.0, 1.0, "0 is a steady pulse"),
        "spray": (0.0, 10.0, "latent noise in knob units"),
        "grain_length": (0.1, 1.0, "a share of the grain"),
        "transpose": (-24.0, 24.0, "semitones"),
        "rate": (44100, 48000, "the host sample rate, 44100 or 48000"),
    },
}
# The options every model of `play` and `render` reads. Each model's module says which others it reads
# (OPTIONS) and their ranges (RANGES); any other option given (away from its default) would be ignored
# without a word, so it is refused.
COMMON_OPTIONS = {
    "play": {"model", "port", "in_port", "bpm", "clock", "bars", "api", "temperature"},
    "render": {"out", "force"},
}


def _subcommands(command: str) -> dict[str, str]:
    """The models of ``play`` or ``render``: subcommand -> the module that runs it (latentlive.registry)."""
    if command == "play":
        return {spec.name: spec.play for spec in registry.MODELS if spec.play}
    return dict(spec.render for spec in registry.MODELS if spec.render)


def option_ranges() -> dict[str, dict[str, tuple[float, float, str]]]:
    """The ranges by command and by "command model" (each model's module adds its own, ``RANGES``)."""
    ranges = dict(OPTION_RANGES)
    for command in COMMON_OPTIONS:
        for model, module in _subcommands(command).items():
            ranges[f"{command} {model}"] = registry.load(module).RANGES
    return ranges


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def check_option_ranges(args: argparse.Namespace) -> None:
    """UserError naming the option and its range for the first numeric option of ``args`` out of range,
    or naming an option that the chosen model of ``play`` or ``render`` does not read."""
    model = getattr(args, "model_name", None)
    module = registry.load(_subcommands(args.command)[model]) if args.command in COMMON_OPTIONS else None
    ranges = {**OPTION_RANGES.get(args.command, {}), **(module.RANGES if module else {})}
    for dest, (low, high, meaning) in ranges.items():
        value = getattr(args, dest, None)
        for number in value if isinstance(value, list) else [] if value is None else [value]:
            check_range(_flag(dest), number, low, high, meaning)
    if module is None:
        return
    # The defaults, as the shortest command line of this model parses them (its one required option given).
    required = ["--model", "m"] if args.command == "play" else ["--out", "o"]
    defaults = vars(build_parser().parse_args([args.command, model, *required]))
    for dest in sorted(
        set(defaults) - module.OPTIONS - COMMON_OPTIONS[args.command] - {"command", "model_name", "func"}
    ):
        if getattr(args, dest) == defaults[dest]:
            continue
        readers = [
            name for name, other in _subcommands(args.command).items() if dest in registry.load(other).OPTIONS
        ]
        raise UserError(
            f"{_flag(dest)}: `{args.command} {model}` does not read it (only {', '.join(readers)}); leave it out"
        )


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, as every other error of the CLI: no usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"latentlive: error: {message}; see {self.prog} --help\n")


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gin", action="append", default=[], help="gin file (repeat to layer them)")
    parser.add_argument(
        "--bind", action="append", default=[], help="gin binding, e.g. 'train.max_steps = 100'"
    )
    parser.add_argument("--db", type=Path, help="folder of training data (default: the built-in corpus)")
    parser.add_argument("--name", help="run name (default: the gin file name and the time)")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="folder of runs (default: runs/)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when present)")
    parser.add_argument(
        "--seed",
        type=int,
        help="seed of the data split and the batches (default 0; --resume reuses the run's)",
    )
    parser.add_argument(
        "--max-steps",
        "--max_steps",
        dest="max_steps",
        type=int,
        help="shortcut for --bind 'train.max_steps = N'",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the run --name from its last checkpoint"
    )


def run_train(args: argparse.Namespace) -> None:
    # what the command line gets wrong is told before torch, gin and the tasks load (several seconds)
    if args.resume and not args.name:
        raise UserError("--resume needs --name NAME, the run to continue")
    if not args.gin and not args.resume:
        raise UserError("no model config given; pass --gin gin/drums.gin (or another file of gin/)")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not args.name:
        raise UserError("under torchrun every process must write the same run: pass --name NAME")
    for gin_file in args.gin:
        resolve_gin_file(gin_file)
    if args.db is not None and not args.db.is_dir():
        raise UserError(f"{args.db}: no such folder; --db takes a folder of training data")
    import torch

    from latentlive.training.loop import train_run
    from latentlive.training.metrics import headline
    from latentlive.training.run_plan import TrainRequest

    if args.seed is not None:  # here, not in OPTION_RANGES: `python train.py` comes here without `main`
        check_range("--seed", args.seed, 0, SEED_MAX, "seed of the data split and the batches")
    default_name = f"{Path(args.gin[0]).stem}_{time.strftime('%Y%m%d-%H%M%S')}" if args.gin else ""
    run = RunFolder(args.out / (args.name or default_name))
    is_main = int(os.environ.get("RANK", "0")) == 0  # under torchrun, rank 0 speaks for all
    bindings = list(args.bind) + (
        [f"train.max_steps = {args.max_steps}"] if args.max_steps is not None else []
    )
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    check_device(device)
    # the run is locked, checked against its run.json (seed, --db, config) and trained (latentlive.core.runs)
    request = TrainRequest(tuple(args.gin), tuple(bindings), args.seed, args.db, args.resume)
    metrics = train_run(run, request, device, is_main)
    if not is_main:
        return
    shown = ", ".join(f"{name} {value:.4g}" for name, value in headline(metrics).items())
    print(f"done: {run.root} ({shown or 'no held-out metrics'}; every metric in {run.metrics})")


def check_device(device: str) -> None:
    """Refuse a ``--device`` torch cannot use here in one line (torch would fail deep in training)."""
    import torch

    try:
        kind = torch.device(device)
    except RuntimeError:
        raise UserError(f"--device {device}: not a device name; use cpu, cuda or cuda:N") from None
    if kind.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0 or (kind.index or 0) >= count:
            have = f"{count} CUDA GPU{'s' if count != 1 else ''}"
            raise UserError(
                f"--device {device}: this machine has {have}; use --device cpu, or leave --device out"
            )
    elif kind.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {device}: Apple's MPS is not available here; use --device cpu")
    elif kind.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"--device {device}: latentlive trains on cpu, cuda or mps")


def run_export(args: argparse.Namespace) -> None:
    RunFolder(Path(args.run)).require_trained()  # a wrong --run is told before torch loads
    from latentlive.export.exporter import export_run

    report = export_run(Path(args.run), streaming=args.streaming, out=args.out, force=args.force)
    print(
        f"exported {report['path']} ({report['file_size_bytes'] / 1e6:.2f} MB, latency {report['latency_samples']} samples)"
    )


def run_evaluate(args: argparse.Namespace) -> None:
    RunFolder(args.run).require_trained()  # a wrong --run is told before torch loads
    from latentlive.training.evaluation import evaluate_run
    from latentlive.training.metrics import headline

    result = evaluate_run(Path(args.run), split=args.split, db=args.db)
    for name, value in sorted(result["metrics"].items()):
        print(f"{name:48s} {value:.4g}")
    shown = ", ".join(f"{name} {value:.4g}" for name, value in headline(result["metrics"]).items())
    print(f"{result['examples']} held-out examples ({result['held_out']}): {shown}")
    print(f"wrote {result['file']}")


def run_report(args: argparse.Namespace) -> None:
    from latentlive.report import REPORTED_MODELS, build_report

    build_report(args.model or REPORTED_MODELS, args.seeds, runs=args.out / "runs", out=args.out)


def run_devices(args: argparse.Namespace) -> None:
    from latentlive.m4l_devices.build import build_devices_for_run, build_pretrained_devices

    if args.pretrained:
        if args.model is not None:
            raise UserError("--model names the .ts of one --run; --pretrained takes each shipped model's own")
        out = args.out or PRETRAINED_DEVICES
        built = build_pretrained_devices(PRETRAINED, out, preview=args.preview, force=args.force)
    else:
        built = build_devices_for_run(
            Path(args.run), model=args.model, out=args.out, preview=args.preview, force=args.force
        )
    for path in built:
        print(f"wrote {path}")


def run_play(args: argparse.Namespace) -> None:
    registry.load(_subcommands("play")[args.model_name]).play_command(args)


def run_render(args: argparse.Namespace) -> None:
    for path in registry.load(_subcommands("render")[args.model_name]).render_command(args):
        print(f"wrote {path}")


def run_bench(args: argparse.Namespace) -> None:
    from latentlive.bench import QUICK_SCALE, bench_model, bench_transform, fewer_calls

    with fewer_calls(QUICK_SCALE if args.quick else 1.0):
        if args.model_name == "nsgt":
            if args.run is not None or args.model is not None:
                raise UserError("bench nsgt measures the transform alone; leave out --run and --model")
            bench_transform(out=args.out)
        else:
            bench = registry.load(registry.find(args.model_name).bench)
            bench_model(args.model_name, bench, run=args.run, out=args.out, model=args.model)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("latentlive")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def _command(sub: argparse._SubParsersAction, name: str, summary: str) -> argparse.ArgumentParser:
    """A subcommand whose one-line summary shows in ``latentlive --help`` and heads its own ``--help``."""
    return sub.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="latentlive",
        description="Neural instruments for Ableton Live: train, export for nn~, build the devices, play, render.",
        epilog="latentlive COMMAND --help tells more of each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(sub, "train", "train a model from gin files (same as python train.py)")
    add_train_arguments(p)
    p.set_defaults(func=run_train)

    p = _command(sub, "export", "export a run to TorchScript for nn~ and verify the contract")
    p.add_argument("--run", required=True, help="the run folder, e.g. runs/drums")
    p.add_argument("--streaming", action="store_true", help="build with cached (streaming) convolutions")
    p.add_argument("--out", type=Path, help="output .ts (default: RUN/export/NAME.ts)")
    p.add_argument("--force", action="store_true", help="replace an --out that is not an earlier export")
    p.set_defaults(func=run_export)

    p = _command(
        sub, "evaluate", "score a trained run on its held-out test split, or on a folder you hold out"
    )
    p.add_argument("--run", required=True, type=Path, help="the run folder, e.g. runs/drums")
    p.add_argument(
        "--split", choices=("test", "validation"), default="test", help="the side of the run's split.json"
    )
    p.add_argument(
        "--db", type=Path, help="instead: every example of this folder (MIDI or audio of the run's kind)"
    )
    p.set_defaults(func=run_evaluate)

    p = _command(
        sub,
        "report",
        "train the demo configs at several seeds and write their held-out quality (README tables)",
    )
    p.add_argument(
        "--model", action="append", help="a model to report (repeatable; default: those of docs/quality.md)"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    p.add_argument(
        "--out", type=Path, default=Path("build/report"), help="folder of report.md, report.json, runs/"
    )
    p.set_defaults(func=run_report)

    p = _command(
        sub, "devices", "write the Max for Live devices of an exported run, or of the pretrained models"
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run")
    which.add_argument(
        "--pretrained",
        action="store_true",
        help="every model shipped in pretrained/, a folder each under --out",
    )
    p.add_argument(
        "--model", type=Path, help="the .ts, copied beside the device as MODEL.ts (default: the run's export)"
    )
    p.add_argument(
        "--out",
        type=Path,
        help=f"folder of the .amxd and its .ts (default: RUN/export; with --pretrained {PRETRAINED_DEVICES})",
    )
    p.add_argument("--preview", action="store_true", help="also draw the presentation view to a PNG")
    p.add_argument("--force", action="store_true", help="replace files latentlive did not write in --out")
    p.set_defaults(func=run_devices)

    p = _command(
        sub,
        "play",
        "play a MIDI model on a virtual MIDI port: drums, or band (you play one part, it the others)",
    )
    p.add_argument("model_name", choices=list(_subcommands("play")))
    p.add_argument("--model", required=True, type=Path, help="exported .ts")
    p.add_argument(
        "--port",
        "--out",
        dest="port",
        help="MIDI output name (a virtual port is created; on Windows an existing port)",
    )
    p.add_argument(
        "--in-port",
        "--in",
        dest="in_port",
        help="existing MIDI input for CCs, clock and (band) the played part (default: a virtual one)",
    )
    p.add_argument("--bpm", type=float, help="tempo without --clock (default: drums 124, band 120)")
    p.add_argument("--clock", action="store_true", help="follow incoming MIDI clock instead of --bpm")
    p.add_argument("--style", type=int, help="drums: style index (-1: no style; default 0)")
    p.add_argument("--z", type=_floats, help="drums: latent point, e.g. 0.5,-1 (default: the origin)")
    p.add_argument("--bars", type=int, help="stop after this many bars (default: play until Ctrl-C)")
    p.add_argument("--api", help="force a MIDI API: alsa, jack, coremidi, winmm")
    p.add_argument(
        "--temperature", type=float, help="drums: 0.01 to 10; band: 0 to 10 (default 1, as trained)"
    )
    p.add_argument("--threshold", type=float, help="drums: hit levels below it (0 to 1) are not played")
    p.add_argument("--swing", type=float, help="drums: 0 to 1, delays every second 16th (1: by half a step)")
    p.add_argument(
        "--quantise", action="store_true", help="drums: play on the grid, without the model's feel"
    )
    p.add_argument("--part", help="band: the part you play, by name or index (default: the first)")
    p.add_argument("--ahead", type=int, help="band: predict 1 or 2 measures ahead (default 1)")
    p.add_argument("--seed", type=int, help="band: seed of the sampling (default 0)")
    p.set_defaults(func=run_play)

    p = _command(
        sub,
        "render",
        "render a model to a file: drums -> .mid, loop (drums + kit) -> .wav + .mid, "
        "techno (techno_prior run) -> a folder of .wav, grain (a knob path) -> .wav, band (a seed .mid) -> .mid",
    )
    p.add_argument("model_name", choices=list(_subcommands("render")))
    p.add_argument("--model", type=Path, help="drums, grain, band: the exported .ts")
    p.add_argument("--seed-midi", dest="seed_midi", type=Path, help="band: the MIDI file to start from")
    p.add_argument("--task", choices=("continue", "fill", "redo"), help="band: what to do with the seed")
    p.add_argument("--part", help="band fill: the part to regenerate, by name or index")
    p.add_argument("--measures", type=int, default=8, help="band continue: measures to add")
    p.add_argument("--drums", type=Path, help="loop: the exported drums .ts (the pattern)")
    p.add_argument("--kit", type=Path, help="loop: the exported drumsynth .ts (the sounds)")
    p.add_argument("--z", type=_floats, help="latent point, e.g. 0.5,-1 (default: the origin)")
    p.add_argument("--style", type=int, default=0)
    p.add_argument("--bars", type=int, default=8, help="drums, loop: bars of the loop, 1 to 1000")
    p.add_argument("--bpm", type=float, default=124.0)
    p.add_argument("--temperature", type=float)
    p.add_argument("--threshold", type=float)
    p.add_argument("--swing", type=float, help="drums: 0 to 1, delays every second 16th (1: by half a step)")
    p.add_argument("--quantise", action="store_true", help="drums: on the grid, without the model's feel")
    p.add_argument("--run", type=Path, help="techno: the techno_prior run (gin/techno_prior.gin)")
    p.add_argument("--samples", type=int, default=4, help="techno: loops sampled from the prior")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="techno: seed of the samples and file names; grain: of walk, jitter, spray; band: of sampling",
    )
    p.add_argument("--steps", type=int, default=5, help="techno: loops along the interpolation")
    p.add_argument("--repeats", type=int, default=2, help="techno: times each sampled loop is played")
    p.add_argument("--path", help="grain: line, circle, walk, or an audio file whose own knob path is played")
    p.add_argument(
        "--seconds", type=float, help="grain: length of the render (default 10; a file: its length)"
    )
    p.add_argument("--density", type=float, help="grain: grains per second (default: the model's, a cloud)")
    p.add_argument("--jitter", type=float, help="grain: 0 (a steady pulse) to 1 (default: the model's)")
    p.add_argument("--spray", type=float, help="grain: latent noise std in knob units (default: the model's)")
    p.add_argument(
        "--grain-length", dest="grain_length", type=float, default=1.0, help="grain: 0.1 to 1 of the grain"
    )
    p.add_argument("--transpose", type=float, default=0.0, help="grain: semitones, -24 to 24")
    p.add_argument("--rate", type=int, default=44100, help="grain: host sample rate, 44100 or 48000")
    p.add_argument("--out", required=True, type=Path, help="the file (techno: the folder) to write")
    p.add_argument("--force", action="store_true", help="replace existing output files (never a folder)")
    p.set_defaults(func=run_render)

    p = _command(sub, "bench", "measure speed and write JSON")
    p.add_argument(
        "model_name",
        choices=[*(spec.name for spec in registry.MODELS if spec.bench), "nsgt"],
        help="a model, or nsgt (the transform against the nsgt package)",
    )
    p.add_argument(
        "--run", type=Path, help="a trained run (default: trains a tiny one in a temporary folder)"
    )
    p.add_argument("--model", type=Path, help="band: an exported .ts to measure instead of a run")
    p.add_argument("--out", type=Path, help="JSON output (default: build/bench/MODEL.json)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="time a tenth of the calls: a fast look (rough p99), not figures to report",
    )
    p.set_defaults(func=run_bench)
    return parser


def _first_line(error: BaseException) -> str:
    """The first line of an error's message (gin appends "In call to configurable ..." lines)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _internal_error_line(error: BaseException, command: str) -> str:
    """``latentlive: internal error: TYPE: MESSAGE; details in LOG``, the traceback written to LOG."""
    log = write_fault_log(error, command)
    where = f"details in {log}" if log is not None else "no log could be written (cache and temp folders)"
    return f"latentlive: internal error: {type(error).__name__}: {_first_line(error)}; {where}"


def guarded(func: Callable[[], None], command: str = "") -> int:
    """Run ``func``; whatever it raises becomes one line on stderr and an exit status.

    2: bad input (``UserError``, or a ValueError that a configurable raised about its arguments);
    130: Ctrl-C or SIGTERM; 1: any other exception, an internal fault, whose traceback goes to a log file.
    """
    try:
        func()
    except UserError as error:
        print(f"latentlive: error: {_first_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("latentlive: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # the one place that turns any fault into one line
        if _is_training_interrupted(error):
            print(f"latentlive: {_first_line(error)}", file=sys.stderr)
            return 130
        bad_config = _config_error(error)
        if bad_config is not None:
            print(f"latentlive: error: {bad_config}", file=sys.stderr)
            return 2
        print(_internal_error_line(error, command), file=sys.stderr)
        return 1
    return 0


def _config_error(error: BaseException) -> str | None:
    """``training.config.config_error``, imported only for a ValueError (it imports torch and every task):
    an error that needs no training code is told without loading it."""
    if not isinstance(error, ValueError):
        return None
    from latentlive.training.config import config_error

    return config_error(error)


def _is_training_interrupted(error: BaseException) -> bool:
    """A training stopped by Ctrl-C or SIGTERM after saving (imported late: training imports torch)."""
    training = sys.modules.get("latentlive.training.loop")
    return training is not None and isinstance(error, training.TrainingInterrupted)


def main(argv: Sequence[str] | None = None) -> int:
    """``latentlive COMMAND ...``: the exit status (argument errors: one line and 2, as every error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version, or an argument error already printed in one line
        return done.code if isinstance(done.code, int) else 2
    command = " ".join(sys.argv[1:] if argv is None else argv)
    return guarded(lambda: (check_option_ranges(args), args.func(args)), command)


def train_main(argv: Sequence[str] | None = None) -> int:
    """``python train.py ...``: the same as ``latentlive train ...``."""
    parser = OneLineParser(prog="train.py", description="train a latentlive model from gin files")
    add_train_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 2
    command = "train " + " ".join(sys.argv[1:] if argv is None else argv)
    return guarded(lambda: run_train(args), command)


if __name__ == "__main__":
    sys.exit(main())

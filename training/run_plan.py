"""Planning a training run: a new run, a resume, or a refusal in one line.

``--resume`` reuses the run's seed, data folder and config. Giving a different ``--seed``, ``--db``, or a gin
file or binding that changes a value of the stored config is refused with one line (only ``train.max_steps``
and the logging intervals may change, since they never change the path of training): a run is one
experiment, and a changed one is a new run.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gin

from latentlive.core.errors import UserError
from latentlive.core.runs import RunFolder, RunSettings, recorded_path
from latentlive.training.config import parse_gin

# Bindings that --resume may change: they decide when training stops and what is logged, never a batch,
# a weight or a random number.
TUNABLE_ON_RESUME = frozenset(
    f"train.{name}" for name in ("max_steps", "log_every", "eval_every", "media_every", "checkpoint_every")
)


@dataclass(frozen=True)
class TrainRequest:
    """What the command line asked for: ``seed`` and ``db`` are None when not given."""

    gin: tuple[str, ...] = ()
    bindings: tuple[str, ...] = ()
    seed: int | None = None
    db: Path | None = None
    resume: bool = False


@dataclass(frozen=True)
class RunPlan:
    """How to train: with ``settings``, from the checkpoint (``resume``) or from step 0, ``restart`` when a
    run that stopped before its first checkpoint starts again in place."""

    settings: RunSettings
    resume: bool
    restart: bool


def _absolute(path: str | Path) -> str:
    return str(Path(path).expanduser().resolve())


def plan_run(run: RunFolder, request: TrainRequest) -> RunPlan:
    """Check ``request`` against what ``run`` holds, parse its gin config, and say how to train.

    Refuses with one line: a new run over a trained one or over a folder that is not a run; a resume of
    nothing; a resume whose seed, data folder or config differs from the run's.
    """
    state = run.state()
    if not request.resume:
        if state == "trained":
            raise UserError(f"{run.root}: the run exists; continue it with --resume or choose another --name")
        if state == "foreign":
            raise UserError(f"{run.root}: exists and is not a run folder; choose another --name or --out")
        parse_gin(list(request.gin), list(request.bindings))
        settings = RunSettings(
            seed=request.seed or 0,
            db=None if request.db is None else _absolute(request.db),
            gin=tuple(recorded_path(g) if Path(g).is_file() else str(g) for g in request.gin),
            bindings=request.bindings,
        )
        return RunPlan(settings, resume=False, restart=state == "unstarted")
    if state == "new":
        raise UserError(
            f"{run.root}: no such run to resume; check --name and --out, or train it without --resume"
        )
    if state == "foreign":
        raise UserError(f"{run.root}: not a run folder (no run.json, config.gin or checkpoint); check --name")
    stored = run.settings() or _legacy_settings(run, request)
    _check_same_data(run, stored, request)
    if state == "trained":
        base, base_bindings = [run.config], []
    elif run.config.is_file() or stored.gin:
        base, base_bindings = (
            ([run.config], []) if run.config.is_file() else (list(stored.gin), list(stored.bindings))
        )
    else:
        raise UserError(f"{run.root}: stopped before it recorded its config; train it again without --resume")
    _check_same_config(base, base_bindings, list(request.gin), list(request.bindings))
    return RunPlan(stored, resume=state == "trained", restart=state == "unstarted")


def _legacy_settings(run: RunFolder, request: TrainRequest) -> RunSettings:
    """A run trained before ``run.json`` existed records neither seed nor data folder: take them as given."""
    db = None if request.db is None else _absolute(request.db)
    return RunSettings(seed=request.seed or 0, db=db, gin=(str(run.config),))


def _check_same_data(run: RunFolder, stored: RunSettings, request: TrainRequest) -> None:
    if request.seed is not None and request.seed != stored.seed:
        raise UserError(
            f"--seed {request.seed}: {run.root} was trained with --seed {stored.seed}; "
            "--resume reuses it, so leave --seed out (or train a new --name)"
        )
    if request.db is not None and _absolute(request.db) != stored.db:
        was = stored.db or "the built-in corpus"
        raise UserError(
            f"--db {request.db}: {run.root} was trained on {was}; "
            "--resume reuses it, so leave --db out (or train a new --name)"
        )


def bound_values() -> dict[str, str]:
    """Every binding of the parsed gin config: ``[scope/]Configurable.parameter`` -> the value's repr."""
    values = {}
    for (scope, selector), parameters in gin.config._CONFIG.items():  # noqa: SLF001 - no public listing
        prefix = f"{scope}/" if scope else ""
        for parameter, value in parameters.items():
            values[f"{prefix}{selector.split('.')[-1]}.{parameter}"] = repr(value)
    return values


def _check_same_config(
    base: list[Any], base_bindings: list[str], gin_files: list[str], bindings: list[str]
) -> None:
    """Parse the run's config, then the run's config with what --resume adds; refuse any changed value
    other than :data:`TUNABLE_ON_RESUME`. Leaves gin holding the layered config."""
    parse_gin(base, base_bindings)
    if not gin_files and not bindings:
        return
    before = bound_values()
    parse_gin([*base, *gin_files], [*base_bindings, *bindings])
    after = bound_values()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    changed = [k for k in changed if k not in TUNABLE_ON_RESUME]
    if changed:
        name = changed[0]
        raise UserError(
            f"{name} = {after.get(name, '(unset)')}: the run was trained with {before.get(name, '(unset)')}; "
            f"--resume keeps the run's config (only {', '.join(sorted(TUNABLE_ON_RESUME))} may change); "
            "train a new --name to change it"
        )

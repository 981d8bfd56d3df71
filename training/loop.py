"""The training loop shared by every model: one small state object, read top to bottom.

Single process by default; under ``torchrun`` it trains with DistributedDataParallel (gloo on the CPU,
nccl on GPUs) and rank 0 alone logs and checkpoints. Batches are a pure function of
``(seed, step, rank)``, and checkpoints carry the seed, the data folder and every RNG state (CPU and CUDA),
so an interrupted run resumed with ``--resume`` follows exactly the same path as one that was never stopped.
A NaN or infinite loss stops the run before the optimizer steps on it; a checkpoint is written only when the
disk has room for it, so a failure keeps the previous one.
"""

import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gin
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from latentlive import registry
from latentlive.core.errors import UserError
from latentlive.core.files import atomic_write, require_space
from latentlive.core.runs import (
    Resume,
    RunFolder,
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    load_checkpoint,
    training_lock,
)
from latentlive.corpus.splits import Split, write_split
from latentlive.training.config import config_error
from latentlive.training.run_plan import RunPlan, TrainRequest, plan_run
from latentlive.training.tasks import SplitData, Task, TensorData


class TrainingInterrupted(Exception):
    """Raised after a checkpoint was saved because the user stopped the run."""


class TrainingDiverged(UserError):
    """A loss or gradient became NaN or infinite: the run stopped, its last good checkpoint untouched."""


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class TrainState:
    task: Task
    model: nn.Module
    trained: nn.Module  # the model, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    model_args: dict[str, Any]
    split: Split | None = None
    discriminator: nn.Module | None = None
    discriminator_optimizer: torch.optim.Optimizer | None = None
    step: int = 0
    last_logs: dict[str, float] = field(default_factory=dict)
    last_eval: dict[str, float] = field(default_factory=dict)


def setup_distributed(device: str) -> Distributed:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed()
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend)
    return Distributed(dist.get_rank(), world_size)


def batch_indices(step: int, size: int, batch_size: int, seed: int, dist_info: Distributed) -> torch.Tensor:
    """The example indices of ``step`` for this rank: a fresh permutation per epoch, sharded by rank."""
    per_step = batch_size * dist_info.world_size
    steps_per_epoch = max(1, size // per_step)
    epoch, position = divmod(step, steps_per_epoch)
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(size, generator=generator)
    if size < per_step:  # tiny corpora: sample with replacement from the permutation
        order = order.repeat(per_step // size + 1)
    start = position * per_step + dist_info.rank * batch_size
    return order[start : start + batch_size]


def weighted_total(losses: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """The one place where loss weights are applied."""
    missing = set(losses) - set(weights)
    if missing:
        raise KeyError(f"no weight for losses {sorted(missing)}")
    return sum(weights[name] * value for name, value in losses.items())


def _kept_checkpoint(run: RunFolder) -> str:
    """How to go on after a failed checkpoint write: resume the kept checkpoint, or restart the run."""
    if run.checkpoint.is_file():
        return "continue with --resume (the last checkpoint is kept)"
    return "run the same command again (the run has no checkpoint yet and restarts in place)"


def _tensor_bytes(value: Any) -> int:
    """Bytes of every tensor in a nested checkpoint dict: what ``torch.save`` will write, roughly."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def _rng_states() -> dict[str, Any]:
    """The CPU generator and, when CUDA was used, every CUDA device's generator."""
    states: dict[str, Any] = {"rng_state": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda_rng_states"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(checkpoint: dict[str, Any]) -> None:
    """Set the CPU generator and, on a machine with as many CUDA devices as the run had, every CUDA
    generator back to the checkpoint's states (``reparameterize`` and the tasks draw from them on a GPU)."""
    torch.set_rng_state(checkpoint["rng_state"])
    cuda_states = checkpoint.get("cuda_rng_states")
    if (
        cuda_states is not None
        and torch.cuda.is_available()
        and len(cuda_states) == torch.cuda.device_count()
    ):
        torch.cuda.set_rng_state_all(cuda_states)


def save_checkpoint(
    state: TrainState,
    run: RunFolder,
    config_text: str,
    run_settings: dict[str, Any],
    writer: SummaryWriter,
) -> None:
    """Write ``checkpoints/last.pt`` atomically, after checking the disk has room for it, then its
    operative config beside it and in TensorBoard.

    A full disk ends the run with one line and leaves the previous checkpoint (or none) as it was.
    """
    checkpoint = {
        "step": state.step,
        "task": state.task.name,
        "model_args": state.model_args,
        "model_state": state.model.state_dict(),
        "optimizer_state": state.optimizer.state_dict(),
        **_rng_states(),
        **_discriminator_states(state),
        "metadata": state.task.metadata(),
        "split": None if state.split is None else state.split.to_json(),
        "config": config_text,
        "run": run_settings,
        "last_eval": state.last_eval,
    }
    fix = f"free some space, then {_kept_checkpoint(run)}"
    last_size = run.checkpoint.stat().st_size if run.checkpoint.is_file() else 0
    require_space(
        run.checkpoint, max(last_size, _tensor_bytes(checkpoint)), f"the step-{state.step} checkpoint", fix
    )
    atomic_torch_save(checkpoint, run.checkpoint, fix)
    save_operative_config(state.step, run, writer, fix)


def as_markdown_code(text: str) -> str:
    """``text`` indented as a code block, so that TensorBoard's text tab (markdown) shows it line by line."""
    return "    " + text.replace("\n", "\n    ")


def save_operative_config(step: int, run: RunFolder, writer: SummaryWriter, fix: str) -> None:
    """Every gin parameter training used so far, defaults included (``config.gin`` holds only what was bound):
    ``checkpoints/operative_config-STEP.gin``, written atomically, and TensorBoard's text tab at ``step``."""
    text = gin.operative_config_str()
    atomic_write(run.operative_config(step), lambda tmp: tmp.write_text(text, encoding="utf-8"), fix)
    writer.add_text("operative_config", as_markdown_code(text), step)


def record_resume(run: RunFolder, writer: SummaryWriter, resume: Resume) -> None:
    """A resume in ``run.json`` (its ``resumes``) and TensorBoard's text tab: the step it continues from and
    the gin files and bindings it was given."""
    run.record_resume(resume)
    given = [*(f"--gin {file}" for file in resume.gin), *(f"--bind '{line}'" for line in resume.bindings)]
    text = f"resumed at step {resume.step} ({resume.time}) with "
    text += ("these:\n\n" + as_markdown_code("\n".join(given))) if given else "the run's config unchanged"
    writer.add_text("resume", text, resume.step)


def _discriminator_states(state: TrainState) -> dict[str, Any]:
    if state.discriminator is None or state.discriminator_optimizer is None:
        return {}
    return {
        "discriminator_state": state.discriminator.state_dict(),
        "discriminator_optimizer_state": state.discriminator_optimizer.state_dict(),
    }


def restore_checkpoint(state: TrainState, run: RunFolder, run_settings: dict[str, Any]) -> None:
    """Load weights, optimizers, step and every RNG state; refuse a checkpoint of other data or seed."""
    checkpoint = load_checkpoint(run.checkpoint)
    recorded = checkpoint.get("run")
    if recorded is not None and recorded.get("seed") != run_settings["seed"]:
        raise UserError(
            f"{run.checkpoint}: written with --seed {recorded.get('seed')}, not {run_settings['seed']}; "
            f"restore {run.settings_file} or train a new --name"
        )
    recorded_split = checkpoint.get("split")
    if recorded_split is not None and state.split is not None and recorded_split != state.split.to_json():
        raise UserError(
            f"{run.checkpoint}: the data no longer splits as when the run started (files added, removed or "
            f"renamed in {run_settings['db'] or 'the built-in corpus'}); restore the data or train a new --name"
        )
    state.model.load_state_dict(checkpoint["model_state"])
    state.optimizer.load_state_dict(checkpoint["optimizer_state"])
    if state.discriminator is not None and "discriminator_state" in checkpoint:
        state.discriminator.load_state_dict(checkpoint["discriminator_state"])
        state.discriminator_optimizer.load_state_dict(checkpoint["discriminator_optimizer_state"])
    restore_rng_states(checkpoint)
    state.step = checkpoint["step"]
    state.last_eval = checkpoint.get("last_eval", {})
    restore = getattr(state.task, "restore_metadata", None)  # what a task learnt outside its weights
    if restore is not None and "metadata" in checkpoint:
        restore(checkpoint["metadata"])


def evaluate(state: TrainState, val: TensorData, writer: SummaryWriter, run: RunFolder, media: bool) -> None:
    """Held-out metrics to TensorBoard and ``metrics.json``; figures when ``media``.

    Runs under a forked, fixed RNG so that evaluating never changes the training path.
    """
    state.model.eval()
    with torch.random.fork_rng(devices=_cuda_devices(state.model)):
        torch.manual_seed(0)
        metrics = state.task.evaluate(state.model, val)
        if media:
            state.task.log_media(writer, state.model, val, state.step)
    state.model.train()
    for name, value in metrics.items():
        writer.add_scalar(name, value, state.step)
    state.last_eval = metrics
    atomic_write_json(run.metrics, {"step": state.step, "train": state.last_logs, "eval": metrics})


def _cuda_devices(model: nn.Module) -> list[int]:
    """The CUDA devices whose generators evaluation must leave untouched (none on the CPU)."""
    return sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})


def stop_unless_finite(
    state: TrainState, run: RunFolder, dist_info: Distributed, what: str, *values: torch.Tensor
) -> None:
    """Raise TrainingDiverged when any of ``values`` (a loss, a gradient norm) is NaN or infinite on any
    rank, before the optimizer steps on it. Every rank takes the same decision, so none waits forever."""
    finite = torch.stack([torch.isfinite(v.detach()).all() for v in values]).all().to(torch.int32)
    if dist_info.world_size > 1:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    if finite.item():
        return
    shown = ", ".join(f"{v.detach().float().flatten()[0].item():g}" for v in values)
    lr = state.optimizer.param_groups[0]["lr"]
    if run.checkpoint.is_file():
        then = "train a new --name (this run's last good checkpoint is kept)"
    else:
        then = "run the command again with it (the run has no checkpoint yet and restarts in place)"
    raise TrainingDiverged(
        f"{run.root}: training diverged at step {state.step + 1} ({what}: {shown}); lower "
        f"train.learning_rate (now {lr:g}), e.g. --bind 'train.learning_rate = {lr / 10:g}', and {then}"
    )


def step_discriminator(
    state: TrainState, total: torch.Tensor, grad_clip: float, run: RunFolder, dist_info: Distributed
) -> None:
    """One update of the discriminator; the model's gradients from it are dropped."""
    assert state.discriminator is not None and state.discriminator_optimizer is not None
    state.discriminator_optimizer.zero_grad(set_to_none=True)
    total.backward()
    norm = nn.utils.clip_grad_norm_(state.discriminator.parameters(), grad_clip)
    stop_unless_finite(state, run, dist_info, "the discriminator loss, gradient norm", total, norm)
    state.discriminator_optimizer.step()
    state.optimizer.zero_grad(set_to_none=True)


def _stop_on_signals() -> dict[str, bool]:
    """Turn Ctrl-C and SIGTERM into a flag that the loop checks after each step."""
    flag = {"stop": False}

    def handler(signum: int, frame: Any) -> None:
        flag["stop"] = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return flag


def check_train_arguments(**values: float) -> None:
    """Refuse, before anything is built, settings of ``train`` that cannot train: one line naming the binding."""
    for name, value in values.items():
        if name == "learning_rate":
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise UserError(
                    f"train.learning_rate = {value!r}: must be a positive finite number, e.g. 1e-3"
                )
        elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
            flag = " (--max_steps)" if name == "max_steps" else ""
            raise UserError(f"train.{name} = {value!r}{flag}: must be a whole number, at least 1")


@gin.configurable(denylist=["run", "db", "device", "seed", "resume", "request"])
def train(
    run: RunFolder,
    db: Path | None = None,
    device: str = "cpu",
    seed: int = 0,
    resume: bool = False,
    task: str = "drums",
    max_steps: int = 10_000,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    grad_clip: float = 5.0,
    log_every: int = 50,
    eval_every: int = 500,
    media_every: int = 2000,
    checkpoint_every: int = 500,
    request: TrainRequest | None = None,
) -> dict[str, float]:
    """Train ``task`` into ``run``; return the last held-out metrics.

    ``seed`` and ``db`` decide the data and every batch; they are stored in each checkpoint, and a resumed
    run (``resume``) must be given the same ones (the CLI reads them from the run's ``run.json``). A resume
    is recorded with the gin files and bindings of the command line's ``request``.
    """
    spec = registry.find(task)
    if spec is None:
        raise UserError(f"train.task = {task!r}: unknown task; use one of {', '.join(registry.names())}")
    check_train_arguments(
        max_steps=max_steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        log_every=log_every,
        eval_every=eval_every,
        media_every=media_every,
        checkpoint_every=checkpoint_every,
    )
    dist_info = setup_distributed(device)
    if dist_info.world_size > 1 and device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    torch.manual_seed(seed)
    the_task = registry.load(spec.task)()
    log = print if dist_info.is_main else (lambda *_: None)
    data: SplitData = the_task.load_data(db, seed, log)
    train_data, val_data = data.train, data.validation
    model, model_args = the_task.build_model()
    model.to(device)
    trained = nn.parallel.DistributedDataParallel(model) if dist_info.world_size > 1 else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    state = TrainState(the_task, model, trained, optimizer, model_args, split=data.split)
    build_discriminator = getattr(the_task, "build_discriminator", None)
    discriminator = build_discriminator() if build_discriminator else None
    if discriminator is not None:
        discriminator.to(device)
        state.discriminator = discriminator
        state.discriminator_optimizer = torch.optim.AdamW(
            discriminator.parameters(), lr=learning_rate, betas=(0.5, 0.9), weight_decay=weight_decay
        )
        if dist_info.world_size > 1:
            discriminator = nn.parallel.DistributedDataParallel(discriminator)
    config_text = gin.config_str()
    run_settings = {"seed": seed, "db": None if db is None else str(db)}
    if resume:
        restore_checkpoint(state, run, run_settings)
    writer = SummaryWriter(str(run.root)) if dist_info.is_main else None
    if dist_info.is_main and not resume:
        atomic_write_text(run.config, config_text)
        write_split(run.split_file, data.split)
        writer.add_text("config", as_markdown_code(config_text), 0)
    if dist_info.is_main and resume:
        given = request or TrainRequest()
        record_resume(run, writer, Resume(state.step, gin=given.gin, bindings=given.bindings))
    stop = _stop_on_signals()
    progress = tqdm(total=max_steps, initial=state.step, disable=not dist_info.is_main, dynamic_ncols=True)
    started, first_step = time.perf_counter(), state.step
    try:
        while state.step < max_steps and not stop["stop"]:
            batch = train_data.take(
                batch_indices(state.step, len(train_data), batch_size, seed, dist_info), device
            )
            weights = the_task.loss_weights(state.step)
            if discriminator is not None and the_task.adversarial(state.step):
                discriminator_losses = the_task.discriminator_losses(
                    trained, discriminator, batch, state.step
                )
                total = weighted_total(discriminator_losses, weights)
                step_discriminator(state, total, grad_clip, run, dist_info)
            else:
                discriminator_losses = {}
            losses = the_task.losses(trained, batch, state.step)
            total = weighted_total(losses, weights)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            norm = nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            stop_unless_finite(state, run, dist_info, "loss, gradient norm", total, norm)
            optimizer.step()
            state.step += 1
            if not dist_info.is_main:
                continue
            progress.update(1)
            if state.step % log_every == 0 or state.step == max_steps:
                state.last_logs = {
                    name: value.item() for name, value in {**losses, **discriminator_losses}.items()
                }
                state.last_logs["loss/total"] = total.item()
                state.last_logs["train/steps_per_second"] = (state.step - first_step) / (
                    time.perf_counter() - started
                )
                weight_logs = {f"weight/{k}": w for k, w in weights.items()}
                for name, value in {**state.last_logs, **weight_logs}.items():
                    writer.add_scalar(name, value, state.step)
                progress.set_postfix(loss=f"{state.last_logs['loss/total']:.3f}")
            if state.step % eval_every == 0 or state.step == max_steps:
                media = state.step % media_every == 0 or state.step == max_steps
                evaluate(state, val_data, writer, run, media=media)
            if state.step % checkpoint_every == 0 or state.step == max_steps:
                save_checkpoint(state, run, config_text, run_settings, writer)
        if dist_info.is_main and stop["stop"]:
            save_checkpoint(state, run, config_text, run_settings, writer)
    finally:
        progress.close()
        if writer is not None:
            writer.close()
    if dist_info.world_size > 1:
        dist.destroy_process_group()
    if stop["stop"]:
        raise TrainingInterrupted(
            f"{run.root}: stopped at step {state.step}, checkpoint saved; continue with --resume"
        )
    return state.last_eval


def train_run(
    run: RunFolder,
    request: TrainRequest,
    device: str,
    is_main: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, float]:
    """Train ``run`` as the command line asked: locked, checked against what the run holds, with the seed
    and data folder it records (``run.json``, written here for a new run); return the last held-out metrics.

    A run that stopped before its first checkpoint starts again in place; a new run that fails on bad input
    (a UserError, or a bad argument of a configurable) before it wrote anything is removed again. Other torchrun ranks follow rank 0, which alone locks and writes.
    """
    if not is_main:
        plan = plan_run(run, request)
        return _train_planned(run, plan, device, request)
    if request.resume:
        plan_run(run, request)  # refuse a conflicting resume before the lock writes its pid into the run
    with training_lock(run):
        was_new = run.state() == "new"
        try:
            plan = plan_run(run, request)
            if plan.restart:
                log(f"{run.root}: it stopped before its first checkpoint; starting it again from step 0")
                run.clear_unstarted()
            if plan.resume:
                run.remove_stale_temps()
            else:
                atomic_write_json(run.settings_file, plan.settings.to_json())
            log(f"training {run.root} on {device} (seed {plan.settings.seed})")
            return _train_planned(run, plan, device, request)
        except (UserError, ValueError) as error:  # bad input: a UserError, or a configurable's argument
            if was_new and (isinstance(error, UserError) or config_error(error) is not None):
                run.discard_if_empty()
            raise


def _train_planned(run: RunFolder, plan: RunPlan, device: str, request: TrainRequest) -> dict[str, float]:
    db = None if plan.settings.db is None else Path(plan.settings.db)
    return train(run, db=db, device=device, seed=plan.settings.seed, resume=plan.resume, request=request)

"""The training loop shared by every model: one small state object, read top to bottom.

Single process by default; under ``torchrun`` it trains with DistributedDataParallel (gloo on the CPU,
nccl on GPUs) and rank 0 alone logs and checkpoints. Batches are a pure function of
``(seed, step, rank)`` and checkpoints carry the RNG state, so an interrupted run resumed with
``--resume`` follows exactly the same path as one that was never stopped.
"""

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cached_conv as cc
import gin
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from latentlive.errors import UserError
from latentlive.runs import (
    RunFolder,
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    load_checkpoint,
)
from latentlive.tasks import TASKS, Task, TensorData


class TrainingInterrupted(Exception):
    """Raised after a checkpoint was saved because the user stopped the run."""


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


def save_checkpoint(state: TrainState, run: RunFolder, config_text: str) -> None:
    atomic_torch_save(
        {
            "step": state.step,
            "task": state.task.name,
            "model_args": state.model_args,
            "model_state": state.model.state_dict(),
            "optimizer_state": state.optimizer.state_dict(),
            "rng_state": torch.get_rng_state(),
            **_discriminator_states(state),
            "metadata": state.task.metadata(),
            "config": config_text,
            "last_eval": state.last_eval,
        },
        run.checkpoint,
    )


def _discriminator_states(state: TrainState) -> dict[str, Any]:
    if state.discriminator is None or state.discriminator_optimizer is None:
        return {}
    return {
        "discriminator_state": state.discriminator.state_dict(),
        "discriminator_optimizer_state": state.discriminator_optimizer.state_dict(),
    }


def restore_checkpoint(state: TrainState, run: RunFolder) -> None:
    checkpoint = load_checkpoint(run.checkpoint)
    state.model.load_state_dict(checkpoint["model_state"])
    state.optimizer.load_state_dict(checkpoint["optimizer_state"])
    if state.discriminator is not None and "discriminator_state" in checkpoint:
        state.discriminator.load_state_dict(checkpoint["discriminator_state"])
        state.discriminator_optimizer.load_state_dict(checkpoint["discriminator_optimizer_state"])
    torch.set_rng_state(checkpoint["rng_state"])
    state.step = checkpoint["step"]
    state.last_eval = checkpoint.get("last_eval", {})


def evaluate(state: TrainState, val: TensorData, writer: SummaryWriter, run: RunFolder, media: bool) -> None:
    """Held-out metrics to TensorBoard and ``metrics.json``; figures when ``media``.

    Runs under a forked, fixed RNG so that evaluating never changes the training path.
    """
    state.model.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        metrics = state.task.evaluate(state.model, val)
        if media:
            state.task.log_media(writer, state.model, val, state.step)
    state.model.train()
    for name, value in metrics.items():
        writer.add_scalar(name, value, state.step)
    state.last_eval = metrics
    atomic_write_json(run.metrics, {"step": state.step, "train": state.last_logs, "eval": metrics})


def step_discriminator(state: TrainState, total: torch.Tensor, grad_clip: float) -> None:
    """One update of the discriminator; the model's gradients from it are dropped."""
    assert state.discriminator is not None and state.discriminator_optimizer is not None
    state.discriminator_optimizer.zero_grad(set_to_none=True)
    total.backward()
    nn.utils.clip_grad_norm_(state.discriminator.parameters(), grad_clip)
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


@gin.configurable(denylist=["run", "db", "device", "seed", "resume"])
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
) -> dict[str, float]:
    """Train ``task`` into ``run``; return the last held-out metrics."""
    if task not in TASKS:
        raise UserError(f"train.task = {task!r}: unknown task; use one of {', '.join(TASKS)}")
    dist_info = setup_distributed(device)
    if dist_info.world_size > 1 and device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    torch.manual_seed(seed)
    cc.use_cached_conv(False)  # training runs the offline (zero-padded) layers; export builds streaming ones
    the_task = TASKS[task]()
    log = print if dist_info.is_main else (lambda *_: None)
    train_data, val_data = the_task.load_data(db, seed, log)
    model, model_args = the_task.build_model()
    model.to(device)
    trained = nn.parallel.DistributedDataParallel(model) if dist_info.world_size > 1 else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    state = TrainState(the_task, model, trained, optimizer, model_args)
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
    if resume:
        restore_checkpoint(state, run)
    writer = SummaryWriter(str(run.root)) if dist_info.is_main else None
    if dist_info.is_main and not resume:
        atomic_write_text(run.config, config_text)
        writer.add_text("config", "    " + config_text.replace("\n", "\n    "), 0)
    stop = _stop_on_signals()
    progress = tqdm(total=max_steps, initial=state.step, disable=not dist_info.is_main, dynamic_ncols=True)
    started, first_step = time.perf_counter(), state.step
    while state.step < max_steps and not stop["stop"]:
        batch = train_data.take(
            batch_indices(state.step, len(train_data), batch_size, seed, dist_info), device
        )
        weights = the_task.loss_weights(state.step)
        if discriminator is not None and the_task.adversarial(state.step):
            discriminator_losses = the_task.discriminator_losses(trained, discriminator, batch, state.step)
            step_discriminator(state, weighted_total(discriminator_losses, weights), grad_clip)
        else:
            discriminator_losses = {}
        losses = the_task.losses(trained, batch, state.step)
        total = weighted_total(losses, weights)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
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
            for name, value in {**state.last_logs, **{f"weight/{k}": w for k, w in weights.items()}}.items():
                writer.add_scalar(name, value, state.step)
            progress.set_postfix(loss=f"{state.last_logs['loss/total']:.3f}")
        if state.step % eval_every == 0 or state.step == max_steps:
            evaluate(
                state, val_data, writer, run, media=state.step % media_every == 0 or state.step == max_steps
            )
        if state.step % checkpoint_every == 0 or state.step == max_steps:
            save_checkpoint(state, run, config_text)
    progress.close()
    if dist_info.is_main:
        if stop["stop"]:
            save_checkpoint(state, run, config_text)
        writer.close()
    if dist_info.world_size > 1:
        dist.destroy_process_group()
    if stop["stop"]:
        raise TrainingInterrupted(
            f"{run.root}: stopped at step {state.step}, checkpoint saved; continue with --resume"
        )
    return state.last_eval

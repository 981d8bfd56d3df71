"""A host harness that runs an exported ``.ts`` the way the Max external nn~ 1.6.0 does.

nn~ calls one method per buffer of ``buffer_size`` host samples. Inputs of a method with
``in_ratio > 1`` are decimated by keeping the last sample of each block of ``in_ratio`` samples;
outputs with ``out_ratio > 1`` are held sample by sample, and nothing is resampled outside the model.
In threaded mode (nn~'s default) the result of a buffer comes out two buffers later, minus one host block.

nn~ 1.6.0 never calls ``set_sample_rate`` on a first load, and its ``reload`` passes an uninitialised rate
(``reload``); the devices deliver the rate as an attribute message, ``set host_rate RATE``, which
:func:`set_attribute` carries out as nn~'s ``Backend::set_attribute`` does (arguments parsed by the
attribute's declared types, an error when the setter raises or answers anything but 0).
"""

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class MethodSpec:
    """What nn~ reads from ``<method>_params``: channels and temporal ratios."""

    in_channels: int
    in_ratio: int
    out_channels: int
    out_ratio: int

    @property
    def ratio(self) -> int:
        return max(self.in_ratio, self.out_ratio)


def load_ts(path: str | Path) -> torch.jit.ScriptModule:
    module = torch.jit.load(str(path), map_location="cpu")
    module.eval()
    return module


def method_spec(module: torch.nn.Module, method: str) -> MethodSpec:
    params = getattr(module, f"{method}_params")
    return MethodSpec(*(int(v) for v in params.tolist()))


def last_line(err: BaseException) -> str:
    """The last line of an error's text (what a TorchScript error says after its traceback), or its type."""
    lines = str(err).strip().splitlines()
    return lines[-1] if lines else type(err).__name__


class HostError(Exception):
    """What nn~ would report (and, outside a try block, abort the host for)."""


DEFAULT_HOST_RATE = 44100  # the rate the checks run at unless they say otherwise
UNINITIALISED_RATE = -2147483648  # the rate nn~ 1.6.0's ``reload`` passes (an uninitialised int)
_ATTRIBUTE_TYPES = {
    0: lambda text: text.lower() in ("1", "true"),
    1: int,
    2: float,
    3: str,
}  # nn_tilde's TYPE_HASH


def set_attribute(module: torch.nn.Module, name: str, args: Sequence[str]) -> None:
    """nn~'s ``set NAME ARGS...`` message: parse ``args`` by ``NAME_params`` and call ``set_NAME``.

    Raises HostError where nn~ would throw: no such settable attribute, bad arguments, a setter that raises
    or answers anything but 0."""
    if not (hasattr(module, f"set_{name}") and hasattr(module, f"{name}_params")):
        raise HostError(f"setter for attribute {name} not found in model")
    types = [int(t) for t in getattr(module, f"{name}_params").tolist()]
    try:
        values = [_ATTRIBUTE_TYPES[t](text) for t, text in zip(types, args, strict=True)]
    except (ValueError, KeyError) as err:
        raise HostError(f"bad arguments {list(args)} for attribute {name}: {err}") from None
    try:
        result = getattr(module, f"set_{name}")(*values)
    except Exception as err:  # noqa: BLE001 - whatever the model raises reaches nn~
        raise HostError(f"setter for {name} raised: {last_line(err)}") from None
    if result != 0:
        raise HostError(f"setter for {name} returned {result}")


def deliver_host_rate(module: torch.nn.Module, rate: int) -> None:
    """What a device does on load and on every rate change: ``set host_rate RATE`` (models without the
    attribute do not depend on the rate and are not told)."""
    if hasattr(module, "host_rate_params"):
        set_attribute(module, "host_rate", [str(rate)])


def reload(module: torch.nn.Module) -> None:
    """nn~ 1.6.0's ``reload`` message: ``set_sample_rate`` with an uninitialised int."""
    module.set_sample_rate(UNINITIALISED_RATE)


def threaded_delay(buffer_size: int, host_block: int = 64) -> int:
    """Samples that nn~ in threaded mode adds: two buffers minus one host block."""
    return 2 * buffer_size - host_block


class NNHost:
    """Feed a whole signal ``[B, C, N]`` through one method, buffer by buffer, as nn~ would.

    Args:
        module: the loaded TorchScript module.
        method: the method name (``forward``, ``decode``, ...).
        buffer_size: nn~'s buffer in host samples (a power of two, >= the method's ratio).
        host_rate: the rate the device delivers (``deliver_host_rate``); None: the module is never told,
            as after nn~ 1.6.0's first load without a device.
        threaded: delay the output as nn~'s threaded mode does.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        method: str = "forward",
        buffer_size: int = 2048,
        host_rate: int | None = 44100,
        threaded: bool = False,
    ) -> None:
        self.module, self.method = module, getattr(module, method)
        self.spec = method_spec(module, method)
        if buffer_size % self.spec.ratio:
            raise ValueError(f"buffer {buffer_size} is not a multiple of the ratio {self.spec.ratio}")
        self.buffer_size, self.threaded = buffer_size, threaded
        if host_rate is not None:
            deliver_host_rate(module, host_rate)

    def process_buffer(self, block: Tensor) -> Tensor:
        """One nn~ call: ``[B, C_in, buffer]`` host samples -> ``[B, C_out, buffer]`` held outputs."""
        decimated = block[..., self.spec.in_ratio - 1 :: self.spec.in_ratio].contiguous()
        with torch.inference_mode():  # nn~'s perform runs under c10::InferenceMode; its setters do not
            out = self.method(decimated)
        return out.repeat_interleave(self.spec.out_ratio, dim=-1)  # made outside it: a normal tensor

    def process(self, signal: Tensor) -> Tensor:
        """``[B, C_in, N]`` -> ``[B, C_out, N]``; the last partial buffer is padded by holding its last sample."""
        n = signal.shape[-1]
        padded_n = -(-n // self.buffer_size) * self.buffer_size
        if padded_n > n:
            hold = signal[..., -1:].expand(*signal.shape[:-1], padded_n - n)
            signal = torch.cat([signal, hold], dim=-1)
        blocks = [
            self.process_buffer(signal[..., i : i + self.buffer_size])
            for i in range(0, padded_n, self.buffer_size)
        ]
        out = torch.cat(blocks, dim=-1)
        if self.threaded:
            delay = threaded_delay(self.buffer_size)
            out = torch.cat([torch.zeros_like(out[..., :delay]), out], dim=-1)
        return out[..., :n]


def time_calls(
    call: Callable[[], object],
    repeats: int = 50,
    warmup: int = 5,
    between: Callable[[], object] | None = None,
) -> dict[str, float]:
    """``call()`` timed ``repeats`` times after ``warmup`` calls, with ``between()`` (untimed) before each:
    per call the wall clock (``wall_ms_p50``, ``wall_ms_p99``, ``wall_ms_mean``) and the CPU time of the
    calling thread (``cpu_ms_mean``; a call that waits for the CPU on a shared machine costs wall time but
    no CPU time), in milliseconds, and the number of ``calls`` timed."""
    wall, cpu = [], []
    for i in range(warmup + repeats):
        if between is not None:
            between()
        start, start_cpu = time.perf_counter(), time.thread_time()
        call()
        end, end_cpu = time.perf_counter(), time.thread_time()
        if i >= warmup:
            wall.append((end - start) * 1e3)
            cpu.append((end_cpu - start_cpu) * 1e3)
    return {
        "calls": repeats,
        "wall_ms_p50": float(np.percentile(wall, 50)),
        "wall_ms_p99": float(np.percentile(wall, 99)),
        "wall_ms_mean": float(np.mean(wall)),
        "cpu_ms_mean": float(np.mean(cpu)),
    }


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block on one intra-op thread (as nn~ runs a model), then restore the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def time_per_buffer(
    module: torch.nn.Module, method: str, buffer_size: int = 2048, repeats: int = 50
) -> dict[str, float]:
    """One nn~ call of ``method`` at ``buffer_size`` on one thread, timed by :func:`time_calls`."""
    spec = method_spec(module, method)
    call = getattr(module, method)
    x = torch.randn(1, spec.in_channels, buffer_size // spec.in_ratio) * 0.1
    with one_thread(), torch.no_grad():
        return time_calls(lambda: call(x), repeats)

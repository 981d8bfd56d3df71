"""The nn~ contract, checked on a loaded ``.ts`` (see DESIGN.md, "The nn~ contract").

Run as ``python -m latentlive.export.contract MODEL.ts [RATE]`` it checks the file in a fresh process, with no
training code imported, and prints a JSON report; exit status 1 when the contract is broken.
"""

import json
import sys
import time
from pathlib import Path

import torch

from latentlive.export.host import (
    DEFAULT_HOST_RATE,
    UNINITIALISED_RATE,
    HostError,
    deliver_host_rate,
    load_ts,
    method_spec,
    one_thread,
    set_attribute,
    time_per_buffer,
)
from latentlive.export.metadata import read_metadata

MAX_BUFFER = 16384
BATCHES = (1, 4, 64)


def buffer_sizes(ratio: int, largest: int = MAX_BUFFER) -> list[int]:
    """Every power of two from ``ratio`` (rounded up to a power of two) to ``largest``."""
    size = 1
    while size < ratio:
        size *= 2
    sizes = []
    while size <= largest:
        sizes.append(size)
        size *= 2
    return sizes


def check_shapes(module: torch.nn.Module, method: str) -> list[str]:
    """For a buffer of ``n`` host samples the method gets ``n / in_ratio`` and returns ``n / out_ratio`` samples."""
    spec, call, problems = method_spec(module, method), getattr(module, method), []
    for n in buffer_sizes(spec.ratio):
        for batch in BATCHES:
            x = torch.randn(batch, spec.in_channels, n // spec.in_ratio) * 0.5
            with torch.no_grad():
                y = call(x)
            expected = (batch, spec.out_channels, n // spec.out_ratio)
            if tuple(y.shape) != expected or y.dtype != torch.float32:
                problems.append(
                    f"{method}: buffer {n} batch {batch} gave {tuple(y.shape)} {y.dtype}, want {expected}"
                )
    return problems


def check_extremes(module: torch.nn.Module, method: str, bound: float) -> list[str]:
    """Finite, bounded outputs for silence, full-scale noise and +-10, and recovery on the next buffer."""
    spec, call, problems = method_spec(module, method), getattr(module, method), []
    n = max(2048, spec.ratio) // spec.in_ratio
    normal = torch.randn(1, spec.in_channels, n) * 0.3
    cases = {
        "silence": torch.zeros(1, spec.in_channels, n),
        "full-scale noise": torch.rand(1, spec.in_channels, n) * 2 - 1,
        "+10": torch.full((1, spec.in_channels, n), 10.0),
        "-10": torch.full((1, spec.in_channels, n), -10.0),
    }
    for name, x in cases.items():
        with torch.no_grad():
            y, after = call(x), call(normal)
        for label, out in ((name, y), (f"normal buffer after {name}", after)):
            if not torch.isfinite(out).all():
                problems.append(f"{method}: non-finite output for {label}")
            elif out.abs().max() > bound:
                problems.append(f"{method}: output {out.abs().max():.3g} beyond {bound} for {label}")
    return problems


# Values nn~ can hand a setter: the uninitialised int of ``reload``, zero, negative, rates without a chain.
BAD_SETTER_VALUES = (str(UNINITIALISED_RATE), "0", "-1", "22050", "96000", "nan", "inf", "-1e30")


def check_silent_until_told(module: torch.nn.Module, method: str) -> list[str]:
    """A freshly loaded module that needs the host rate answers silence until it is told one."""
    spec = method_spec(module, method)
    x = torch.randn(1, spec.in_channels, 2048 // spec.in_ratio) * 0.3
    with torch.no_grad():
        y = getattr(module, method)(x)
    return [] if torch.count_nonzero(y) == 0 else [f"{method}: plays before it was told the host rate"]


def check_warmed_paths(module: torch.nn.Module, method: str) -> list[str]:
    """Every submodule ``method`` calls is reached through a module interface, whose executor the warm-up
    compiles (docs/host_rate.md); a concrete submodule's call is inlined into the method's own plan, which
    nn~'s first calls would then compile in the audio thread."""
    own = module._c._type().str()  # noqa: SLF001 - the module's TorchScript type
    problems = []
    for name, target in _method_calls(getattr(module, method).graph):
        if not (target.is_interface_type() or target.str() == own):
            problems.append(f"{method}: calls {target.str()}.{name} inlined, out of the warm-up's reach")
    return problems


def _method_calls(block) -> list:
    """(method name, receiver type) of every ``prim::CallMethod`` in a TorchScript graph or block."""
    calls = []
    for node in block.nodes():
        if node.kind() == "prim::CallMethod":
            calls.append((node.s("name"), node.inputsAt(0).type()))
        for inner in node.blocks():
            calls += _method_calls(inner)
    return calls


def check_setters(path: str | Path, method: str, rate: int) -> list[str]:
    """Every setter survives every value in BAD_SETTER_VALUES (no exception reaches nn~) and ``method``
    still gives finite output after each; once the attributes are set back and the module reset, it plays
    as a freshly loaded module does."""
    module, fresh, problems = load_ts(path), load_ts(path), []
    for m in (module, fresh):
        deliver_host_rate(m, rate)
    names = [n for n in module.get_attributes() if n != "latency"]
    defaults = {n: [str(v) for v in _values(module, n)] for n in names}
    spec, call = method_spec(module, method), getattr(module, method)
    x = torch.randn(1, spec.in_channels, 2048 // spec.in_ratio, generator=torch.Generator().manual_seed(1))
    for name in names:
        for value in BAD_SETTER_VALUES:
            args = [value] * len(defaults[name])
            try:
                set_attribute(module, name, args)
            except HostError as err:
                if "bad arguments" not in str(err):  # nn~ refuses to parse "nan" as an int itself
                    problems.append(f"set {name} {' '.join(args)}: {err}")
                continue
            problems += _plays_finite(call, x * 0.3, f"{method} after set {name} {value}")
    for name, args in defaults.items():
        set_attribute(module, name, args)
    module.reset()
    fresh.reset()
    with torch.no_grad():
        y, want = call(x * 0.3), getattr(fresh, method)(x * 0.3)
    if not torch.equal(y, want):
        problems.append(
            f"{method}: after bad setter values and a reset, the output differs from a fresh load"
        )
    return problems


def _plays_finite(call, x: torch.Tensor, label: str) -> list[str]:
    try:
        with torch.no_grad():
            y = call(x)
    except RuntimeError as err:
        return [f"{label}: raised {str(err).strip().splitlines()[-1]}"]
    return [] if torch.isfinite(y).all() else [f"{label}: non-finite output"]


def _values(module: torch.nn.Module, name: str) -> list:
    values = getattr(module, f"get_{name}")()
    return list(values) if isinstance(values, (tuple, list)) else [values]


def first_calls_ms(module: torch.nn.Module, method: str, calls: int = 5, buffer: int = 2048) -> list[float]:
    """Wall time of the first ``calls`` calls of ``method`` in nn~'s inference mode, one thread (ms)."""
    spec, call, times = method_spec(module, method), getattr(module, method), []
    x = torch.randn(1, spec.in_channels, buffer // spec.in_ratio) * 0.3
    with one_thread(), torch.inference_mode():
        for _ in range(calls):
            start = time.perf_counter()
            call(x)
            times.append((time.perf_counter() - start) * 1e3)
    return times


def verify_file(path: str | Path, rate: int = DEFAULT_HOST_RATE) -> dict:
    """Load ``path`` as nn~ 1.6.0 does and check every method; return problems and timings at 2048.

    The host rate arrives as a device delivers it (``set host_rate``), never through ``set_sample_rate``.
    ``first_calls_ms``: the first five calls of each method in a fresh load, once the device set the rate."""
    metadata = read_metadata(path)
    module = load_ts(path)
    methods = list(module.get_methods())
    problems: list[str] = []
    if metadata.get("sample_rate"):  # a model at a rate of its own resamples to the host's: it must be told
        for method in [m for m in methods if m not in metadata.get("rate_free_methods", [])]:
            problems += check_silent_until_told(module, method)
    deliver_host_rate(module, rate)
    first_calls = {}
    for method in methods:
        fresh = load_ts(path)
        deliver_host_rate(fresh, rate)
        first_calls[method] = first_calls_ms(fresh, method)
    if "latency" not in module.get_attributes() or module.get_latency()[0] != metadata["latency_samples"]:
        problems.append(
            f"the latency attribute does not say the declared {metadata['latency_samples']} samples"
        )
    timings = {}
    for method in methods:
        problems += check_warmed_paths(module, method)
        problems += check_shapes(module, method)
        problems += check_extremes(module, method, float(metadata["output_bounds"][method]))
        timings[method] = time_per_buffer(module, method, 2048)
    problems += check_setters(path, methods[0], rate)
    return {
        "methods": methods,
        "problems": problems,
        "timing_2048": timings,
        "first_calls_ms": first_calls,
        "host_rate": rate,
        "torch_version": torch.__version__,
    }


def main() -> int:
    result = verify_file(sys.argv[1], *(int(rate) for rate in sys.argv[2:3]))
    print(json.dumps(result))
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())

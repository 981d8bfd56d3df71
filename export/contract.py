"""The nn~ contract, checked on a loaded ``.ts`` (see DESIGN.md, "The nn~ contract").

Run as ``python -m latentlive.export.contract MODEL.ts [RATE]`` it checks the file in a fresh process, with no
training code imported, and prints a JSON report; exit status 1 when the contract is broken.
"""

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from latentlive.export.host import (
    DEFAULT_HOST_RATE,
    UNINITIALISED_RATE,
    HostError,
    MethodSpec,
    deliver_host_rate,
    last_line,
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


EXTREME_CALLS = (
    4  # buffers of each extreme in a row: enough for a block of grain (6144 host samples) to render
)
COMPARED = 2048  # host samples compared at the end of a recovery


def normal_input(spec: MethodSpec, n: int, seed: int, scale: float = 0.3) -> torch.Tensor:
    """A buffer of what a device may send: ``[1, C_in, n]`` of noise ``scale`` wide, seeded."""
    return torch.randn(1, spec.in_channels, n, generator=torch.Generator().manual_seed(seed)) * scale


def extreme_inputs(spec: MethodSpec, n: int) -> dict[str, torch.Tensor]:
    """The finite extremes every method must survive: silence, full-scale noise, +10 and -10 ``[1, C_in, n]``."""
    generator = torch.Generator().manual_seed(2)
    return {
        "silence": torch.zeros(1, spec.in_channels, n),
        "full-scale noise": torch.rand(1, spec.in_channels, n, generator=generator) * 2 - 1,
        "+10": torch.full((1, spec.in_channels, n), 10.0),
        "-10": torch.full((1, spec.in_channels, n), -10.0),
    }


def _buffer(spec: MethodSpec) -> int:
    """The method's input frames of one host buffer of 2048 samples (or of its ratio, if larger)."""
    return max(2048, spec.ratio) // spec.in_ratio


def _play(call, inputs: list[torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([call(x) for x in inputs], dim=-1)


def has_raw_output(module: torch.nn.Module) -> list[str]:
    """Every export exposes its raw output: ``guard_output(False)`` turns its output guard off."""
    return (
        [] if hasattr(module, "guard_output") else ["no guard_output(on): its raw output cannot be checked"]
    )


def check_extremes(
    module: torch.nn.Module, method: str, bound: float, calls: int = EXTREME_CALLS
) -> list[str]:
    """The raw output (the guard off) is finite for ``calls`` buffers of silence, full-scale noise, +10 and
    -10 and for the normal buffer after each; the guarded output, what nn~ gets, is finite and within
    ``bound``. The module is reset before and left reset, with its guard on."""
    spec, call, problems = method_spec(module, method), getattr(module, method), []
    n = _buffer(spec)
    normal = normal_input(spec, n, seed=0)
    for guard in (False, True):
        module.guard_output(guard)
        module.reset()
        for name, x in extreme_inputs(spec, n).items():
            y, after = _play(call, [x] * calls), _play(call, [normal])
            for label, out in ((name, y), (f"normal buffer after {name}", after)):
                if not torch.isfinite(out).all():
                    kind = "output" if guard else "raw output (before the guard)"
                    problems.append(f"{method}: non-finite {kind} for {label}")
                elif guard and out.abs().max() > bound:
                    problems.append(f"{method}: output {out.abs().max():.3g} beyond {bound} for {label}")
    module.reset()
    return problems


def recovery_pair(
    path: str | Path, rate: int, loaded: Sequence[torch.nn.Module] = ()
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Two modules of ``path`` told ``rate``, their output guards off: the ``(hurt, fresh)`` of
    :func:`check_recovery`, for every method of a file. ``loaded``: modules of the file already told
    ``rate`` (those the first calls were timed on), taken before new loads: each check resets both modules
    first, so what they heard before does not matter (and a reset that forgets too little fails it)."""
    pair = list(loaded[:2])
    while len(pair) < 2:
        pair.append(load_ts(path))
        deliver_host_rate(pair[-1], rate)
    for m in pair:
        m.guard_output(False)
    return pair[0], pair[1]


def check_recovery(
    pair: tuple[torch.nn.Module, torch.nn.Module], method: str, window: int, calls: int = EXTREME_CALLS
) -> list[str]:
    """After ``calls`` buffers of each extreme and ``window`` host samples of normal input (the method's
    state window), the raw output of ``hurt`` equals that of ``fresh``, a module that heard normal input
    instead of the extreme for as long (so that both streams keep the same phase of their blocks and
    resamplers) and then the same normal input; the last ``COMPARED`` host samples are compared. Both
    modules of ``pair`` (:func:`recovery_pair`) are reset before each extreme."""
    hurt, fresh = pair
    spec, problems = method_spec(hurt, method), []
    n = _buffer(spec)
    buffers = -(-(window + COMPARED) // (n * spec.in_ratio))
    normal = [normal_input(spec, n, seed=10 + i) for i in range(buffers)]
    instead = [normal_input(spec, n, seed=1000 + i) for i in range(calls)]
    tail = COMPARED // spec.out_ratio
    for name, x in extreme_inputs(spec, n).items():
        try:
            hurt.reset()
            fresh.reset()
            _play(getattr(hurt, method), [x] * calls)
            _play(getattr(fresh, method), instead)
            got = _play(getattr(hurt, method), normal)[..., -tail:]
            want = _play(getattr(fresh, method), normal)[..., -tail:]
        except RuntimeError as err:  # e.g. a reset that changes an inference tensor in place
            return [*problems, f"{method}: recovery from {name} raised {last_line(err)}"]
        if not torch.allclose(got, want, atol=1e-4, rtol=1e-3):
            gap = (got - want).abs().max()
            problems.append(
                f"{method}: {window} samples after {name}, the output still differs from a fresh module's"
                f" on the same input (by up to {gap:.3g})"
            )
    return problems


def check_not_stuck(module: torch.nn.Module, method: str, length: int) -> list[str]:
    """Two different normal inputs of ``length`` host samples give different raw outputs: a model stuck
    at zero, at a constant or on its state fails (the module is reset before each and left reset)."""
    spec, call = method_spec(module, method), getattr(module, method)
    n = _buffer(spec)
    buffers = -(-length // (n * spec.in_ratio))
    module.guard_output(False)
    outputs = []
    for seed in (20, 30):
        module.reset()
        outputs.append(_play(call, [normal_input(spec, n, seed + i, scale=1.0) for i in range(buffers)]))
    module.reset()
    module.guard_output(True)
    if (outputs[0] - outputs[1]).abs().nan_to_num(0.0).max() > 1e-6:
        return []
    return [f"{method}: the same output for two different inputs of {length} samples: the model is stuck"]


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
    as a freshly loaded module does (two new loads: a module that heard other input may keep a memory by
    design, such as the drum synth's rendered sounds)."""
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


def check_setters_after_playing(module: torch.nn.Module, other_rate: int) -> list[str]:
    """nn~ calls the methods under inference mode (``c10::InferenceMode`` in its ``perform``) and the setters
    outside it, so a state tensor that a method replaced is an inference tensor when a setter resets it:
    after a few buffers of every method played that way, setting each attribute to its own value and the
    host rate to ``other_rate`` (a new rate in Live: a reset) raise nothing. ``module`` is left reset."""
    problems = []
    with torch.inference_mode():
        for method in module.get_methods():
            spec, call = method_spec(module, method), getattr(module, method)
            try:
                _play(call, [normal_input(spec, _buffer(spec), seed) for seed in range(EXTREME_CALLS)])
            except RuntimeError as err:
                problems.append(f"{method} under inference mode: raised {last_line(err)}")
    for name in [n for n in module.get_attributes() if n != "latency"]:
        args = [other_rate] if name == "host_rate" else _values(module, name)
        try:
            set_attribute(module, name, [str(v) for v in args])
        except HostError as err:
            problems.append(f"set {name} after playing as nn~ does: {err}")
    try:
        module.reset()
    except RuntimeError as err:
        problems.append(f"reset after playing as nn~ does: raised {last_line(err)}")
    return problems


def _plays_finite(call, x: torch.Tensor, label: str) -> list[str]:
    try:
        with torch.no_grad():
            y = call(x)
    except RuntimeError as err:
        return [f"{label}: raised {last_line(err)}"]
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
    first_calls, timed = {}, []
    for method in methods:
        timed.append(load_ts(path))
        deliver_host_rate(timed[-1], rate)
        first_calls[method] = first_calls_ms(timed[-1], method)
    if "latency" not in module.get_attributes() or module.get_latency()[0] != metadata["latency_samples"]:
        problems.append(
            f"the latency attribute does not say the declared {metadata['latency_samples']} samples"
        )
    timings = {}
    problems += has_raw_output(module)
    windows, unchecked = metadata.get("state_window", {}), []
    calls = max(EXTREME_CALLS, int(metadata.get("calls_to_settle", 0)))
    pair = recovery_pair(path, rate, timed) if any(windows.get(m) is not None for m in methods) else None
    for method in methods:
        own = check_warmed_paths(module, method) + check_shapes(module, method)
        problems += own
        timings[method] = time_per_buffer(module, method, 2048)
        if own or not hasattr(module, "guard_output"):
            continue  # in the wrong shapes or without a raw output, the checks below cannot run
        problems += check_extremes(module, method, float(metadata["output_bounds"][method]), calls)
        if method not in windows:
            problems.append(f"{method}: the metadata declares no state_window (None: it keeps a memory)")
        elif windows[method] is None or pair is None:
            unchecked.append(method)
        else:
            problems += check_recovery(pair, method, int(windows[method]), calls)
        length = int(windows.get(method) or 0) + int(metadata["latency_samples"]) + 2 * COMPARED
        problems += check_not_stuck(module, method, length)
    problems += check_setters(path, methods[0], rate)
    problems += check_setters_after_playing(module, 48000 if rate != 48000 else 44100)
    return {
        "methods": methods,
        "problems": problems,
        "recovery_not_checked": unchecked,  # methods that keep what they heard, by design
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

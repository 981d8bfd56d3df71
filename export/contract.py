"""The nn~ contract, checked on a loaded ``.ts`` (see DESIGN.md, "The nn~ contract").

Run as ``python -m export.contract MODEL.ts`` it checks the file in a fresh process, with no
training code imported, and prints a JSON report; exit status 1 when the contract is broken.
"""

import json
import sys
from pathlib import Path

import torch

from export.host import load_ts, method_spec, time_per_buffer
from export.metadata import read_metadata

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


def verify_file(path: str | Path) -> dict:
    """Load ``path`` and check every method; return problems and per-buffer timings at 2048."""
    metadata = read_metadata(path)
    module = load_ts(path)
    if metadata.get("sample_rate"):
        module.set_sample_rate(int(metadata.get("host_sample_rate", 44100)))
    methods = list(module.get_methods())
    problems: list[str] = []
    if "latency" not in module.get_attributes() or module.get_latency()[0] != metadata["latency_samples"]:
        problems.append(
            f"the latency attribute does not say the declared {metadata['latency_samples']} samples"
        )
    timings = {}
    for method in methods:
        problems += check_shapes(module, method)
        problems += check_extremes(module, method, float(metadata["output_bounds"][method]))
        timings[method] = time_per_buffer(module, method, 2048)
    return {
        "methods": methods,
        "problems": problems,
        "timing_2048": timings,
        "torch_version": torch.__version__,
    }


def main() -> int:
    result = verify_file(sys.argv[1])
    print(json.dumps(result))
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: our TorchScript NSGT against the reference `nsgt` package on the CPU, one thread."""

import contextlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentlive.bench.common import INTERLEAVED_WITH, call_figures, write_and_print
from latentlive.core.errors import UserError
from latentlive.export.host import one_thread
from latentlive.models.nsgt import NSGT, fast_length, make_scale


class NumpyWithIntegerClip:
    """numpy, except that ``clip(..., out=int_array)`` with an infinite bound works as in numpy < 1.26.

    The reference's ``nsgfwin`` clips an integer array in place with ``np.inf`` as upper bound, which
    current numpy rejects; the reference module sees this object as its ``np``.
    """

    def __getattr__(self, name: str):
        return getattr(np, name)

    def clip(self, a, a_min, a_max, out=None):
        clipped = np.clip(a, a_min, a_max)
        if out is None:
            return clipped
        out[...] = clipped
        return out


@contextlib.contextmanager
def reference_nsgt_module() -> Iterator[object]:
    """The reference package, its window builder patched for current numpy while the block runs.

    ``nsgt`` 0.19 clips an integer array in place with an ``np.inf`` bound, which numpy >= 1.26 rejects.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy.fft fallback and missing audio I/O notices
            import nsgt
            import nsgt.nsgfwin_sl as windows
    except ImportError as error:
        raise UserError(
            "the reference package nsgt is not installed; run "
            "`.venv/bin/pip install wheel && .venv/bin/pip install --no-build-isolation nsgt==0.19`"
        ) from error
    saved = windows.np
    windows.np = NumpyWithIntegerClip()
    try:
        yield nsgt
    finally:
        windows.np = saved


def _figures(function: Callable[[], object], repeats: int) -> dict[str, Any]:
    return call_figures(function, repeats, None, warmup=1)


def bench_nsgt(
    length: int = 32768,
    sample_rate: int = 22050,
    repeats: int = 20,
    scale: str = "octave",
    fmin: float = 40.0,
    fmax: float = 10000.0,
    bins: int = 24,
) -> dict:
    """Forward and inverse times of ours and of the reference for one signal (``call_figures``, no buffer
    period), and ratios.

    Ours runs on one thread in float32 (and float64, the reference's precision) with the reference's
    frame count, and in float32 with a fast frame count (``fast_length(min_frames, 16)``).
    ``*_speedup`` is the reference's ``wall_ms_mean`` / ours (above 1: ours is faster).
    """
    signal = np.random.default_rng(0).standard_normal(length)
    with one_thread():
        with reference_nsgt_module() as nsgt, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Q-factor too high" for the lowest bands
            ref_scale = {"octave": nsgt.OctScale, "log": nsgt.LogScale, "mel": nsgt.MelScale}[scale]
            reference = nsgt.NSGT(
                ref_scale(fmin, fmax, bins), sample_rate, length, real=True, matrixform=True, reducedform=0
            )
            ref_coefficients = reference.forward(signal)
            result: dict = {
                "length": length,
                "sample_rate": sample_rate,
                "scale": f"{scale}({fmin}, {fmax}, {bins})",
                "repeats": repeats,
                "reference_forward": _figures(lambda: reference.forward(signal), repeats),
                "reference_inverse": _figures(lambda: reference.backward(ref_coefficients), repeats),
            }
        ours_scale = make_scale(scale, fmin, fmax, bins)
        reference_frames = NSGT(length, sample_rate, ours_scale).num_frames
        variants = {
            "float32": (torch.float32, None),
            "float64": (torch.float64, None),
            "float32_fast_frames": (torch.float32, fast_length(reference_frames, 16)),
        }
        with torch.inference_mode():
            for name, (dtype, frames) in variants.items():
                module = torch.jit.script(NSGT(length, sample_rate, ours_scale, frames=frames, dtype=dtype))
                x = torch.from_numpy(signal).to(dtype)[None]
                c = module(x)
                result[f"ours_{name}_bins_frames"] = list(c.shape[-2:])
                for way, call in (
                    ("forward", lambda m=module, x=x: m(x)),
                    ("inverse", lambda m=module, c=c: m.inverse(c)),
                ):
                    figures = result[f"ours_{name}_{way}"] = _figures(call, repeats)
                    result[f"{name}_{way}_speedup"] = (
                        result[f"reference_{way}"]["wall_ms_mean"] / figures["wall_ms_mean"]
                    )
    return result


def bench_transform(out: Path | None = None) -> dict[str, Any]:
    """The TorchScript NSGT against the reference ``nsgt`` package (one thread), printed and written as JSON."""
    results = {"torch_version": torch.__version__, "interleaved_with": INTERLEAVED_WITH, **bench_nsgt()}
    return write_and_print("nsgt", results, out)

"""The matrix-form NSGT: exact inverse, agreement with the reference `nsgt` package, TorchScript, batches."""

import warnings

import numpy as np
import pytest
import torch
from bench_fields import assert_common_fields

from latentlive.bench.nsgt import NumpyWithIntegerClip
from latentlive.models.nsgt import NSGT, LogScale, MelScale, OctaveScale, fast_length, make_scale, mel_to_hz

with warnings.catch_warnings():
    # the reference warns that it falls back to numpy.fft and lacks its optional audio I/O
    warnings.simplefilter("ignore")
    import nsgt as reference
    import nsgt.nsgfwin_sl as reference_windows

LENGTH = 8192
SAMPLE_RATE = 22050
SCALES = {
    "octave": (lambda: OctaveScale(40.0, 10000.0, 12), lambda: reference.OctScale(40.0, 10000.0, 12)),
    "log": (lambda: LogScale(30.0, 10500.0, 80), lambda: reference.LogScale(30.0, 10500.0, 80)),
    "mel": (lambda: MelScale(20.0, 10000.0, 96), lambda: reference.MelScale(20.0, 10000.0, 96)),
}


@pytest.fixture
def reference_nsgt(monkeypatch):
    """Builds the reference matrix-form NSGT for a scale kind, with the numpy fix patched in."""
    monkeypatch.setattr(reference_windows, "np", NumpyWithIntegerClip())

    def build(kind: str, length: int = LENGTH):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Q-factor too high" for the lowest bands
            return reference.NSGT(
                SCALES[kind][1](), SAMPLE_RATE, length, real=True, matrixform=True, reducedform=0
            )

    return build


def _noise(shape, dtype=torch.float32, seed=0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


@pytest.mark.parametrize("kind", sorted(SCALES))
def test_scale_frequencies_and_q_match_reference(kind):
    frequencies, q = SCALES[kind][0]()()
    ref_frequencies, ref_q = SCALES[kind][1]()()
    np.testing.assert_allclose(frequencies.numpy(), ref_frequencies, rtol=1e-12)
    np.testing.assert_array_less(np.abs(q.numpy() - ref_q), _q_tolerance(SCALES[kind][0](), ref_q))


def _q_tolerance(scale, q: np.ndarray, ulps: float = 4.0) -> np.ndarray:
    """Per band, how far two float64 implementations of the same Q may differ.

    Mel Q factors come from a central difference f(b + h) - f(b - h) with h = 1e-8 band, which cancels
    about eight digits: an error of `ulps` units in the last place of each frequency (libm's pow against
    numpy's) is divided by that difference. Scales with a closed-form Q get a plain relative 1e-12.
    """
    if not isinstance(scale, MelScale):
        return 1e-12 * np.abs(q)
    h = 1e-8
    tolerance = []
    for b in range(scale.bands):
        upper, lower = (mel_to_hz(scale.mel_min + (b + s) * scale.mel_step) for s in (h, -h))
        # each frequency is 700 * (10 ** x - 1): its rounding error scales with 700 * 10 ** x = f + 700
        spread = 2 * ulps * np.finfo(np.float64).eps * (upper + 700.0)
        tolerance.append(q[b] * spread / (upper - lower))
    return np.array(tolerance)


@pytest.mark.parametrize("kind", sorted(SCALES))
def test_coefficients_match_reference(kind, reference_nsgt):
    ref = reference_nsgt(kind)
    x = _noise(LENGTH, torch.float64, seed=1)
    expected = np.array(ref.forward(x.numpy()))
    for dtype, tolerance in ((torch.float32, 1e-4), (torch.float64, 1e-10)):
        coefficients = NSGT(LENGTH, SAMPLE_RATE, SCALES[kind][0](), dtype=dtype)(x.to(dtype)).numpy()
        assert coefficients.shape == expected.shape
        assert np.abs(coefficients - expected).max() / np.abs(expected).max() < tolerance


@pytest.mark.parametrize("kind", sorted(SCALES))
def test_inverse_of_reference_coefficients_gives_the_signal(kind, reference_nsgt):
    x = _noise(LENGTH, torch.float64, seed=2)
    expected = torch.from_numpy(np.array(reference_nsgt(kind).forward(x.numpy())))
    nsgt = NSGT(LENGTH, SAMPLE_RATE, SCALES[kind][0](), dtype=torch.float64)
    assert (nsgt.inverse(expected) - x).abs().max() < 1e-10


@pytest.mark.parametrize("kind", sorted(SCALES))
def test_round_trip_float32_noise_is_exact(kind):
    nsgt = NSGT(16384, SAMPLE_RATE, SCALES[kind][0]())
    x = _noise((3, 16384), seed=3)
    y = nsgt.inverse(nsgt(x))
    assert y.dtype == torch.float32
    assert (y - x).abs().max() < 1e-5


@pytest.mark.parametrize("length", [4096, 5001])
def test_round_trip_float64_is_exact_for_even_and_odd_lengths(length):
    nsgt = NSGT(length, SAMPLE_RATE, make_scale("octave", 50.0, 9000.0, 6), dtype=torch.float64)
    x = _noise((2, length), torch.float64, seed=4)
    assert (nsgt.inverse(nsgt(x)) - x).abs().max() < 1e-12


def test_scripted_module_matches_eager():
    nsgt = NSGT(4096, SAMPLE_RATE, OctaveScale(50.0, 10000.0, 6))
    scripted = torch.jit.script(nsgt)
    x = _noise((2, 4096), seed=5)
    c = nsgt(x)
    assert torch.equal(scripted(x), c)
    assert torch.equal(scripted.inverse(c), nsgt.inverse(c))
    assert torch.equal(scripted.log_magnitude(x), nsgt.log_magnitude(x))
    assert torch.equal(scripted.griffin_lim(c.abs(), 3), nsgt.griffin_lim(c.abs(), 3))


def test_batches_of_any_leading_shape_transform_each_signal_alone():
    nsgt = NSGT(4096, SAMPLE_RATE, LogScale(40.0, 10000.0, 40))
    x = _noise((2, 3, 4096), seed=6)
    c = nsgt(x)
    assert c.shape == (2, 3, nsgt.num_bins, nsgt.num_frames) and c.is_complex()
    assert torch.allclose(c[1, 2], nsgt(x[1, 2]), atol=1e-6)
    assert nsgt(x[0, 0]).shape == (nsgt.num_bins, nsgt.num_frames)
    assert nsgt.inverse(c).shape == x.shape
    assert nsgt.magnitude(x).shape == c.shape and nsgt.frequencies.shape == (nsgt.num_bins,)


def test_denser_frames_sample_the_same_transform():
    scale = OctaveScale(40.0, 10000.0, 12)
    nsgt = NSGT(LENGTH, SAMPLE_RATE, scale, dtype=torch.float64)
    dense = NSGT(LENGTH, SAMPLE_RATE, scale, frames=2 * nsgt.num_frames, dtype=torch.float64)
    x = _noise((1, LENGTH), torch.float64, seed=7)
    c = nsgt(x)
    assert (dense(x)[..., ::2] - c).abs().max() / c.abs().max() < 1e-12
    fast = NSGT(LENGTH, SAMPLE_RATE, scale, frames=fast_length(nsgt.min_frames, 16))
    assert fast.num_frames % 16 == 0
    assert (fast.inverse(fast(x.float())) - x.float()).abs().max() < 1e-5


def test_fast_length_is_smallest_5_smooth_multiple():
    assert fast_length(1523) == 1536
    assert fast_length(1537, 16) == 1600
    assert fast_length(1024) == 1024
    with pytest.raises(ValueError, match="multiple_of"):
        fast_length(1523, 7)


def test_griffin_lim_finds_a_signal_with_the_given_magnitude():
    nsgt = NSGT(4096, SAMPLE_RATE, OctaveScale(50.0, 10000.0, 12))
    t = torch.arange(4096) / SAMPLE_RATE
    x = (torch.sin(2 * torch.pi * 220.0 * t) * torch.exp(-t * 20.0))[None]
    target = nsgt.magnitude(x)

    def inconsistency(signal: torch.Tensor) -> float:
        return float((nsgt.magnitude(signal) - target).norm() / target.norm())

    assert inconsistency(nsgt.griffin_lim(target, 32)) < 0.5 * inconsistency(nsgt.griffin_lim(target, 0))


def test_bad_settings_raise_clear_errors():
    nsgt = NSGT(4096, SAMPLE_RATE, OctaveScale(50.0, 10000.0, 6))
    with pytest.raises(ValueError, match="expected 4096 samples"):
        nsgt(torch.zeros(1, 4000))
    with pytest.raises(ValueError, match="widest window"):
        NSGT(4096, SAMPLE_RATE, OctaveScale(50.0, 10000.0, 6), frames=nsgt.min_frames - 1)
    with pytest.raises(ValueError, match="between 0 and Nyquist"):
        NSGT(4096, SAMPLE_RATE, LogScale(12000.0, 20000.0, 10))
    with pytest.raises(ValueError, match="unknown"):
        make_scale("bark", 50.0, 10000.0, 6)


def test_bench_reports_times_and_ratios_for_both_implementations():
    from latentlive.bench.nsgt import bench_nsgt

    report = bench_nsgt(length=4096, repeats=1, bins=6)
    assert assert_common_fields(report) == 2 + 3 * 2  # forward and inverse of the reference and of ours x3
    for name in ("float32", "float64", "float32_fast_frames"):
        ours, reference = report[f"ours_{name}_inverse"], report["reference_inverse"]
        assert report[f"{name}_inverse_speedup"] == pytest.approx(
            reference["wall_ms_mean"] / ours["wall_ms_mean"]
        )
    assert report["ours_float32_bins_frames"][0] > 2

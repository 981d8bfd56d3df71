"""RAVE v2_small as `latentlive bench techno` builds it to judge the low-latency setting (issue #17): its PQMF
bank splits and rebuilds audio, its streamed paths match their offline output, and its forward answers later
than its decode (the encoder adds its own delay), as RAVE's does."""

import math

import pytest
import torch

from latentlive.bench.rave_v2_small import RATIO, RaveV2Small, reset_caches, scripted_rave_v2_small
from latentlive.bench.techno import rave_change_latency
from latentlive.models.pqmf import pqmf_prototype

BUFFER = 2048


@pytest.fixture(scope="module")
def rave() -> torch.jit.ScriptModule:
    return scripted_rave_v2_small()


def _rebuilt(model: torch.nn.Module, audio: torch.Tensor) -> torch.Tensor:
    """``audio`` through the analysis bank then the synthesis bank, one 2048 block per call."""
    blocks = [model.decoder.pqmf(model.encoder.pqmf(block)) for block in audio.split(BUFFER, -1)]
    return torch.cat(blocks, -1)


def unphased_analysis() -> torch.Tensor:
    """The analysis matrix of a broken 16-band bank: every band modulated with the even bands' phase
    (+pi/4), so that the aliasing between neighbouring bands no longer cancels."""
    h = pqmf_prototype(16)
    k = torch.arange(16, dtype=torch.float64).view(-1, 1)
    n = torch.arange(h.shape[-1], dtype=torch.float64) - (h.shape[-1] - 1) // 2
    return (2 * h * torch.cos((2 * k + 1) * math.pi / 32 * n + math.pi / 4)).flip(-1).float()


def test_the_pqmf_banks_rebuild_audio_after_a_fixed_delay() -> None:
    model = RaveV2Small().eval()
    t = torch.arange(8 * BUFFER) / 44100
    noise = 0.1 * torch.randn(t.shape, generator=torch.Generator().manual_seed(0))  # no delay fits it but one
    audio = (0.3 * torch.sin(2 * torch.pi * 440 * t) + 0.2 * torch.sin(2 * torch.pi * 5000 * t) + noise).view(
        1, 1, -1
    )
    with torch.no_grad():
        rebuilt = _rebuilt(model, audio)[0, 0]
        reset_caches(model)
        model.encoder.pqmf.matrix.copy_(unphased_analysis())  # a broken bank: no alternating phases
        broken = _rebuilt(model, audio)[0, 0]

    def best_error(output: torch.Tensor) -> float:
        """Relative error of ``output`` against the input delayed by the best whole delay (up to 2048)."""
        tail = slice(4 * BUFFER, 7 * BUFFER)
        reference = audio[0, 0, tail]
        errors = [
            float((output[tail.start + d : tail.stop + d] - reference).norm() / reference.norm())
            for d in range(0, BUFFER)
        ]
        return min(errors)

    assert best_error(rebuilt) < 0.02  # near-perfect reconstruction, as a 100 dB PQMF promises
    assert best_error(broken) > 0.5


class _NoNoise(torch.nn.Module):
    """The decoder's noise bands silenced: its uniform noise differs with the call's length, the rest not."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], 16, x.shape[-1])


def test_streamed_calls_match_one_offline_call() -> None:
    generator = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(1, 1, 4 * BUFFER, generator=generator)
    latents = torch.randn(1, 128, 4 * BUFFER // RATIO, generator=generator)
    model = RaveV2Small().eval()
    model.decoder.noise = _NoNoise()
    with torch.no_grad():
        for call, x in ((model.forward, audio), (model.decode, latents)):
            reset_caches(model)
            whole = call(x)
            reset_caches(model)
            streamed = torch.cat([call(part) for part in x.split(x.shape[-1] // 4, -1)], -1)
            scale = float(whole.abs().max())
            assert scale > 0
            torch.testing.assert_close(streamed, whole, rtol=1e-4, atol=1e-4 * scale)
            reset_caches(model)
            shuffled = torch.cat([call(part) for part in x.split(x.shape[-1] // 4, -1)[::-1]], -1)
            assert not torch.allclose(shuffled, whole, rtol=1e-4, atol=1e-4 * scale)  # the check can fail


def test_forward_answers_later_than_decode(rave: torch.jit.ScriptModule) -> None:
    with torch.no_grad():
        decode = rave_change_latency(rave, "decode", BUFFER)
        forward = rave_change_latency(rave, "forward", BUFFER)
    assert 0 < decode["half_changed_samples"] < forward["half_changed_samples"]
    assert decode["first_change_samples"] < forward["first_change_samples"]

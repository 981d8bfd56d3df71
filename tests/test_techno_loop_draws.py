"""techno_prior.ts plays its loops as draws from the decoded Gaussian, one per stage-1 frame, not as their mean
(issue #18; export/techno.py ``LoopReader``): the draws repeat with the loop, follow the macros, and the
``frame_temperature`` attribute scales them (0: the mean)."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from test_techno_export import loop_controls
from torch import Tensor

from latentlive.export.host import deliver_host_rate, load_ts, set_attribute
from latentlive.export.metadata import read_metadata
from latentlive.models.resample import LatentRateConverter
from latentlive.models.trajectory_vae import latent_high_band_power

HOST_RATE, BUFFER = 44100, 2048
# A cycle after which every stage of `loop` is back in step at 44.1 kHz from a 16 kHz model with blocks of 128:
# 441 * 256 host samples = 441 host latent frames = 40960 model samples = 320 stage-1 frames.
CYCLE = 441 * 256


@pytest.fixture
def loops(techno_prior_ts: Path) -> Iterator[torch.jit.ScriptModule]:
    """A fresh techno_prior.ts, told 44.1 kHz as its device tells it, at the default frame temperature."""
    module = load_ts(techno_prior_ts)
    deliver_host_rate(module, HOST_RATE)
    yield module


def set_temperature(module: torch.jit.ScriptModule, value: str) -> None:
    """nn~'s ``set frame_temperature VALUE``, then a reset (a fresh stream for the next measurement)."""
    set_attribute(module, "frame_temperature", [value])
    module.reset()


def macros(module: torch.jit.ScriptModule, first: float) -> list[float]:
    return [first] + [0.3] * (int(module.macro_size) - 1)


def trajectory(module: torch.jit.ScriptModule, first: float, frames: int = 441) -> Tensor:
    """``trajectory`` over one loop of ``frames`` host frames (frame ``j`` at phase ``j / frames``)."""
    ratio = int(module.latent_ratio)
    with torch.no_grad():
        return module.trajectory(loop_controls(macros(module, first), torch.arange(frames) / frames, ratio))


def play_loop(module: torch.jit.ScriptModule, cycles: int) -> Tensor:
    """``cycles`` cycles of ``loop`` for fixed macros and a sample-by-sample phase ramp, in nn~ buffers."""
    total = -(-cycles * CYCLE // BUFFER) * BUFFER
    samples = torch.arange(total, dtype=torch.float64)
    x = torch.zeros(1, int(module.macro_size) + 1, total)
    x[0, :-1] = torch.tensor(macros(module, -0.4)).unsqueeze(1)
    x[0, -1] = ((samples % CYCLE) / CYCLE).float()
    with torch.no_grad():
        return torch.cat([module.loop(x[..., i : i + BUFFER]) for i in range(0, total, BUFFER)], dim=-1)


def test_the_loop_repeats_every_cycle_with_its_draws(
    loops: torch.jit.ScriptModule, techno_prior_ts: Path
) -> None:
    metadata = read_metadata(techno_prior_ts)
    assert metadata["sample_rate"] * CYCLE % (HOST_RATE * metadata["ratio"]) == 0  # CYCLE's premise
    drawn = play_loop(loops, 3)[0, 0]
    set_temperature(loops, "0")
    mean = play_loop(loops, 3)[0, 0]
    second, third = drawn[CYCLE : 2 * CYCLE], drawn[2 * CYCLE : 3 * CYCLE]
    torch.testing.assert_close(third, second, atol=1e-5, rtol=0.0)
    # the draws are there (and held): the same cycle of the mean alone differs by far more than that
    assert (second - mean[CYCLE : 2 * CYCLE]).abs().max() > 1e-3


def test_the_draws_repeat_every_cycle_for_a_loop_of_any_length(loops: torch.jit.ScriptModule) -> None:
    frames, ratio = 300.4, int(loops.latent_ratio)  # host frames per loop: no whole number
    total = 3 * round(frames * ratio) // BUFFER * BUFFER
    x = torch.zeros(1, int(loops.macro_size) + 1, total)
    x[0, :-1] = torch.tensor(macros(loops, -0.4)).unsqueeze(1)
    x[0, -1] = ((torch.arange(total, dtype=torch.float64) / (frames * ratio)) % 1.0).float()
    with torch.no_grad():
        drawn = torch.cat([loops.trajectory(x[..., i : i + BUFFER]) for i in range(0, total, BUFFER)], -1)
        set_temperature(loops, "0")
        mean = torch.cat([loops.trajectory(x[..., i : i + BUFFER]) for i in range(0, total, BUFFER)], -1)
    residual = (drawn - mean)[0]  # scale * noise
    first, second = residual[:, 2:298], residual[:, 302:598]  # frames 2..297 of cycles 1 and 2
    # cycle 2's frames sit 0.4 frame earlier in the loop: each still reads the draw nearest to it (one slot per
    # frame of the loop, not per phase), the one its frame read in cycle 1
    alike = max(
        torch.corrcoef(torch.stack([first.flatten(), second.roll(s, 1).flatten()]))[0, 1] for s in (-1, 0, 1)
    )
    assert alike > 0.99


def test_the_draws_put_back_the_high_band_of_the_latents_the_decoder_sees(
    loops: torch.jit.ScriptModule, techno_prior_ts: Path
) -> None:
    metadata = read_metadata(techno_prior_ts)
    # the latents as stage 1 gets them: host frames interpolated to its frame rate, as `decode` does
    to_stage1 = LatentRateConverter(
        HOST_RATE / int(loops.latent_ratio), metadata["sample_rate"] / metadata["ratio"]
    )
    drawn = to_stage1.resample(trajectory(loops, -0.4))
    set_temperature(loops, "0")
    mean = to_stage1.resample(trajectory(loops, -0.4))
    assert drawn.shape[-1] == 320
    assert latent_high_band_power(drawn) > 20.0 * latent_high_band_power(mean)


def test_changing_the_macros_draws_new_noise(loops: torch.jit.ScriptModule) -> None:
    drawn = {first: trajectory(loops, first) for first in (-0.4, 0.6)}
    back = trajectory(loops, -0.4)
    set_temperature(loops, "0")
    residual = {first: z - trajectory(loops, first) for first, z in drawn.items()}  # scale * noise
    a, b = residual[-0.4].flatten(), residual[0.6].flatten()
    assert a.std() > 1e-3 and b.std() > 1e-3
    # held draws under two settings of the macros would correlate closely (the scales are positive)
    assert torch.corrcoef(torch.stack([a, b]))[0, 1].abs() < 0.3
    torch.testing.assert_close(back, drawn[-0.4], atol=0.0, rtol=0.0)  # the draws follow the macros


@pytest.mark.parametrize("bad", ["-1", "nan", "inf", "-inf", "1e30"])
def test_frame_temperature_ignores_a_bad_value(loops: torch.jit.ScriptModule, bad: str) -> None:
    assert loops.get_frame_temperature() == (1.0,)
    drawn = trajectory(loops, -0.4)
    set_temperature(loops, bad)  # no exception reaches nn~, and the last valid value stays
    assert loops.get_frame_temperature() == (1.0,)
    torch.testing.assert_close(trajectory(loops, -0.4), drawn, atol=0.0, rtol=0.0)
    set_temperature(loops, "0")
    assert (trajectory(loops, -0.4) - drawn).abs().max() > 1e-3

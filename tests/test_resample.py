"""Streaming resampling for exported models: quality, streaming == offline, scripting, FIFO, latency."""

import math

import pytest
import torch
from torch import Tensor

from latentlive.models.resample import (
    CountStage,
    LatentRateConverter,
    SampleFifo,
    StreamingResampler,
    block_stage,
    fifo_prime,
)

HOST_RATES = [44100, 48000]
MODEL_RATES = [16000, 22050]
PAIRS = [(m, h) for m in MODEL_RATES for h in HOST_RATES] + [(h, m) for m in MODEL_RATES for h in HOST_RATES]
HOST_BUFFERS = [2**k for k in range(6, 15)]  # 64 .. 16384


def sine(freq: float, rate: float, n: int, delay: float = 0.0) -> Tensor:
    """The analytic ``sin(2 pi freq (k - delay) / rate)`` for ``k < n``: ``[1, 1, n]`` float64."""
    k = torch.arange(n, dtype=torch.float64) - delay
    return torch.sin(2.0 * math.pi * freq * k / rate).view(1, 1, n)


def random_sizes(total: int, high: int, seed: int) -> list[int]:
    """Chunk sizes in ``0 .. high`` (zero-length chunks included) that add up to ``total``."""
    gen = torch.Generator().manual_seed(seed)
    sizes, left = [], total
    while left > 0:
        size = min(left, int(torch.randint(0, high + 1, (1,), generator=gen)))
        sizes.append(size)
        left -= size
    return sizes


def stream(module: torch.nn.Module, x: Tensor, sizes: list[int]) -> Tensor:
    """Feed ``x [B, C, n]`` through a streaming module chunk by chunk and concatenate its outputs."""
    outputs, start = [], 0
    for size in sizes:
        outputs.append(module(x[..., start : start + size]))
        start += size
    return torch.cat(outputs, dim=-1)


# StreamingResampler: ratios, delay, quality


@pytest.mark.parametrize(
    ("rate_in", "rate_out", "up", "down"),
    [(16000, 48000, 3, 1), (16000, 44100, 441, 160), (22050, 44100, 2, 1), (22050, 48000, 320, 147),
     (48000, 16000, 1, 3), (44100, 16000, 160, 441), (44100, 22050, 1, 2), (48000, 22050, 147, 320)],
)  # fmt: skip
def test_ratio_is_reduced_by_gcd(rate_in: int, rate_out: int, up: int, down: int) -> None:
    resampler = StreamingResampler(rate_in, rate_out)
    assert (resampler.up, resampler.down) == (up, down)


@pytest.mark.parametrize(("rate_in", "rate_out"), PAIRS)
def test_delay_is_whole_host_samples(rate_in: int, rate_out: int) -> None:
    resampler = StreamingResampler(rate_in, rate_out)
    host_delay = resampler.delay if rate_out > rate_in else resampler.delay_in
    assert host_delay == int(host_delay) > 0
    assert resampler.delay * rate_in == pytest.approx(resampler.delay_in * rate_out)
    if rate_in % rate_out == 0 or rate_out % rate_in == 0:  # integer ratios: whole at both rates
        assert resampler.delay == int(resampler.delay) and resampler.delay_in == int(resampler.delay_in)


@pytest.mark.parametrize(("rate_in", "rate_out"), PAIRS)
def test_passband_sine_matches_the_analytic_sine_after_the_delay(rate_in: int, rate_out: int) -> None:
    resampler = StreamingResampler(rate_in, rate_out)
    n_in = rate_in // 10
    y = resampler.resample(sine(1000.0, rate_in, n_in).float())
    expected = sine(1000.0, rate_out, y.shape[-1], delay=resampler.delay)
    edge = int(2 * resampler.delay) + 1  # the filter's start-up, where the signal switches on
    assert (y.double() - expected)[..., edge:].abs().max() < 1e-3


@pytest.mark.parametrize(("rate_in", "rate_out"), PAIRS)
def test_tone_near_the_passband_edge_has_no_image_or_alias(rate_in: int, rate_out: int) -> None:
    """At 85 % of the lower Nyquist frequency (passband edge: 90 %) all but the tone is >= 60 dB down."""
    resampler = StreamingResampler(rate_in, rate_out)
    freq = 0.85 * min(rate_in, rate_out) / 2
    y = resampler.resample(sine(freq, rate_in, rate_in // 10).float())
    expected = sine(freq, rate_out, y.shape[-1], delay=resampler.delay)
    edge = int(2 * resampler.delay) + 1
    assert (y.double() - expected)[..., edge:].abs().max() < 1e-3


@pytest.mark.parametrize(("rate_in", "rate_out"), [(h, m) for m in MODEL_RATES for h in HOST_RATES])
def test_downsampling_suppresses_out_of_band_tones_by_60_db(rate_in: int, rate_out: int) -> None:
    resampler = StreamingResampler(rate_in, rate_out)
    nyquist_out = rate_out / 2
    for freq in [12000.0, 1.01 * nyquist_out, 1.3 * nyquist_out, 0.95 * rate_in / 2]:
        y = resampler.resample(sine(freq, rate_in, rate_in // 10).float())
        edge = int(2 * resampler.delay) + 1
        assert y[..., edge:].abs().max() < 1e-3, f"{freq:.0f} Hz"


def test_constant_input_gives_the_same_constant() -> None:
    """Every polyphase branch sums to one, so no ripple at the input rate appears on a constant."""
    for rate_in, rate_out in PAIRS:
        resampler = StreamingResampler(rate_in, rate_out)
        y = resampler.resample(torch.full((1, 1, 4000), 0.5))
        assert (y[..., int(2 * resampler.delay) + 1 :] - 0.5).abs().max() < 1e-6


# StreamingResampler: streaming equals offline


@pytest.mark.parametrize(("rate_in", "rate_out"), PAIRS)
def test_streaming_equals_offline_for_random_chunks(rate_in: int, rate_out: int) -> None:
    gen = torch.Generator().manual_seed(rate_in + rate_out)
    x = torch.randn(2, 3, 2000, generator=gen, dtype=torch.float64)
    resampler = StreamingResampler(rate_in, rate_out)
    for seed, high, length in [(1, 1, 400), (2, 7, 2000), (3, 700, 2000)]:
        offline = resampler.resample(x[..., :length])
        assert offline.shape[-1] == resampler.count_stage()(length)
        resampler.reset()
        streamed = stream(resampler, x, random_sizes(length, high, seed))
        assert streamed.shape == offline.shape
        # float64: the bookkeeping is exact; only the rounding of a matrix product may differ
        assert torch.allclose(streamed, offline, rtol=0.0, atol=1e-12)


def test_streaming_outputs_every_sample_whose_inputs_arrived() -> None:
    resampler = StreamingResampler(16000, 44100)
    x = torch.randn(1, 1, 500)
    total = 0
    for size in random_sizes(500, 9, seed=4):
        produced = resampler(x[..., total : total + size]).shape[-1]
        before = resampler.count_stage()(total)
        total += size
        assert produced == resampler.count_stage()(total) - before
        # output m is due exactly when its newest input, x[m * down // up], has arrived
        m = resampler.count_stage()(total)
        assert m * resampler.down // resampler.up >= total
        assert m == 0 or (m - 1) * resampler.down // resampler.up < total


def test_scripted_resampler_streams_like_offline_in_float32() -> None:
    for rate_in, rate_out in [(16000, 48000), (44100, 16000)]:
        scripted = torch.jit.script(StreamingResampler(rate_in, rate_out))
        x = torch.randn(1, 2, 4000, generator=torch.Generator().manual_seed(5))
        offline = scripted.resample(x)
        streamed = stream(scripted, x, random_sizes(4000, 300, seed=6))
        assert streamed.shape == offline.shape
        assert torch.allclose(streamed, offline, rtol=0.0, atol=1e-5)
        assert scripted.delay == StreamingResampler(rate_in, rate_out).delay


def test_new_batch_shape_and_reset_restart_the_stream() -> None:
    resampler = StreamingResampler(22050, 48000)
    x = torch.randn(4, 1, 700, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    resampler(torch.randn(1, 1, 333, dtype=torch.float64))
    assert torch.allclose(resampler(x), resampler.resample(x), atol=1e-12)  # batch 1 -> 4: fresh state
    resampler.reset()
    assert torch.allclose(resampler(x), resampler.resample(x), atol=1e-12)
    assert resampler(x[..., :0]).shape == (4, 1, 0)


# LatentRateConverter

LATENT_PAIRS = [(187.5, 125.0), (125.0, 187.5), (44100 / 256, 125.0), (125.0, 44100 / 256)]


@pytest.mark.parametrize(("rate_in", "rate_out"), LATENT_PAIRS)
def test_latent_converter_interpolates_ramps_exactly_without_delay(rate_in: float, rate_out: float) -> None:
    converter = LatentRateConverter(rate_in, rate_out)
    assert converter.delay == 0.0
    ramp = 0.3 * torch.arange(300, dtype=torch.float64).view(1, 1, -1) - 7.0
    y = converter.resample(ramp)
    position = torch.arange(y.shape[-1], dtype=torch.float64) * rate_in / rate_out
    assert torch.allclose(y[0, 0], 0.3 * position - 7.0, atol=1e-12)
    assert y.shape[-1] == converter.count_stage()(300)
    assert position[-1] <= 299 < position[-1] + rate_in / rate_out  # every frame it can make, no more


@pytest.mark.parametrize(("rate_in", "rate_out"), LATENT_PAIRS)
def test_latent_converter_streaming_equals_offline(rate_in: float, rate_out: float) -> None:
    x = torch.randn(2, 8, 600, generator=torch.Generator().manual_seed(8))
    converter = LatentRateConverter(rate_in, rate_out)
    scripted = torch.jit.script(LatentRateConverter(rate_in, rate_out))
    offline = converter.resample(x)
    for module, seed, high in [(converter, 9, 1), (converter, 10, 40), (scripted, 11, 5)]:
        module.reset()
        # each output weighs two frames in a matrix product over the call's frames: the product's kernel,
        # chosen by its size, may round that sum of two a float32 ulp apart
        streamed = stream(module, x, random_sizes(600, high, seed))
        torch.testing.assert_close(streamed, offline, rtol=0.0, atol=1e-6)


# SampleFifo


def test_fifo_starts_primed_and_keeps_order() -> None:
    fifo = torch.jit.script(SampleFifo(3))
    fifo.push(torch.arange(1.0, 6.0).view(1, 1, 5))
    assert fifo.available() == 8
    assert fifo.pop(4).flatten().tolist() == [0.0, 0.0, 0.0, 1.0]
    assert fifo.pop_blocks(2).flatten().tolist() == [2.0, 3.0, 4.0, 5.0]
    assert fifo.available() == 0 and fifo.underruns == 0


def test_fifo_underrun_pads_with_zeros_and_is_counted() -> None:
    fifo = SampleFifo(0)
    fifo.push(torch.ones(2, 1, 2))
    assert fifo.pop(3).tolist() == [[[1.0, 1.0, 0.0]]] * 2
    assert fifo.underruns == 1
    fifo.reset()
    assert fifo.underruns == 0 and fifo.available() == 0


def test_fifo_restarts_primed_on_a_new_batch_shape() -> None:
    fifo = SampleFifo(2)
    fifo.push(torch.ones(1, 1, 4))
    fifo.push(torch.ones(4, 2, 1))
    assert fifo.available() == 3
    assert torch.equal(fifo(torch.full((4, 2, 2), 7.0)), torch.tensor([0.0, 0.0]).expand(4, 2, 2))


# The composed chain: host in -> resampler -> FIFO -> model in blocks -> resampler -> primed FIFO -> host out


def chain_prime(host_rate: int, model_rate: int, block: int) -> int:
    down, up = StreamingResampler(host_rate, model_rate), StreamingResampler(model_rate, host_rate)
    return fifo_prime([down.count_stage(), block_stage(block), up.count_stage()], HOST_BUFFERS)


class GainInBlocks(torch.nn.Module):
    """A stand-in model at ``model_rate`` fed whole blocks: host audio in, host audio out, times ``gain``."""

    def __init__(self, host_rate: int, model_rate: int, block: int, gain: float, prime: int) -> None:
        super().__init__()
        self.block = block
        self.gain = gain
        self.down = StreamingResampler(host_rate, model_rate)
        self.model_in = SampleFifo(0)
        self.up = StreamingResampler(model_rate, host_rate)
        self.host_out = SampleFifo(prime)
        self.latency = prime + int(self.down.delay_in) + int(self.up.delay)

    def forward(self, x: Tensor) -> Tensor:
        self.model_in.push(self.down(x))
        blocks = self.model_in.pop_blocks(self.block)
        self.host_out.push(self.up(self.gain * blocks))
        return self.host_out.pop(x.shape[-1])


def three_tones(rate: int, n: int, delay: float = 0.0) -> Tensor:
    """A band-limited test signal: every tone below the 7.2 kHz passband edge at 16 kHz."""
    return sum(
        gain * sine(freq, rate, n, delay) for gain, freq in [(0.4, 300.0), (0.3, 2500.0), (0.2, 6000.0)]
    )


@pytest.mark.parametrize("host_rate", HOST_RATES)
def test_chain_in_blocks_returns_the_input_delayed_by_its_constant_latency(host_rate: int) -> None:
    prime = chain_prime(host_rate, 16000, 128)
    n = host_rate // 4
    x = three_tones(host_rate, n).float()
    for index, buffer in enumerate([2**k for k in range(6, 13)]):  # 64 .. 4096
        chain = GainInBlocks(host_rate, 16000, 128, 0.5, prime)
        if index == 0:
            chain = torch.jit.script(chain)
        y = stream(chain, x[..., : n // buffer * buffer], [buffer] * (n // buffer))
        assert y.shape[-1] == n // buffer * buffer  # exactly one host sample out per host sample in
        assert chain.host_out.underruns == 0
        delayed = three_tones(host_rate, y.shape[-1], delay=chain.latency)
        settled = chain.latency + 400  # past the silence and the filters' start-up
        assert (y.double() - 0.5 * delayed)[..., settled:].abs().max() < 1e-3, f"buffer {buffer}"


def test_fifo_prime_is_the_fewest_zeros_that_avoid_underruns() -> None:
    host_rate, model_rate, block = 48000, 16000, 128
    down, up = StreamingResampler(host_rate, model_rate), StreamingResampler(model_rate, host_rate)
    stages = [down.count_stage(), block_stage(block), up.count_stage()]
    prime = fifo_prime(stages, HOST_BUFFERS)
    worst = next(b for b in HOST_BUFFERS if fifo_prime(stages, [b]) == prime)
    calls = 40  # the chain's period is 384 host samples here, so 40 calls of 64 pass the worst call
    x = torch.randn(1, 1, worst * calls)
    for primed, underrun in [(prime, False), (prime - 1, True)]:
        chain = GainInBlocks(host_rate, model_rate, block, 1.0, primed)
        stream(chain, x, [worst] * calls)
        assert (chain.host_out.underruns > 0) == underrun


class DecodeInFrames(torch.nn.Module):
    """Host latent frames (one per 256 host samples) -> 125 Hz -> a stand-in decoder that holds each frame for
    128 model samples -> host audio, through a FIFO primed with ``prime`` zeros."""

    def __init__(self, host_rate: int, prime: int) -> None:
        super().__init__()
        self.to_model = LatentRateConverter(host_rate / 256, 125.0)
        self.up = StreamingResampler(16000, host_rate)
        self.host_out = SampleFifo(prime)

    def stages(self) -> list[CountStage]:
        return [self.to_model.count_stage(), block_stage(1, 128), self.up.count_stage()]

    def forward(self, frames: Tensor) -> Tensor:
        held = self.to_model(frames).repeat_interleave(128, dim=-1)
        self.host_out.push(self.up(held))
        return self.host_out.pop(256 * frames.shape[-1])


@pytest.mark.parametrize("host_rate", HOST_RATES)
def test_fifo_prime_covers_a_latent_rate_chain(host_rate: int) -> None:
    buffers = [b for b in HOST_BUFFERS if b >= 256]
    prime = fifo_prime(DecodeInFrames(host_rate, 0).stages(), buffers, in_ratio=256)
    worst = next(
        b for b in buffers if fifo_prime(DecodeInFrames(host_rate, 0).stages(), [b], in_ratio=256) == prime
    )
    # fifo_prime looks at two periods of the chain and two calls more (a period: 441 frames at 44.1 kHz,
    # 3 at 48 kHz), so as many calls here meet the worst one
    calls = 2 * (441 if host_rate == 44100 else 3) + 2
    frames = torch.randn(1, 4, calls * (worst // 256))
    for primed, underrun in [(prime, False), (prime - 1, True)]:
        chain = DecodeInFrames(host_rate, primed)
        stream(chain, frames, [worst // 256] * calls)
        assert (chain.host_out.underruns > 0) == underrun


def test_fifo_prime_rejects_a_chain_whose_rate_does_not_match_the_buffers() -> None:
    with pytest.raises(ValueError, match="grow or empty"):
        fifo_prime([CountStage(1, 0, 2)], [256])  # halves the rate but pops as much as it pushes

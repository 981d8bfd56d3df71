"""The stage-1 waveform VAE: shapes, streaming equals offline after the declared delays, TorchScript,
a few training steps; the spectral distance and frame descriptors; the discriminator losses."""

import copy
import io
import math

import cached_conv as cc
import pytest
import torch

from latentlive.models.discriminator import (
    MultiDiscriminator,
    MultiScaleDiscriminator,
    feature_matching_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    split_scores,
)
from latentlive.models.spectral import (
    loudness,
    multiscale_spectral_distance,
    spectral_centroid,
    stft_magnitude,
)
from latentlive.models.waveform_vae import FrameConv1d, WaveformVAE, _valid_conv

SR = 16000
TINY = dict(latent_size=4, capacity=8, strides=(16, 8), dilations=(1, 3))
THREE_STRIDES = dict(latent_size=3, capacity=4, strides=(4, 4, 8), kernel_size=5, dilations=(1, 2))
CAUSAL = dict(TINY, causal=True)
LIGHT_DECODER = dict(TINY, decoder_dilations=(2,))  # the decoder's units differ from the encoder's


def build_pair(**kwargs) -> tuple[WaveformVAE, WaveformVAE]:
    """The offline model and a streaming model with the same weights."""
    torch.manual_seed(0)
    offline = WaveformVAE(**kwargs).eval()
    streaming = WaveformVAE(**kwargs, streaming=True).eval()
    streaming.load_state_dict(offline.state_dict())
    return offline, streaming


def random_chunks(total: int, unit: int, seed: int) -> list[int]:
    """Chunk lengths, multiples of ``unit``, summing to ``total``."""
    generator = torch.Generator().manual_seed(seed)
    sizes, left = [], total
    while left > 0:
        size = min(left, unit * int(torch.randint(1, 7, (1,), generator=generator)))
        sizes.append(size)
        left -= size
    return sizes


def stream(fn, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Apply ``fn`` buffer by buffer along time and join the outputs."""
    return torch.cat([fn(part) for part in x.split(sizes, dim=-1)], dim=-1)


def aligned_error(streamed: torch.Tensor, offline: torch.Tensor, delay: int, warmup: int) -> float:
    """Max |streamed[t + delay] - offline[t]| after the first ``warmup`` samples (the streamed model's
    start differs: its caches hold zeros where the offline model's inner layers see zero padding)."""
    length = offline.shape[-1]
    return (streamed[..., warmup + delay :] - offline[..., warmup : length - delay]).abs().max().item()


def sine(freq: float, length: int, amplitude: float = 1.0) -> torch.Tensor:
    t = torch.arange(length, dtype=torch.float64) / SR
    return (amplitude * torch.sin(2 * math.pi * freq * t)).float()


# --- the model -----------------------------------------------------------------------------------


def test_default_model_is_small_with_ratio_128() -> None:
    model = WaveformVAE()
    assert model.ratio == 128
    assert sum(p.numel() for p in model.parameters()) < 3_000_000
    assert model.roundtrip_delay == model.encode_delay + model.decode_delay
    assert model.encode_delay % model.ratio == 0


@pytest.mark.parametrize("kwargs", [TINY, THREE_STRIDES])
def test_shapes_for_odd_multiples_of_the_ratio(kwargs: dict) -> None:
    model = WaveformVAE(**kwargs).eval()
    frames = 7
    audio = torch.randn(3, 1, frames * model.ratio) * 0.3
    recon, mean, logvar, z = model(audio)
    assert recon.shape == audio.shape
    assert mean.shape == logvar.shape == z.shape == (3, kwargs["latent_size"], frames)
    assert model.decode(torch.randn(2, kwargs["latent_size"], 5)).shape == (2, 1, 5 * model.ratio)


@pytest.mark.parametrize(("kernel", "stride", "dilation"), [(3, 1, 1), (3, 1, 9), (1, 1, 1), (32, 16, 1)])
def test_cpu_convolution_equals_conv1d(kernel: int, stride: int, dilation: int) -> None:
    # accelerators take the conv1d branch: both branches must compute the same thing
    torch.manual_seed(kernel * 100 + dilation)
    x, weight, bias = torch.randn(2, 100, 6), torch.randn(5, 6, kernel), torch.randn(5)
    expected = torch.nn.functional.conv1d(x.transpose(1, 2), weight, bias, stride, 0, dilation)
    # sums of up to 192 products of unit normals in another order: float32 rounding, not a wrong result
    actual = _valid_conv(x, weight, bias, stride, dilation)
    torch.testing.assert_close(actual, expected.transpose(1, 2), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize(("kernel", "stride", "dilation"), [(3, 1, 1), (3, 1, 9), (1, 1, 1), (32, 16, 1)])
@pytest.mark.parametrize("streaming", [False, True], ids=["offline", "streaming"])
@pytest.mark.parametrize("channels_first", [False, True], ids=["frames", "channels_first"])
def test_frame_convolution_equals_conv1d(
    kernel: int, stride: int, dilation: int, streaming: bool, channels_first: bool
) -> None:
    # offline layers unfold, streaming ones copy strided windows for a product with their reordered
    # weights, which must follow a load_state_dict
    torch.manual_seed(kernel * 100 + dilation)
    x, weight, bias = torch.randn(2, 6, 100), torch.randn(5, 6, kernel), torch.randn(5)
    expected = torch.nn.functional.conv1d(x, weight, bias, stride, 0, dilation)
    conv = FrameConv1d(6, 5, kernel, stride, dilation, channels_first, streaming)
    conv.load_state_dict({"weight": weight, "bias": bias})
    frames = x if channels_first else x.transpose(1, 2).reshape(2, 1, 100 * 6)  # [B, 1, T * C]
    actual = conv(frames).view(2, -1, 5).transpose(1, 2)
    # sums of up to 192 products of unit normals in another order: float32 rounding, not a wrong result
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-5)


def test_output_is_bounded_for_far_latents() -> None:
    model = WaveformVAE(**TINY).eval()
    with torch.no_grad():
        audio = model.decode(torch.full((1, 4, 6), 10.0))
    assert torch.isfinite(audio).all() and audio.abs().max() <= 1.0


@pytest.mark.parametrize(
    "kwargs",
    [TINY, THREE_STRIDES, CAUSAL, LIGHT_DECODER],
    ids=["tiny", "three_strides", "causal", "light_decoder"],
)
def test_streaming_equals_offline_after_the_declared_delays(kwargs: dict) -> None:
    offline, streaming = build_pair(**kwargs)
    ratio, frames = offline.ratio, 96
    torch.manual_seed(1)
    audio = torch.randn(2, 1, frames * ratio) * 0.5
    z = torch.randn(2, kwargs["latent_size"], frames)
    warmup = frames // 4  # latent frames
    with torch.no_grad():
        mean = stream(lambda x: streaming.encode(x)[0], audio, random_chunks(audio.shape[-1], ratio, 2))
        assert offline.encode_delay % ratio == 0
        error = aligned_error(mean, offline.encode(audio)[0], offline.encode_delay // ratio, warmup)
        assert error < 1e-4

        streaming.reset()
        decoded = stream(streaming.decode, z, random_chunks(frames, 1, 3))
        expected = offline.decode(z)
        assert aligned_error(decoded, expected, offline.decode_delay, warmup * ratio) < 1e-4
        # exact, not merely close: one sample off is far off
        assert aligned_error(decoded, expected, offline.decode_delay + 1, warmup * ratio) > 1e-3

        streaming.reset()
        roundtrip = stream(
            lambda x: streaming(x, sample=False)[0], audio, random_chunks(audio.shape[-1], ratio, 4)
        )
        expected = offline(audio, sample=False)[0]
        assert aligned_error(roundtrip, expected, offline.roundtrip_delay, 2 * warmup * ratio) < 1e-4


def test_causal_model_has_no_delay() -> None:
    model = WaveformVAE(**CAUSAL)
    assert model.encode_delay == model.decode_delay == model.roundtrip_delay == 0


def test_streaming_batches_up_to_64_match_offline() -> None:
    offline, streaming = build_pair(**TINY)
    z = torch.randn(cc.MAX_BATCH_SIZE, 4, 24)
    with torch.no_grad():
        decoded = stream(streaming.decode, z, [8, 8, 8])
        expected = offline.decode(z)
    assert decoded.shape == expected.shape
    assert aligned_error(decoded, expected, offline.decode_delay, 8 * offline.ratio) < 1e-4


def test_streaming_model_scripts_and_matches_eager() -> None:
    _, streaming = build_pair(**TINY)
    eager = copy.deepcopy(streaming)  # scripting shares tensors (the caches too) with the module
    scripted = torch.jit.script(streaming)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    assert loaded.decode_delay == eager.decode_delay and loaded.ratio == 128
    torch.manual_seed(5)
    with torch.no_grad():
        for frames in (5, 6, 1):
            audio = torch.randn(2, 1, frames * 128) * 0.3
            z = torch.randn(2, 4, frames)
            torch.testing.assert_close(loaded.encode(audio)[0], eager.encode(audio)[0])
            torch.testing.assert_close(loaded.decode(z), eager.decode(z))
            torch.testing.assert_close(loaded.forward(audio, False)[0], eager(audio, sample=False)[0])


def test_reset_restarts_the_stream_in_the_scripted_model() -> None:
    _, streaming = build_pair(**TINY)
    scripted = torch.jit.script(streaming)
    z = torch.randn(1, 4, 6)
    with torch.no_grad():
        first = scripted.decode(z)
        scripted.decode(torch.randn(1, 4, 6))
        assert not torch.allclose(scripted.decode(z), first)  # the caches carry the stream
        scripted.reset()
        torch.testing.assert_close(scripted.decode(z), first)


def test_a_few_steps_lower_the_spectral_distance_on_one_clip() -> None:
    torch.manual_seed(0)
    model = WaveformVAE(**TINY)
    clip = (sine(220.0, 4096, 0.4) + sine(1250.0, 4096, 0.2))[None, None]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    scales = (512, 256, 128)

    def distance() -> torch.Tensor:
        return multiscale_spectral_distance(model(clip, sample=False)[0], clip, scales=scales)

    with torch.no_grad():
        before = distance().item()
    for _ in range(25):
        optimizer.zero_grad()
        loss = distance()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = distance().item()
    assert after < 0.8 * before


# --- spectral distance and descriptors -------------------------------------------------------------


def test_spectral_distance_is_zero_for_equal_signals() -> None:
    x = torch.randn(2, 1, 4096)
    assert multiscale_spectral_distance(x, x.clone()).item() < 1e-6


def test_spectral_distance_is_roughly_symmetric() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(2, 4096), torch.randn(2, 4096) * 0.5
    forward, backward = multiscale_spectral_distance(x, y).item(), multiscale_spectral_distance(y, x).item()
    assert forward > 0 and 0.5 < forward / backward < 2.0


def test_spectral_distance_prefers_a_scaled_sine_to_a_detuned_one() -> None:
    target = sine(440.0, 8192)[None]
    scaled = 0.9 * target
    detuned = sine(470.0, 8192)[None]
    assert multiscale_spectral_distance(detuned, target) > 3 * multiscale_spectral_distance(scaled, target)


def test_stft_magnitude_shape_and_peak() -> None:
    magnitude = stft_magnitude(sine(1000.0, 4096)[None, None], 512, 128)
    assert magnitude.shape == (1, 257, 4096 // 128 + 1)
    assert magnitude[0, :, 10].argmax().item() == 32  # 1000 Hz / (16000 Hz / 512)


def test_loudness_of_a_sine_and_of_silence() -> None:
    audio = torch.stack([sine(500.0, 4096, 0.5), torch.zeros(4096)])  # 16 whole periods per 512 frame
    level = loudness(audio, frame=512, hop=128)
    assert level.shape == (2, 1 + (4096 - 512) // 128)
    expected = 20 * math.log10(0.5 / math.sqrt(2))  # -9.03 dB
    assert torch.allclose(level[0], torch.full_like(level[0], expected), atol=1e-3)
    assert torch.all(level[1] == -100.0)


def test_spectral_centroid_of_sines_and_silence() -> None:
    audio = torch.stack([sine(1000.0, 8192), sine(1000.0, 8192) + sine(3000.0, 8192), torch.zeros(8192)])
    centroid = spectral_centroid(audio[:, None], SR, n_fft=1024, hop=256)
    assert centroid.shape == (3, 1 + (8192 - 1024) // 256)
    assert torch.allclose(centroid[0], torch.full_like(centroid[0], 1000.0), rtol=0.03)
    assert torch.allclose(centroid[1], torch.full_like(centroid[1], 2000.0), rtol=0.03)
    assert torch.all(centroid[2] == 0.0)


# --- discriminator and adversarial losses ----------------------------------------------------------


def test_discriminator_returns_feature_lists_with_the_score_last() -> None:
    discriminator = MultiDiscriminator(scales=(1, 2, 4), periods=(2, 3), capacity=4, layers=2)
    outputs = discriminator(torch.randn(2, 1, 2048))
    assert len(outputs) == 5
    features, scores = split_scores(outputs)
    assert all(score.shape[:2] == (2, 1) for score in scores)
    # scale: input conv + 2 strided + final conv; period: 2 strided + final conv; then the score
    assert [len(maps) for maps in features] == [4, 4, 4, 3, 3]
    loss = hinge_generator_loss(scores) + feature_matching_loss(features, features)
    loss.backward()
    assert all(p.grad is not None for p in discriminator.parameters())


def test_multiscale_discriminator_pools_by_powers_of_two() -> None:
    discriminator = MultiScaleDiscriminator(scales=3, capacity=4, layers=2)
    assert discriminator.scales == (1, 2, 4)
    scores = split_scores(discriminator(torch.randn(1, 1, 4096)))[1]
    assert [score.shape[-1] for score in scores] == [4096 // 16, 2048 // 16, 1024 // 16]


def test_hinge_losses_against_hand_computed_values() -> None:
    real = [torch.tensor([0.5, 2.0]), torch.tensor([[1.0, -1.0]])]
    fake = [torch.tensor([-2.0, 0.0]), torch.tensor([[0.5, -3.0]])]
    # d1: mean(0.5, 0) + mean(0, 1) = 0.75; d2: mean(0, 2) + mean(1.5, 0) = 1.75
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx(2.5)
    # -mean(fake): 1.0 and 1.25
    assert hinge_generator_loss(fake).item() == pytest.approx(2.25)


def test_feature_matching_is_zero_for_identical_features_and_relative_otherwise() -> None:
    real = [[torch.tensor([1.0, -1.0]), torch.tensor([2.0, 2.0])], [torch.tensor([4.0])]]
    assert feature_matching_loss(real, copy.deepcopy(real)).item() == 0.0
    fake = [[torch.zeros(2), torch.tensor([2.0, 2.0])], [torch.tensor([2.0])]]
    # d1: mean(1 / 1, 0 / 2) = 0.5; d2: 2 / 4 = 0.5
    assert feature_matching_loss(real, fake).item() == pytest.approx(1.0, rel=1e-5)

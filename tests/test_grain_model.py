"""The grain VAE and the granular engine: shapes, the Gaussian output, scripting, learning, scheduling,
spray, transposition, streaming tails, level bounds and offline overlap-add."""

import math

import gin
import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from latentlive.models.grain_vae import GrainDecoder, GrainVAE, playing_decoder, strided_conv, transposed_conv
from latentlive.models.granular import GranularEngine
from latentlive.models.spectral import multiscale_spectral_distance
from latentlive.models.vae import gaussian_nll, kl_standard_normal

RATE = 22050


@pytest.fixture(autouse=True)
def _no_gin_bindings() -> None:
    """GrainVAE is gin-configurable: bindings parsed by other tests (tiny configs) must not size these models."""
    gin.clear_config()


def tiny_vae(grain_size: int = 1024, latent_size: int = 8) -> GrainVAE:
    return GrainVAE(grain_size=grain_size, latent_size=latent_size, channels=(4, 8, 8, 16))


class FixedGrain(nn.Module):
    """A decoder stub: every latent decodes to the same grain ``[G]``; eager calls record the latents."""

    def __init__(self, grain: Tensor) -> None:
        super().__init__()
        self.register_buffer("grain", grain)
        self.latents: list[Tensor] = []

    @torch.jit.export
    def decode_mean(self, z: Tensor) -> Tensor:
        if not torch.jit.is_scripting():
            self.latents.append(z.detach().clone())
        return self.grain.expand(z.shape[0], 1, -1)


def sine_grain(freq: float, size: int = 1024) -> Tensor:
    t = torch.arange(size, dtype=torch.float32) / RATE
    return torch.sin(2 * math.pi * freq * t) * torch.hann_window(size)


def engine_with(decoder: nn.Module, latent_size: int = 4, **settings: float) -> GranularEngine:
    """An engine with ``settings``; synchronous (jitter 0) unless they say otherwise, so that onsets are known."""
    engine = GranularEngine(decoder, grain_size=1024, sample_rate=RATE, latent_size=latent_size)
    for name, value in {"jitter": 0.0, **settings}.items():
        setattr(engine, name, value)
    return engine


def run_in_chunks(engine: nn.Module, path: Tensor, frame_hop: int, chunks: list[int]) -> Tensor:
    """Feed ``path [B, D, frames]`` in chunks of samples (multiples of ``frame_hop``) -> ``[B, 1, sum]``."""
    outputs, start = [], 0
    for size in chunks:
        frames = path[:, :, start // frame_hop : (start + size) // frame_hop]
        outputs.append(engine(frames, frame_hop, size))
        start += size
    return torch.cat(outputs, -1)


@pytest.mark.parametrize("grain_size", [1024, 2048])
def test_shapes_for_both_grain_sizes(grain_size: int) -> None:
    model = tiny_vae(grain_size, latent_size=12)
    grains = torch.randn(3, 1, grain_size) * 0.3
    mu, logvar = model.encode(grains)
    assert mu.shape == logvar.shape == (3, 12)
    mean, logscale = model.decode(mu)
    assert mean.shape == logscale.shape == (3, 1, grain_size)
    outputs = model(grains)
    assert [tuple(o.shape) for o in outputs] == [(3, 1, grain_size)] * 2 + [(3, 12)] * 3
    assert model.decode_mean(mu).shape == (3, 1, grain_size)


def test_default_model_builds_for_both_grain_sizes() -> None:
    for grain_size in (1024, 2048):
        model = GrainVAE(grain_size=grain_size)
        assert model.decode(torch.zeros(2, 16))[0].shape == (2, 1, grain_size)
    with pytest.raises(ValueError, match="multiple"):
        GrainVAE(grain_size=1000)


def test_time_major_convolutions_equal_torch_convolutions() -> None:
    torch.manual_seed(0)
    for kernel, stride in [(8, 4), (4, 4), (12, 4), (6, 2)]:
        x = torch.randn(3, 5, 16)
        up_weight, down_weight, bias = torch.randn(5, 7, kernel), torch.randn(7, 5, kernel), torch.randn(7)
        pad = (kernel - stride) // 2
        up = transposed_conv(x.transpose(1, 2), up_weight, bias, stride).transpose(1, 2)
        assert torch.allclose(up, F.conv_transpose1d(x, up_weight, bias, stride, pad), atol=1e-5)
        down = strided_conv(x.transpose(1, 2), down_weight, bias, stride).transpose(1, 2)
        assert torch.allclose(down, F.conv1d(x, down_weight, bias, stride, pad), atol=1e-5)


def test_gaussian_output_is_floored_and_bounded() -> None:
    model = tiny_vae()
    with torch.no_grad():
        model.scale.bias.fill_(-1e4)  # drive the raw log-scale far below the floor
    mean, logscale = model.decode(torch.randn(4, 8) * 10.0)
    assert logscale.min().item() >= model.min_logscale - 1e-6
    assert logscale.min().item() < model.min_logscale + 1e-3
    assert mean.abs().max().item() <= 1.0


def test_the_scale_does_not_shape_the_code() -> None:
    model = tiny_vae()
    _, logscale, _, mu, _ = model(torch.randn(2, 1, 1024))
    logscale.sum().backward()
    assert model.scale.weight.grad is not None and model.scale.weight.grad.abs().sum() > 0
    assert all(p.grad is None or not p.grad.any() for p in model.encoder.parameters())
    assert all(p.grad is None or not p.grad.any() for p in model.decoder.parameters())


def test_scripted_modules_equal_eager() -> None:
    torch.manual_seed(1)
    model = tiny_vae().eval()
    scripted = torch.jit.script(model)
    grains, z = torch.randn(2, 1, 1024), torch.randn(2, 8)
    for eager_out, script_out in zip(model.encode(grains), scripted.encode(grains), strict=True):
        assert torch.allclose(eager_out, script_out, atol=1e-6)
    for eager_out, script_out in zip(model.decode(z), scripted.decode(z), strict=True):
        assert torch.allclose(eager_out, script_out, atol=1e-6)
    assert torch.allclose(model.decode_mean(z), model.decode(z)[0], atol=1e-6)

    engine = engine_with(tiny_vae().eval(), latent_size=8, density=70.0, jitter=0.5, spray=0.3, transpose=3.0)
    script_engine = torch.jit.script(engine_with(engine.decoder, latent_size=8))
    for name in ("density", "jitter", "spray", "transpose"):
        setattr(script_engine, name, getattr(engine, name))
    path = torch.randn(2, 8, 8)
    with torch.no_grad():
        torch.manual_seed(2)
        eager_audio = engine(path, 256, 2048)
        torch.manual_seed(2)
        script_audio = script_engine(path, 256, 2048)
    assert eager_audio.shape == (2, 1, 2048)
    assert torch.allclose(eager_audio, script_audio, atol=1e-6)


@pytest.mark.parametrize(
    "settings",
    [{}, {"grain_size": 2048}, {"decoder_channels": (8, 4, 8, 4)}, {"kernel_size": 12}, {"kernel_size": 4}],
)
def test_the_playing_decoder_decodes_the_same_grains(settings: dict) -> None:
    torch.manual_seed(9)
    model = GrainVAE(**{"latent_size": 8, "channels": (4, 8, 8, 16), **settings}).eval()
    decoder = torch.jit.script(GrainDecoder(model))
    for count in (1, 5):
        z = 3.0 * torch.randn(count, 8)
        with torch.no_grad():
            torch.testing.assert_close(decoder.decode_mean(z), model.decode_mean(z), atol=1e-6, rtol=0.0)
    assert isinstance(playing_decoder(model), GrainDecoder)


def test_a_model_that_decodes_its_own_way_plays_itself() -> None:
    class Own(GrainVAE):
        def decode_mean(self, z: Tensor) -> Tensor:
            return torch.zeros(z.shape[0], 1, self.grain_size)

    model = Own(channels=(4, 8))
    assert playing_decoder(model) is model


def test_decoder_channels_size_the_decoder_alone() -> None:
    model = GrainVAE(latent_size=8, channels=(16, 32, 64, 128), decoder_channels=(4, 8, 8, 16))
    assert [conv.out_channels for conv in model.encoder] == [16, 32, 64, 128]
    assert [conv.in_channels for conv in model.decoder] == [16, 8, 8, 4]
    assert model.decode_mean(torch.randn(2, 8)).shape == (2, 1, 1024)
    with pytest.raises(ValueError, match="one width per scale"):
        GrainVAE(channels=(4, 8), decoder_channels=(4,))


def test_a_few_steps_lower_the_loss_on_a_few_grains() -> None:
    torch.manual_seed(3)
    model = tiny_vae()
    grains = torch.stack([sine_grain(f) for f in (220.0, 440.0, 880.0, 1760.0)])[:, None] * 0.8
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss_now() -> Tensor:
        mean, logscale, _, mu, logvar = model(grains)
        nll = gaussian_nll(mean, logscale, grains).mean() / grains.shape[-1]
        spectral = multiscale_spectral_distance(mean, grains, scales=(512, 256, 128))
        return nll + spectral + 1e-3 * kl_standard_normal(mu, logvar).mean()

    torch.manual_seed(4)
    first = loss_now().item()
    for _ in range(40):
        optimizer.zero_grad()
        loss_now().backward()
        optimizer.step()
    torch.manual_seed(4)
    assert loss_now().item() < first - 0.1


def test_sync_onsets_match_density_exactly() -> None:
    decoder = FixedGrain(sine_grain(440.0))
    engine = engine_with(decoder, density=40.0)
    with torch.no_grad():
        run_in_chunks(engine, torch.zeros(1, 4, 300), 256, [1024] * 64 + [512])  # 66048 samples
    grains = sum(z.shape[0] for z in decoder.latents)
    assert grains == math.ceil(66048 / (RATE / 40.0))  # onsets at 0, 551.25, ... below 66048: 120


def test_async_onsets_match_density_on_average() -> None:
    torch.manual_seed(5)
    decoder = FixedGrain(sine_grain(440.0))
    engine = engine_with(decoder, density=60.0, jitter=1.0)
    with torch.no_grad():
        run_in_chunks(engine, torch.zeros(1, 4, 2000), 256, [2048] * 108)  # 10.03 s
    grains = sum(z.shape[0] for z in decoder.latents)
    expected = 60.0 * 2048 * 108 / RATE
    assert abs(grains - expected) < 0.1 * expected
    per_call = [
        z.shape[0] for z in decoder.latents
    ]  # sync would give 5 or 6 grains per call, jitter varies more
    assert max(per_call) - min(per_call) > 2


def test_jittered_onsets_do_not_depend_on_the_split_into_calls_and_repeat_after_a_reset() -> None:
    engine = engine_with(FixedGrain(sine_grain(440.0)), density=100.0, jitter=1.0)
    audios = []
    for chunks in ([1024] * 64, [256] * 200 + [14336], [65536]):
        engine.reset()
        with torch.no_grad():
            audios.append(run_in_chunks(engine, torch.zeros(1, 4, 256), 256, chunks))
    assert audios[0].shape[-1] == 65536 and audios[0].abs().max() > 0
    for other in audios[1:]:
        torch.testing.assert_close(other, audios[0], atol=1e-6, rtol=0.0)
    # another seed of the jitter's generator draws other intervals
    engine.jitter_seed = 7
    engine.reset()
    with torch.no_grad():
        assert not torch.allclose(run_in_chunks(engine, torch.zeros(1, 4, 256), 256, [65536]), audios[0])


def test_default_settings_are_a_cloud_of_grains_at_random_intervals() -> None:
    engine = GranularEngine(FixedGrain(sine_grain(440.0)), 1024, RATE, 4)
    assert engine.jitter == 1.0 and engine.density == 100.0 and engine.spray == 0.0
    gaps = []
    for _ in range(40):
        onsets = engine._onsets(2048)
        gaps += [b - a for a, b in zip(onsets[:-1], onsets[1:], strict=True)]
    # intervals uniform in [0, 2 / density]: spread over most of that range, their mean the interval
    interval = RATE / 100.0
    assert min(gaps) < 0.2 * interval and max(gaps) > 1.8 * interval
    assert abs(sum(gaps) / len(gaps) - interval) < 0.15 * interval


def test_spray_zero_keeps_the_path_and_spray_adds_noise_of_that_std() -> None:
    path = torch.full((2, 4, 16), 0.5)
    still = FixedGrain(sine_grain(440.0))
    with torch.no_grad():
        engine_with(still, density=200.0)(path, 256, 4096)
    latents = torch.cat(still.latents)
    assert torch.equal(latents, torch.full_like(latents, 0.5))

    torch.manual_seed(6)
    sprayed = FixedGrain(sine_grain(440.0))
    with torch.no_grad():
        engine_with(sprayed, density=200.0, spray=0.7)(path, 256, 4096 * 8)
    noise = torch.cat(sprayed.latents) - 0.5
    assert noise.shape[0] > 200
    assert abs(noise.std().item() - 0.7) < 0.07 and abs(noise.mean().item()) < 0.07


class CountingDecoder(nn.Module):
    """Decodes with ``model`` and counts the latents it was given."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.decoded = 0

    def decode_mean(self, z: Tensor) -> Tensor:
        self.decoded += z.shape[0]
        return self.model.decode_mean(z)


@pytest.mark.parametrize(
    "settings",
    [
        {"density": 200.0},
        {"density": 150.0, "jitter": 0.7},
        {"density": 300.0, "transpose": -5.0, "grain_length": 0.6},
        {"density": 200.0, "spray": 0.5},
    ],
)
def test_grains_that_share_a_frame_are_decoded_once_and_sound_the_same(settings: dict) -> None:
    torch.manual_seed(10)
    path = torch.randn(2, 8, 24)
    model = tiny_vae().eval()
    outputs, decoded = [], []
    for share in (False, True):
        counting = CountingDecoder(model)
        engine = GranularEngine(counting, 1024, RATE, 8, share_frames=share)
        for name, value in settings.items():
            setattr(engine, name, value)
        torch.manual_seed(11)
        with torch.no_grad():
            outputs.append(run_in_chunks(engine, path, 256, [2048, 1024, 3072]))
        decoded.append(counting.decoded)
    torch.testing.assert_close(outputs[1], outputs[0], atol=1e-6, rtol=0.0)
    if settings.get("spray", 0.0) > 0.0:  # every grain has its own latent
        assert decoded[1] == decoded[0]
    else:  # at most once per frame (of each path of the batch)
        assert decoded[1] <= 2 * 24 < decoded[0]


def test_knob_axes_map_the_path_to_latents() -> None:
    decoder = FixedGrain(sine_grain(440.0))
    engine = engine_with(decoder, latent_size=2, density=40.0)
    engine.set_knob_axes(
        torch.tensor([1.0, -1.0]), torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([2.0, 3.0])
    )
    with torch.no_grad():
        engine(torch.tensor([[[1.0], [1.0]]]), 256, 256)
    assert torch.allclose(decoder.latents[0], torch.tensor([[1.0 + 3.0, -1.0 + 2.0]]))


@pytest.mark.parametrize(
    "semitones, expected_hz", [(0.0, 1000.0), (12.0, 2000.0), (-12.0, 500.0), (7.0, 1498.3)]
)
def test_transpose_shifts_the_frequency_of_a_sine_grain(semitones: float, expected_hz: float) -> None:
    engine = engine_with(FixedGrain(sine_grain(1000.0)), density=1.0, transpose=semitones)
    with torch.no_grad():
        audio = engine(torch.zeros(1, 4, 32), 256, 8192)[0, 0]  # one grain, at sample 0
    spectrum = torch.fft.rfft(audio * torch.hann_window(8192), n=65536).abs()
    peak_hz = spectrum.argmax().item() * RATE / 65536
    assert abs(peak_hz - expected_hz) < 0.01 * expected_hz


def test_grain_length_shortens_the_grain() -> None:
    for length, expected in [(1.0, 1024), (0.5, 512), (0.1, 102)]:
        engine = engine_with(FixedGrain(torch.ones(1024)), density=1.0, grain_length=length)
        with torch.no_grad():
            audio = engine(torch.zeros(1, 4, 8), 256, 2048)[0, 0]
        assert abs(int((audio.abs() > 0).sum()) - expected) <= 2


def test_tails_carry_across_calls() -> None:
    torch.manual_seed(7)
    settings = dict(density=90.0, grain_length=0.7, transpose=-5.0)
    path = torch.randn(2, 8, 40)
    decoder = tiny_vae().eval()
    with torch.no_grad():
        whole = engine_with(decoder, latent_size=8, **settings)(path, 256, 40 * 256)
        split = run_in_chunks(
            engine_with(decoder, latent_size=8, **settings), path, 256, [256, 1024, 512, 2048, 6400]
        )
    assert whole.abs().max() > 0.01
    assert torch.allclose(whole, split, atol=1e-6)


def test_overlapping_grains_add_up_as_a_plain_overlap_add() -> None:
    grain = sine_grain(440.0)
    engine = engine_with(FixedGrain(grain), density=300.0)  # four grains sound at once
    with torch.no_grad():
        audio = engine(torch.zeros(2, 4, 16), 256, 4096)
    shaped = grain * engine.shape_envelope
    expected = torch.zeros(4096 + 1024)
    for k in range(math.ceil(4096 / (RATE / 300.0))):
        start = math.floor(k * RATE / 300.0)
        expected[start : start + 1024] += shaped
    torch.testing.assert_close(audio, expected[:4096].expand(2, 1, 4096), atol=1e-6, rtol=0.0)


def test_output_stays_bounded_at_density_200() -> None:
    torch.manual_seed(8)
    # the worst case: identical full-scale grains add coherently
    loud = engine_with(FixedGrain(torch.hann_window(1024)), density=200.0)
    with torch.no_grad():
        audio = run_in_chunks(loud, torch.zeros(1, 4, 200), 256, [4096] * 8)
    assert audio[..., 2048:].abs().min() > 0.5  # a dense, sustained cloud ...
    assert audio.abs().max() < 2.0  # ... at a bounded level
    wild = engine_with(
        tiny_vae().eval(), latent_size=8, density=200.0, jitter=1.0, spray=5.0, transpose=-24.0
    )
    with torch.no_grad():
        audio = run_in_chunks(wild, torch.full((4, 8, 200), 10.0), 256, [4096] * 8)
    assert torch.isfinite(audio).all() and audio.abs().max() < 4.0

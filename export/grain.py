"""nn~ wrapper of the grain VAE: a granular instrument (``forward``) and a grain follower (``encode``).

Both methods speak in knob units: the PCA axes of the training codes, in units of their spread (see
``latentlive.training.tasks.grain.principal_axes``), exchanged with nn~ at ``LATENT_RATIO`` host samples per frame.
The model runs at its own rate (22.05 kHz by default) and resamples inside to the host rate (44.1 or
48 kHz, from the ``host_rate`` attribute: ``export.host_rate``), with the same streaming stages as the techno export (``models.resample``):

* ``forward``: host knob frames (rendered on the call they arrive: ``BLOCK_FRAMES`` is 1) -> frames at the
  model's grain hop rate -> ``GranularEngine`` (grains at ``density`` per second, ``jitter``, ``spray``,
  ``grain_length``, ``transpose``) -> resampler -> FIFO;
* ``encode``: host audio -> resampler -> every ``hop`` model samples, the last ``grain_size`` samples,
  windowed as in training, encoded (posterior mean) -> knob units -> host frames -> FIFO.
"""

import math
from typing import Any

import torch
from torch import Tensor, nn

from latentlive.export.host_rate import HostRateModule
from latentlive.export.streams import LATENT_RATIO, AudioIn, AudioOut, LatentOut, finite, guarded
from latentlive.models.grain_vae import GrainDecoder, GrainVAE, playing_decoder
from latentlive.models.granular import DEFAULT_DENSITY, DEFAULT_JITTER, DEFAULT_SPRAY, GranularEngine
from latentlive.models.resample import LatentRateConverter, StreamingResampler, block_stage, fifo_prime

HOST_RATES = (44100, 48000)
# Host knob frames (of LATENT_RATIO samples) per engine call: frames wait until a whole block has come, and
# the FIFO holds a block back, which is part of `latency`. One frame renders every frame on the call it
# arrives: 349 samples (7.3 ms at 48 kHz; a block of 8 frames would pass one 2048 buffer, 2137, and 24
# frames, as before, made it 6233). At buffer 2048 that is one engine call per nn~ call whatever the block
# up to 7 frames, so the engine keeps the kinds of tensor operation of a call few (docs/grain.md).
BLOCK_FRAMES = 1
KNOB_LIMIT = 10.0
# a cloud (``models.granular``): grains at random intervals, 100 a second
DEFAULT_SETTINGS = {
    "density": DEFAULT_DENSITY,
    "jitter": DEFAULT_JITTER,
    "spray": DEFAULT_SPRAY,
    "grain_length": 1.0,
    "transpose": 0.0,
}
AUDIO_BOUND = 4.0  # dense clouds keep constant power, so a few grains in phase can exceed full scale
KNOB_BOUND = 100.0  # followed knobs are clamped here (a grain far beyond any the model has seen)


class GrainFollower(nn.Module):
    """Model-rate audio blocks ``[B, 1, k * hop]`` -> knob frames ``[B, D, k]``: the grain ending at each hop."""

    def __init__(self, model: GrainVAE, hop: int, mean: Tensor, inverse_axes: Tensor) -> None:
        super().__init__()
        self.model = model
        self.hop, self.grain_size = hop, model.grain_size
        self.register_buffer("history", torch.zeros(1, 1, model.grain_size - hop), persistent=False)
        self.register_buffer("window", torch.hann_window(model.grain_size))
        self.register_buffer("mean", mean)
        self.register_buffer("inverse_axes", inverse_axes)  # [D, D]: knobs = (z - mean) @ inverse_axes

    def forward(self, blocks: Tensor) -> Tensor:
        batch, count = blocks.shape[0], blocks.shape[-1] // self.hop
        if self.history.shape[0] != batch:
            self.history = blocks.new_zeros(batch, 1, self.grain_size - self.hop)
        if count == 0:
            return blocks.new_zeros(batch, self.model.latent_size, 0)
        audio = torch.cat([self.history, blocks], dim=-1)
        self.history = audio[..., audio.shape[-1] - (self.grain_size - self.hop) :]
        grains = audio[:, 0].unfold(-1, self.grain_size, self.hop) * self.window  # [B, k, G]
        z = self.model.encode(grains.reshape(batch * count, 1, self.grain_size))[0]
        knobs = (z - self.mean) @ self.inverse_axes
        return knobs.view(batch, count, -1).transpose(1, 2)

    @torch.jit.export
    def reset(self) -> None:
        # a new tensor, not zero_(): ``forward`` replaced it under nn~'s inference mode, and a setter (a new
        # host rate) resets outside it, where an inference tensor cannot be changed in place
        self.history = torch.zeros_like(self.history)


class GrainPlan:
    """FIFO primes and latencies (host samples) of ``forward`` and ``encode`` at both host rates; the
    latency of each method is made the same at both rates. ``forward`` renders whole blocks of ``block``
    host knob frames."""

    def __init__(self, sample_rate: int, grain_size: int, hop: int, block: int = BLOCK_FRAMES) -> None:
        self.block = block
        frame_rate = sample_rate / hop
        self.primes: dict[str, dict[int, int]] = {"forward": {}, "encode": {}}
        exact: dict[str, dict[int, float]] = {"forward": {}, "encode": {}}
        for rate in HOST_RATES:
            up, down = StreamingResampler(sample_rate, rate), StreamingResampler(rate, sample_rate)
            to_model = LatentRateConverter(rate / LATENT_RATIO, frame_rate)
            to_host = LatentRateConverter(frame_rate, rate / LATENT_RATIO)
            stages = [block_stage(block), to_model.count_stage(), block_stage(1, hop), up.count_stage()]
            prime = fifo_prime(stages, [LATENT_RATIO], in_ratio=LATENT_RATIO)
            self.primes["forward"][rate] = prime
            exact["forward"][rate] = prime + up.delay
            stages = [down.count_stage(), block_stage(hop, 1), to_host.count_stage()]
            prime = fifo_prime(stages, [LATENT_RATIO], out_ratio=LATENT_RATIO)
            self.primes["encode"][rate] = prime
            # a frame describes the grain that ends at it: its centre is half a grain earlier
            exact["encode"][rate] = (
                prime * LATENT_RATIO + down.delay_in + 0.5 * grain_size * rate / sample_rate
            )
        self.latency: dict[str, int] = {}
        for method, by_rate in exact.items():
            unit = LATENT_RATIO if method == "encode" else 1
            slowest = max(by_rate.values())
            for rate, value in by_rate.items():
                extra = int((slowest - value) // unit)
                self.primes[method][rate] += extra
                by_rate[rate] = value + extra * unit
            self.latency[method] = round(max(by_rate.values()))


@torch.jit.interface
class GrainPaths(nn.Module):
    """What :class:`GrainExport` calls on :class:`GrainStreams`, through an interface so that each path keeps
    its own TorchScript executor for the warm-up to compile (``export.host_rate``)."""

    def play(
        self, x: Tensor, density: float, jitter: float, spray: float, grain_length: float, transpose: float
    ) -> Tensor:
        pass

    def encode(self, x: Tensor) -> Tensor:
        pass

    def set_host_rate(self, rate: int) -> None:
        pass

    def reset(self) -> None:
        pass


class GrainStreams(nn.Module):
    """The granular engine, the follower and their resampling chains at both host rates."""

    def __init__(self, model: GrainVAE, facts: dict[str, Any], plan: GrainPlan) -> None:
        super().__init__()
        model = model.eval().requires_grad_(False)
        rate, hop = int(facts["sample_rate"]), int(facts["hop"])
        self.latent_size, self.hop = model.latent_size, hop
        self.latent_ratio, self.knob_limit = LATENT_RATIO, KNOB_LIMIT
        mean = torch.tensor(facts["pca_mean"], dtype=torch.float32)
        components = torch.tensor(facts["pca_components"], dtype=torch.float32)
        std = torch.tensor(facts["pca_std"], dtype=torch.float32).clamp_min(1e-6)
        decoder = playing_decoder(model)
        self.engine = GranularEngine(decoder, model.grain_size, rate, model.latent_size, share_frames=True)
        if isinstance(decoder, GrainDecoder):
            decoder.fold_knob_axes(mean, components, std)  # knobs straight into its first product
        else:
            self.engine.set_knob_axes(mean, components, std)
        self.follower = GrainFollower(model, hop, mean, components.t() / std)
        primes = plan.primes
        self.path_in_44 = LatentRateConverter(44100 / LATENT_RATIO, rate / hop)
        self.path_in_48 = LatentRateConverter(48000 / LATENT_RATIO, rate / hop)
        self.audio_out_44 = AudioOut(rate, 44100, primes["forward"][44100])
        self.audio_out_48 = AudioOut(rate, 48000, primes["forward"][48000])
        self.audio_in_44 = AudioIn(44100, rate, hop)
        self.audio_in_48 = AudioIn(48000, rate, hop)
        self.knobs_out_44 = LatentOut(rate / hop, 44100, primes["encode"][44100])
        self.knobs_out_48 = LatentOut(rate / hop, 48000, primes["encode"][48000])
        self.block = plan.block
        self.register_buffer("pending", torch.zeros(1, self.latent_size, 0), persistent=False)
        self.host_rate = HOST_RATES[0]

    @torch.jit.export
    def play(
        self, x: Tensor, density: float, jitter: float, spray: float, grain_length: float, transpose: float
    ) -> Tensor:
        """Knobs ``[B, D, n / LATENT_RATIO]`` -> audio ``[B, 1, n]`` at the host rate.

        The knob frames wait for a whole block; a call that completes one renders it with the settings given
        then and queues its audio, and every call pops ``n`` samples from the queue."""
        n = x.shape[-1] * self.latent_ratio
        if self.pending.shape[0] != x.shape[0]:
            # a new batch: the forward streams start again (the others restart on their own when they see it)
            self.pending = x.new_zeros(x.shape[0], x.shape[1], 0)
            self.audio_out_44.fifo.push(x.new_zeros(x.shape[0], 1, 0))
            self.audio_out_48.fifo.push(x.new_zeros(x.shape[0], 1, 0))
        pending, ready = x, x.shape[-1]
        if self.block > 1:
            pending = torch.cat([self.pending, x], dim=-1) if self.pending.shape[-1] > 0 else x
            ready = pending.shape[-1] // self.block * self.block
            self.pending = pending.narrow(-1, ready, pending.shape[-1] - ready) if ready > 0 else pending
        if ready > 0:
            self.engine.density, self.engine.jitter, self.engine.spray = density, jitter, spray
            self.engine.grain_length, self.engine.transpose = grain_length, transpose
        if self.host_rate == 44100:
            if ready > 0:
                path = self.path_in_44(finite(pending.narrow(-1, 0, ready), self.knob_limit))
                audio = self.audio_out_44.resampler(self.engine(path, self.hop, path.shape[-1] * self.hop))
                self.audio_out_44.fifo.push(audio)
            return self.audio_out_44.fifo.pop(n)
        if ready > 0:
            path = self.path_in_48(finite(pending.narrow(-1, 0, ready), self.knob_limit))
            audio = self.audio_out_48.resampler(self.engine(path, self.hop, path.shape[-1] * self.hop))
            self.audio_out_48.fifo.push(audio)
        return self.audio_out_48.fifo.pop(n)

    @torch.jit.export
    def encode(self, x: Tensor) -> Tensor:
        """Audio ``[B, 1, n]`` -> knobs ``[B, D, n / LATENT_RATIO]`` of the grain ending at each hop."""
        frames = x.shape[-1] // self.latent_ratio
        audio = finite(x, 10.0)
        if self.host_rate == 44100:
            return self.knobs_out_44(self.follower(self.audio_in_44(audio)), frames)
        return self.knobs_out_48(self.follower(self.audio_in_48(audio)), frames)

    @torch.jit.export
    def set_host_rate(self, rate: int) -> None:
        """Switch to the chains of ``rate`` (44.1 kHz, or else 48 kHz) and start afresh."""
        self.host_rate = rate
        self.reset()

    @torch.jit.export
    def reset(self) -> None:
        """Forget every stream: the knob frames waiting for a block, the grains still ringing, the
        follower's history, resamplers and FIFOs."""
        self.pending = self.pending[..., :0]
        self.engine.reset()
        self.follower.reset()
        self.path_in_44.reset()
        self.path_in_48.reset()
        self.audio_out_44.reset()
        self.audio_out_48.reset()
        self.audio_in_44.reset()
        self.audio_in_48.reset()
        self.knobs_out_44.reset()
        self.knobs_out_48.reset()


def _setting(value: float, default: float) -> float:
    """An attribute's value as the engine takes it: NaN and infinities (nn~ parses any text) read the default."""
    return value if math.isfinite(value) else default


class GrainExport(HostRateModule):
    """``forward``: D knob signals -> granular audio; ``encode``: audio -> D knob signals (one frame per grain
    hop, held); attributes ``density``, ``jitter``, ``spray``, ``grain_length``, ``transpose``, ``latency``
    and ``host_rate`` (``export.host_rate``: silent until the device sets it)."""

    streams: GrainPaths

    def __init__(self, model: GrainVAE, facts: dict[str, Any], plan: GrainPlan) -> None:
        super().__init__(HOST_RATES)
        self.streams = torch.jit.script(GrainStreams(model, facts, plan))
        self.latent_size, self.latent_ratio, self.block_frames = model.latent_size, LATENT_RATIO, plan.block
        for name, value in DEFAULT_SETTINGS.items():
            self.register_attribute(name, value)
        self.audio_bound, self.knob_bound = AUDIO_BOUND, KNOB_BOUND
        # what NaN or infinite settings read (copies: TorchScript reads no float globals)
        self.default_density, self.default_jitter = DEFAULT_DENSITY, DEFAULT_JITTER
        self.default_spray = DEFAULT_SPRAY
        self.output_guard = True
        self.register_attribute("latency", plan.latency["forward"])
        knobs = [f"(signal) knob {i + 1}" for i in range(self.latent_size)]
        self.register_method("forward", self.latent_size, LATENT_RATIO, 1, 1, knobs, ["(signal) audio out"])
        self.register_method("encode", 1, 1, self.latent_size, LATENT_RATIO, ["(signal) audio in"], knobs)
        self.reset()

    def forward(self, x: Tensor) -> Tensor:
        """Knobs ``[B, D, n / LATENT_RATIO]`` -> audio ``[B, 1, n]`` at the host rate."""
        if self.rate == 0:
            return self.silence(x, 1, self.latent_ratio, 1)
        audio = self.streams.play(
            x,
            _setting(self.density[0], self.default_density),
            _setting(self.jitter[0], self.default_jitter),
            _setting(self.spray[0], self.default_spray),
            _setting(self.grain_length[0], 1.0),
            _setting(self.transpose[0], 0.0),
        )
        return guarded(audio, self.audio_bound, self.output_guard)

    @torch.jit.export
    def encode(self, x: Tensor) -> Tensor:
        """Audio ``[B, 1, n]`` -> knobs ``[B, D, n / LATENT_RATIO]`` of the grain ending at each hop."""
        if self.rate == 0:
            return self.silence(x, self.latent_size, 1, self.latent_ratio)
        return guarded(self.streams.encode(x), self.knob_bound, self.output_guard)

    @torch.jit.export
    def guard_output(self, on: bool) -> None:
        """Clamp every output to its bound, NaN to 0 (on: for nn~); off: the raw output, for the contract."""
        self.output_guard = on

    def use_host_rate(self, rate: int) -> None:
        self.streams.set_host_rate(rate)

    def warm_up(self) -> None:
        knobs = torch.zeros(1, self.latent_size, self.warm_up_buffer // self.latent_ratio)
        audio = torch.zeros(1, 1, self.warm_up_buffer)
        # a block is rendered once enough frames have come: count the engine's calls, not ours
        per_block = -(-self.block_frames * self.latent_ratio // self.warm_up_buffer)
        for _ in range(self.warm_up_calls * per_block):  # both schedules: random (the default) and even
            self.streams.play(knobs, self.default_density, self.default_jitter, self.default_spray, 1.0, 0.0)
            self.streams.play(knobs, 40.0, 0.0, 0.0, 1.0, 0.0)
        for _ in range(self.warm_up_calls):
            self.streams.encode(audio)
        self.streams.reset()

    @torch.jit.export
    def reset(self) -> None:
        """Forget every stream."""
        self.streams.reset()


def build_grain_export(
    checkpoint: dict[str, Any], streaming: bool = True
) -> tuple[GrainExport, dict[str, Any]]:
    """The wrapper and the metadata of the exported file, from a trainer checkpoint (the same module with
    ``streaming`` or without: the model has no cached-conv layers)."""
    facts = checkpoint["metadata"]
    model = GrainVAE(**checkpoint["model_args"])
    model.load_state_dict(checkpoint["model_state"])
    plan = GrainPlan(int(facts["sample_rate"]), model.grain_size, int(facts["hop"]))
    wrapper = GrainExport(model, facts, plan)
    latency = plan.latency["forward"]
    metadata = {
        "model": "grain",
        "latent_size": model.latent_size,
        "grain_size": model.grain_size,
        "hop": int(facts["hop"]),
        "sample_rate": int(facts["sample_rate"]),
        "latent_ratio": LATENT_RATIO,
        "host_sample_rate": HOST_RATES[0],
        "host_sample_rates": list(HOST_RATES),
        "attributes": {**DEFAULT_SETTINGS, "latency": latency},
        "latency_samples": latency,
        "method_latency": plan.latency,
        "primes": {m: {str(r): p for r, p in by_rate.items()} for m, by_rate in plan.primes.items()},
        "output_bounds": {"forward": AUDIO_BOUND, "encode": KNOB_BOUND},
        # the latency (FIFO prime, a block of knob frames, filters) and as far again for the grains still
        # ringing and the follower's history, both shorter than a block
        "state_window": {m: 2 * plan.latency[m] + model.grain_size * 4 for m in ("forward", "encode")},
        "block_frames": plan.block,
        "decoder_parameters": sum(
            p.numel() for module in (model.expand, model.decoder) for p in module.parameters()
        ),
    }
    return wrapper, metadata

"""nn~ wrappers of the techno model: stage 1 (``techno.ts``) and stage 1 + 2 (``techno_prior.ts``).

The models run at their own rate (16 kHz by default, 44.1 kHz full band: gin/techno_fullband.gin) in whole
blocks of ``ratio`` samples (one latent frame: 125 Hz, or 172 Hz full band); nn~ runs at the host rate (44.1
or 48 kHz, from the ``host_rate`` attribute: ``export.host_rate``) in power-of-two buffers.
Each method therefore chains, per host rate, ``models.resample`` stages around the streaming model:

* audio in: host audio -> ``StreamingResampler`` -> FIFO -> whole model blocks;
* audio out: model audio -> ``StreamingResampler`` -> FIFO primed with zeros -> exactly one buffer;
* latents: exchanged with nn~ at ``LATENT_RATIO`` host samples per frame (187.5 Hz at 48 kHz, 172.3 Hz at
  44.1 kHz) and converted to and from the model's frame rate by linear interpolation.

Each FIFO's prime is the least that never underruns for any chunking of the input into multiples of the
method's smallest buffer, plus what makes the latency the same number of host samples at both rates
(``latency`` attribute; per method in the metadata). The streamed output equals the offline pipeline
(resample, offline model, resample) delayed by that latency (tested on the loaded file).
"""

import math
from typing import Any, Final

import torch
from torch import Tensor, nn

from latentlive.export.host_rate import HostRateModule
from latentlive.export.streams import LATENT_RATIO, AudioIn, AudioOut, LatentOut, finite, guarded
from latentlive.models.pqmf import PQMFAnalysis, PQMFSynthesis
from latentlive.models.resample import LatentRateConverter, StreamingResampler, block_stage, fifo_prime
from latentlive.models.trajectory_vae import TrajectoryVAE, sample_frames
from latentlive.models.waveform_vae import SubPixelUpsample, WaveformVAE

HOST_RATES = (44100, 48000)
MIN_AUDIO_BUFFER = 64
LATENT_BOUND = 100.0  # encoded latents are clamped here (a posterior mean far beyond any the model has seen)
AUDIO_BOUND = (
    1.5  # tanh output plus the resampler's ringing, clamped: a wild latent path must not blow a speaker
)


def _audio_latency(host_rate: int, model_rate: int, model_delay: int, prime: int) -> float:
    """Host samples from input to output of host audio -> model (``model_delay`` samples) -> host audio."""
    down, up = StreamingResampler(host_rate, model_rate), StreamingResampler(model_rate, host_rate)
    return prime + down.delay_in + up.delay + model_delay * host_rate / model_rate


class StreamPlan:
    """The primes of every method at every host rate, chosen so that each method's latency is the same
    (rounded) number of host samples at both rates; ``latency[method]`` and ``primes[method][rate]``."""

    def __init__(self, model: WaveformVAE, model_rate: int) -> None:
        block, frame_rate = model.ratio, model_rate / model.ratio
        audio_buffers, latent_buffers = [MIN_AUDIO_BUFFER], [LATENT_RATIO]
        self.primes: dict[str, dict[int, int]] = {"forward": {}, "encode": {}, "decode": {}}
        exact: dict[str, dict[int, float]] = {"forward": {}, "encode": {}, "decode": {}}
        for rate in HOST_RATES:
            down, up = StreamingResampler(rate, model_rate), StreamingResampler(model_rate, rate)
            to_host = LatentRateConverter(frame_rate, rate / LATENT_RATIO)
            from_host = LatentRateConverter(rate / LATENT_RATIO, frame_rate)
            stages = [down.count_stage(), block_stage(block), up.count_stage()]
            prime = fifo_prime(stages, audio_buffers)
            self.primes["forward"][rate] = prime
            exact["forward"][rate] = _audio_latency(rate, model_rate, model.roundtrip_delay, prime)
            stages = [down.count_stage(), block_stage(block, 1), to_host.count_stage()]
            prime = fifo_prime(stages, latent_buffers, out_ratio=LATENT_RATIO)
            self.primes["encode"][rate] = prime
            exact["encode"][rate] = (
                prime * LATENT_RATIO + down.delay_in + model.encode_delay * rate / model_rate
            )
            stages = [from_host.count_stage(), block_stage(1, block), up.count_stage()]
            prime = fifo_prime(stages, latent_buffers, in_ratio=LATENT_RATIO)
            self.primes["decode"][rate] = prime
            exact["decode"][rate] = prime + up.delay + model.decode_delay * rate / model_rate
        self.latency: dict[str, int] = {}
        for method, by_rate in exact.items():
            slowest = max(by_rate.values())
            unit = LATENT_RATIO if method == "encode" else 1  # the encode FIFO holds host latent frames
            for rate, value in by_rate.items():
                extra = math.ceil((slowest - value) / unit - 1e-9)
                self.primes[method][rate] += extra
                by_rate[rate] = value + extra * unit
            self.latency[method] = round(max(by_rate.values()))
        self.exact = exact


@torch.jit.interface
class Stage1Paths(nn.Module):
    """The paths of :class:`Stage1Streams` the nn~ wrappers call, through this interface so that each keeps
    its own TorchScript executor for the warm-up to compile (see ``export.host_rate``)."""

    def roundtrip(self, x: Tensor) -> Tensor:
        pass

    def encode(self, x: Tensor) -> Tensor:
        pass

    def decode(self, z: Tensor, n: int) -> Tensor:
        pass

    def to_model_frames(self, z: Tensor) -> Tensor:
        pass

    def decode_frames(self, z: Tensor, n: int) -> Tensor:
        pass

    def set_host_rate(self, rate: int) -> None:
        pass

    def reset(self) -> None:
        pass


class Stage1Streams(nn.Module):
    """The streaming stage-1 model with the resampling chains of its three paths at both host rates.

    ``encode``, ``decode`` and ``roundtrip`` carry their own state; one exported module is one nn~ object,
    and each nn~ object calls one method, as the devices do.
    """

    latent_size: Final[int]
    block: Final[int]
    latent_ratio: Final[int]

    def __init__(self, model: WaveformVAE, model_rate: int, primes: dict[str, dict[int, int]]) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.latent_size, self.block = model.latent_size, model.ratio
        self.latent_ratio = LATENT_RATIO
        frame_rate = model_rate / model.ratio
        self.forward_in_44 = AudioIn(44100, model_rate, self.block)
        self.forward_in_48 = AudioIn(48000, model_rate, self.block)
        self.forward_out_44 = AudioOut(model_rate, 44100, primes["forward"][44100])
        self.forward_out_48 = AudioOut(model_rate, 48000, primes["forward"][48000])
        self.encode_in_44 = AudioIn(44100, model_rate, self.block)
        self.encode_in_48 = AudioIn(48000, model_rate, self.block)
        self.encode_out_44 = LatentOut(frame_rate, 44100, primes["encode"][44100])
        self.encode_out_48 = LatentOut(frame_rate, 48000, primes["encode"][48000])
        self.decode_in_44 = LatentRateConverter(44100 / LATENT_RATIO, frame_rate)
        self.decode_in_48 = LatentRateConverter(48000 / LATENT_RATIO, frame_rate)
        self.decode_out_44 = AudioOut(model_rate, 44100, primes["decode"][44100])
        self.decode_out_48 = AudioOut(model_rate, 48000, primes["decode"][48000])
        self.host_rate = HOST_RATES[0]

    def _model_encode(self, blocks: Tensor) -> Tensor:
        if blocks.shape[-1] == 0:
            return blocks.new_zeros(blocks.shape[0], self.latent_size, 0)
        return self.model.encode(blocks)[0]

    def _model_decode(self, z: Tensor) -> Tensor:
        if z.shape[-1] == 0:
            return z.new_zeros(z.shape[0], 1, 0)
        return self.model.decode(z)

    @torch.jit.export
    def roundtrip(self, x: Tensor) -> Tensor:
        """Host audio ``[B, 1, n]`` -> resynthesised host audio ``[B, 1, n]`` (posterior mean)."""
        n = x.shape[-1]
        if self.host_rate == 44100:
            return self.forward_out_44(self._model_decode(self._model_encode(self.forward_in_44(x))), n)
        return self.forward_out_48(self._model_decode(self._model_encode(self.forward_in_48(x))), n)

    @torch.jit.export
    def encode(self, x: Tensor) -> Tensor:
        """Host audio ``[B, 1, n]`` -> host latent frames ``[B, L, n / LATENT_RATIO]`` (posterior mean)."""
        frames = x.shape[-1] // self.latent_ratio
        if self.host_rate == 44100:
            return self.encode_out_44(self._model_encode(self.encode_in_44(x)), frames)
        return self.encode_out_48(self._model_encode(self.encode_in_48(x)), frames)

    @torch.jit.export
    def decode(self, z: Tensor, n: int) -> Tensor:
        """Host latent frames ``[B, L, n / LATENT_RATIO]`` -> host audio ``[B, 1, n]``."""
        return self.decode_frames(self.to_model_frames(z), n)

    @torch.jit.export
    def to_model_frames(self, z: Tensor) -> Tensor:
        """The first half of ``decode``: host frames ``[B, C, n / LATENT_RATIO]`` -> the model frames that are
        due ``[B, C, k]`` (linear interpolation; a new channel count restarts the converter)."""
        if self.host_rate == 44100:
            return self.decode_in_44(z)
        return self.decode_in_48(z)

    @torch.jit.export
    def decode_frames(self, z: Tensor, n: int) -> Tensor:
        """The second half of ``decode``: model latent frames ``[B, L, k]`` -> host audio ``[B, 1, n]``."""
        if self.host_rate == 44100:
            return self.decode_out_44(self._model_decode(z), n)
        return self.decode_out_48(self._model_decode(z), n)

    @torch.jit.export
    def set_host_rate(self, rate: int) -> None:
        """Switch to the chains of host rate ``rate`` (44.1 kHz, or else 48 kHz) and start afresh."""
        self.host_rate = rate
        self.reset()

    @torch.jit.export
    def reset(self) -> None:
        """Forget every stream: the model's caches and every resampler, converter and FIFO."""
        self.model.reset()
        self.forward_in_44.reset()
        self.forward_in_48.reset()
        self.forward_out_44.reset()
        self.forward_out_48.reset()
        self.encode_in_44.reset()
        self.encode_in_48.reset()
        self.encode_out_44.reset()
        self.encode_out_48.reset()
        self.decode_in_44.reset()
        self.decode_in_48.reset()
        self.decode_out_44.reset()
        self.decode_out_48.reset()


class Stage1Wrapper(HostRateModule):
    """What both techno wrappers share: stage 1's streams at the host rate, their warm-up and reset."""

    streams: Stage1Paths

    def __init__(self, model: WaveformVAE, model_rate: int, plan: StreamPlan) -> None:
        super().__init__(HOST_RATES)
        self.streams = torch.jit.script(Stage1Streams(model, model_rate, plan.primes))
        self.latent_size = model.latent_size
        self.latent_limit = 10.0
        self.latent_ratio, self.latent_bound, self.audio_bound = LATENT_RATIO, LATENT_BOUND, AUDIO_BOUND
        self.output_guard = True

    @torch.jit.export
    def guard_output(self, on: bool) -> None:
        """Clamp every output to its bound, NaN to 0 (on: for nn~); off: the raw output, for the contract."""
        self.output_guard = on

    def use_host_rate(self, rate: int) -> None:
        self.streams.set_host_rate(rate)

    def warm_up(self) -> None:
        self.warm_up_streams()

    def warm_up_streams(self) -> None:
        audio = torch.zeros(1, 1, self.warm_up_buffer)
        z = torch.zeros(1, self.latent_size, self.warm_up_buffer // self.latent_ratio)
        for _ in range(self.warm_up_calls):
            self.streams.roundtrip(audio)
            self.streams.encode(audio)
            self.streams.decode(z, self.warm_up_buffer)
        self.streams.reset()

    @torch.jit.export
    def encode(self, x: Tensor) -> Tensor:
        """Host audio ``[B, 1, n]`` -> latents ``[B, L, n / LATENT_RATIO]`` (posterior mean)."""
        if self.rate == 0:
            return self.silence(x, self.latent_size, 1, self.latent_ratio)
        return guarded(self.streams.encode(finite(x, 10.0)), self.latent_bound, self.output_guard)

    @torch.jit.export
    def decode(self, x: Tensor) -> Tensor:
        """Latents ``[B, L, n / LATENT_RATIO]`` -> host audio ``[B, 1, n]``."""
        if self.rate == 0:
            return self.silence(x, 1, self.latent_ratio, 1)
        n = x.shape[-1] * self.latent_ratio
        return guarded(
            self.streams.decode(finite(x, self.latent_limit), n), self.audio_bound, self.output_guard
        )

    @torch.jit.export
    def reset(self) -> None:
        """Forget every stream."""
        self.streams.reset()


class TechnoExport(Stage1Wrapper):
    """Stage 1 for nn~: ``encode`` (audio -> latents), ``decode`` (latents -> audio), ``forward`` (audio ->
    resynthesised audio). Latents are exchanged at ``LATENT_RATIO`` host samples per frame."""

    def __init__(self, model: WaveformVAE, model_rate: int, plan: StreamPlan) -> None:
        super().__init__(model, model_rate, plan)
        self.register_attribute("latency", plan.latency["forward"])
        latents = [f"(signal) latent {i + 1}" for i in range(self.latent_size)]
        self.register_method("encode", 1, 1, self.latent_size, LATENT_RATIO, ["(signal) audio in"], latents)
        self.register_method("decode", self.latent_size, LATENT_RATIO, 1, 1, latents, ["(signal) audio out"])
        self.register_method("forward", 1, 1, 1, 1, ["(signal) audio in"], ["(signal) audio out"])
        self.reset()  # registration ran each method once on silence

    def forward(self, x: Tensor) -> Tensor:
        if self.rate == 0:
            return self.silence(x, 1, 1, 1)
        return guarded(self.streams.roundtrip(finite(x, 10.0)), self.audio_bound, self.output_guard)


@torch.jit.interface
class LoopPaths(nn.Module):
    """What :class:`LoopReader` offers the wrapper (an interface, for the warm-up as above)."""

    def read(self, macro: Tensor, phase: Tensor, temperature: float) -> Tensor:
        pass


def macro_seed(macro: Tensor) -> int:
    """A seed from one setting of the macros ``[M]`` (each within +-10, read to 2^-20): equal macros, equal
    seed; settings that differ by more get unrelated seeds."""
    seed = 17
    steps: list[int] = ((macro.double().clamp(-10.0, 10.0) + 16.0) * 1048576.0).round().long().tolist()
    for step in steps:  # a polynomial hash below 2^31, in int64 without overflow
        seed = (seed * 1000003 + step) % 2147483647
    return seed


def frames_per_loop(phase: Tensor, most: int) -> Tensor:
    """Frames per loop ``[B, 1]`` of the phases of successive frames ``[B, N]``: ``1 / step`` where they
    advance by one steady step (wrapping; within 1 %) of at least ``1 / most``, else ``most`` (a stopped or
    jumping phase, a loop of more than ``most`` frames, a call of one frame: nn~ buffers below 512 samples for
    ``trajectory``, 1024 for ``loop``, whose draws then still differ from frame to frame but not repeat)."""
    if phase.shape[1] < 2:
        return phase.new_full([phase.shape[0], 1], float(most))
    step = torch.remainder(phase[:, 1:] - phase[:, :-1], 1.0)
    mean = step.mean(1, keepdim=True)
    steady = ((step - mean).abs() <= 0.01 * mean).all(1, keepdim=True) & (mean * most >= 1.0)
    return torch.where(steady, 1.0 / mean.clamp_min(1.0 / most), torch.full_like(mean, float(most)))


def noise_at_phase(noise: Tensor, phase: Tensor) -> Tensor:
    """The draws of ``noise [B, L, S]`` that the frames at bar phases ``phase [B, N]`` read -> ``[B, L, N]``.

    A frame reads slot ``round(frac(phase) * F)``, ``F`` the frames per loop of a steady phase ramp
    (:func:`frames_per_loop`; ``S`` otherwise), held, never interpolated: successive frames read successive
    slots, independent draws, and the ``k``-th frame of every cycle reads the same one whatever the tempo (the
    frames of a cycle sit at ``k + c`` frames from its start, ``c`` in 0..1: rounding ``k + c`` reads the
    same sequence of draws). Phases wrap; non-finite ones read slot 0."""
    slots = noise.shape[-1]
    phase = torch.nan_to_num(phase, nan=0.0, posinf=0.0, neginf=0.0)
    position = (phase - torch.floor(phase)) * frames_per_loop(phase, slots)
    slot = torch.floor(position + 0.5).long().clamp(0, slots - 1)
    shape = [noise.shape[0], noise.shape[1], phase.shape[1]]
    return noise.gather(2, slot.unsqueeze(1).expand(shape))


# draws per loop: one per frame for loops up to 21.8 s at 187.5 host frames/s (4 bars at 44 bpm); each change of
# the macros draws them all (0.26 ms on one thread)
NOISE_SLOTS = 4096
MAX_FRAME_TEMPERATURE = 10.0


class LoopReader(nn.Module):
    """techno_prior's loop of the current macro latents, decoded once per change and read at bar phases as a
    sample of the decoded Gaussian, not its mean (``trajectory_vae``; issue #18): ``mean + temperature *
    exp(logscale) * noise`` (``sample_frames``), with ``noise`` one of a table of ``NOISE_SLOTS`` independent
    ``N(0, I)`` draws, one per frame of the loop (``noise_at_phase``).

    The table is drawn once per change of the macros, from a seed of their values (``macro_seed``): the
    ``k``-th frame of every cycle reads the same draw, so the loop repeats, and the same macros always give the
    same loop (a set sounds the same when reopened or bounced).
    """

    slots: Final[int]

    def __init__(self, prior: TrajectoryVAE, slots: int = NOISE_SLOTS) -> None:
        super().__init__()
        self.prior = prior.eval().requires_grad_(False)
        self.slots = slots
        self.register_buffer("loop_macro", torch.zeros(1, prior.macro_size, prior.macro_frames))
        mean, logscale = prior.decode(self.loop_macro)
        self.register_buffer("loop_mean", mean)
        self.register_buffer("loop_logscale", logscale)
        self.register_buffer("loop_noise", self.draw(self.loop_macro))

    def draw(self, macro: Tensor) -> Tensor:
        """The noise of the loops of ``macro [B, M, F]``: ``[B, L, slots]``, one seeded table per entry."""
        tables: list[Tensor] = []
        for b in range(macro.shape[0]):
            generator = torch.Generator()
            generator.manual_seed(macro_seed(macro[b, :, 0]))
            tables.append(torch.randn([self.prior.latent_size, self.slots], generator=generator))
        return torch.stack(tables)

    @torch.jit.export
    def read(self, macro: Tensor, phase: Tensor, temperature: float) -> Tensor:
        """Macros ``[B, M]`` and phases ``[B, N]`` -> stage-1 latents ``[B, L, N]`` (``temperature`` 0: the mean)."""
        macro = macro.unsqueeze(2).expand(-1, -1, self.prior.macro_frames)
        if macro.shape != self.loop_macro.shape or not torch.equal(macro, self.loop_macro):
            self.loop_macro = macro.clone()
            self.loop_mean, self.loop_logscale = self.prior.decode(macro)
            self.loop_noise = self.draw(macro)
        noise = temperature * noise_at_phase(self.loop_noise, phase)
        return sample_frames(self.loop_mean, self.loop_logscale, phase, noise)


class TechnoLoopsExport(Stage1Wrapper):
    """Stages 1 and 2 for nn~: ``trajectory`` (macro latents + loop phase -> stage-1 latents), ``decode``
    (stage-1 latents -> audio), ``loop`` (macro latents + phase -> audio) and ``encode`` (audio -> latents).

    The phase is a 0..1 ramp over the loop (the last input channel); the loop of the current macro latents is
    decoded once, again only when they change, and read at the phase of each frame as a draw from the decoded
    Gaussian at ``frame_temperature`` (attribute, 0..10, default 1 as in training; 0 plays the mean, which buzzes
    at the latent frame rate; :class:`LoopReader`).

    Where the draws land: the stage-1 decoder runs at its own frame rate (125 Hz, 172 Hz full band), and
    ``decode`` reaches it from host frames (``LATENT_RATIO`` host samples) through a linear interpolation
    (``Stage1Streams.to_model_frames``). Independent draws at host frames would reach it blended two by two:
    at 44.1 kHz and 125 Hz each frame gets ``(1 - f) a + f b`` of two draws, with 1/2 to 1 of their variance
    (2/3 on average, varying along the grid) and slightly correlated neighbours. So ``loop`` interpolates the
    phase instead (as a point on the unit circle, so the wrap from 1 to 0 stays a small step) and reads the
    loop at the phase of each stage-1 frame: one full draw per stage-1 frame, as in training
    (``techno_prior.sampled_latents``). ``trajectory`` has only host frames to give (LatentLoops shows them
    and adds its dials to them before its own ``decode``), one draw per host frame: through ``decode`` that is
    the blend above, which still keeps most of the high band that the mean lacks.

    ``trajectory`` reads the phase at the last sample of each ``LATENT_RATIO`` block, where nn~ would read it,
    and needs no host rate."""

    # a class's own annotations hide its base's from TorchScript: both interfaces are named here
    streams: Stage1Paths
    loops: LoopPaths

    def __init__(self, model: WaveformVAE, prior: TrajectoryVAE, model_rate: int, plan: StreamPlan) -> None:
        super().__init__(model, model_rate, plan)
        self.loops = torch.jit.script(LoopReader(prior))
        self.macro_size = prior.macro_size
        self.macro_limit = 10.0
        self.max_frame_temperature = MAX_FRAME_TEMPERATURE
        self.register_attribute("latency", plan.latency["decode"])
        self.register_attribute("frame_temperature", 1.0)
        macros = [f"(signal) macro {i + 1}" for i in range(self.macro_size)] + ["(signal) loop phase 0..1"]
        latents = [f"(signal) latent {i + 1}" for i in range(self.latent_size)]
        self.register_method(
            "trajectory", self.macro_size + 1, 1, self.latent_size, LATENT_RATIO, macros, latents
        )
        self.register_method("decode", self.latent_size, LATENT_RATIO, 1, 1, latents, ["(signal) audio out"])
        self.register_method("loop", self.macro_size + 1, 1, 1, 1, macros, ["(signal) audio out"])
        self.register_method("encode", 1, 1, self.latent_size, LATENT_RATIO, ["(signal) audio in"], latents)
        self.reset()

    @torch.jit.export
    def set_frame_temperature(self, frame_temperature0: float) -> int:
        """nn~'s ``set frame_temperature T``: taken when finite and within 0..10, else ignored (the last valid
        value stays); always answers 0, since nn~ throws on anything else."""
        if math.isfinite(frame_temperature0) and 0.0 <= frame_temperature0 <= self.max_frame_temperature:
            self.frame_temperature = (frame_temperature0,)
        return 0

    def warm_up(self) -> None:
        self.warm_up_streams()
        macros = torch.zeros(1, self.macro_size + 1, self.warm_up_buffer)
        for _ in range(self.warm_up_calls):
            self.trajectory(macros)
            macro, phase = self.controls(macros)
            z = self.loops.read(macro, self.frame_phases(phase), 1.0)
            self.streams.decode_frames(z, self.warm_up_buffer)
        self.streams.reset()

    def frame_phases(self, phase: Tensor) -> Tensor:
        """Phases at host frames ``[B, N]`` -> the phases at the stage-1 frames that are due ``[B, k]``:
        interpolated as ``decode`` interpolates latents, but as points ``(cos, sin)`` on the unit circle, so
        that the wrap from 1 to 0 stays a small step (any phase reads the loop: ``read_at_phase`` wraps)."""
        turn = 2.0 * math.pi * phase
        circle = self.streams.to_model_frames(torch.stack([torch.cos(turn), torch.sin(turn)], dim=1))
        return torch.atan2(circle[:, 1], circle[:, 0]) / (2.0 * math.pi)

    def controls(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, M + 1, n]`` -> the macros ``[B, M]`` (the last sample) and the phase at the end of each
        ``LATENT_RATIO`` block ``[B, n / LATENT_RATIO]``, both made finite."""
        macro = finite(x[:, : self.macro_size, -1], self.macro_limit)
        phase = finite(x[:, self.macro_size, self.latent_ratio - 1 :: self.latent_ratio], 1.0e6)
        return macro, phase

    @torch.jit.export
    def trajectory(self, x: Tensor) -> Tensor:
        """``[B, M + 1, n]`` (macros, phase) -> stage-1 latents ``[B, L, n / LATENT_RATIO]``, one draw per host
        frame (see the class)."""
        macro, phase = self.controls(x)
        z = self.loops.read(macro, phase, self.frame_temperature[0])
        return guarded(z, self.latent_bound, self.output_guard)

    @torch.jit.export
    def loop(self, x: Tensor) -> Tensor:
        """``[B, M + 1, n]`` (macros, phase) -> audio ``[B, 1, n]``: the loop read at the phase of each stage-1
        frame, one draw per stage-1 frame (see the class), then decoded as ``decode`` does."""
        if self.rate == 0:
            return self.silence(x, 1, 1, 1)
        macro, phase = self.controls(x)
        z = guarded(
            self.loops.read(macro, self.frame_phases(phase), self.frame_temperature[0]),
            self.latent_bound,
            self.output_guard,
        )
        return guarded(self.streams.decode_frames(z, x.shape[-1]), self.audio_bound, self.output_guard)


def _stage1(args: dict[str, Any], state: dict[str, Tensor], streaming: bool) -> WaveformVAE:
    model = WaveformVAE(**args, streaming=streaming)
    model.load_state_dict(state)
    return model


def receptive_fields(model: WaveformVAE) -> dict[str, int]:
    """Model samples of input that one output sample of ``encode``, ``decode`` and ``forward`` can depend
    on (a bound: the span of every convolution in the samples of its layer, centred or causal)."""
    span, unit = 0, 1  # model samples per sample of the current layer
    if isinstance(model.analysis, PQMFAnalysis):  # the bands: one strided filter over the audio
        span, unit = model.analysis.length - 1, model.bands
    for layer in model.encoder.modules():
        if isinstance(layer, nn.Conv1d):
            span += (layer.kernel_size[0] - 1) * layer.dilation[0] * unit
            unit *= layer.stride[0]
    fields, span, unit = {"encode": span}, 0, model.ratio
    for block in model.decoder:
        for layer in block.modules():
            if isinstance(layer, nn.Conv1d):
                span += (layer.kernel_size[0] - 1) * layer.dilation[0] * unit
        if isinstance(block, SubPixelUpsample):
            unit //= block.factor
    if isinstance(model.synthesis, PQMFSynthesis):  # ``taps`` band frames of ``bands`` samples each
        span += model.synthesis.taps * model.bands - 1
    fields["decode"] = span
    fields["forward"] = fields["encode"] + span
    return fields


def state_window(model: WaveformVAE, model_rate: int, plan: StreamPlan, method: str) -> int:
    """Host samples of input after which ``method``'s output no longer depends on what came before (a
    bound): the model's receptive field at the fastest host rate, the latency (FIFO prime, filters, the
    model's delay) twice over for the filters' spans, and a few frames for the latent rate converters."""
    field = math.ceil(receptive_fields(model)[method] * max(HOST_RATES) / model_rate)
    return field + 2 * plan.latency[method] + 4 * LATENT_RATIO


def _stream_facts(model: WaveformVAE, plan: StreamPlan) -> dict[str, Any]:
    return {
        "method_latency": plan.latency,
        "primes": {
            method: {str(r): p for r, p in by_rate.items()} for method, by_rate in plan.primes.items()
        },
        "model_delays": {
            "encode": model.encode_delay,
            "decode": model.decode_delay,
            "forward": model.roundtrip_delay,
        },
    }


def build_techno_export(
    checkpoint: dict[str, Any], streaming: bool = True
) -> tuple[TechnoExport, dict[str, Any]]:
    """Stage 1's wrapper and metadata from a trainer checkpoint (``streaming``: cached-conv layers)."""
    facts = checkpoint["metadata"]
    model = _stage1(checkpoint["model_args"], checkpoint["model_state"], streaming)
    rate = int(facts["sample_rate"])
    plan = StreamPlan(model, rate)
    wrapper = TechnoExport(model, rate, plan)
    latency = plan.latency["forward"]
    metadata = {
        "model": "techno",
        "latent_size": model.latent_size,
        "latent_ratio": LATENT_RATIO,
        "ratio": model.ratio,
        "sample_rate": int(facts["sample_rate"]),
        "host_sample_rate": HOST_RATES[0],
        "host_sample_rates": list(HOST_RATES),
        "bars": int(facts["bars"]),
        "attributes": {"latency": latency},
        "latency_samples": latency,
        "latency": latency,
        **_stream_facts(model, plan),
        "output_bounds": {"encode": LATENT_BOUND, "decode": AUDIO_BOUND, "forward": AUDIO_BOUND},
        "state_window": {m: state_window(model, rate, plan, m) for m in ("encode", "decode", "forward")},
    }
    return wrapper, metadata


def build_techno_prior_export(
    checkpoint: dict[str, Any], streaming: bool = True
) -> tuple[TechnoLoopsExport, dict[str, Any]]:
    """techno and techno_prior from a techno_prior checkpoint (which carries the stage-1 weights; ``streaming``: its
    cached-conv layers)."""
    facts = checkpoint["metadata"]
    model = _stage1(facts["stage1_args"], facts["stage1_state"], streaming)
    prior = TrajectoryVAE(**checkpoint["model_args"])
    prior.load_state_dict(checkpoint["model_state"])
    rate = int(facts["sample_rate"])
    plan = StreamPlan(model, rate)
    wrapper = TechnoLoopsExport(model, prior, rate, plan)
    latency = plan.latency["decode"]
    metadata = {
        "model": "techno_prior",
        "rate_free_methods": ["trajectory"],
        "latent_size": model.latent_size,
        "macro_size": prior.macro_size,
        "macro_frames": prior.macro_frames,
        "latent_ratio": LATENT_RATIO,
        "ratio": model.ratio,
        "bars": int(facts["bars"]),
        "sample_rate": int(facts["sample_rate"]),
        "host_sample_rate": HOST_RATES[0],
        "host_sample_rates": list(HOST_RATES),
        "attributes": {"latency": latency, "frame_temperature": 1.0},
        "noise_slots": NOISE_SLOTS,
        "latency_samples": latency,
        "latency": latency,
        **_stream_facts(model, plan),
        "output_bounds": {
            "trajectory": LATENT_BOUND,
            "decode": AUDIO_BOUND,
            "loop": AUDIO_BOUND,
            "encode": LATENT_BOUND,
        },
        # trajectory: the loop of the macros now, decoded again as soon as they change
        "state_window": {
            "trajectory": 0,
            "decode": state_window(model, rate, plan, "decode"),
            "loop": state_window(model, rate, plan, "decode"),
            "encode": state_window(model, rate, plan, "encode"),
        },
    }
    return wrapper, metadata

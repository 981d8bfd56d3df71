"""nn~ wrapper of the drum synth: a polyphonic one-shot instrument whose sounds are re-rendered in the background.

Signals of ``forward`` (ratio 1, audio at the host rate: 44.1, 48, 88.2 or 96 kHz, from the ``host_rate``
attribute, see ``export.host_rate``):

| inputs | ``gate`` (velocity 0..1; a rise above 0 starts a hit), ``class`` (index into ``class_names``),
|        | ``knob1 .. knobD`` (the class's PCA axes in standard deviations, -3..3) |
| output | the mono mix of up to ``VOICES`` hits |

A hit plays at once the sound already rendered for its class. When the knobs of the class heard last
differ from the ones its sound was rendered with, a render job starts, a fixed amount of work per call:
the call that reads the knobs decodes the magnitude and warm-starts Griffin-Lim from the phase of the
sound of that class heard until then (analysed when the host rate is set, then the phase a job made its
sound with: no analysis in the knob call); each later call runs one iteration. After ``PREVIEW_ITERATIONS``
the sound is swapped in (a knob moved in call k is heard on a hit in call k + 2), then refined in the
background until the job has run the model's ``griffin_lim.iterations``, when it is swapped in again.
A preview runs to its end; knobs moved while a sound is being refined start a new job at once, and a
sound left unrefined (its class was left, or the host rate changed) is refined when nothing else runs.
Gates and classes are read per sample (a hit plays the class of its onset sample; two hits need two
rises of the gate); the knobs, and the class whose sound they re-render, once per buffer.
"""

from typing import Any

import cached_conv as cc
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from latentlive.export.host_rate import HostRateModule
from latentlive.models.drumsynth import DrumSynthVAE, NoiseFineStructure
from latentlive.models.nsgt import NSGT, make_scale

VOICES = 4
HOST_RATES = (44100, 48000, 88200, 96000)  # the sounds are resampled whole: any rate works
KNOB_LIMIT = 4.0  # the device's knobs span -3..3; beyond this the decoder is asked for what it never saw
PEAK = 0.9  # rendered one-shots are peak-normalised like the training sounds
PREVIEW_ITERATIONS = 2  # warm-started Griffin-Lim iterations before a moved knob is heard (one per call)


def fft_resample(audio: Tensor, length: int) -> Tensor:
    """Band-limited resampling of whole signals ``[..., T]`` to ``[..., length]`` through the spectrum."""
    spectrum = torch.fft.rfft(audio)
    bins = length // 2 + 1
    if spectrum.shape[-1] >= bins:
        spectrum = spectrum[..., :bins]
    else:
        spectrum = F.pad(spectrum, (0, bins - spectrum.shape[-1]))
    return torch.fft.irfft(spectrum, n=length) * (length / audio.shape[-1])


@torch.jit.interface
class KitPaths(nn.Module):
    """What :class:`DrumSynthExport` calls on :class:`DrumKit`, through an interface so that each path keeps
    its own TorchScript executor for the warm-up to compile (``export.host_rate``)."""

    def play(self, x: Tensor) -> Tensor:
        pass

    def generate(self, classes: Tensor, knobs: Tensor) -> Tensor:
        pass

    def render(self, classes: Tensor, knobs: Tensor) -> Tensor:
        pass

    def set_host_rate(self, rate: int) -> None:
        pass

    def forget_renders(self) -> None:
        pass

    def guard_output(self, on: bool) -> None:
        pass

    def reset(self) -> None:
        pass


class DrumKit(nn.Module):
    """The instrument (``play``) and offline one-shots (``generate``) of a :class:`DrumSynthVAE`."""

    def __init__(self, model: DrumSynthVAE, nsgt: NSGT, facts: dict[str, Any]) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.nsgt = nsgt
        # runs trained before the noise fine structure carry no settings: they get the defaults
        noise = facts.get("noise", {})
        self.fine_structure = NoiseFineStructure(
            nsgt,
            int(facts["nsgt"]["time_pool"]),
            float(noise.get("from_hz", 1500.0)),
            float(noise.get("full_hz", 3000.0)),
            int(noise.get("seed", 0)),
        )
        self.knob_limit, self.peak, self.voices = KNOB_LIMIT, PEAK, VOICES
        self.model_rate = int(facts["sample_rate"])
        self.time_pool = int(facts["nsgt"]["time_pool"])
        self.iterations = int(facts["griffin_lim"]["iterations"])
        self.momentum = float(facts["griffin_lim"]["momentum"])
        self.num_classes = len(facts["class_names"])
        self.latent_size = model.latent_size
        self.output_guard = True
        self.register_buffer("pca_mean", torch.tensor(facts["pca_mean"], dtype=torch.float32))
        self.register_buffer("pca_components", torch.tensor(facts["pca_components"], dtype=torch.float32))
        self.register_buffer("pca_std", torch.tensor(facts["pca_std"], dtype=torch.float32))
        host_rate = HOST_RATES[0]
        self.host_rate = host_rate
        # Sounds of every class at the centre of its knobs, rendered now so the first hit plays at once.
        with torch.no_grad():
            centre = self.render(
                torch.arange(self.num_classes), torch.zeros(self.num_classes, self.latent_size)
            )
        self.register_buffer("centre_model_rate", centre.clone())
        self.register_buffer("rendered_model_rate", centre)
        self.register_buffer("rendered", self._to_host(centre, host_rate))
        self.register_buffer("rendered_knobs", torch.zeros(self.num_classes, self.latent_size))
        # The render job (0: idle, 1: before its preview is heard, 2: refining the sound heard).
        self.job_stage, self.job_class, self.job_iteration = 0, 0, 0
        self.preview_iterations = min(PREVIEW_ITERATIONS, self.iterations)
        self.register_buffer("refined", torch.ones(self.num_classes, dtype=torch.bool))
        self.register_buffer("job_knobs", torch.zeros(self.latent_size))
        frames = nsgt.num_frames
        self.register_buffer("job_magnitude", torch.zeros(1, nsgt.num_bins, frames))
        self.register_buffer("job_phase", torch.zeros(1, nsgt.num_bins, frames, dtype=torch.complex64))
        self.register_buffer("job_previous", torch.zeros(1, nsgt.num_bins, frames, dtype=torch.complex64))
        self.register_buffer("job_signal", torch.zeros(1, int(facts["length"])))
        # Each class's warm start ``[C, F, M]``: the phase of its sound heard now, so that the knob call need
        # not analyse that sound (an NSGT forward costs three to four inverses). The sounds are analysed when
        # the host rate is set (1.2 MB a class at the demo's size, which the file does not carry), and a job
        # that swaps a sound in leaves the phase it made that sound with. Empty until then.
        self.register_buffer("warm_phase", torch.zeros(0, dtype=torch.complex64), persistent=False)
        # Voices of each batch entry (mc.nn~): class (-1 free), position in the sound, gain, start order.
        batch = cc.MAX_BATCH_SIZE
        self.register_buffer("voice_class", torch.full((batch, VOICES), -1, dtype=torch.long))
        self.register_buffer("voice_position", torch.zeros(batch, VOICES, dtype=torch.long))
        self.register_buffer("voice_gain", torch.zeros(batch, VOICES))
        self.register_buffer("voice_started", torch.zeros(batch, VOICES, dtype=torch.long))
        self.register_buffer("last_gate", torch.zeros(batch))
        self.hits = 0
        self.reset()

    def _knobs_to_latent(self, classes: Tensor, knobs: Tensor) -> Tensor:
        """``classes [B]``, ``knobs [B, D]`` (standard deviations along each class's PCA axes) -> z ``[B, D]``."""
        knobs = knobs.clamp(-self.knob_limit, self.knob_limit) * self.pca_std[classes]
        return self.pca_mean[classes] + torch.bmm(knobs.unsqueeze(1), self.pca_components[classes]).squeeze(1)

    @torch.jit.export
    def magnitude(self, classes: Tensor, knobs: Tensor) -> Tensor:
        """Decoded NSGT magnitudes ``[B, F, M]`` at the full frame rate, noisy bands with their fine structure."""
        logmag = self.model.decode(self._knobs_to_latent(classes, knobs), classes)[0]
        return self.fine_structure.magnitude(logmag)

    def _finish(self, audio: Tensor) -> Tensor:
        """Peak-normalised one-shots ``[B, T]``, finite while ``output_guard``."""
        if self.output_guard:
            audio = torch.nan_to_num(audio, 0.0, 0.0, 0.0)
        return audio * (self.peak / audio.abs().amax(-1, keepdim=True).clamp_min(1e-6))

    def _to_host(self, audio: Tensor, host_rate: int) -> Tensor:
        length = int(round(audio.shape[-1] * host_rate / self.model_rate))
        audio = fft_resample(audio, length)
        return audio.clamp(-1.0, 1.0) if self.output_guard else audio

    @torch.jit.export
    def render(self, classes: Tensor, knobs: Tensor) -> Tensor:
        """One-shots ``[B, T]`` at the model rate for ``classes [B]`` (long) and ``knobs [B, D]``, all at once."""
        magnitude = self.magnitude(classes, knobs)
        phase = self.fine_structure.start_phase
        return self._finish(self.nsgt.griffin_lim(magnitude, self.iterations, self.momentum, phase))

    @torch.jit.export
    def generate(self, classes: Tensor, knobs: Tensor) -> Tensor:
        """Offline one-shots ``[B, T]`` at the host rate (see :meth:`set_sample_rate`)."""
        return self._to_host(
            self.render(classes.long().clamp(0, self.num_classes - 1), knobs), self.host_rate
        )

    @torch.jit.export
    def set_host_rate(self, rate: int) -> None:
        """Resample the sounds to ``rate`` (any rate: the whole sounds go through the spectrum)."""
        self.host_rate = rate
        self.rendered = self._to_host(self.rendered_model_rate, rate)
        self.job_stage = 0
        self.warm_phase = self.nsgt.griffin_lim_warm_start(self.rendered_model_rate)[0]  # a new tensor

    @torch.jit.export
    def guard_output(self, on: bool) -> None:
        """Finite, clamped one-shots (on: for nn~); off: rendered as the model gives them, for the contract."""
        self.output_guard = on

    @torch.jit.export
    def forget_renders(self) -> None:
        """Back to the sounds of every class at the centre of its knobs, no render job running."""
        self.rendered_model_rate = self.centre_model_rate.clone()
        self.rendered_knobs.zero_()
        self.refined.fill_(True)
        self.set_host_rate(self.host_rate)

    @torch.jit.export
    def reset(self) -> None:
        """Silence every voice and forget the gates."""
        self.voice_class.fill_(-1)
        self.voice_gain.zero_()
        self.last_gate.zero_()

    def _wants_job(self, cls: int, knobs: Tensor) -> bool:
        """Whether ``knobs`` of class ``cls`` start a new job now (never during a preview)."""
        if self.job_stage == 1:
            return False
        if self.job_stage == 2 and self.job_class == cls:
            target = self.job_knobs
        else:
            target = self.rendered_knobs[cls]
        return bool((knobs - target).abs().max() > 1e-3)

    def _start_job(self, cls: int, knobs: Tensor, stage: int) -> None:
        """Decode the magnitude of ``cls`` at ``knobs`` and warm-start from the phase of its current sound
        (``warm_phase``)."""
        self.job_class, self.job_iteration, self.job_stage = cls, 0, stage
        self.job_knobs = knobs.clone()
        self.job_magnitude = self.magnitude(torch.tensor([cls]), knobs.unsqueeze(0))
        if self.warm_phase.shape[0] == self.num_classes:
            self.job_phase = self.warm_phase[cls].unsqueeze(0)
            self.job_previous = torch.zeros_like(self.job_phase)
        else:  # no host rate set yet: the export is silent then, but the kit itself can be played
            like = self.rendered_model_rate[cls].unsqueeze(0)
            self.job_phase, self.job_previous = self.nsgt.griffin_lim_warm_start(like)
        self.job_signal = self.nsgt.inverse(self.job_magnitude * self.job_phase)

    def _install(self, refined: bool) -> None:
        """Swap the job's sound in for its class."""
        audio = self._finish(self.job_signal)
        self.rendered_model_rate[self.job_class] = audio[0]
        self.rendered[self.job_class] = self._to_host(audio, self.host_rate)[0]
        self.rendered_knobs[self.job_class] = self.job_knobs
        self.refined[self.job_class] = refined
        if self.warm_phase.shape[0] == self.num_classes:
            # the job's signal is the inverse with this phase; where it has none (a silent or broken sound:
            # 0 or NaN), phase zero, as the analysis gives, so that such a sound cannot silence the next
            phase = self.job_phase[0]
            self.warm_phase[self.job_class] = torch.where(phase.abs() > 0.5, phase, torch.ones_like(phase))

    def _render_step(self, cls: int, knobs: Tensor) -> None:
        """The work of one call of the render job: a start (decode, warm start) or one Griffin-Lim iteration,
        and the swap of a sound that is ready."""
        if self._wants_job(cls, knobs):
            self._start_job(cls, knobs, 1)
        elif self.job_stage == 0:
            unrefined = (~self.refined).nonzero()
            if unrefined.shape[0] > 0:
                other = int(unrefined[0, 0])
                self._start_job(other, self.rendered_knobs[other].clone(), 2)
        else:
            self.job_phase, self.job_previous = self.nsgt.griffin_lim_update(
                self.job_signal, self.job_previous, self.momentum
            )
            self.job_signal = self.nsgt.inverse(self.job_magnitude * self.job_phase)
            self.job_iteration += 1
            if self.job_iteration >= self.iterations:
                self._install(True)
                self.job_stage = 0
            elif self.job_stage == 1 and self.job_iteration >= self.preview_iterations:
                self._install(False)
                self.job_stage = 2

    def _start_hits(self, gate: Tensor, classes: Tensor) -> None:
        """Give a voice to each rise of ``gate [B, T]``, the last ``VOICES`` of a buffer (more could not be
        heard together), playing the class ``classes [B, T]`` of its onset sample; the oldest voice is
        taken when none is free."""
        previous = torch.cat([self.last_gate[: gate.shape[0]].unsqueeze(1), gate[:, :-1]], dim=1)
        rises = (gate > 0) & (previous <= 0)
        from_the_end = (
            rises.flip(-1).long().cumsum(-1).flip(-1)
        )  # 1 for the last rise of a row, 2 before it...
        onsets = (rises & (from_the_end <= self.voices)).nonzero()
        for onset in onsets:
            b, t = int(onset[0]), int(onset[1])
            free = (self.voice_class[b] < 0).nonzero()
            voice = int(free[0, 0]) if free.shape[0] > 0 else int(self.voice_started[b].argmin())
            self.voice_class[b, voice] = classes[b, t]
            self.voice_position[b, voice] = -t  # the sound begins on sample t of this buffer
            self.voice_gain[b, voice] = gate[b, t]
            self.hits += 1
            self.voice_started[b, voice] = self.hits

    def _mix(self, batch: int, length: int) -> Tensor:
        """The voices of ``batch`` entries over the next ``length`` samples ``[B, 1, T]``; voices advance."""
        sound_length = self.rendered.shape[1]
        voice_class = self.voice_class[:batch]
        index = self.voice_position[:batch].unsqueeze(-1) + torch.arange(length).view(1, 1, -1)  # [B, V, T]
        playing = (voice_class.unsqueeze(-1) >= 0) & (index >= 0) & (index < sound_length)
        flat = voice_class.clamp(min=0).unsqueeze(-1) * sound_length + index.clamp(0, sound_length - 1)
        samples = self.rendered.flatten()[flat] * playing
        out = (samples * self.voice_gain[:batch].unsqueeze(-1)).sum(1, keepdim=True)
        self.voice_position[:batch] += length
        ended = self.voice_position[:batch] >= sound_length
        self.voice_class[:batch] = torch.where(ended, torch.full_like(voice_class, -1), voice_class)
        return out

    @torch.jit.export
    def play(self, x: Tensor) -> Tensor:
        """``[B, 2 + D, T]`` (gate, class, knobs) -> audio ``[B, 1, T]`` at the host rate."""
        batch, length = x.shape[0], x.shape[-1]
        gate = torch.nan_to_num(x[:, 0], 0.0, 0.0, 0.0).clamp(0.0, 1.0)
        classes = torch.nan_to_num(x[:, 1], 0.0, 0.0, 0.0).clamp(0, self.num_classes - 1).round().long()
        knobs = torch.nan_to_num(x[:, 2:, -1], 0.0, 0.0, 0.0).clamp(-self.knob_limit, self.knob_limit)
        self._render_step(int(classes[0, -1]), knobs[0])
        self._start_hits(gate, classes)
        self.last_gate[:batch] = gate[:, -1]
        return self._mix(batch, length)


class DrumSynthExport(HostRateModule):
    """``forward`` (the instrument) and ``generate`` / ``render`` (offline one-shots) of a :class:`DrumKit`;
    attributes ``latency`` and ``host_rate`` (``export.host_rate``: ``forward`` is silent until it is set)."""

    kit: KitPaths

    def __init__(self, model: DrumSynthVAE, nsgt: NSGT, facts: dict[str, Any]) -> None:
        super().__init__(HOST_RATES)
        self.kit = torch.jit.script(DrumKit(model, nsgt, facts))
        self.latent_size, self.num_classes = model.latent_size, len(facts["class_names"])
        self.render_calls = int(facts["griffin_lim"]["iterations"]) + 1  # calls of one whole render job
        self.preview_calls = min(PREVIEW_ITERATIONS, self.render_calls - 1)  # calls after the knob call
        self.register_attribute("latency", 0)
        labels = ["(signal) gate: velocity 0..1", "(signal) drum class index"]
        labels += [f"(signal) knob {i + 1}" for i in range(self.latent_size)]
        self.register_method("forward", 2 + self.latent_size, 1, 1, 1, labels, ["(signal) audio"])
        self.reset()

    def forward(self, x: Tensor) -> Tensor:
        """``[B, 2 + D, T]`` (gate, class, knobs) -> audio ``[B, 1, T]`` at the host rate."""
        if self.rate == 0:
            return self.silence(x, 1, 1, 1)
        return self.kit.play(x)

    @torch.jit.export
    def generate(self, classes: Tensor, knobs: Tensor) -> Tensor:
        """Offline one-shots ``[B, T]`` at the host rate (44.1 kHz until one is set)."""
        return self.kit.generate(classes, knobs)

    @torch.jit.export
    def render(self, classes: Tensor, knobs: Tensor) -> Tensor:
        """One-shots ``[B, T]`` at the model rate for ``classes [B]`` (long) and ``knobs [B, D]``."""
        return self.kit.render(classes, knobs)

    @torch.jit.export
    def guard_output(self, on: bool) -> None:
        """Finite, clamped one-shots (on: for nn~); off: the raw renders, for the contract (the sounds already
        rendered stay as they are)."""
        self.kit.guard_output(on)

    def use_host_rate(self, rate: int) -> None:
        self.kit.set_host_rate(rate)

    def warm_up(self) -> None:
        """Hits and whole render jobs (every stage of them), a job left for another class and resumed once
        idle, then the centre sounds again."""
        x = torch.zeros(1, 2 + self.latent_size, self.warm_up_buffer)
        x[0, 0, 0] = 1.0  # a hit at the start of each buffer
        for call in range(self.warm_up_calls * (self.render_calls + 1)):
            x[0, 2] = float(call // (self.render_calls + 1) + 1)  # new knobs: a new job each round
            self.kit.play(x)
        x[0, 2] = -1.0
        for _ in range(self.preview_calls + 2):  # the preview is heard, its refinement begins ...
            self.kit.play(x)
        x[0, 1] = 1.0  # ... and is left for another class, then resumed when that one is done
        for _ in range(2 * self.render_calls + 1):
            self.kit.play(x)
        self.kit.forget_renders()
        self.kit.reset()

    @torch.jit.export
    def reset(self) -> None:
        """Silence every voice and forget the gates."""
        self.kit.reset()


def build_drumsynth_export(
    checkpoint: dict[str, Any], streaming: bool = True
) -> tuple[DrumSynthExport, dict[str, Any]]:
    """The wrapper and the metadata of the exported file, from a trainer checkpoint (the same module with
    ``streaming`` or without: the model has no cached-conv layers)."""
    facts = checkpoint["metadata"]
    model = DrumSynthVAE(**checkpoint["model_args"])
    model.load_state_dict(checkpoint["model_state"])
    settings = facts["nsgt"]
    scale = make_scale(settings["scale"], settings["fmin"], settings["fmax"], settings["scale_bins"])
    nsgt = NSGT(int(facts["length"]), float(facts["sample_rate"]), scale, frames=int(settings["frames"]))
    wrapper = DrumSynthExport(model, nsgt, facts)
    metadata = {
        "model": "drumsynth",
        "latent_size": model.latent_size,
        "class_names": facts["class_names"],
        "voices": VOICES,
        "sample_rate": int(facts["sample_rate"]),
        "host_sample_rate": HOST_RATES[0],
        "host_sample_rates": list(HOST_RATES),
        "attributes": {"latency": 0},
        "latency_samples": 0,
        "output_bounds": {"forward": float(VOICES)},
        # the sound of each class stays rendered from the knobs last heard with it, by design
        "state_window": {"forward": None},
        "calls_to_settle": wrapper.render_calls + 1,  # one whole render job, for the raw output checks
        "render_calls": wrapper.render_calls,
        "knob_to_sound_calls": wrapper.preview_calls,  # a knob moved in call k is heard in call k + this
    }
    return wrapper, metadata

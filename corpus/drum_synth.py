"""A procedural drum synthesiser whose factors of variation are known, for measuring a learned latent space.

Eight classes (:data:`SYNTH_CLASSES`), each built from a few classic analogue-drum ingredients:
sine bodies with a falling pitch envelope (kick, tom, snare body), band-limited noise through
Butterworth filters (snare wires, clap, hats), metallic clusters of square waves at inharmonic
ratios (hats, cymbal) and a burst envelope (clap). Every sound is a function of its class, of its
factors and of a noise seed.

Factors are named in :data:`FACTOR_NAMES`, shared across classes where they mean the same thing
(``decay`` is always the time to fall by 60 dB). :data:`CLASS_FACTORS` gives, per class, the factors
it has and their physical range. A factor is handled as a normalised value in 0..1, mapped to its
range linearly or, for frequencies and times (``log``), geometrically; the corpus draws the
normalised values uniformly. Filter frequencies are clipped to 0.45 x the sample rate, so at low
sample rates the top of a ``brightness`` range saturates.

Ranges (units): pitch Hz (the body frequency, or the base of the metallic cluster), decay s (T60),
brightness Hz (filter corner or centre), noise_mix 0..1 (share of noise against the tonal part),
sweep_depth semitones (start of the pitch envelope above the pitch), sweep_time s (time constant of
the pitch envelope), click 0..1 (level of the beater click), drive 0..1 (tanh saturation), spread s
(spacing of the clap bursts).
"""

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import signal

SYNTH_CLASSES = ("kick", "snare", "clap", "closed_hat", "open_hat", "tom", "rim", "cymbal")
FACTOR_NAMES = (
    "pitch",
    "decay",
    "brightness",
    "noise_mix",
    "sweep_depth",
    "sweep_time",
    "click",
    "drive",
    "spread",
)
PEAK = 0.9  # peak level of every sound, as in corpus.one_shots
_FADE_S = 0.01  # fade-out at the end of the clip, so a cut ringing sound does not click


@dataclass(frozen=True)
class FactorRange:
    """The physical range of one factor; ``log``: normalised values map geometrically."""

    low: float
    high: float
    log: bool = False

    def value(self, normalised: float) -> float:
        if self.log:
            return float(self.low * (self.high / self.low) ** normalised)
        return float(self.low + (self.high - self.low) * normalised)


def _lin(low: float, high: float) -> FactorRange:
    return FactorRange(low, high, log=False)


def _log(low: float, high: float) -> FactorRange:
    return FactorRange(low, high, log=True)


CLASS_FACTORS: dict[str, dict[str, FactorRange]] = {
    "kick": {
        "pitch": _log(40.0, 80.0),
        "sweep_depth": _lin(0.0, 36.0),
        "sweep_time": _log(0.005, 0.06),
        "decay": _log(0.15, 0.8),
        "click": _lin(0.0, 1.0),
        "drive": _lin(0.0, 1.0),
    },
    "snare": {
        "pitch": _log(140.0, 280.0),
        "decay": _log(0.08, 0.35),
        "noise_mix": _lin(0.3, 0.9),
        "brightness": _log(1500.0, 7000.0),
        "sweep_depth": _lin(0.0, 7.0),
    },
    "clap": {
        "decay": _log(0.08, 0.4),
        "brightness": _log(700.0, 2500.0),
        "spread": _log(0.005, 0.015),
    },
    "closed_hat": {
        "pitch": _log(250.0, 600.0),
        "decay": _log(0.03, 0.12),
        "brightness": _log(4000.0, 9000.0),
        "noise_mix": _lin(0.0, 0.7),
    },
    "open_hat": {
        "pitch": _log(250.0, 600.0),
        "decay": _log(0.25, 0.9),
        "brightness": _log(4000.0, 9000.0),
        "noise_mix": _lin(0.0, 0.7),
    },
    "tom": {
        "pitch": _log(70.0, 250.0),
        "sweep_depth": _lin(0.0, 12.0),
        "decay": _log(0.15, 0.8),
        "noise_mix": _lin(0.0, 0.3),
    },
    "rim": {
        "pitch": _log(350.0, 1200.0),
        "decay": _log(0.01, 0.08),
        "brightness": _log(1500.0, 6000.0),
        "noise_mix": _lin(0.0, 0.6),
    },
    "cymbal": {
        "pitch": _log(300.0, 700.0),
        "decay": _log(0.6, 2.5),
        "brightness": _log(3000.0, 8000.0),
        "noise_mix": _lin(0.2, 0.8),
    },
}

# Frequency ratios of the metallic clusters: inharmonic, so the squares beat into a noisy shimmer.
_HAT_RATIOS = (1.0, 1.4826, 1.8002, 2.5453, 2.6302, 3.8965)
_CYMBAL_RATIOS = (1.0, 1.3421, 1.7132, 2.1087, 2.4719, 2.9063, 3.4413, 4.1702)


def synthesise(
    class_name: str, factors: Mapping[str, float], sample_rate: int, length: int, seed: int = 0
) -> np.ndarray:
    """One sound of `class_name`: float32 [length], peak :data:`PEAK`, starting at its onset.

    `factors` maps factor names of the class to normalised values in 0..1; a factor left out is 0.5.
    `seed` draws the noise (and the small timing jitter of the clap).
    """
    if class_name not in CLASS_FACTORS:
        raise ValueError(f"unknown drum class {class_name!r}; expected one of {', '.join(SYNTH_CLASSES)}")
    ranges = CLASS_FACTORS[class_name]
    unknown = set(factors) - set(ranges)
    if unknown:
        raise ValueError(f"{class_name} has no factor(s) {sorted(unknown)}; it has {sorted(ranges)}")
    values = {}
    for name, factor_range in ranges.items():
        normalised = float(factors.get(name, 0.5))
        if not 0.0 <= normalised <= 1.0:
            raise ValueError(f"{class_name} factor {name} = {normalised}: normalised factors lie in 0..1")
        values[name] = factor_range.value(normalised)
    voice = _Voice(sample_rate, length, np.random.default_rng(seed))
    audio = _VOICES[class_name](voice, **values)
    return _finish(audio, sample_rate)


def generate_synth_corpus(
    examples_per_class: int, sample_rate: int, length: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random sounds of every class: (audio float32 [N, L], classes int64 [N], factors float32 [N, F]).

    N = examples_per_class x 8, in the order of :data:`SYNTH_CLASSES`; F = len(FACTOR_NAMES).
    factors holds the normalised values (0..1) and NaN for the factors a class does not have.
    The same seed gives the same corpus.
    """
    rng = np.random.default_rng(seed)
    n = examples_per_class * len(SYNTH_CLASSES)
    audio = np.zeros((n, length), dtype=np.float32)
    classes = np.repeat(np.arange(len(SYNTH_CLASSES), dtype=np.int64), examples_per_class)
    factors = np.full((n, len(FACTOR_NAMES)), np.nan, dtype=np.float32)
    noise_seeds = rng.integers(0, 2**63 - 1, size=n)
    for i, class_index in enumerate(classes):
        class_name = SYNTH_CLASSES[class_index]
        drawn = {name: float(rng.uniform()) for name in CLASS_FACTORS[class_name]}
        audio[i] = synthesise(class_name, drawn, sample_rate, length, seed=int(noise_seeds[i]))
        for name, value in drawn.items():
            factors[i, FACTOR_NAMES.index(name)] = value
    return audio, classes, factors


class _Voice:
    """Time axis, noise source and filters shared by the class recipes."""

    def __init__(self, sample_rate: int, length: int, rng: np.random.Generator) -> None:
        self.sample_rate = sample_rate
        self.length = length
        self.rng = rng
        self.t = np.arange(length, dtype=np.float64) / sample_rate

    def decay(self, t60: float, start: float = 0.0, attack: float = 0.0005) -> np.ndarray:
        """Exponential envelope falling 60 dB in `t60` s after `start`, with a short linear attack."""
        t = self.t - start
        envelope = np.where(t >= 0, 10.0 ** (-3.0 * np.maximum(t, 0.0) / t60), 0.0)
        return envelope * np.clip(t / attack, 0.0, 1.0)

    def swept_sine(self, pitch: float, depth_semitones: float, sweep_time: float) -> np.ndarray:
        """Sine whose frequency falls from `depth_semitones` above `pitch` with time constant `sweep_time`."""
        frequency = pitch * (1.0 + (2.0 ** (depth_semitones / 12.0) - 1.0) * np.exp(-self.t / sweep_time))
        return np.sin(2.0 * np.pi * np.cumsum(frequency) / self.sample_rate)

    def noise(self) -> np.ndarray:
        return self.rng.standard_normal(self.length)

    def metal(self, base: float, ratios: tuple[float, ...]) -> np.ndarray:
        """Sum of square waves at `base` x ratios with random phases, unit peak."""
        phases = self.rng.uniform(0.0, 2.0 * np.pi, size=len(ratios))
        partials = [
            np.sign(np.sin(2.0 * np.pi * base * r * self.t + p)) for r, p in zip(ratios, phases, strict=True)
        ]
        return _unit(np.sum(partials, axis=0))

    def filtered(
        self, x: np.ndarray, kind: str, frequency: float | tuple[float, float], order: int = 2
    ) -> np.ndarray:
        """Butterworth `kind` ("lowpass", "highpass", "bandpass") filter; corners clipped below Nyquist."""
        top = 0.45 * self.sample_rate
        if isinstance(frequency, tuple):
            low = min(frequency[0], 0.9 * top)
            corners: float | tuple[float, float] = (low, min(max(frequency[1], 1.1 * low), top))
        else:
            corners = min(frequency, top)
        sos = signal.butter(order, corners, btype=kind, output="sos", fs=self.sample_rate)
        return signal.sosfilt(sos, x)


def _unit(x: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(x)))
    return x / peak if peak > 0 else x


def _kick(
    v: _Voice, pitch: float, sweep_depth: float, sweep_time: float, decay: float, click: float, drive: float
) -> np.ndarray:
    body = v.swept_sine(pitch, sweep_depth, sweep_time) * v.decay(decay)
    beater = _unit(v.filtered(v.noise(), "highpass", 2000.0)) * v.decay(0.006, attack=0.0001)
    x = body + 0.6 * click * beater
    gain = 1.0 + 7.0 * drive
    return np.tanh(gain * x) / np.tanh(gain)


def _snare(
    v: _Voice, pitch: float, decay: float, noise_mix: float, brightness: float, sweep_depth: float
) -> np.ndarray:
    # Two drum-head modes (the second of a circular membrane lies near 1.59 x the first).
    head = v.swept_sine(pitch, sweep_depth, 0.015) + 0.5 * v.swept_sine(1.59 * pitch, sweep_depth, 0.015)
    body = _unit(head) * v.decay(0.6 * decay)
    wires = v.filtered(v.noise(), "bandpass", (0.5 * brightness, 2.0 * brightness))
    wires = _unit(wires) * v.decay(decay, attack=0.001)
    return (1.0 - noise_mix) * body + noise_mix * wires


def _clap(v: _Voice, decay: float, brightness: float, spread: float) -> np.ndarray:
    band = _unit(v.filtered(v.noise(), "bandpass", (brightness / 1.6, brightness * 1.6)))
    # Several hands a few ms apart, then the room: three sharp bursts and a longer tail from the last.
    starts = np.cumsum([0.0] + [spread * v.rng.uniform(0.8, 1.2) for _ in range(3)])
    envelope = sum(v.decay(0.02, start=s, attack=0.0003) for s in starts[:-1])
    envelope = envelope + 0.8 * v.decay(decay, start=starts[-1], attack=0.0003)
    return band * envelope


def _hat(v: _Voice, pitch: float, decay: float, brightness: float, noise_mix: float) -> np.ndarray:
    source = (1.0 - noise_mix) * v.metal(pitch, _HAT_RATIOS) + noise_mix * _unit(v.noise())
    shimmer = v.filtered(source, "highpass", brightness, order=4)
    return _unit(shimmer) * v.decay(decay, attack=0.0003)


def _tom(v: _Voice, pitch: float, sweep_depth: float, decay: float, noise_mix: float) -> np.ndarray:
    body = v.swept_sine(pitch, sweep_depth, 0.04) * v.decay(decay)
    stick = _unit(v.filtered(v.noise(), "bandpass", (pitch * 2.0, pitch * 12.0))) * v.decay(0.03)
    return (1.0 - noise_mix) * body + noise_mix * stick


def _rim(v: _Voice, pitch: float, decay: float, brightness: float, noise_mix: float) -> np.ndarray:
    # A wooden knock: two inharmonic modes (a bar's second mode lies near 2.76 x its first) and a click.
    tone = v.swept_sine(pitch, 0.0, 1.0) + 0.6 * v.swept_sine(2.76 * pitch, 0.0, 1.0)
    tone = _unit(tone) * v.decay(decay, attack=0.0002)
    crack = _unit(v.filtered(v.noise(), "highpass", brightness)) * v.decay(0.5 * decay, attack=0.0001)
    return (1.0 - noise_mix) * tone + noise_mix * crack


def _cymbal(v: _Voice, pitch: float, decay: float, brightness: float, noise_mix: float) -> np.ndarray:
    source = (1.0 - noise_mix) * v.metal(pitch, _CYMBAL_RATIOS) + noise_mix * _unit(v.noise())
    wash = v.filtered(source, "bandpass", (brightness, 3.0 * brightness))
    return _unit(wash) * v.decay(decay, attack=0.002)


_VOICES = {
    "kick": _kick,
    "snare": _snare,
    "clap": _clap,
    "closed_hat": _hat,
    "open_hat": _hat,
    "tom": _tom,
    "rim": _rim,
    "cymbal": _cymbal,
}


def _finish(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    fade = min(len(audio), max(1, int(_FADE_S * sample_rate)))
    audio = audio.copy()
    audio[len(audio) - fade :] *= np.linspace(1.0, 0.0, fade)
    return (PEAK * _unit(audio)).astype(np.float32)

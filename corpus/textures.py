"""Procedural tones and textures for the grain corpus: oscillators, FM, noise bands and glides under envelopes.

Everything is numpy (and scipy filters), deterministic for a seed and downloads nothing. Each texture
has a source (:data:`SOURCES`) and an amplitude envelope (:data:`ENVELOPES`):

- sine, saw, square: an oscillator at a random pitch (A1..A5) with a slow vibrato; saw and square are
  band-limited (polyBLEP), so high notes do not alias, and pass a low-pass of random brightness;
- fm: a sine carrier phase-modulated by a sine at a small-integer or half-integer ratio, with an
  index that moves over the sound (the timbre brightens or darkens as it plays);
- noise_band: white noise band-passed around a centre (100 Hz..6 kHz) of random width, the centre
  moving from one band to another over the sound;
- glide: an oscillator (sine, saw or square) whose pitch sweeps up to two octaves up or down.

Envelopes: ``ad`` (fast attack, exponential decay), ``adsr`` (attack, decay to a sustain level,
release before the end), ``swell`` (a slow rise and fall) and ``steady`` (short fades, a slow
tremolo). Every texture is peak-normalised to :data:`PEAK` and fades out over its last 10 ms.
Texture ``i`` of a seed is the same whatever ``count`` is, so a larger corpus extends a smaller one.
"""

import numpy as np
from scipy import signal

__all__ = ["ENVELOPES", "PEAK", "SOURCES", "generate_textures", "render_texture"]

PEAK = 0.9  # as the one-shots of corpus.one_shots
SOURCES = ("sine", "saw", "square", "fm", "noise_band", "glide")
ENVELOPES = ("ad", "adsr", "swell", "steady")
PITCH_RANGE = (33, 81)  # MIDI notes A1..A5
_FADE_S = 0.01
_FM_RATIOS = (0.5, 1.0, 1.5, 2.0, 3.0, 3.5, 4.0, 7.0)


def generate_textures(
    count: int, sample_rate: int = 22050, seconds: float = 3.0, seed: int = 0
) -> tuple[list[np.ndarray], list[str]]:
    """`count` textures of `seconds` each: (audio, kinds), audio float32 [round(seconds x rate)] per texture.

    The sources cycle through :data:`SOURCES` (texture i has source ``SOURCES[i % 6]``) so every
    kind is present from six textures on; the envelope is drawn. A kind reads ``"source/envelope"``,
    e.g. ``"fm/swell"``.
    """
    if count < 0:
        raise ValueError(f"count = {count}: must be 0 or more")
    audio, kinds = [], []
    for index in range(count):
        source = SOURCES[index % len(SOURCES)]
        rng = np.random.default_rng([seed, index])  # one stream per texture: independent of count
        envelope = ENVELOPES[int(rng.integers(len(ENVELOPES)))]
        audio.append(render_texture(source, envelope, sample_rate, seconds, rng))
        kinds.append(f"{source}/{envelope}")
    return audio, kinds


def render_texture(
    source: str, envelope: str, sample_rate: int, seconds: float, rng: np.random.Generator
) -> np.ndarray:
    """One texture of `source` under `envelope`: float32 [round(seconds x sample_rate)], peak PEAK."""
    if source not in SOURCES:
        raise ValueError(f"unknown texture source {source!r}; expected one of {', '.join(SOURCES)}")
    if envelope not in ENVELOPES:
        raise ValueError(f"unknown envelope {envelope!r}; expected one of {', '.join(ENVELOPES)}")
    length = int(round(seconds * sample_rate))
    if length < 1:
        raise ValueError(f"seconds = {seconds}: shorter than one sample at {sample_rate} Hz")
    t = np.arange(length, dtype=np.float64) / sample_rate
    if source == "fm":
        tone = _fm(t, sample_rate, rng)
    elif source == "noise_band":
        tone = _noise_band(length, sample_rate, rng)
    else:
        waveform = source if source != "glide" else ("sine", "saw", "square")[int(rng.integers(3))]
        glide = float(rng.uniform(-24.0, 24.0)) if source == "glide" else 0.0
        tone = _oscillator(waveform, _pitch_curve(t, rng, glide), sample_rate, rng)
    audio = tone * _envelope(envelope, t, rng)
    fade = min(length, max(1, int(_FADE_S * sample_rate)))
    audio[length - fade :] *= np.linspace(1.0, 0.0, fade)
    peak = float(np.max(np.abs(audio)))
    return (PEAK * audio / peak if peak > 0 else audio).astype(np.float32)


# -- sources --------------------------------------------------------------------------------------------


def _pitch_curve(t: np.ndarray, rng: np.random.Generator, glide_semitones: float) -> np.ndarray:
    """Frequency in Hz [T]: a random note, a sweep of `glide_semitones` (eased), a slow vibrato."""
    note = float(rng.uniform(*PITCH_RANGE))
    duration = max(float(t[-1]), 1e-9)
    # The sweep starts and ends at a random point of the sound and eases in and out (a portamento).
    start, end = sorted(rng.uniform(0.0, 1.0, size=2) * duration)
    progress = np.clip((t - start) / max(end - start, 1e-3), 0.0, 1.0)
    sweep = glide_semitones * (0.5 - 0.5 * np.cos(np.pi * progress))
    vibrato = float(rng.uniform(0.0, 0.3)) * np.sin(2.0 * np.pi * float(rng.uniform(3.0, 7.0)) * t)
    return 440.0 * 2.0 ** ((note + sweep + vibrato - 69.0) / 12.0)


def _oscillator(
    waveform: str, frequency: np.ndarray, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """A sine, saw or square at `frequency` [T] (Hz); saw and square polyBLEP-corrected and low-passed."""
    step = np.minimum(frequency / sample_rate, 0.45)  # cycles per sample
    phase = (float(rng.uniform()) + np.cumsum(step)) % 1.0
    if waveform == "sine":
        return np.sin(2.0 * np.pi * phase)
    if waveform == "saw":
        tone = 2.0 * phase - 1.0 - _poly_blep(phase, step)
    else:
        tone = (
            np.where(phase < 0.5, 1.0, -1.0) + _poly_blep(phase, step) - _poly_blep((phase + 0.5) % 1.0, step)
        )
    # Brightness: a low-pass at 2..16 times the median pitch, clipped below Nyquist.
    cutoff = min(float(np.median(frequency)) * 2.0 ** float(rng.uniform(1.0, 4.0)), 0.45 * sample_rate)
    sos = signal.butter(2, cutoff, btype="lowpass", output="sos", fs=sample_rate)
    return signal.sosfilt(sos, tone)


def _poly_blep(phase: np.ndarray, step: np.ndarray) -> np.ndarray:
    """The polyBLEP residual that smooths a unit downward jump at phase 0 (subtract it from a naive saw)."""
    residual = np.zeros_like(phase)
    after = phase < step
    x = phase[after] / step[after]
    residual[after] = 2.0 * x - x * x - 1.0
    before = phase > 1.0 - step
    x = (phase[before] - 1.0) / step[before]
    residual[before] = x * x + 2.0 * x + 1.0
    return residual


def _fm(t: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Two-operator FM: sin(carrier + index(t) x sin(ratio x carrier)), the index kept under aliasing."""
    frequency = _pitch_curve(t, rng, 0.0)
    ratio = float(rng.choice(_FM_RATIOS))
    carrier = 2.0 * np.pi * np.cumsum(frequency) / sample_rate
    # Carson's rule: the sidebands reach about (index + 1) x ratio x f above the carrier f; keep them,
    # with a sideband to spare, under 0.4 x the rate so the folded-back remainder stays inaudible.
    ceiling = max((0.4 * sample_rate / float(frequency.max()) - 1.0) / ratio - 2.0, 0.0)
    first, last = rng.uniform(0.0, min(6.0, ceiling), size=2)
    index = first + (last - first) * t / max(float(t[-1]), 1e-9)
    return np.sin(carrier + index * np.sin(ratio * carrier))


def _noise_band(length: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """White noise through a log-Gaussian band-pass whose centre moves from one band to another."""
    noise = rng.standard_normal(length)
    spectrum = np.fft.rfft(noise)
    log_frequency = np.log2(np.maximum(np.fft.rfftfreq(length, 1.0 / sample_rate), 1.0))
    width = float(rng.uniform(0.1, 1.5))  # octaves
    bands = []
    for centre in rng.uniform(np.log2(100.0), np.log2(min(6000.0, 0.4 * sample_rate)), size=2):
        gain = np.exp(-0.5 * ((log_frequency - centre) / width) ** 2)
        band = np.fft.irfft(spectrum * gain, n=length)
        bands.append(band / max(float(np.std(band)), 1e-12))
    mix = np.linspace(0.0, 1.0, length)
    return (1.0 - mix) * bands[0] + mix * bands[1]


# -- envelopes ------------------------------------------------------------------------------------------


def _envelope(kind: str, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Amplitude envelope [T] in 0..1 of `kind` (see :data:`ENVELOPES`)."""
    duration = max(float(t[-1]), 1e-9)
    attack = float(rng.uniform(0.001, 0.05))
    rise = np.clip(t / attack, 0.0, 1.0)
    if kind == "ad":
        t60 = float(rng.uniform(0.2, 1.0)) * duration
        return rise * 10.0 ** (-3.0 * t / t60)
    if kind == "adsr":
        decay, sustain = float(rng.uniform(0.05, 0.5)), float(rng.uniform(0.3, 0.9))
        release_start = float(rng.uniform(0.5, 0.85)) * duration
        level = sustain + (1.0 - sustain) * np.exp(-np.maximum(t - attack, 0.0) / decay)
        release = 10.0 ** (-3.0 * np.maximum(t - release_start, 0.0) / max(duration - release_start, 1e-3))
        return rise * level * release
    if kind == "swell":
        top = float(rng.uniform(0.3, 0.8)) * duration
        shape = np.where(t < top, t / top, 1.0 - (t - top) / max(duration - top, 1e-9))
        return np.clip(shape, 0.0, 1.0) ** float(rng.uniform(1.0, 3.0))
    depth = float(rng.uniform(0.0, 0.5))
    tremolo = 1.0 - depth * (0.5 - 0.5 * np.cos(2.0 * np.pi * float(rng.uniform(0.5, 6.0)) * t))
    return np.clip(t / 0.02, 0.0, 1.0) * tremolo

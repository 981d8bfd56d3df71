"""A procedural techno renderer: seeded loops of drums, acid bass, stabs, pads and noise sweeps.

Everything is numpy (and scipy filters), deterministic for a seed and downloads nothing. A loop is
``bars`` bars of 4/4 at a random tempo (120..140 bpm) in a random key and scale, with a random mix of
the parts in :data:`PART_NAMES`:

- drums: a pattern of a techno-friendly style of :mod:`corpus.drum_styles`, played with one sound
  per instrument synthesised by :mod:`corpus.drum_synth` (kick, snare or clap, hats, toms, cymbals),
  and a rim-shot groove as percussion when the pattern has no toms;
- bass: a 16-step acid line (saw or square) through a resonant 4-pole low-pass with an envelope,
  accents and slides, ducked by the kick;
- stabs: short filtered chords on an off-beat rhythm with dub echoes;
- pad: a detuned saw chord (plus filtered noise) whose brightness moves with a loop-synced LFO;
- sweep: filtered noise risers into the downbeat and downers from it.

Loops cycle cleanly: every note is an event placed modulo the loop length, so the tails of the
previous cycle are wrapped into its start, and the continuous parts (the pad, the LFOs) complete
whole cycles per loop. Tiling the audio therefore plays like an endless rendering, with no click.

Time-varying filters are approximated without a per-sample loop: the signal goes through a bank of
fixed filters whose cutoffs are spaced a few semitones apart, and each sample crossfades between
the two filters around the wanted cutoff.
"""

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import scipy.fft
from scipy import signal

from latentlive.corpus.drum_map import (
    CLOSED_HAT,
    CRASH,
    HIGH_TOM,
    INSTRUMENT_NAMES,
    KICK,
    LOW_TOM,
    MID_TOM,
    OPEN_HAT,
    RIDE,
    SNARE,
)
from latentlive.corpus.drum_styles import STEPS_PER_BAR, generate_pattern
from latentlive.corpus.drum_synth import CLASS_FACTORS, synthesise

__all__ = [
    "BPM_RANGE",
    "PART_NAMES",
    "PEAK",
    "TECHNO_STYLES",
    "TechnoLoop",
    "generate_techno_corpus",
    "loop_samples_for",
    "render_techno_loop",
]

PEAK = 0.9
BPM_RANGE = (120.0, 140.0)
PART_NAMES = ("kick", "snare", "hats", "percussion", "bass", "stabs", "pad", "sweep")
# Drum styles of corpus.drum_styles that sit in a techno set, with their weights.
TECHNO_STYLES = (("techno", 0.6), ("house", 0.2), ("electro", 0.2))

# Per part: probability that it plays in a loop, and the range of its linear level in the mix.
_PRESENCE = {
    "kick": 0.95,
    "snare": 0.6,
    "hats": 0.9,
    "percussion": 0.5,
    "bass": 0.85,
    "stabs": 0.5,
    "pad": 0.5,
    "sweep": 0.4,
}
_LEVEL_RANGE = {
    "kick": (0.8, 1.0),
    "snare": (0.3, 0.7),
    "hats": (0.2, 0.55),
    "percussion": (0.2, 0.5),
    "bass": (0.45, 0.9),
    "stabs": (0.25, 0.6),
    "pad": (0.15, 0.45),
    "sweep": (0.1, 0.35),
}
_SCALES = {
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "minor_pentatonic": (0, 3, 5, 7, 10),
}
_CHORDS = ((0, 3, 7), (0, 3, 7, 10), (0, 5, 7), (0, 7, 10, 14), (0, 7, 12), (0, 3, 10, 14))
_STAB_RHYTHMS = (
    "..x...x...x...x.",
    "x..x..x.x..x..x.",
    "..x..x....x..x..",
    "...x......x.....",
    "x.....x.....x...",
    "..x.......x..x..",
)
_RIM_PATTERNS = ("...x..x....x..x.", "..x..x..x...x...", ".x...x.x..x...x.", "...x.......x..x.")
_KEY_RANGE = (24, 36)  # MIDI roots C1..B1 of the bass; stabs and pads sit two or three octaves up
_FADE_S = 0.004  # ramps at the ends of every rendered event, so no event starts or stops with a step
_SILENCE = 1e-9

# Drum instrument (row of the pattern) -> part of the mix and seconds of its rendered sound.
_DRUM_PARTS = {
    KICK: ("kick", 0.6),
    SNARE: ("snare", 0.45),
    CLOSED_HAT: ("hats", 0.2),
    OPEN_HAT: ("hats", 0.6),
    LOW_TOM: ("percussion", 0.5),
    MID_TOM: ("percussion", 0.45),
    HIGH_TOM: ("percussion", 0.4),
    CRASH: ("hats", 1.5),
    RIDE: ("hats", 1.0),
}


@dataclass
class TechnoLoop:
    """One rendered loop.

    audio: float32 [T] mono, peak :data:`PEAK`, starting on the downbeat; T = loop_samples, or the
    ``length`` asked for (the loop repeated or cropped). bpm: the exact tempo of the loop
    (``loop_samples`` samples hold ``bars`` bars). key: MIDI note of the root (bass octave, 24..35).
    levels: linear level of every part of :data:`PART_NAMES` in the mix (0 = absent).
    """

    audio: np.ndarray
    sample_rate: int
    bpm: float
    key: int
    scale: str
    bars: int
    loop_samples: int
    style: str
    levels: dict[str, float] = field(default_factory=dict)


def loop_samples_for(bpm: float, bars: int, sample_rate: int) -> int:
    """Samples in `bars` bars of 4/4 at `bpm` (rounded to an integer)."""
    return int(round(bars * 4 * 60.0 * sample_rate / bpm))


def render_techno_loop(
    seed: int,
    sample_rate: int = 16000,
    bars: int = 2,
    bpm: float | None = None,
    length: int | None = None,
    parts: Collection[str] | None = None,
) -> TechnoLoop:
    """A seamless techno loop of `bars` bars: audio float32 [loop_samples] (or [length]).

    `bpm` None draws a tempo in :data:`BPM_RANGE` (then nudged by < 0.4 % so that the loop length has
    a fast FFT size). `length` repeats or crops the loop to exactly that many samples, from the
    downbeat. `parts` renders only these parts of :data:`PART_NAMES` (each of them plays); None draws
    which parts play. Every part draws from its own random stream, so soloing a part gives the sound
    it has in the full mix. The same arguments give bit-identical audio.
    """
    _check_arguments(seed, sample_rate, bars, bpm, length, parts)
    rng = np.random.default_rng([seed, 0])
    if bpm is None:
        wanted = loop_samples_for(float(rng.uniform(*BPM_RANGE)), bars, sample_rate)
        loop = scipy.fft.next_fast_len(wanted, real=True)  # the pad's FFT is far faster on smooth sizes
        if loop > wanted * 1.004 or (length is not None and loop > length >= wanted):
            loop = wanted  # a loop that fits in `length` stays whole
    else:
        loop = loop_samples_for(bpm, bars, sample_rate)
    exact_bpm = bars * 4 * 60.0 * sample_rate / loop
    key = int(rng.integers(*_KEY_RANGE))
    scale = str(rng.choice(list(_SCALES)))
    style = TECHNO_STYLES[int(rng.choice(len(TECHNO_STYLES), p=[w for _, w in TECHNO_STYLES]))][0]
    levels = _draw_levels(rng, parts)

    song = _Song(sample_rate, loop, bars, key, _SCALES[scale])
    grid, velocities, _ = generate_pattern(style, np.random.default_rng([seed, 1]), bars, human=False)
    mix = np.zeros(loop)
    drums = _render_drums(song, grid, velocities, np.random.default_rng([seed, 2]), levels)
    duck = _kick_duck(song, grid[KICK], np.random.default_rng([seed, 3]))
    renderers = {"bass": _render_bass, "stabs": _render_stabs, "pad": _render_pad, "sweep": _render_sweep}
    for name in PART_NAMES:
        if levels[name] <= 0:
            continue
        index = PART_NAMES.index(name)
        if name in renderers:
            audio = renderers[name](song, np.random.default_rng([seed, 10 + index]))
            if name in ("bass", "pad"):
                audio = audio * duck
        else:
            audio = drums.get(name, np.zeros(loop))
        mix += levels[name] * _unit(audio)
    audio = _master(mix, np.random.default_rng([seed, 4]))
    if length is not None:
        audio = np.resize(audio, length)
    return TechnoLoop(audio, sample_rate, exact_bpm, key, scale, bars, loop, style, levels)


def corpus_loop_seed(corpus_seed: int, index: int) -> int:
    """The procedural seed of loop ``index`` of the corpus drawn with ``corpus_seed``."""
    return corpus_seed * 1_000_003 + index


def generate_techno_corpus(
    count: int, sample_rate: int = 16000, bars: int = 2, length: int = 65536, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """`count` loops: (audio float32 [N, length], bpm float32 [N]); each starts on its downbeat.

    Loop i is ``render_techno_loop(corpus_loop_seed(seed, i), ...)``, so a corpus grows without changing
    its first loops.
    """
    audio = np.zeros((count, length), dtype=np.float32)
    bpm = np.zeros(count, dtype=np.float32)
    for i in range(count):
        loop = render_techno_loop(corpus_loop_seed(seed, i), sample_rate, bars, length=length)
        audio[i], bpm[i] = loop.audio, loop.bpm
    return audio, bpm


def _check_arguments(
    seed: int,
    sample_rate: int,
    bars: int,
    bpm: float | None,
    length: int | None,
    parts: Collection[str] | None,
) -> None:
    if seed < 0:
        raise ValueError(f"seed = {seed}: must be 0 or more")
    if sample_rate < 8000:
        raise ValueError(f"sample_rate = {sample_rate}: must be 8000 Hz or more")
    if bars < 1:
        raise ValueError(f"bars = {bars}: must be 1 or more")
    if bpm is not None and not 40.0 <= bpm <= 300.0:
        raise ValueError(f"bpm = {bpm}: must lie in 40..300")
    if length is not None and length < 1:
        raise ValueError(f"length = {length}: must be 1 or more")
    unknown = set(parts or ()) - set(PART_NAMES)
    if unknown:
        raise ValueError(f"unknown part(s) {sorted(unknown)}; expected some of {', '.join(PART_NAMES)}")


def _draw_levels(rng: np.random.Generator, parts: Collection[str] | None) -> dict[str, float]:
    """The linear level of every part (0 = silent); at least one part plays."""
    plays = {name: bool(rng.random() < _PRESENCE[name]) for name in PART_NAMES}
    drawn = {name: float(rng.uniform(*_LEVEL_RANGE[name])) for name in PART_NAMES}
    if parts is not None:
        plays = {name: name in parts for name in PART_NAMES}
    elif not any(plays.values()):
        plays["kick"] = True
    return {name: drawn[name] if plays[name] else 0.0 for name in PART_NAMES}


@dataclass(frozen=True)
class _Song:
    """The time grid and harmony shared by the parts."""

    sample_rate: int
    loop: int  # samples per loop
    bars: int
    key: int  # MIDI root of the bass
    scale: tuple[int, ...]

    @property
    def steps(self) -> int:
        return STEPS_PER_BAR * self.bars

    @property
    def step(self) -> float:
        """Samples per 16th (not an integer)."""
        return self.loop / self.steps

    def onset(self, step: np.ndarray | float) -> np.ndarray:
        """Sample index of the start of 16th `step` (may exceed the loop: placement wraps it)."""
        return np.round(np.asarray(step, dtype=np.float64) * self.step).astype(np.int64)

    def time(self, length: int) -> np.ndarray:
        return np.arange(length) / self.sample_rate


def _place(loop: int, onsets: np.ndarray, gains: np.ndarray, sounds: np.ndarray) -> np.ndarray:
    """Sum of `sounds` (float [L] for all, or [E, L] one per event) at `onsets` [E] times `gains` [E],
    wrapped modulo `loop` samples: float64 [loop]."""
    onsets = np.asarray(onsets, dtype=np.int64)
    if len(onsets) == 0:
        return np.zeros(loop)
    sounds = np.broadcast_to(sounds, (len(onsets), sounds.shape[-1]))
    index = (onsets[:, None] + np.arange(sounds.shape[-1])[None, :]) % loop
    weights = np.asarray(gains, dtype=np.float64)[:, None] * sounds
    return np.bincount(index.ravel(), weights=weights.ravel(), minlength=loop)


def _unit(x: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    return x / peak if peak > _SILENCE else x


def _fade(x: np.ndarray, sample_rate: int, start: bool = True, end: bool = True) -> np.ndarray:
    """`x` [..., L] with short linear ramps at its ends (in place)."""
    n = min(x.shape[-1] // 2, max(1, int(_FADE_S * sample_rate)))
    ramp = np.linspace(0.0, 1.0, n, endpoint=False)
    if start:
        x[..., :n] *= ramp
    if end:
        x[..., x.shape[-1] - n :] *= ramp[::-1]
    return x


def _midi_hz(note: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(note, dtype=np.float64) - 69.0) / 12.0)


def _poly_blep(phase: np.ndarray, increment: np.ndarray) -> np.ndarray:
    """The polyBLEP residual that smooths a unit downward step at phase 0 (phase in 0..1)."""
    dt = np.clip(increment, 1e-9, 0.5)
    after = phase < dt
    before = phase > 1.0 - dt
    a = np.where(after, phase / dt, 0.0)
    b = np.where(before, (phase - 1.0) / dt, 0.0)
    return np.where(after, 2 * a - a * a - 1.0, 0.0) + np.where(before, b * b + 2 * b + 1.0, 0.0)


def _oscillator(cycles: np.ndarray, increment: np.ndarray, wave: str) -> np.ndarray:
    """Band-limited saw or square from the running phase `cycles` (in cycles) and its per-sample increment."""
    phase = cycles % 1.0
    if wave == "saw":
        return 2.0 * phase - 1.0 - _poly_blep(phase, increment)
    half = (phase + 0.5) % 1.0
    return np.where(phase < 0.5, 1.0, -1.0) + _poly_blep(phase, increment) - _poly_blep(half, increment)


def _biquads(kind: str, frequency: np.ndarray, q: float, sample_rate: int) -> np.ndarray:
    """RBJ-cookbook biquads, one per `frequency` [K] (Hz): sos rows [K, 6]. kind: "lowpass" or
    "bandpass" (0 dB at the centre). Closed form, as scipy's filter design costs ~1 ms per filter."""
    w = 2.0 * np.pi * np.asarray(frequency, dtype=np.float64) / sample_rate
    alpha, cos = np.sin(w) / (2.0 * q), np.cos(w)
    zero = np.zeros_like(w)
    if kind == "lowpass":
        b = np.stack([(1 - cos) / 2, 1 - cos, (1 - cos) / 2], axis=-1)
    else:
        b = np.stack([alpha, zero, -alpha], axis=-1)
    a = np.stack([1 + alpha, -2 * cos, 1 - alpha], axis=-1)
    return np.concatenate([b, a], axis=-1) / a[:, :1]


def _resonant_lowpass_bank(frequency: np.ndarray, q: float, sample_rate: int) -> np.ndarray:
    """sos [K, 2, 6]: a resonant low-pass into a Butterworth one (24 dB/octave) at each `frequency` [K]."""
    resonant = _biquads("lowpass", frequency, q, sample_rate)
    butter = _biquads("lowpass", frequency, np.sqrt(0.5), sample_rate)
    return np.stack([resonant, butter], axis=1)


def _swept_filter(
    x: np.ndarray, cutoff: np.ndarray, bank: np.ndarray, sos_bank: list[np.ndarray]
) -> np.ndarray:
    """`x` [R, L] through a filter whose cutoff follows `cutoff` [R, L] (Hz), by crossfading between
    the fixed filters `sos_bank` at frequencies `bank` [K] (ascending, log-spaced)."""
    filtered = np.stack([signal.sosfilt(sos, x, axis=-1) for sos in sos_bank])  # [K, R, L]
    position = np.interp(np.log(cutoff), np.log(bank), np.arange(len(bank), dtype=np.float64))
    low = np.clip(np.floor(position).astype(np.int64), 0, len(bank) - 2)
    frac = position - low
    below = np.take_along_axis(filtered, low[None], axis=0)[0]
    above = np.take_along_axis(filtered, low[None] + 1, axis=0)[0]
    return below * (1.0 - frac) + above * frac


# -- drums ---------------------------------------------------------------------------------------------


def _drum_recipe(instrument: int, rng: np.random.Generator, clap: bool) -> tuple[str, dict[str, float], int]:
    """The drum_synth class, factors and noise seed of `instrument` (a row of the drum grid, -1 for the
    rim of the percussion groove) for this loop."""
    if instrument < 0:
        cls = "rim"
    elif instrument == SNARE:
        cls = "clap" if clap else "snare"
    elif instrument in (LOW_TOM, MID_TOM, HIGH_TOM):
        cls = "tom"
    elif instrument in (CRASH, RIDE):
        cls = "cymbal"
    else:
        cls = INSTRUMENT_NAMES[instrument]
    factors = {factor: float(rng.uniform()) for factor in CLASS_FACTORS[cls]}
    if cls in ("closed_hat", "open_hat", "cymbal"):
        factors["brightness"] = 0.5 + 0.5 * factors["brightness"]  # techno hats sit high
    if cls == "tom":  # low, mid and high toms in their order of pitch
        factors["pitch"] = {LOW_TOM: 0.1, MID_TOM: 0.4, HIGH_TOM: 0.7}[instrument] + 0.2 * factors["pitch"]
    if instrument == RIDE:
        factors["decay"] = 0.3 * factors["decay"]
    if instrument == KICK:
        factors["decay"] = 0.2 + 0.6 * factors["decay"]  # no boomy tails over the next kick
    return cls, factors, int(rng.integers(2**31))


def _render_drums(
    song: _Song, grid: np.ndarray, velocities: np.ndarray, rng: np.random.Generator, levels: dict[str, float]
) -> dict[str, np.ndarray]:
    """The drum parts (kick, snare, hats, percussion) of the pattern grid [9, S]: float [loop] each."""
    clap = bool(rng.random() < 0.5)
    parts: dict[str, np.ndarray] = {}
    for instrument in range(len(INSTRUMENT_NAMES)):
        part = _DRUM_PARTS[instrument][0]
        cls, factors, noise_seed = _drum_recipe(
            instrument, rng, clap
        )  # every row draws: streams stay aligned
        steps = np.flatnonzero(grid[instrument])
        if levels[part] <= 0 or len(steps) == 0:
            continue
        length = int(_DRUM_PARTS[instrument][1] * song.sample_rate)
        sound = synthesise(cls, factors, song.sample_rate, length, seed=noise_seed)
        placed = _place(song.loop, song.onset(steps), velocities[instrument, steps], sound)
        parts[part] = parts.get(part, 0.0) + placed
    rim = _drum_recipe(-1, rng, clap)
    pattern = np.array([c == "x" for c in _RIM_PATTERNS[int(rng.integers(len(_RIM_PATTERNS)))]])
    if levels["percussion"] > 0 and "percussion" not in parts:  # no toms in the pattern: a rim groove
        steps = np.flatnonzero(np.tile(pattern, song.bars))
        sound = synthesise(rim[0], rim[1], song.sample_rate, int(0.15 * song.sample_rate), seed=rim[2])
        parts["percussion"] = _place(song.loop, song.onset(steps), rng.uniform(0.6, 1.0, len(steps)), sound)
    return parts


def _kick_duck(song: _Song, kick_row: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Side-chain gain [loop] in (0, 1]: dips after every kick, as a compressor keyed by it would."""
    depth = float(rng.uniform(0.0, 0.6))
    steps = np.flatnonzero(kick_row)
    if depth == 0.0 or len(steps) == 0:
        return np.ones(song.loop)
    release = float(rng.uniform(0.06, 0.15))
    length = int(4 * release * song.sample_rate)
    dip = np.exp(-song.time(length) / release)
    dip[: max(1, int(0.003 * song.sample_rate))] *= np.linspace(
        0.0, 1.0, max(1, int(0.003 * song.sample_rate))
    )
    dip = _fade(dip, song.sample_rate, start=False)
    return 1.0 - depth * np.clip(_place(song.loop, song.onset(steps), np.ones(len(steps)), dip), 0.0, 1.0)


# -- acid bass -----------------------------------------------------------------------------------------


@dataclass
class _Phrase:
    """Notes tied by slides, rendered as one event: onset step, MIDI notes, their steps, accent."""

    step: int
    notes: list[int]
    starts: list[int]  # step of each note, relative to the phrase
    gate_steps: float
    accent: bool


def _acid_phrases(song: _Song, rng: np.random.Generator) -> list[_Phrase]:
    """The 16-step pattern, repeated over the bars (later bars sometimes transposed), as phrases."""
    gate_probability = rng.uniform(0.45, 0.8)
    on_beat = np.arange(STEPS_PER_BAR) % 4 == 0
    gates = rng.random(STEPS_PER_BAR) < np.where(on_beat, 0.5 * gate_probability, gate_probability)
    if not gates.any():
        gates[2] = True
    degrees = rng.choice(len(song.scale), size=STEPS_PER_BAR, p=_root_heavy(len(song.scale)))
    octaves = 12 * (rng.random(STEPS_PER_BAR) < 0.25)
    notes = song.key + 12 * int(rng.random() < 0.5) + np.array(song.scale)[degrees] + octaves
    accents = rng.random(STEPS_PER_BAR) < 0.3
    slides = (rng.random(STEPS_PER_BAR) < 0.2) & np.roll(gates, -1)
    slides[-1] = False  # a phrase ends with its bar, so every bar can be transposed on its own
    transposes = [0] + [int(rng.choice([0, 0, 0, 3, 5, 7, -2])) for _ in range(song.bars - 1)]

    phrases: list[_Phrase] = []
    for bar, transpose in enumerate(transposes):
        step = 0
        while step < STEPS_PER_BAR:
            if not gates[step]:
                step += 1
                continue
            first = step
            while slides[step]:
                step += 1
            tied = list(range(first, step + 1))
            gate = len(tied) - 1 + rng.uniform(0.35, 0.6)
            phrases.append(
                _Phrase(
                    bar * STEPS_PER_BAR + first,
                    [int(notes[s]) + transpose for s in tied],
                    [s - first for s in tied],
                    gate,
                    bool(accents[first]),
                )
            )
            step += 1
    return phrases


def _root_heavy(size: int) -> np.ndarray:
    """Probabilities over scale degrees: the root half of the time, the fifth-ish degrees next."""
    weights = np.ones(size)
    weights[0] = size
    return weights / weights.sum()


def _render_bass(song: _Song, rng: np.random.Generator) -> np.ndarray:
    """The acid line: float [loop]."""
    sr = song.sample_rate
    phrases = _acid_phrases(song, rng)
    wave = "saw" if rng.random() < 0.5 else "square"
    base_cutoff = float(np.exp(rng.uniform(np.log(200.0), np.log(1000.0))))
    env_octaves = float(rng.uniform(1.0, 3.5))
    env_decay = float(rng.uniform(0.05, 0.3))
    q = float(rng.uniform(2.0, 9.0))
    lfo_octaves, lfo_phase = float(rng.uniform(0.0, 1.2)), float(rng.uniform(0.0, 2 * np.pi))
    drive = float(rng.uniform(1.0, 4.0))
    glide = 0.04 * sr

    release = int(0.015 * sr)
    gate = np.array([int(p.gate_steps * song.step) for p in phrases])
    length = int(gate.max()) + release
    t = np.arange(length, dtype=np.float64)
    pitch = np.zeros((len(phrases), length))
    for row, phrase in enumerate(phrases):
        pitch[row] = phrase.notes[0]
        for start, before, after in zip(phrase.starts[1:], phrase.notes, phrase.notes[1:], strict=False):
            # a slide glides to the next note over `glide` samples, starting at its step
            pitch[row] += (after - before) * np.clip((t - song.step * start) / glide, 0.0, 1.0)
    increment = _midi_hz(pitch) / sr
    osc = _oscillator(np.cumsum(increment, axis=1) + 0.5, increment, wave)

    amp = np.clip((gate[:, None] + release - t[None]) / release, 0.0, 1.0) * np.exp(-t / (4.0 * sr))
    accent = np.array([p.accent for p in phrases])
    amp *= np.where(accent, 1.0, 0.7)[:, None]
    onsets = song.onset([p.step for p in phrases])
    global_time = (onsets[:, None] + t[None]) / song.loop  # in loops, so the LFO is periodic
    lfo = lfo_octaves * np.sin(2 * np.pi * global_time + lfo_phase)
    env = np.exp(-t / (sr * env_decay * np.where(accent, 0.6, 1.0)[:, None]))
    cutoff = base_cutoff * 2.0 ** (lfo + env_octaves * (1.0 + 0.5 * accent[:, None]) * env)

    bank = np.geomspace(80.0, min(7000.0, 0.42 * sr), 16)
    sos_bank = _resonant_lowpass_bank(bank, q, sr)
    voiced = _swept_filter(osc * amp, np.clip(cutoff, bank[0], bank[-1]), bank, sos_bank)
    voiced = _fade(np.tanh(drive * voiced) / np.tanh(drive), sr)
    return _place(song.loop, onsets, np.ones(len(phrases)), voiced)


# -- stabs ---------------------------------------------------------------------------------------------


def _chord_notes(song: _Song, rng: np.random.Generator, octaves: tuple[int, ...]) -> np.ndarray:
    chord = _CHORDS[int(rng.integers(len(_CHORDS)))]
    return song.key + 12 * int(rng.choice(octaves)) + np.array(chord)


def _render_stabs(song: _Song, rng: np.random.Generator) -> np.ndarray:
    """Short filtered chords on a 16-step rhythm with dub echoes: float [loop]."""
    sr = song.sample_rate
    notes = _chord_notes(song, rng, (2, 3))
    wave = "saw" if rng.random() < 0.7 else "square"
    decay = float(rng.uniform(0.08, 0.4))
    cutoff = float(np.exp(rng.uniform(np.log(600.0), np.log(4000.0))))
    rhythm = np.array([c == "x" for c in _STAB_RHYTHMS[int(rng.integers(len(_STAB_RHYTHMS)))]])
    shifts = [0] + [int(rng.choice([0, 0, 3, 5, -2])) for _ in range(song.bars - 1)]
    echo_steps = int(rng.choice([2, 3, 6]))
    feedback = float(rng.uniform(0.0, 0.6))

    length = int((decay + 0.05) * sr)
    t = song.time(length)
    chords = {}
    for shift in sorted(set(shifts)):
        frequencies = _midi_hz(np.repeat(notes + shift, 2)) * 2.0 ** (
            rng.uniform(-12.0, 12.0, size=2 * len(notes)) / 1200.0
        )
        increment = frequencies[:, None] / sr * np.ones(length)
        cycles = increment * np.arange(length) + rng.uniform(size=(len(frequencies), 1))
        chord = _oscillator(cycles, increment, wave).sum(axis=0) * 10.0 ** (-3.0 * t / decay)
        sos = _biquads("lowpass", np.array([min(cutoff, 0.42 * sr)]), np.sqrt(0.5), sr)
        chords[shift] = _fade(signal.sosfilt(sos, _fade(chord, sr, end=False)), sr)

    out = np.zeros(song.loop)
    steps = np.flatnonzero(rhythm)
    for bar, shift in enumerate(shifts):
        bar_steps = bar * STEPS_PER_BAR + steps
        velocity = rng.uniform(0.7, 1.0, size=len(bar_steps))
        for echo in range(4 if feedback > 0.05 else 1):
            onsets = song.onset(bar_steps + echo * echo_steps)
            out += _place(song.loop, onsets, velocity * feedback**echo, chords[shift])
    return out


# -- pad -----------------------------------------------------------------------------------------------


def _render_pad(song: _Song, rng: np.random.Generator) -> np.ndarray:
    """A detuned saw chord and filtered noise, built in the spectrum of the loop: float [loop].

    Every partial completes a whole number of cycles per loop, so the pad is exactly periodic.
    """
    sr, loop = song.sample_rate, song.loop
    notes = _chord_notes(song, rng, (2, 3))
    voices = 3
    detune = rng.uniform(5.0, 20.0) * np.array([-1.0, 0.0, 1.0])
    frequencies = (_midi_hz(notes)[:, None] * 2.0 ** (detune[None] / 1200.0)).ravel()
    cycles = np.maximum(1, np.round(frequencies * loop / sr)).astype(np.int64)  # cycles per loop
    for i in range(1, len(cycles)):  # detuned voices must stay apart, or they cancel into one
        if i % voices and cycles[i] <= cycles[i - 1]:
            cycles[i] = cycles[i - 1] + 1
    top = min(6000.0, 0.45 * sr)
    bins = loop // 2 + 1
    harmonics = np.arange(1, int(top * loop / sr / cycles.min()) + 1)
    partial_bins = cycles[:, None] * harmonics[None]  # [V, H]
    phases = rng.uniform(0.0, 2 * np.pi, size=(len(cycles), 1)) * harmonics[None]
    keep = partial_bins < bins * top / (0.5 * sr)
    spectrum = np.zeros(bins, dtype=np.complex128)
    np.add.at(spectrum, partial_bins[keep], (np.exp(1j * phases) / harmonics[None])[keep])

    frequency = np.arange(bins) * sr / loop
    noise_centre = float(np.exp(rng.uniform(np.log(400.0), np.log(3000.0))))
    noise_band = np.exp(-0.5 * (np.log(np.maximum(frequency, 1.0) / noise_centre) / 0.5) ** 2)
    noise = (rng.standard_normal(bins) + 1j * rng.standard_normal(bins)) * noise_band
    energy = np.sum(np.abs(spectrum) ** 2) / max(np.sum(np.abs(noise) ** 2), _SILENCE)
    noise *= rng.uniform(0.0, 0.7) * np.sqrt(energy)
    spectrum = spectrum + noise
    spectrum[0] = 0.0

    dark = float(np.exp(rng.uniform(np.log(300.0), np.log(900.0))))
    bright = dark * rng.uniform(2.0, 5.0)
    layers = [scipy.fft.irfft(spectrum / np.sqrt(1.0 + (frequency / c) ** 4), n=loop) for c in (dark, bright)]
    lfo_cycles = int(rng.choice([1, song.bars]))
    position = np.arange(loop) / loop
    sweep = 0.5 - 0.5 * np.cos(2 * np.pi * lfo_cycles * position + rng.uniform(0.0, 2 * np.pi))
    swell = 1.0 - 0.3 * rng.uniform() * (0.5 + 0.5 * np.cos(2 * np.pi * song.bars * position))
    return (layers[0] * (1.0 - sweep) + layers[1] * sweep) * swell


# -- noise sweeps --------------------------------------------------------------------------------------


def _render_sweep(song: _Song, rng: np.random.Generator) -> np.ndarray:
    """A band-passed noise riser into the downbeat, a downer from it, or both: float [loop]."""
    sr = song.sample_rate
    kind = str(rng.choice(["riser", "downer", "both"], p=[0.5, 0.3, 0.2]))
    bank = np.geomspace(200.0, min(6000.0, 0.42 * sr), 10)
    sos_bank = _biquads("bandpass", bank, 2.0, sr)[:, None]  # [K, 1, 6]
    out = np.zeros(song.loop)
    if kind in ("riser", "both"):
        length = int(song.step * STEPS_PER_BAR * rng.choice([0.5, 1.0, min(2.0, song.bars)]))
        ramp = np.linspace(0.0, 1.0, length)
        cutoff = bank[0] * (bank[-1] / bank[0]) ** (ramp ** rng.uniform(1.0, 2.5))
        riser = _swept_filter(rng.standard_normal((1, length)), cutoff[None], bank, sos_bank)[0]
        riser = _fade(riser * ramp**2, sr)
        out += _place(song.loop, np.array([song.loop - length]), np.ones(1), riser)
    if kind in ("downer", "both"):
        length = int(song.step * STEPS_PER_BAR * rng.choice([0.5, 1.0]))
        ramp = np.linspace(0.0, 1.0, length)
        cutoff = bank[-1] * (bank[0] / bank[-1]) ** (ramp ** rng.uniform(0.4, 1.0))
        downer = _swept_filter(rng.standard_normal((1, length)), cutoff[None], bank, sos_bank)[0]
        downer = _fade(downer * np.exp(-4.0 * ramp), sr)
        out += _place(song.loop, np.zeros(1, dtype=np.int64), np.ones(1), downer)
    return out


# -- master --------------------------------------------------------------------------------------------


def _master(mix: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Glue the mix: remove DC, soft-clip a little, peak-normalise to PEAK: float32 [loop]."""
    mix = mix - mix.mean()  # the loop is periodic, so its mean is its DC
    drive = float(rng.uniform(1.0, 2.5))
    mix = np.tanh(drive * _unit(mix)) / np.tanh(drive)
    return (PEAK * _unit(mix)).astype(np.float32)

"""The General MIDI drum kits of ``TimGM6mb.sf2`` (shipped in the pretty_midi wheel) as one-shots.

The SoundFont is parsed with ``sf2utils`` (pure Python); each drum note is rendered here with numpy:
the zones of the preset that cover the note (stereo pairs and layers summed), played at the pitch
the generators ask for (root key, coarse/fine tune, scale tuning, the sample's pitch correction),
looping between the loop points when the sample mode says so (one-shot samples play to their end),
shaped by the volume envelope (delay, attack, hold, decay to sustain; the note is held for the whole
clip) and by the low-pass filter, whose cutoff may follow the modulation envelope. Modulators, LFOs,
pan, reverb and chorus are left out: they matter little for a dry mono one-shot.

The kits' notes map to the classes of :mod:`corpus.drum_synth` (:data:`GM_NOTE_CLASSES`). Variant 0
of a sound is dry; the others are augmented by a pitch shift (resampling, so the sound also gets
shorter or longer), an extra exponential decay and a low- or high-pass filter, each drawn at random;
the parameters are returned with the audio (:data:`SOUNDFONT_PARAM_NAMES`), and so is each sound's group
(``sf2:<soundfont>/<sample>``, the sample of its loudest zone): every variant of a sound, and every note
and kit that plays the same sample, share it, so a split by group (:mod:`corpus.splits`) never holds out a sound
whose main sample training heard. Quieter layers (a click, a reverb tail) may still recur in other groups.
"""

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soxr
from scipy import signal

from latentlive.corpus.drum_synth import PEAK, SYNTH_CLASSES

GM_NOTE_CLASSES: dict[int, str] = {
    35: "kick",
    36: "kick",
    38: "snare",
    40: "snare",
    39: "clap",
    42: "closed_hat",
    44: "closed_hat",
    46: "open_hat",
    41: "tom",
    43: "tom",
    45: "tom",
    47: "tom",
    48: "tom",
    50: "tom",
    37: "rim",
    49: "cymbal",
    51: "cymbal",
    52: "cymbal",
    55: "cymbal",
    57: "cymbal",
    59: "cymbal",
}
# Bank 128 programs of TimGM6mb: Standard, Room, Power, Electronic, TR-808, Jazz, Brush (Orchestra,
# 48, is left out: its notes hold orchestral percussion rather than a drum kit).
DRUM_KIT_PROGRAMS = (0, 8, 16, 24, 25, 32, 40)
DRUM_BANK = 128
# Columns of the parameter array of soundfont_one_shots; NaN = augmentation not applied.
SOUNDFONT_PARAM_NAMES = (
    "gm_note",
    "kit_program",
    "pitch_semitones",
    "decay_t60_s",
    "lowpass_hz",
    "highpass_hz",
)
MAX_PITCH_SHIFT = 3.0  # semitones
_FADE_S = 0.01
_CUTOFF_STEP_CENTS = 20.0  # a filter cutoff step of a fifth of a semitone is inaudible

# SoundFont 2.04 generator numbers and defaults (section 8.1.3 of the specification).
_START, _END, _START_LOOP, _END_LOOP, _START_COARSE = 0, 1, 2, 3, 4
_END_COARSE, _START_LOOP_COARSE, _END_LOOP_COARSE = 12, 45, 50
_MOD_ENV_TO_PITCH, _FILTER_FC, _FILTER_Q, _MOD_ENV_TO_FC = 7, 8, 9, 11
_MOD_ENV = (25, 26, 27, 28, 29)  # delay, attack, hold, decay, sustain (0.1 % below full)
_KEY_TO_MOD_HOLD, _KEY_TO_MOD_DECAY = 31, 32
_VOL_ENV = (33, 34, 35, 36, 37)  # delay, attack, hold, decay, sustain (cB of attenuation)
_KEY_TO_VOL_HOLD, _KEY_TO_VOL_DECAY = 39, 40
_INSTRUMENT, _KEY_RANGE, _VEL_RANGE = 41, 43, 44
_ATTENUATION, _COARSE_TUNE, _FINE_TUNE, _SAMPLE_ID, _SAMPLE_MODES = 48, 51, 52, 53, 54
_SCALE_TUNING, _EXCLUSIVE_CLASS, _ROOT_KEY = 56, 57, 58
_DEFAULTS = {_FILTER_FC: 13500, _SCALE_TUNING: 100, _ROOT_KEY: -1}
_DEFAULTS.update(dict.fromkeys((25, 26, 27, 28, 33, 34, 35, 36), -12000))
# Generators that a preset zone may not offset (spec 8.5): addresses, sample, modes, root key...
_NOT_ADDITIVE = {0, 1, 2, 3, 4, 12, 45, 50, _INSTRUMENT, _KEY_RANGE, _VEL_RANGE, _SAMPLE_ID, _SAMPLE_MODES}
_NOT_ADDITIVE |= {_EXCLUSIVE_CLASS, _ROOT_KEY}


def default_soundfont() -> Path:
    """The path of ``TimGM6mb.sf2`` inside the installed pretty_midi package."""
    import pretty_midi

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


@dataclass(frozen=True)
class _Zone:
    """One sample of a sound with its resolved generators (times in s, levels in dB, pitch in semitones)."""

    data: np.ndarray  # float32 [n], the sample's points in -1..1
    sample_rate: int
    loop: tuple[int, int] | None  # (start, end) when the sample loops, else None
    semitones: float  # playback pitch relative to the recorded pitch
    gain_db: float
    vol_env: tuple[float, float, float, float, float]  # delay, attack, hold, decay (s per 100 dB), sustain dB
    mod_env: tuple[float, float, float, float, float]  # delay, attack, hold, decay (s to 0), sustain 0..1
    mod_to_pitch_cents: float
    mod_to_cutoff_cents: float
    cutoff_cents: float
    resonance_db: float


@dataclass(frozen=True)
class KitSound:
    """One drum note of one kit: the zones that sound together, its class, and its group (the SoundFont
    and the sample of its loudest zone, e.g. ``sf2:TimGM6mb/Acoustic Tom``)."""

    program: int
    note: int
    class_name: str
    zones: tuple[_Zone, ...]
    group: str


def kit_sounds(
    soundfont: Path | None = None, programs: tuple[int, ...] = DRUM_KIT_PROGRAMS
) -> list[KitSound]:
    """The distinct drum sounds of `programs` (bank 128) for the notes of :data:`GM_NOTE_CLASSES`.

    A note that sounds the same in two kits is kept once. Parsed once per process.
    """
    return list(_kit_sounds(str(soundfont or default_soundfont()), tuple(programs)))


def render(sound: KitSound, sample_rate: int, length: int, pitch_shift: float = 0.0) -> np.ndarray:
    """The note played at full velocity and held: float32 [length] at `sample_rate`, not normalised.

    `pitch_shift` (semitones) transposes by resampling, as a sampler does.
    """
    out = np.zeros(length, dtype=np.float64)
    for zone in sound.zones:
        native = _render_zone(zone, int(np.ceil(length * zone.sample_rate / sample_rate)) + 64, pitch_shift)
        if zone.sample_rate != sample_rate:
            native = soxr.resample(native, zone.sample_rate, sample_rate, quality="HQ")
        n = min(length, len(native))
        out[:n] += native[:n]
    return out.astype(np.float32)


def soundfont_one_shots(
    sample_rate: int,
    length: int,
    variants_per_note: int,
    seed: int,
    programs: tuple[int, ...] = DRUM_KIT_PROGRAMS,
    soundfont: Path | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Every kit sound in `variants_per_note` versions: (audio float32 [N, L], classes int64 [N], params [N, 6],
    groups [N]).

    classes index :data:`corpus.drum_synth.SYNTH_CLASSES`; params (float32) has the columns
    :data:`SOUNDFONT_PARAM_NAMES`; groups name each sound's sample (:class:`KitSound`). Variant 0 is dry;
    each sound peaks at :data:`PEAK`, with a short fade-out where the clip cuts a ringing sound. The same
    seed gives the same result.
    """
    sounds = kit_sounds(soundfont, programs)
    plan = [(sound, variant) for sound in sounds for variant in range(variants_per_note)]
    return _render_plan(plan, sample_rate, length, seed)


def soundfont_one_shots_per_class(
    sample_rate: int,
    length: int,
    examples_per_class: int,
    seed: int,
    programs: tuple[int, ...] = DRUM_KIT_PROGRAMS,
    soundfont: Path | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """As :func:`soundfont_one_shots`, with exactly `examples_per_class` sounds for each class.

    The kits hold few open hats and many toms: a class's sounds share its examples evenly (each
    dry once before any is augmented), so rare classes get more augmented variants. Classes in the
    order of SYNTH_CLASSES, N = 8 x examples_per_class.
    """
    sounds = kit_sounds(soundfont, programs)
    plan = []
    for class_name in SYNTH_CLASSES:
        members = [sound for sound in sounds if sound.class_name == class_name]
        if not members:
            raise ValueError(f"no {class_name} sound in drum kit programs {programs}")
        plan += [(members[i % len(members)], i // len(members)) for i in range(examples_per_class)]
    return _render_plan(plan, sample_rate, length, seed)


def _render_plan(
    plan: list[tuple[KitSound, int]], sample_rate: int, length: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Render (sound, variant) pairs; variant 0 is dry, the others draw an augmentation."""
    rng = np.random.default_rng(seed)
    audio = np.zeros((len(plan), length), dtype=np.float32)
    classes = np.zeros(len(plan), dtype=np.int64)
    params = np.full((len(plan), len(SOUNDFONT_PARAM_NAMES)), np.nan, dtype=np.float32)
    for i, (sound, variant) in enumerate(plan):
        augmentation = _draw_augmentation(rng, sample_rate) if variant else {}
        x = render(sound, sample_rate, length, augmentation.get("pitch_semitones", 0.0))
        audio[i] = _finish(_augment(x, sample_rate, augmentation), sample_rate)
        classes[i] = SYNTH_CLASSES.index(sound.class_name)
        params[i, :2] = (sound.note, sound.program)
        for name, value in augmentation.items():
            params[i, SOUNDFONT_PARAM_NAMES.index(name)] = value
    return audio, classes, params, [sound.group for sound, _ in plan]


def _draw_augmentation(rng: np.random.Generator, sample_rate: int) -> dict[str, float]:
    """Pitch always; an extra decay half of the time; a low-pass, a high-pass or no filter."""
    augmentation = {"pitch_semitones": float(rng.uniform(-MAX_PITCH_SHIFT, MAX_PITCH_SHIFT))}
    if rng.uniform() < 0.5:
        augmentation["decay_t60_s"] = float(np.exp(rng.uniform(np.log(0.08), np.log(1.5))))
    kind = int(rng.integers(3))
    if kind == 1:
        augmentation["lowpass_hz"] = float(
            min(np.exp(rng.uniform(np.log(1000), np.log(8000))), 0.45 * sample_rate)
        )
    elif kind == 2:
        augmentation["highpass_hz"] = float(np.exp(rng.uniform(np.log(40), np.log(600))))
    return augmentation


def _augment(x: np.ndarray, sample_rate: int, augmentation: dict[str, float]) -> np.ndarray:
    y = x.astype(np.float64)
    if "decay_t60_s" in augmentation:
        t = np.arange(len(y)) / sample_rate
        y = y * 10.0 ** (-3.0 * t / augmentation["decay_t60_s"])
    for kind in ("lowpass", "highpass"):
        if f"{kind}_hz" in augmentation:
            sos = signal.butter(2, augmentation[f"{kind}_hz"], btype=kind, output="sos", fs=sample_rate)
            y = signal.sosfilt(sos, y)
    return y


def _finish(x: np.ndarray, sample_rate: int) -> np.ndarray:
    fade = min(len(x), max(1, int(_FADE_S * sample_rate)))
    y = np.array(x, dtype=np.float64)
    y[len(y) - fade :] *= np.linspace(1.0, 0.0, fade)
    peak = float(np.max(np.abs(y)))
    return (PEAK * y / peak if peak > 0 else y).astype(np.float32)


# --- rendering -------------------------------------------------------------------------------------


def _envelope(
    t: np.ndarray, delay: float, attack: float, hold: float, decay: float, sustain: float, in_db: bool
) -> np.ndarray:
    """SF2 envelope at times `t`: linear attack to 1, hold, then decay to `sustain`.

    Volume (``in_db``): the decay falls linearly in dB, 100 dB per `decay` s, to `sustain` dB below
    full; the result is a gain. Modulation: the level falls linearly from 1 to `sustain` in `decay` s.
    """
    s = t - delay
    attack_level = np.clip(s / max(attack, 1e-6), 0.0, 1.0)
    d = np.maximum(s - attack - hold, 0.0)
    if in_db:
        level = 10.0 ** (-np.minimum(100.0 * d / max(decay, 1e-6), sustain) / 20.0)
        level = np.where(level < 1e-5, 0.0, level)  # 100 dB down: silence, as the synthesiser ends the voice
    else:
        level = np.maximum(1.0 - d / max(decay, 1e-6) * (1.0 - sustain), sustain)
    return np.where(s < 0, 0.0, np.where(s < attack, attack_level, level))


def _render_zone(zone: _Zone, n: int, pitch_shift: float) -> np.ndarray:
    """float64 [n] at the zone's sample rate."""
    t = np.arange(n) / zone.sample_rate
    mod = _envelope(t, *zone.mod_env, in_db=False)
    semitones = zone.semitones + pitch_shift + zone.mod_to_pitch_cents / 100.0 * mod
    step = 2.0 ** (semitones / 12.0)
    position = np.cumsum(step) - step[0]
    last = len(zone.data) - 1
    if zone.loop is not None:
        start, end = zone.loop
        beyond = position >= end
        position[beyond] = start + np.mod(position[beyond] - start, end - start)
        x = np.interp(position, np.arange(len(zone.data)), zone.data)
    else:
        x = np.interp(position, np.arange(len(zone.data)), zone.data, right=0.0)
        x[position > last] = 0.0
    x = _lowpass(x, zone, mod)
    return x * _envelope(t, *zone.vol_env, in_db=True) * 10.0 ** (zone.gain_db / 20.0)


def _lowpass(x: np.ndarray, zone: _Zone, mod: np.ndarray, block: int = 64) -> np.ndarray:
    """The SF2 two-pole resonant low-pass, its cutoff following the modulation envelope.

    The coefficients are updated at block starts where the cutoff has moved by more than
    `_CUTOFF_STEP_CENTS` since the last update: a handful of filter calls per sound.
    """
    cents = zone.cutoff_cents + zone.mod_to_cutoff_cents * mod
    top = 0.45 * zone.sample_rate
    if cents.min() >= 13500 or _hz(cents.min()) >= top:  # fully open, or open above what the rate carries
        return x
    q = max(10.0 ** (zone.resonance_db / 20.0), 1.0 / np.sqrt(2.0))
    starts = [0]
    for start in range(block, len(x), block):
        if abs(cents[start] - cents[starts[-1]]) > _CUTOFF_STEP_CENTS:
            starts.append(start)
    out = np.empty_like(x)
    state = np.zeros(2)
    for start, stop in zip(starts, [*starts[1:], len(x)], strict=True):
        b, a = _lowpass_coefficients(min(_hz(cents[start]), top), q, zone.sample_rate)
        out[start:stop], state = signal.lfilter(b, a, x[start:stop], zi=state)
    return out


def _hz(cents: float) -> float:
    """An SF2 absolute pitch in cents (0 = 8.176 Hz, MIDI key 0) in Hz."""
    return float(8.176 * 2.0 ** (cents / 1200.0))


def _lowpass_coefficients(hz: float, q: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The bilinear-transform biquad low-pass (the usual "cookbook" design)."""
    w = 2.0 * np.pi * hz / sample_rate
    alpha = np.sin(w) / (2.0 * q)
    cos = np.cos(w)
    b = np.array([(1 - cos) / 2, 1 - cos, (1 - cos) / 2])
    a = np.array([1 + alpha, -2 * cos, 1 - alpha])
    return b / a[0], a / a[0]


# --- parsing ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_sf2utils() -> Iterator[None]:
    """sf2utils warns through the root logger about harmless quirks of the file (loops starting early);
    a handler on the root keeps logging.warning from configuring logging for the whole process."""
    root = logging.getLogger()
    handler = logging.NullHandler()
    root.addHandler(handler)
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # sf2utils imports audioop
            yield
    finally:
        logging.disable(previous)
        root.removeHandler(handler)


@lru_cache(maxsize=2)
def _kit_sounds(path: str, programs: tuple[int, ...]) -> tuple[KitSound, ...]:
    with _quiet_sf2utils():
        from sf2utils.sf2parse import Sf2File

        raw = Path(path).read_bytes()
        with open(path, "rb") as file:
            sf2 = Sf2File(file)
            presets = {p.preset: p for p in sf2.presets if getattr(p, "bank", None) == DRUM_BANK}
            smpl_offset = sf2.raw.smpl_offset
            sounds: list[KitSound] = []
            seen: set[tuple] = set()
            for program in programs:
                if program not in presets:
                    continue
                for note, class_name in sorted(GM_NOTE_CLASSES.items()):
                    for layer in _note_layers(presets[program], note):
                        signature = tuple(_signature(g, s) for g, s in layer)
                        if not layer or signature in seen:
                            continue
                        seen.add(signature)
                        zones = tuple(_zone(g, s, note, raw, smpl_offset) for g, s in layer)
                        group = f"sf2:{Path(path).stem}/{_loudest_sample(layer, zones)}"
                        sounds.append(KitSound(program, note, class_name, zones, group))
    return tuple(sounds)


def _loudest_sample(layer: list[tuple[dict[int, int], object]], zones: tuple[_Zone, ...]) -> str:
    """The name of the sample whose zone carries the most energy in the first second of the dry note (at the
    zone's own rate, so the answer does not depend on the model's settings)."""
    energies = [float(np.sum(_render_zone(zone, zone.sample_rate, 0.0) ** 2)) for zone in zones]
    return str(layer[int(np.argmax(energies))][1].name).strip()


def _gens(bag) -> dict[int, int]:
    """Generator amounts of a zone as signed 16-bit values (ranges and sample ids stay raw)."""
    return {
        oper: (gen.word if oper in (_KEY_RANGE, _VEL_RANGE, _SAMPLE_ID, _INSTRUMENT) else gen.short)
        for oper, gen in bag.gens.items()
    }


def _in_range(gens: dict[int, int], oper: int, value: int) -> bool:
    if oper not in gens:
        return True
    low, high = gens[oper] & 0xFF, gens[oper] >> 8
    return low <= value <= high


def _note_layers(preset, note: int) -> list[list[tuple[dict[int, int], object]]]:
    """The zones sounding for `note`, one list per velocity layer: [(generators, sample)]."""
    preset_bags = [_gens(bag) for bag in preset.bags]
    preset_global = preset_bags[0] if preset_bags and _INSTRUMENT not in preset_bags[0] else {}
    candidates = []  # (generators of the instrument zone after the preset offsets, sample)
    for bag, pgens in zip(preset.bags, preset_bags, strict=True):
        if _INSTRUMENT not in pgens or not _in_range(pgens, _KEY_RANGE, note):
            continue
        offsets = {**preset_global, **pgens}
        instrument_bags = [_gens(b) for b in bag.instrument.bags]
        inst_global = instrument_bags[0] if instrument_bags and _SAMPLE_ID not in instrument_bags[0] else {}
        for ibag, igens in zip(bag.instrument.bags, instrument_bags, strict=True):
            if _SAMPLE_ID not in igens or not _in_range(igens, _KEY_RANGE, note):
                continue
            gens = {**inst_global, **igens}
            for oper, amount in offsets.items():
                if oper not in _NOT_ADDITIVE:
                    gens[oper] = gens.get(oper, _DEFAULTS.get(oper, 0)) + amount
            velocity = (offsets.get(_VEL_RANGE, 0x7F00), gens.get(_VEL_RANGE, 0x7F00))
            candidates.append((gens, ibag.sample, velocity))
    # One layer per distinct top velocity: the zones that a note at that velocity plays.
    tops = sorted({min(v >> 8 for v in velocity) for _, _, velocity in candidates})
    return [
        [(g, s) for g, s, velocity in candidates if all((v & 0xFF) <= top <= (v >> 8) for v in velocity)]
        for top in tops
    ]


def _signature(gens: dict[int, int], sample) -> tuple:
    relevant = {k: v for k, v in gens.items() if k not in (_KEY_RANGE, _VEL_RANGE)}
    return (sample.start, tuple(sorted(relevant.items())))


def _seconds(timecents: int) -> float:
    return float(2.0 ** (timecents / 1200.0))


def _zone(gens: dict[int, int], sample, note: int, raw: bytes, smpl_offset: int) -> _Zone:
    def gen(oper: int) -> int:
        return gens.get(oper, _DEFAULTS.get(oper, 0))

    start = sample.start + gen(_START) + 32768 * gen(_START_COARSE)
    end = sample.end + gen(_END) + 32768 * gen(_END_COARSE)
    data = np.frombuffer(raw, dtype="<i2", count=max(end - start, 0), offset=smpl_offset + 2 * start)
    loop = None
    if gen(_SAMPLE_MODES) & 1:
        loop_start = (
            sample.start + sample.start_loop + gen(_START_LOOP) + 32768 * gen(_START_LOOP_COARSE) - start
        )
        loop_end = sample.start + sample.end_loop + gen(_END_LOOP) + 32768 * gen(_END_LOOP_COARSE) - start
        if 0 <= loop_start < loop_end <= len(data):
            loop = (int(loop_start), int(loop_end))
    root = gen(_ROOT_KEY) if gen(_ROOT_KEY) >= 0 else sample.original_pitch
    semitones = (note - root) * gen(_SCALE_TUNING) / 100.0 + gen(_COARSE_TUNE)
    semitones += (gen(_FINE_TUNE) + sample.pitch_correction) / 100.0
    vol_delay, vol_attack, vol_hold, vol_decay, vol_sustain = (gen(g) for g in _VOL_ENV)
    mod_delay, mod_attack, mod_hold, mod_decay, mod_sustain = (gen(g) for g in _MOD_ENV)
    key_offset = 60 - note  # keynum-to-hold/decay generators scale times by key, around middle C
    return _Zone(
        data=(data.astype(np.float32) / 32768.0),
        sample_rate=int(sample.sample_rate),
        loop=loop,
        semitones=float(semitones),
        gain_db=-max(gen(_ATTENUATION), 0) / 10.0,
        vol_env=(
            _seconds(vol_delay),
            _seconds(vol_attack),
            _seconds(vol_hold + gen(_KEY_TO_VOL_HOLD) * key_offset),
            _seconds(vol_decay + gen(_KEY_TO_VOL_DECAY) * key_offset),
            min(max(vol_sustain, 0), 1440) / 10.0,
        ),
        mod_env=(
            _seconds(mod_delay),
            _seconds(mod_attack),
            _seconds(mod_hold + gen(_KEY_TO_MOD_HOLD) * key_offset),
            _seconds(mod_decay + gen(_KEY_TO_MOD_DECAY) * key_offset),
            1.0 - min(max(mod_sustain, 0), 1000) / 1000.0,
        ),
        mod_to_pitch_cents=float(gen(_MOD_ENV_TO_PITCH)),
        mod_to_cutoff_cents=float(gen(_MOD_ENV_TO_FC)),
        cutoff_cents=float(gen(_FILTER_FC)),
        resonance_db=max(gen(_FILTER_Q), 0) / 10.0,
    )

"""The built-in drum corpus: labelled patterns drawn from probabilistic style templates, and a MIDI writer.

A style template is a few layers (kick, backbeat, hats, percussion); each layer is a weighted list of
musical options, one of which is played for the whole performance (8 bars of one groove, the unit a split
keeps on one side). On top come sparse ghost notes at the places a drummer of that style puts them, a fill
on the last bar of a phrase, a crash on its first bar, and velocity accents. Variation is a choice among a
handful of options rather than noise on every cell, so a small latent space can hold a style while the
styles stay recognisable in the grid. A :class:`corpus.drum_feel.Drummer`, drawn per performance from the
style's feel, plays it: accents, more ghost notes, bar-to-bar variations, tom fills that land on a crash,
velocities and microtiming (offsets in 16ths: swing, triplet feel, a laid-back snare, pushed hats, jitter).

Pattern strings have one character per 16th step: ``.`` rest, ``X`` accent, ``x`` hit, ``o`` soft
hit, ``g`` ghost note.
"""

from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

from latentlive.core.files import atomic_write
from latentlive.corpus.drum_feel import Drummer, Feel
from latentlive.corpus.drum_map import (
    CLOSED_HAT,
    CRASH,
    DEFAULT_NOTES,
    HIGH_TOM,
    INSTRUMENT_NAMES,
    KICK,
    LOW_TOM,
    MID_TOM,
    NUM_INSTRUMENTS,
    OPEN_HAT,
    RIDE,
    SNARE,
)

STEPS_PER_BAR = 16
_LEVELS = {".": 0.0, "X": 1.0, "x": 0.8, "o": 0.6, "g": 0.3}
_VELOCITY_JITTER = 0.05
_GHOST_VELOCITY = 0.3
_FILL_CLEARS = (SNARE, CLOSED_HAT, OPEN_HAT, LOW_TOM, MID_TOM, HIGH_TOM, RIDE)  # the kick keeps playing
_PHRASE_BARS = 4  # fills end a phrase of (at least) 4 bars, crashes start it
_CRASH_AFTER_FILL = 0.85  # a drummer's fill mostly lands on a crash
PERFORMANCE_BARS = 8  # a built-in performance: one groove for two phrases, the group a split holds together
_DRUMMER_TICKS_PER_BEAT = 480


def _row(pattern: str) -> np.ndarray:
    """float32 [16] levels of a 16-character pattern string."""
    if len(pattern) != STEPS_PER_BAR:
        raise ValueError(f"pattern {pattern!r} has {len(pattern)} steps, expected {STEPS_PER_BAR}")
    return np.array([_LEVELS[c] for c in pattern], dtype=np.float32)


@dataclass(frozen=True)
class _Option:
    """One musical choice of a layer: float32 [9, 16] levels (0 = rest) and its weight."""

    weight: float
    levels: np.ndarray


def _option(weight: float, **rows: str) -> _Option:
    levels = np.zeros((NUM_INSTRUMENTS, STEPS_PER_BAR), dtype=np.float32)
    for name, pattern in rows.items():
        levels[INSTRUMENT_NAMES.index(name)] = _row(pattern)
    return _Option(weight, levels)


@dataclass(frozen=True)
class _Fill:
    """A fill replaces everything but the kick from `start` on with its own rows."""

    weight: float
    start: int
    levels: np.ndarray


def _fill(weight: float, start: int, **rows: str) -> _Fill:
    return _Fill(weight, start, _option(weight, **rows).levels)


@dataclass(frozen=True)
class StyleTemplate:
    """A style: layers of weighted options, ghost notes (instrument, step, probability), fills, crash."""

    name: str
    bpm: float
    layers: tuple[tuple[_Option, ...], ...]
    ghosts: tuple[tuple[int, int, float], ...]
    fills: tuple[_Fill, ...]
    fill_probability: float  # on the last bar of a phrase
    crash_probability: float  # on the first bar of a phrase
    feel: Feel = Feel()  # how a drummer plays it: see corpus.drum_feel


_SNARE_ROLL_4 = _fill(1.0, 12, snare="............xoxX")
_SNARE_ROLL_8 = _fill(1.0, 8, snare="........x.x.oxxX")
_TOMS_DOWN_8 = _fill(
    1.0,
    8,
    high_tom="........xx......",
    mid_tom="..........xx....",
    low_tom="............xxx.",
    snare="...............X",
)
_SNARE_TOMS_4 = _fill(
    1.0,
    12,
    snare="............X...",
    high_tom=".............x..",
    mid_tom="..............x.",
    low_tom="...............x",
)
_HAT_ROLL_4 = _fill(1.0, 12, closed_hat="............oxxx", snare="............X...")
# Triplet fills of the shuffle and jazz feels: steps 1 and 3 of a beat are its 2nd and 3rd triplet.
_TRIPLETS_4 = _fill(1.0, 12, snare="............xo.x", low_tom="...............x")
_TRIPLET_TOMS_8 = _fill(
    1.0,
    8,
    snare="........xo.x....",
    high_tom="............x...",
    mid_tom=".............x..",
    low_tom="...............X",
)

_FOUR_ON_THE_FLOOR = "X...X...X...X..."
_BACKBEAT = "....X.......X..."
_EIGHTHS = "x.x.x.x.x.x.x.x."
_SIXTEENTHS = "xoxoxoxoxoxoxoxo"
_OFFBEATS = "..x...x...x...x."

STYLES: tuple[StyleTemplate, ...] = (
    StyleTemplate(
        name="techno",
        bpm=130,
        layers=(
            (_option(0.8, kick=_FOUR_ON_THE_FLOOR), _option(0.2, kick="X...X...X...X..o")),
            (_option(0.75), _option(0.25, snare=_BACKBEAT)),
            (
                _option(0.4, closed_hat=_SIXTEENTHS),
                _option(0.3, closed_hat=_SIXTEENTHS, open_hat="..X...X...X...X."),
                _option(0.3, closed_hat=_SIXTEENTHS, ride=_OFFBEATS),
            ),
            (_option(0.6), _option(0.4, low_tom="..o..o....o..o..")),
        ),
        ghosts=((CLOSED_HAT, 15, 0.1), (KICK, 14, 0.08), (SNARE, 15, 0.08)),
        fills=(_SNARE_ROLL_4, _SNARE_ROLL_8),
        fill_probability=0.35,
        crash_probability=0.35,
        feel=Feel(human=0.1, swing=(0.0, 0.03), variation=0.15),
    ),
    StyleTemplate(
        name="house",
        bpm=124,
        layers=(
            (_option(1.0, kick=_FOUR_ON_THE_FLOOR),),
            (_option(0.85, snare=_BACKBEAT), _option(0.15, snare="....X.......X..o")),
            (
                _option(0.45, open_hat=_OFFBEATS),
                _option(0.3, open_hat=_OFFBEATS, closed_hat="x...x...x...x..."),
                _option(0.25, open_hat=_OFFBEATS, closed_hat="oo.ooo.ooo.ooo.o"),
            ),
            (
                _option(0.6),
                _option(0.25, high_tom="...x......x..x..", mid_tom="......x........."),
                _option(0.15, ride=_EIGHTHS),
            ),
        ),
        ghosts=((CLOSED_HAT, 3, 0.15), (CLOSED_HAT, 11, 0.15), (SNARE, 7, 0.08), (SNARE, 15, 0.1)),
        fills=(_SNARE_ROLL_4, _SNARE_TOMS_4),
        fill_probability=0.3,
        crash_probability=0.4,
        feel=Feel(human=0.15, swing=(0.0, 0.12), ghost_rate=0.02, variation=0.2),
    ),
    StyleTemplate(
        name="breakbeat",
        bpm=132,
        layers=(
            (
                _option(0.3, kick="X.........X....."),
                _option(0.25, kick="X.x.......X....."),
                _option(0.25, kick="X..x......X....."),
                _option(0.2, kick="X.x.......X..x.."),
            ),
            (_option(1.0, snare=_BACKBEAT),),
            (
                _option(0.5, closed_hat=_SIXTEENTHS),
                _option(0.5, closed_hat=_SIXTEENTHS, open_hat="......x.......x."),
            ),
        ),
        ghosts=((SNARE, 7, 0.25), (SNARE, 9, 0.2), (SNARE, 15, 0.15), (KICK, 13, 0.15)),
        fills=(_SNARE_ROLL_4, _TOMS_DOWN_8, _SNARE_TOMS_4),
        fill_probability=0.45,
        crash_probability=0.4,
        feel=Feel(human=0.8, swing=(0.0, 0.12), ghost_rate=0.2, variation=0.35, tom_fill=0.4),
    ),
    StyleTemplate(
        name="hiphop",
        bpm=90,
        layers=(
            (
                _option(0.3, kick="X......x..X....."),
                _option(0.25, kick="X.....x...X..x.."),
                _option(0.25, kick="X..x......X.x..."),
                _option(0.2, kick="X.........X....."),
            ),
            (_option(1.0, snare=_BACKBEAT),),
            (
                _option(0.65, closed_hat="x.x.x.x.x.x.x.x."),
                _option(0.35, closed_hat="x.x.x.x.x.x.x...", open_hat="..............x."),
            ),
        ),
        ghosts=((SNARE, 15, 0.15), (SNARE, 7, 0.1), (KICK, 11, 0.1), (CLOSED_HAT, 15, 0.15)),
        fills=(_SNARE_ROLL_4,),
        fill_probability=0.2,
        crash_probability=0.15,
        feel=Feel(human=0.7, swing=(0.05, 0.3), ghost_rate=0.12, variation=0.3, tom_fill=0.3),
    ),
    StyleTemplate(
        name="dnb",
        bpm=174,
        layers=(
            (
                _option(0.55, kick="X.........X....."),
                _option(0.25, kick="X.........XX...."),
                _option(0.2, kick="X.x.......X....."),
            ),
            (_option(1.0, snare=_BACKBEAT),),
            (
                _option(0.55, closed_hat=_OFFBEATS),
                _option(0.45, closed_hat=_OFFBEATS, ride="x...x...x...x..."),
            ),
        ),
        ghosts=((SNARE, 7, 0.35), (SNARE, 9, 0.25), (SNARE, 14, 0.2)),
        fills=(_SNARE_ROLL_4, _SNARE_ROLL_8, _SNARE_TOMS_4),
        fill_probability=0.5,
        crash_probability=0.5,
        feel=Feel(human=0.5, swing=(0.0, 0.08), ghost_rate=0.15, variation=0.3, tom_fill=0.2),
    ),
    StyleTemplate(
        name="jungle",
        bpm=165,
        layers=(
            (
                _option(0.5, kick="X.X.......XX...."),
                _option(0.3, kick="X.X.......X....."),
                _option(0.2, kick="X.X.....X.X....."),
            ),
            (_option(0.55, snare="....X..x.x..X..x"), _option(0.45, snare="....X..x.x....x.")),
            (_option(0.6, ride=_EIGHTHS), _option(0.4, ride=_EIGHTHS, closed_hat="....o.......o...")),
        ),
        ghosts=((SNARE, 11, 0.15), (SNARE, 3, 0.1)),
        fills=(_SNARE_ROLL_8, _SNARE_TOMS_4),
        fill_probability=0.5,
        crash_probability=0.5,
        feel=Feel(human=0.6, swing=(0.0, 0.1), ghost_rate=0.15, variation=0.35, tom_fill=0.2),
    ),
    StyleTemplate(
        name="rock",
        bpm=110,
        layers=(
            (
                _option(0.45, kick="X.......X......."),
                _option(0.3, kick="X.......X.x....."),
                _option(0.25, kick="X......xX......."),
            ),
            (_option(1.0, snare=_BACKBEAT),),
            (
                _option(0.8, closed_hat="X.x.X.x.X.x.X.x."),
                _option(0.2, ride="X.x.X.x.X.x.X.x.", closed_hat="....x.......x..."),
            ),
        ),
        ghosts=((SNARE, 15, 0.1), (SNARE, 7, 0.08), (KICK, 15, 0.1), (KICK, 6, 0.08)),
        fills=(_TOMS_DOWN_8, _SNARE_TOMS_4, _SNARE_ROLL_4),
        fill_probability=0.6,
        crash_probability=0.6,
        feel=Feel(human=1.0, swing=(0.0, 0.04), ghost_rate=0.06, variation=0.3, tom_fill=0.7),
    ),
    StyleTemplate(
        name="dembow",
        bpm=95,
        layers=(
            (_option(1.0, kick=_FOUR_ON_THE_FLOOR),),
            (_option(0.7, snare="...x..x....x..x."), _option(0.3, snare="...x..x.x..x..x.")),
            (_option(0.5, closed_hat=_EIGHTHS), _option(0.3, closed_hat=_SIXTEENTHS), _option(0.2)),
            (_option(0.7), _option(0.3, high_tom="......x.......x.")),
        ),
        ghosts=((SNARE, 15, 0.1),),
        fills=(_SNARE_ROLL_4, _SNARE_TOMS_4),
        fill_probability=0.3,
        crash_probability=0.3,
        feel=Feel(human=0.3, swing=(0.0, 0.08), ghost_rate=0.03, variation=0.2),
    ),
    StyleTemplate(
        name="trap",
        bpm=140,
        layers=(
            (
                _option(0.35, kick="X......X..X....."),
                _option(0.35, kick="X.....X....x...."),
                _option(0.3, kick="X..X......X..X.."),
            ),
            (_option(1.0, snare="........X......."),),
            (
                _option(0.4, closed_hat=_EIGHTHS),
                _option(0.35, closed_hat="xoxoxoxoxoxoxoxo"),
                _option(0.25, closed_hat="x.x.x.xxx.x.x.xx"),
            ),
            (_option(0.7), _option(0.3, open_hat="..............x.")),
        ),
        ghosts=((SNARE, 15, 0.1), (KICK, 14, 0.1)),
        fills=(_HAT_ROLL_4,),
        fill_probability=0.35,
        crash_probability=0.25,
        feel=Feel(human=0.1, swing=(0.0, 0.05), variation=0.2),
    ),
    StyleTemplate(
        name="electro",
        bpm=128,
        layers=(
            (_option(0.5, kick="X.....X.......X."), _option(0.5, kick="X.....X...X...X.")),
            (_option(1.0, snare=_BACKBEAT),),
            (
                _option(0.6, closed_hat="XoxoXoxoXoxoXoxo"),
                _option(0.4, closed_hat=_EIGHTHS, open_hat="..............x."),
            ),
            (
                _option(0.45, ride="..x..x....x..x.."),
                _option(0.35, low_tom="...x......x.....", high_tom="......x.......x."),
                _option(0.2),
            ),
        ),
        ghosts=((KICK, 11, 0.15),),
        fills=(_SNARE_TOMS_4, _SNARE_ROLL_4),
        fill_probability=0.4,
        crash_probability=0.3,
        feel=Feel(human=0.15, swing=(0.0, 0.05), variation=0.15),
    ),
    StyleTemplate(
        name="funk",
        bpm=100,
        layers=(
            (
                _option(0.3, kick="X.x.......x..x.."),
                _option(0.25, kick="X......x.xX....."),
                _option(0.25, kick="X.x...x...X....x"),
                _option(0.2, kick="X..x..x...X....."),
            ),
            (_option(0.6, snare=_BACKBEAT), _option(0.4, snare="....X..g.g..X...")),
            (
                _option(0.5, closed_hat="XoxoXoxoXoxoXoxo"),
                _option(0.3, closed_hat="x.x.x.x.x.x.x...", open_hat="..............x."),
                _option(0.2, closed_hat="xoxoxo.oxoxoxoxo", open_hat="......x........."),
            ),
        ),
        ghosts=((SNARE, 7, 0.2), (SNARE, 9, 0.2), (SNARE, 14, 0.15), (KICK, 15, 0.1)),
        fills=(_SNARE_ROLL_4, _SNARE_TOMS_4, _TOMS_DOWN_8),
        fill_probability=0.45,
        crash_probability=0.45,
        feel=Feel(human=1.0, swing=(0.0, 0.15), ghost_rate=0.3, variation=0.35, tom_fill=0.5),
    ),
    StyleTemplate(
        name="shuffle",
        bpm=120,
        layers=(
            (
                _option(0.5, kick="X.......X......."),
                _option(0.3, kick="X......xX......."),
                _option(0.2, kick="X..x....X..x...."),
            ),
            (_option(1.0, snare=_BACKBEAT),),
            (
                _option(0.6, closed_hat="x..xx..xx..xx..x"),
                _option(0.4, ride="x..xx..xx..xx..x", closed_hat="....x.......x..."),
            ),
        ),
        ghosts=((SNARE, 3, 0.15), (SNARE, 11, 0.2), (SNARE, 15, 0.15), (KICK, 11, 0.1)),
        fills=(_TRIPLETS_4, _TRIPLET_TOMS_8),
        fill_probability=0.5,
        crash_probability=0.5,
        feel=Feel(human=1.0, triplet=True, ghost_rate=0.05, variation=0.3, tom_fill=0.4),
    ),
    StyleTemplate(
        name="jazz",
        bpm=140,
        layers=(
            (_option(0.4, kick="g...g...g...g..."), _option(0.3, kick="..........o....."), _option(0.3)),
            (
                _option(0.3, snare="...........o...."),
                _option(0.3, snare="...o.......o...."),
                _option(0.2, snare="...............o"),
                _option(0.2),
            ),
            (_option(0.7, ride="x...x..xx...x..x"), _option(0.3, ride="X...x..xX...x..x")),
            (_option(1.0, closed_hat="....x.......x..."),),
        ),
        ghosts=((SNARE, 7, 0.15), (SNARE, 13, 0.1), (KICK, 15, 0.08)),
        fills=(_TRIPLETS_4, _TRIPLET_TOMS_8),
        fill_probability=0.35,
        crash_probability=0.3,
        feel=Feel(human=1.0, triplet=True, ghost_rate=0.08, variation=0.5, tom_fill=0.3),
    ),
    StyleTemplate(
        name="bossa",
        bpm=130,
        layers=(
            (_option(1.0, kick="X..xX..xX..xX..x"),),
            (_option(0.6, snare="x..x..x...x..x.."), _option(0.4, snare="...x..x...x..x..")),
            (
                _option(0.6, closed_hat=_EIGHTHS),
                _option(0.4, ride=_EIGHTHS, closed_hat="....x.......x..."),
            ),
        ),
        ghosts=(),
        fills=(_SNARE_TOMS_4,),
        fill_probability=0.25,
        crash_probability=0.2,
        feel=Feel(human=0.9, swing=(0.0, 0.05), variation=0.2, tom_fill=0.3),
    ),
)

STYLE_NAMES: tuple[str, ...] = tuple(style.name for style in STYLES)
STYLE_BPM: dict[str, float] = {style.name: style.bpm for style in STYLES}


def _pick(options: tuple, rng: np.random.Generator):
    """One of `options`, drawn with probability proportional to its weight."""
    remaining = rng.random() * sum(option.weight for option in options)
    for option in options:
        remaining -= option.weight
        if remaining < 0:
            return option
    return options[-1]


def generate_pattern(
    style: str | int,
    rng: np.random.Generator,
    bars: int = 1,
    phrase_bar: int | None = None,
    human: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pattern of `bars` bars in a style: grid uint8 [9, 16 * bars], velocities float32 [9, 16 * bars]
    (0..1) and offsets float32 [9, 16 * bars] (-0.5..0.5 of a 16th; 0 where no hit).

    `phrase_bar` is the position of the first bar in its phrase (a phrase is the smallest multiple of
    `bars` that is at least 4 bars long): crashes come on bar 0 of a phrase, fills on its last bar.
    None draws it at random, so one-bar examples show every part of a phrase. `human` plays it the way a
    drummer of the style would (:mod:`corpus.drum_feel`); False gives the written pattern on the grid.
    """
    template = _template(style)
    phrase_length = _phrase_length(bars)
    if phrase_bar is None:
        phrase_bar = int(rng.integers(phrase_length // bars)) * bars
    return _perform(template, rng, bars, phrase_length, phrase_bar, human)


def generate_performance(
    style: str | int, rng: np.random.Generator, examples: int, bars: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One performance: a groove of a style played from the start of a phrase for `examples` consecutive
    examples of `bars` bars, with its ghosts, fills and crashes bar by bar. Returns grids uint8
    [examples, 9, 16 * bars], velocities and offsets float32 [examples, 9, 16 * bars], in playing order."""
    played = _perform(_template(style), rng, examples * bars, _phrase_length(bars), 0)

    def cut(array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array.reshape(NUM_INSTRUMENTS, examples, -1).transpose(1, 0, 2))

    return cut(played[0]), cut(played[1]), cut(played[2])


def _template(style: str | int) -> StyleTemplate:
    return STYLES[style] if isinstance(style, int) else STYLES[STYLE_NAMES.index(style)]


def _phrase_length(bars: int) -> int:
    """Bars per phrase for examples of `bars` bars: the smallest multiple of `bars` of at least 4 bars."""
    return bars * -(-_PHRASE_BARS // bars)


def _perform(
    template: StyleTemplate,
    rng: np.random.Generator,
    bars: int,
    phrase_length: int,
    phrase_bar: int,
    human: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`bars` bars of one groove from bar `phrase_bar` of a phrase: grid uint8 [9, 16 * bars], velocities and
    offsets float32 [9, 16 * bars]. Without `human`, the bars of the groove with its written ghosts, fills and
    crashes on the grid (offsets 0), drawn exactly as before the drummer existed (the techno loops use it)."""
    groove = np.zeros((NUM_INSTRUMENTS, STEPS_PER_BAR), dtype=np.float32)
    for layer in template.layers:
        groove = np.maximum(groove, _pick(layer, rng).levels)
    drummer = Drummer.draw(template.feel, rng) if human else None

    levels = np.zeros((NUM_INSTRUMENTS, STEPS_PER_BAR * bars), dtype=np.float32)
    fills = np.zeros(STEPS_PER_BAR * bars, dtype=bool)
    fill_start = None
    for bar in range(bars):
        position = (phrase_bar + bar) % phrase_length
        after_fill = fill_start is not None
        played, fill_start = _play_bar(
            template, groove, rng, position == 0, position == phrase_length - 1, drummer, after_fill
        )
        levels[:, bar * STEPS_PER_BAR : (bar + 1) * STEPS_PER_BAR] = played
        if fill_start is not None:
            fills[bar * STEPS_PER_BAR + fill_start : (bar + 1) * STEPS_PER_BAR] = True
    grid = (levels > 0).astype(np.uint8)
    if drummer is not None:
        velocities, offsets = drummer.play(levels, fills, rng)
        return grid, velocities, offsets
    jitter = rng.normal(0.0, _VELOCITY_JITTER, size=levels.shape).astype(np.float32)
    velocities = np.where(grid == 1, np.clip(levels + jitter, 0.05, 1.0), 0.0).astype(np.float32)
    return grid, velocities, np.zeros_like(velocities)


def _play_bar(
    template: StyleTemplate,
    groove: np.ndarray,
    rng: np.random.Generator,
    first: bool,
    last: bool,
    drummer: Drummer | None,
    after_fill: bool = False,
) -> tuple[np.ndarray, int | None]:
    """float32 [9, 16] levels of one bar (the groove plus ghosts, the drummer's variation, a fill and a crash)
    and the first step of its fill (None without one). A drummer lands a fill on a crash most times."""
    bar = groove.copy()
    for instrument, step, probability in template.ghosts:
        if bar[instrument, step] == 0 and rng.random() < probability:
            bar[instrument, step] = _GHOST_VELOCITY
    if drummer is not None:
        bar = drummer.vary(bar, rng)
    fill_start = None
    if last and template.fills and rng.random() < template.fill_probability:
        fill = drummer.fill(rng) if drummer is not None else None
        if fill is None:
            written = _pick(template.fills, rng)
            fill = (written.start, written.levels)
        fill_start, fill_levels = fill
        bar[list(_FILL_CLEARS), fill_start:] = 0
        bar = np.maximum(bar, fill_levels)
    crash_probability = template.crash_probability
    if drummer is not None and after_fill:
        crash_probability = max(crash_probability, _CRASH_AFTER_FILL)
    if first and rng.random() < crash_probability:
        bar[CRASH, 0] = 1.0
        bar[[CLOSED_HAT, OPEN_HAT, RIDE], 0] = 0  # the crash takes the hand that keeps time
    # An open hat silences the closed hat at the same step: one hi-hat, one sound.
    bar[CLOSED_HAT] = np.where(bar[OPEN_HAT] > 0, 0, bar[CLOSED_HAT])
    return bar, fill_start


def examples_per_performance(bars: int) -> int:
    """Examples of `bars` bars in one built-in performance: PERFORMANCE_BARS bars' worth, at least one."""
    return max(1, PERFORMANCE_BARS // bars)


def generate_style_corpus(
    examples_per_style: int, bars: int = 1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Patterns of every style: grids uint8 [N, 9, S], velocities float32 [N, 9, S] (0..1), offsets float32
    [N, 9, S] (-0.5..0.5 of a 16th), styles int64 [N], and groups str [N], the performance each example
    comes from.

    N = examples_per_style * len(STYLE_NAMES), S = 16 * bars, grouped by style in STYLE_NAMES order. Each
    style is played as performances of :func:`examples_per_performance` examples (the last one cut short
    to fill the style), and performance ``p`` of style ``i`` is drawn from its own seed ``[seed, i, p]``,
    named ``"<style>/performance-<p>"``: the group a split keeps on one side. The result is the same on
    every machine.
    """
    steps = STEPS_PER_BAR * bars
    count = examples_per_style * len(STYLES)
    grids = np.zeros((count, NUM_INSTRUMENTS, steps), dtype=np.uint8)
    velocities = np.zeros((count, NUM_INSTRUMENTS, steps), dtype=np.float32)
    offsets = np.zeros((count, NUM_INSTRUMENTS, steps), dtype=np.float32)
    styles = np.repeat(np.arange(len(STYLES), dtype=np.int64), examples_per_style)
    groups = np.zeros(count, dtype=object)
    per_performance = examples_per_performance(bars)
    for index, name in enumerate(STYLE_NAMES):
        for performance, first in enumerate(range(0, examples_per_style, per_performance)):
            size = min(per_performance, examples_per_style - first)
            rng = np.random.default_rng([seed, index, performance])
            rows = slice(index * examples_per_style + first, index * examples_per_style + first + size)
            grids[rows], velocities[rows], offsets[rows] = generate_performance(index, rng, size, bars)
            groups[rows] = f"{name}/performance-{performance:04d}"
    return grids, velocities, offsets, styles, groups.astype(str)


def write_midi(
    grid: np.ndarray,
    velocities: np.ndarray | None,
    path: str | Path,
    bpm: float,
    notes: tuple[int, ...] = DEFAULT_NOTES,
    humanize: float = 0.0,
    seed: int = 0,
    swing: float = 0.0,
    offsets: np.ndarray | None = None,
) -> Path:
    """Write a pattern (grid [9, S], velocities [9, S] in 0..1 or None, offsets [9, S] in -0.5..0.5 or None)
    as a type 0 drum MIDI file.

    Notes go to channel 10, one 4/4 bar per 16 steps, at `bpm`, 480 ticks a beat. A note at step s with
    offset o sits at tick (s + o) * 120 (its velocity is round(127 * level), at least 1), so reading the file
    back gives the grid, the velocities within 1/254 and the offsets within half a tick. `humanize` (0..1)
    adds human timing (std 12 % of a 16th at 1.0) and velocity (std 0.1) jitter; `swing` (0..0.4) delays
    every second 16th by that fraction of a 16th. The sum stays within half a 16th of the step (the first
    note of the file cannot be early), so quantising the file gives the grid back. Written atomically (temp
    file + rename); returns the path.
    """
    grid = np.asarray(grid)
    if grid.ndim != 2 or grid.shape[0] != len(notes):
        raise ValueError(f"grid must be [{len(notes)}, steps], got {list(grid.shape)}")
    levels = np.full(grid.shape, 0.8, dtype=np.float32) if velocities is None else np.asarray(velocities)
    played = np.zeros(grid.shape, dtype=np.float32) if offsets is None else np.asarray(offsets)
    rng = np.random.default_rng(seed)
    sixteenth = _DRUMMER_TICKS_PER_BEAT // 4

    events: list[tuple[int, int, mido.Message]] = []  # (tick, note-off first, message)
    for instrument, step in zip(*np.nonzero(grid), strict=True):
        offset = float(played[instrument, step]) + swing * (step % 2) + humanize * 0.12 * rng.normal()
        # within [-half, half) a 16th of the step, in ticks: the reader puts it back on its step
        shift = min(max(round(offset * sixteenth), -(sixteenth // 2)), sixteenth // 2 - 1)
        tick = max(0, step * sixteenth + shift)
        level = levels[instrument, step] if levels[instrument, step] > 0 else 0.8
        level = float(np.clip(level + humanize * 0.1 * rng.normal(), 0.0, 1.0))
        velocity = int(np.clip(round(127 * level), 1, 127))
        events.append(
            (tick, 1, mido.Message("note_on", channel=9, note=notes[instrument], velocity=velocity))
        )
    events.sort(key=lambda event: (event[0], event[2].note))
    events += _note_offs(events, sixteenth // 4)
    events.sort(key=lambda event: (event[0], event[1]))

    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name="drums", time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    track.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    now = 0
    for tick, _, message in events:
        track.append(message.copy(time=tick - now))
        now = tick
    end = max(now, grid.shape[1] * sixteenth)
    track.append(mido.MetaMessage("end_of_track", time=end - now))
    midi = mido.MidiFile(type=0, ticks_per_beat=_DRUMMER_TICKS_PER_BEAT)
    midi.tracks.append(track)
    return _save_atomically(midi, Path(path))


def _note_offs(
    note_ons: list[tuple[int, int, mido.Message]], length: int
) -> list[tuple[int, int, mido.Message]]:
    """A short note-off for every note-on, ending before the next note-on of the same key."""
    offs = []
    next_on: dict[int, int] = {}
    for tick, _, message in reversed(note_ons):
        end = min(tick + length, next_on.get(message.note, tick + length + 1) - 1)
        offs.append((max(end, tick), 0, mido.Message("note_off", channel=9, note=message.note, velocity=0)))
        next_on[message.note] = tick
    return offs


def _save_atomically(midi: mido.MidiFile, path: Path) -> Path:
    return atomic_write(path, lambda tmp: midi.save(str(tmp)))

"""How a drummer plays a built-in groove: accents, ghost notes, bar-to-bar variation, tom fills and microtiming.

:mod:`corpus.drum_styles` says what is played (a style's groove, its fills and crashes); a :class:`Drummer`,
drawn once per performance from the style's :class:`Feel`, says how. Per performance it draws a swing amount,
a lean per class (a laid-back snare plays late, pushed hats early), a timing looseness, overall dynamics, an
accent depth, a ghost-note density and, for some, the off-beat 16ths where they open the hat; per bar it adds
ghost notes and open hats, varies the groove and plays tom fills; per note it adds velocity and timing jitter. Styles played on drum machines get a small ``human`` share, so they
stay tight; styles played by drummers get a share near 1.

Offsets are fractions of a 16th step (+ late, - early); a 16th lasts 125 ms at 120 bpm, so an offset of 0.04
is 5 ms. Swing delays the second 16th of each 8th; a triplet feel (shuffle, jazz) plays the 16th after a beat
a third of a step late and the last 16th of a beat a third early: the grid's nearest steps to the triplets.
"""

from dataclasses import dataclass

import numpy as np

from latentlive.corpus.drum_map import (
    CLOSED_HAT,
    CRASH,
    HIGH_TOM,
    KICK,
    LOW_TOM,
    MID_TOM,
    NUM_INSTRUMENTS,
    OPEN_HAT,
    RIDE,
    SNARE,
)

STEPS_PER_BAR = 16
MAX_OFFSET = 0.45  # of a step: a played note stays nearer its own step than the next
_TIMEKEEPERS = (CLOSED_HAT, OPEN_HAT, RIDE)
_TOMS = (HIGH_TOM, MID_TOM, LOW_TOM)
_OFF_BEAT_STEPS = np.flatnonzero(np.arange(STEPS_PER_BAR) % 4 != 0)
_OPEN_HABIT_SHARE = 0.4  # of the performances of a style played by a drummer (human = 1) that have a habit
_OPEN_HABIT_KEPT = 0.8  # share of the bars in which the drummer plays the habit where the closed hat plays
_GHOST_LEVEL = 0.3  # the level of a ghost note in a pattern string ("g"); below it a hit is a ghost


@dataclass(frozen=True)
class Feel:
    """How a style is played; ranges are drawn once per performance.

    human: 0 (a drum machine: no lean, ~1 ms jitter) .. 1 (a drummer: laid-back snare, pushed hats, 5-10 ms).
    swing: range of the delay of every second 16th, in steps (1/3 would be a triplet swing).
    triplet: swung 8ths are written on the last 16th of a beat and played a third of a step early.
    ghost_rate: the most a performance puts snare ghost notes on a free weak 16th (probability per step).
    variation: probability that a bar varies the groove (a kick added, an open hat, a dropped hat, a drag).
    tom_fill: share of the fills that are played around the toms instead of the style's written fills.
    """

    human: float = 0.2
    swing: tuple[float, float] = (0.0, 0.0)
    triplet: bool = False
    ghost_rate: float = 0.0
    variation: float = 0.15
    tom_fill: float = 0.0


@dataclass(frozen=True)
class Drummer:
    """One performance's way of playing (see the module docstring); draw it with :meth:`draw`."""

    feel: Feel
    swing: float
    lean: np.ndarray  # float32 [9], mean offset per class, in steps
    looseness: np.ndarray  # float32 [9], timing jitter std per class, in steps
    dynamics: float  # overall level, 0.7..1
    accent: float  # how much softer off-beat hats and rides are than those on the beat
    ghosts: float  # probability of a snare ghost note on a free weak 16th
    open_steps: tuple[int, ...]  # where this drummer opens the hat in most bars (off the beat), if anywhere

    @classmethod
    def draw(cls, feel: Feel, rng: np.random.Generator) -> "Drummer":
        human = feel.human
        lean = np.zeros(NUM_INSTRUMENTS, dtype=np.float32)
        lean[SNARE] = human * rng.uniform(0.0, 0.12)  # laid back: up to 15 ms at 120 bpm
        lean[list(_TIMEKEEPERS)] = human * rng.normal(-0.04, 0.03)  # hats and rides mostly pushed
        lean[KICK] = human * rng.normal(0.0, 0.03)
        lean[[LOW_TOM, MID_TOM, HIGH_TOM, CRASH]] = human * rng.normal(0.0, 0.03)
        looseness = np.full(NUM_INSTRUMENTS, 0.008 + human * rng.uniform(0.03, 0.07), dtype=np.float32)
        return cls(
            feel=feel,
            swing=float(rng.uniform(*feel.swing)),
            lean=lean,
            looseness=looseness,
            dynamics=float(rng.uniform(0.7, 1.0)),
            accent=float(rng.uniform(0.1, 0.2) + human * rng.uniform(0.0, 0.2)),
            ghosts=float(rng.uniform(0.3, 1.0) * feel.ghost_rate),
            open_steps=_open_habit(human, rng),
        )

    def vary(self, bar: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """float32 [9, 16] levels of a bar with this drummer's ghost notes and, sometimes, a variation."""
        bar = bar.copy()
        free = (bar[SNARE] == 0) & (np.arange(STEPS_PER_BAR) % 2 == 1)
        free &= np.roll(bar[SNARE], 1) < 1.0  # not straight after a backbeat
        ghosts = free & (rng.random(STEPS_PER_BAR) < self.ghosts)
        bar[SNARE, ghosts] = _GHOST_LEVEL * rng.uniform(0.5, 1.0, int(ghosts.sum()))
        for step in self.open_steps:
            if bar[CLOSED_HAT, step] > 0 and rng.random() < _OPEN_HABIT_KEPT:
                _open_at(bar, step)
        if rng.random() < self.feel.variation:
            bar = _VARIATIONS[int(rng.integers(len(_VARIATIONS)))](bar, rng)
        bar[CLOSED_HAT] = np.where(bar[OPEN_HAT] > 0, 0, bar[CLOSED_HAT])
        return bar

    def fill(self, rng: np.random.Generator) -> tuple[int, np.ndarray] | None:
        """A tom fill (its first step and float32 [9, 16] levels) this time, or None for a written fill."""
        if rng.random() >= self.feel.tom_fill:
            return None
        return tom_fill(rng)

    def play(
        self, levels: np.ndarray, fills: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Velocities (0..1) and offsets (steps) float32 [9, S] of levels [9, S] (0 = rest); fills bool [S]
        marks the steps of fills (played louder towards their end, and rushed a little)."""
        hit = levels > 0
        steps = np.arange(levels.shape[1]) % STEPS_PER_BAR
        accent = np.ones(levels.shape, dtype=np.float32)
        on_beat, on_eighth = steps % 4 == 0, steps % 2 == 0
        weak = np.where(on_beat, 1.0, np.where(on_eighth, 1 - self.accent / 2, 1 - self.accent))
        accent[list(_TIMEKEEPERS)] = weak
        accent[KICK] = np.where(steps == 0, 1.0, 0.93)
        human = self.feel.human
        noise = rng.normal(0.0, 0.03 + 0.04 * human, levels.shape)
        velocities = np.clip(levels * accent * self.dynamics + noise, 0.05, 1.0)

        offsets = self.lean[:, None] + rng.normal(0.0, 1.0, levels.shape) * self.looseness[:, None]
        ghost = levels < _GHOST_LEVEL + 1e-6
        offsets += np.where(ghost, rng.normal(0.0, 0.03 * human, levels.shape), 0.0)  # ghosts are looser
        offsets += np.where(fills[None, :], human * 0.04, 0.0)  # fills rush
        if self.feel.triplet:
            offsets += np.where(steps % 4 == 1, 1 / 3, np.where(steps % 4 == 3, -1 / 3, 0.0))[None, :]
        else:
            offsets += np.where(steps % 2 == 1, self.swing, 0.0)[None, :]
        offsets = np.clip(offsets, -MAX_OFFSET, MAX_OFFSET)
        return (
            np.where(hit, velocities, 0.0).astype(np.float32),
            np.where(hit, offsets, 0.0).astype(np.float32),
        )


def tom_fill(rng: np.random.Generator) -> tuple[int, np.ndarray]:
    """A fill around the toms over the last one or two beats of a bar: its first step and float32 [9, 16]
    levels, a run down from the snare or high tom to the floor tom in 16ths or 8ths, louder towards its end,
    often closed by the kick and floor tom together."""
    start = int(rng.choice([8, 12], p=[0.4, 0.6]))
    levels = np.zeros((NUM_INSTRUMENTS, STEPS_PER_BAR), dtype=np.float32)
    step_size = 1 if rng.random() < 0.7 else 2
    steps = list(range(start, STEPS_PER_BAR, step_size))
    voices = [SNARE, *_TOMS] if rng.random() < 0.5 else list(_TOMS)
    for index, step in enumerate(steps):
        if index > 0 and rng.random() < 0.12:
            continue  # a rest inside the run
        voice = voices[min(len(voices) - 1, index * len(voices) // len(steps))]
        levels[voice, step] = 0.6 + 0.4 * index / max(1, len(steps) - 1)
    if rng.random() < 0.5:
        levels[KICK, steps[-1]] = 0.9
    return start, levels


def _open_habit(human: float, rng: np.random.Generator) -> tuple[int, ...]:
    """The steps where a drummer opens the hat bar after bar (a "bark"): one or two 16ths off the beat, anywhere in
    the bar, for a share of the drummers that grows with ``human``; none for most drum-machine performances."""
    if rng.random() >= _OPEN_HABIT_SHARE * human:
        return ()
    count = 1 if rng.random() < 0.5 else 2
    return tuple(sorted(int(step) for step in rng.choice(_OFF_BEAT_STEPS, count, replace=False)))


def _add_kick(bar: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    free = np.flatnonzero((bar[KICK] == 0) & (bar[SNARE] < 0.8) & (np.arange(STEPS_PER_BAR) > 0))
    if len(free):
        bar[KICK, int(rng.choice(free))] = rng.uniform(0.5, 0.8)
    return bar


def _open_hat(bar: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    played = np.flatnonzero(bar[CLOSED_HAT][8:] > 0) + 8
    if len(played):
        _open_at(bar, int(played[-1]) if rng.random() < 0.7 else int(rng.choice(played)))
    return bar


def _open_at(bar: np.ndarray, step: int) -> None:
    """Open the hat at ``step`` of ``bar``, at least as loud as the closed hat there (``vary`` then silences it)."""
    bar[OPEN_HAT, step] = max(bar[CLOSED_HAT, step], 0.7)


def _drop_timekeeper(bar: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    for cls in _TIMEKEEPERS:
        played = np.flatnonzero(bar[cls] > 0)
        if len(played) > 4:
            bar[cls, int(rng.choice(played[1:]))] = 0
            break
    return bar


def _drag(bar: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    backbeats = np.flatnonzero(bar[SNARE] >= 0.8)
    if len(backbeats):
        before = int(rng.choice(backbeats)) - 1
        if before >= 0 and bar[SNARE, before] == 0:
            bar[SNARE, before] = _GHOST_LEVEL * rng.uniform(0.6, 1.0)
    return bar


_VARIATIONS = (_add_kick, _open_hat, _drop_timekeeper, _drag)

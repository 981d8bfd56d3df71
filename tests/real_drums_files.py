"""The hand-transcribed drum grooves of ``corpus/real_drums/grooves.txt``, parsed and written as MIDI files.

``python tests/real_drums_files.py`` (re)writes ``corpus/real_drums/<style>/<name>.mid`` from the text; the
tests read the text to know what each file holds. Each file: type 0, 480 ticks a beat, the groove's tempo,
4/4, GM drums on channel 10, one empty bar of count-in (so a note played early on the first beat has room),
then the transcribed bars.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

import mido

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "corpus" / "real_drums"
TEXT = FOLDER / "grooves.txt"
TICKS_PER_BEAT = 480
STEPS_PER_BAR = 16
NOTES = {
    "kick": 36, "snare": 38, "hat": 42, "pedal": 44, "open": 46, "ride": 51, "crash": 49,
    "tom_hi": 50, "tom_mid": 47, "tom_lo": 43,
}  # fmt: skip
_NOTE_TICKS = 60  # an 8th of a beat: drums are struck, the length hardly matters


@dataclass(frozen=True)
class Note:
    bar: int  # from 0, the first transcribed bar (the count-in is not counted)
    step: int  # 0..15
    note: int  # GM drum note
    velocity: int  # 1..127
    ms: float  # played this many ms late (+) or early (-) of the step


@dataclass(frozen=True)
class Groove:
    path: str  # relative to corpus/real_drums, "<style>/<name>.mid"
    bpm: float
    notes: tuple[Note, ...]
    bars: int


def parse(text: str) -> list[Groove]:
    """The grooves of the transcription text (format in its header); a malformed line raises ValueError."""
    grooves: list[Groove] = []
    path, bpm, notes, bar = "", 0.0, [], -1

    def close() -> None:
        if path:
            grooves.append(Groove(path, bpm, tuple(notes), bar + 1))

    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] == "groove":
            close()
            path, bpm, notes, bar = words[1], float(words[2].removeprefix("bpm=")), [], -1
        elif words[0] == "bar":
            bar += 1
        else:
            if words[0] not in NOTES or len(words) != STEPS_PER_BAR + 1 or bar < 0:
                raise ValueError(f"line {number}: expected an instrument and 16 tokens in a bar: {raw!r}")
            for step, token in enumerate(words[1:]):
                if token != ".":
                    notes.append(_note(token, bar, step, NOTES[words[0]], number))
    close()
    return grooves


def _note(token: str, bar: int, step: int, note: int, number: int) -> Note:
    sign = "+" if "+" in token else "-" if "-" in token else ""
    velocity, ms = token.split(sign) if sign else (token, "0")
    if not 1 <= int(velocity) <= 127:
        raise ValueError(f"line {number}: velocity {velocity} outside 1..127")
    return Note(bar, step, note, int(velocity), float(ms) * (-1 if sign == "-" else 1))


def ticks_per_ms(bpm: float) -> float:
    return TICKS_PER_BEAT * bpm / 60_000


def midi_of(groove: Groove) -> mido.MidiFile:
    """The groove as a type 0 MIDI file (see the module docstring)."""
    sixteenth = TICKS_PER_BEAT // 4
    ons = []
    for n in groove.notes:
        step = (n.bar + 1) * STEPS_PER_BAR + n.step  # after the count-in bar
        ons.append((round(step * sixteenth + n.ms * ticks_per_ms(groove.bpm)), n.note, n.velocity))
    ons.sort()
    events: list[tuple[int, int, mido.Message]] = []  # (tick, note-off first, message)
    for index, (tick, note, velocity) in enumerate(ons):
        following = [t for t, other, _ in ons[index + 1 :] if other == note]
        end = min([tick + _NOTE_TICKS, *[t - 1 for t in following[:1]]])
        events.append((tick, 1, mido.Message("note_on", channel=9, note=note, velocity=velocity)))
        events.append((max(end, tick), 0, mido.Message("note_off", channel=9, note=note, velocity=0)))
    events.sort(key=lambda event: (event[0], event[1]))
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name=Path(groove.path).stem, time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(groove.bpm), time=0))
    track.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    now = 0
    for tick, _, message in events:
        track.append(message.copy(time=tick - now))
        now = tick
    end = (groove.bars + 1) * STEPS_PER_BAR * sixteenth
    track.append(mido.MetaMessage("end_of_track", time=max(0, end - now)))
    midi = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(track)
    return midi


def write_all(folder: Path = FOLDER) -> list[Path]:
    """Write every groove of the text under ``folder``; returns the paths."""
    paths = []
    for groove in parse(TEXT.read_text()):
        path = folder / groove.path
        path.parent.mkdir(parents=True, exist_ok=True)
        midi_of(groove).save(path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else FOLDER):
        print(written)

"""MIDI files for the tests: written from timed messages per track, and read back as notes per track."""

from pathlib import Path

import mido

from latentlive.live.drum_player import DRUM_CHANNEL


def save_midi(
    path: Path, tracks: list[list[tuple[int, mido.Message]]], ticks_per_beat: int, midi_type: int = 1
) -> Path:
    """Write ``tracks`` (each a list of ``(tick, message)``, any order) as a MIDI file; at one tick note-offs
    come before note-ons, so repeated notes stay apart."""
    midi = mido.MidiFile(type=midi_type, ticks_per_beat=ticks_per_beat)
    for events in tracks:
        track = mido.MidiTrack()
        now = 0
        for tick, message in sorted(events, key=lambda e: (e[0], e[1].type == "note_on")):
            track.append(message.copy(time=tick - now))
            now = tick
        midi.tracks.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.save(path)
    return path


def track_notes(path: Path) -> dict[str, list[tuple[int, int, int]]]:
    """Track name -> its notes ``(start, length, pitch)`` in sixteenths, in order, of every track after the
    first (the tempo track); a note without its note-off fails the test."""
    midi = mido.MidiFile(path)
    sixteenth = midi.ticks_per_beat // 4
    tracks = {}
    for track in midi.tracks[1:]:
        now, started, notes = 0, {}, []
        for msg in track:
            now += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                started[msg.note] = now
            elif msg.type in ("note_on", "note_off") and msg.note in started:
                begin = started.pop(msg.note)
                notes.append((begin // sixteenth, (now - begin) // sixteenth, msg.note))
        assert not started, f"{path}: notes without a note off in {track.name}"
        tracks[track.name] = sorted(notes)
    return tracks


def drum_note_ons(path: Path) -> tuple[list[tuple[int, int, int]], int]:
    """The note ons ``(tick, note, velocity)`` of a rendered drum file (one track, channel 10; every note ends
    before the same note starts again and before the end, else the test fails), and its length in ticks."""
    (track,) = mido.MidiFile(path).tracks
    now, ons, sounding = 0, [], set()
    for msg in track:
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            assert msg.channel == DRUM_CHANNEL and msg.note not in sounding
            sounding.add(msg.note)
            ons.append((now, msg.note, msg.velocity))
        elif msg.type in ("note_on", "note_off"):
            sounding.discard(msg.note)
    assert not sounding
    return ons, now

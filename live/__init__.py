"""Standalone MIDI: virtual ports, MIDI clock and the players of the MIDI models.

- ``ports``: virtual MIDI ports through mido + python-rtmidi (ALSA, JACK, CoreMIDI; named ports on Windows).
- ``scheduler``: a tempo clock on absolute deadlines and a follower of incoming 24 ppqn MIDI clock.
- ``drum_model``: an exported ``drums.ts`` as a pattern generator (latent + style -> hit levels [9, S]).
- ``drum_player``: ``play_drums``, the pattern played as MIDI in time, CCs moving the latent.
- ``render``: ``render_drums_midi``, the pattern written as a MIDI file loop.
"""

"""latentlive: neural instruments for Ableton Live (training, export, devices, MIDI player)."""

__version__ = "0.1.0"

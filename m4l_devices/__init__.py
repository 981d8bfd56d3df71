"""Max for Live devices: the .amxd writer and reader, validation, previews, and the devices of the suite
(LatentDrums in drums.py, LatentKit in drumsynth.py; shared pieces in common.py)."""

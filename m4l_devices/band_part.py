"""LatentBandPart.amxd: plays one part of a LatentBand device on its own track, a MIDI effect without a model.

A Live MIDI track that takes its input from another track gets all of that track's MIDI (Pre FX or Post
FX, never one channel), so LatentBand also sends each part's notes to a named receive
(``latentband_<band>_<part>``, see m4l_devices/band.py). This device sits first on the track of one
part, in front of its instrument::

    Band / Part menus --> t i b (note-offs first) --> + 1 --> pak --> sprintf set latentband_%ld_%ld
        --> receive --> gate (On, Live's device on) --> flush --> pack --> midiformat --> midiout
    midiin ---------------------------------------------------------------------------> midiout

``flush`` remembers the notes it let through, so every note it started gets its note-off whatever is
switched: the part or the Band letter changes, the On button or Live's device switch turns it off, the
device is deleted (``freebang``). What the band device switches (a part taken over, a channel change,
the transport stopping, the band device off or deleted) reaches it as note-offs from the band device.
The part names are those of the band model the device was built with, as LatentBand's own part menu.
"""

from typing import Any

from latentlive.m4l_devices.amxd import MIDI_EFFECT
from latentlive.m4l_devices.band import BANDS, BUS_PREFIX, BandSpec
from latentlive.m4l_devices.common import device_builder, section_header
from latentlive.m4l_devices.patcher import Param, Patcher

DEVICE_NAME = "LatentBandPart"
WIDTH = 116.0
TOP = 20.0
ON_W = 40.0
LABEL_W = 30.0


def default_part(spec: BandSpec) -> int:
    """The part a new receiver plays: the first that the band device plays (not the one the user plays)."""
    return next((i for i in range(spec.parts) if i != spec.part), 0)


def band_part_patcher(spec: BandSpec) -> dict[str, Any]:
    """The ``{"patcher": {...}}`` document of LatentBandPart for the parts of ``spec``."""
    p = Patcher(device_width=WIDTH)
    section_header(p, "Band Part", 6.0, WIDTH - 12)
    on = p.ui(
        "live.text",
        (20, 40, 60, 16),
        param=Param("On", "On", kind="enum", enum=("off", "on"), initial="on"),
        presentation_rect=(6.0, TOP, ON_W, 16),
        text="On",
        texton="On",
        mode=1,
    )
    band = p.ui(
        "live.menu",
        (100, 40, 70, 15),
        param=Param("Band", "Band", kind="enum", enum=BANDS, initial=BANDS[0]),
        presentation_rect=(10.0 + ON_W, TOP, WIDTH - 16 - ON_W, 16),
    )
    p.comment(
        "Part", (200, 20, 40, 18), presentation_rect=(6.0, TOP + 22, LABEL_W, 16), maxclass="live.comment"
    )
    part = p.ui(
        "live.menu",
        (200, 40, 100, 15),
        param=Param("Part", "Part", kind="enum", enum=spec.part_names, initial=default_part(spec)),
        presentation_rect=(6.0 + LABEL_W, TOP + 22, WIDTH - 12 - LABEL_W, 16),
    )
    p.comment(
        "Notes of this part of the LatentBand with the same letter",
        (320, 20, 160, 40),
        presentation_rect=(6.0, TOP + 44, WIDTH - 12, 40),
        fontsize=9.0,
    )

    # the notes: the chosen part's named receive, gated by On, remembered by flush
    midiout = p.obj("midiout", (20, 420))
    midiin = p.obj("midiin", (200, 300))
    p.connect(midiin, 0, midiout, 0)
    receive = p.obj("receive", (20, 200))
    playing = p.obj("gate 1 1", (20, 240))
    held = p.obj("flush", (20, 280))
    note = p.obj("pack 0 0", (20, 320))
    midiformat = p.obj("midiformat 1", (20, 360))
    p.connect(receive, 0, playing, 1)
    p.connect(playing, 0, held, 0)
    p.connect(held, 1, note, 1)
    p.connect(held, 0, note, 0)
    p.connect(note, 0, midiformat, 0)
    p.connect(midiformat, 0, midiout, 0)

    # Band or Part changes: note-offs of what sounds, then the new name
    names = p.obj("pak 1 1", (100, 140))
    name = p.obj(f"sprintf set {BUS_PREFIX}_%ld_%ld", (100, 170))
    p.connect(names, 0, name, 0)
    p.connect(name, 0, receive, 0)
    for inlet, menu in enumerate((band, part)):
        change = p.obj("t i b", (100 + 120 * inlet, 80))
        number = p.obj("+ 1", (100 + 120 * inlet, 110))
        p.connect(menu, 0, change, 0)
        p.connect(change, 1, held, 0)
        p.connect(change, 0, number, 0)
        p.connect(number, 0, names, inlet)

    # On and Live's device switch: closed, the held notes end
    ready = p.obj("live.thisdevice", (400, 80))
    state = p.obj("pak 1 1", (400, 140))
    both = p.obj("expr $i1 && $i2", (400, 170))
    changed = p.obj("change", (400, 200))
    switch = p.obj("t i i", (400, 230))
    off = p.obj("sel 0", (460, 260))
    p.connect(on, 0, state, 0)
    p.connect(ready, 1, state, 1)
    p.connect(state, 0, both, 0)
    p.connect(both, 0, changed, 0)
    p.connect(changed, 0, switch, 0)
    p.connect(switch, 1, playing, 0)
    p.connect(switch, 0, off, 0)
    p.connect(off, 0, held, 0)
    freed = p.obj("freebang", (520, 260))
    p.connect(freed, 0, held, 0)
    for box in (on, band, part):  # once loaded: every control sends its value again
        p.connect(ready, 0, box, 0)
    return p.to_dict(
        MIDI_EFFECT,
        description=f"LatentBandPart: plays one part of LatentBand ({spec.model_file}) on this track.",
    )


build_band_part_device = device_builder(BandSpec, band_part_patcher, DEVICE_NAME, MIDI_EFFECT)

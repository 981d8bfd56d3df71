"""The 9 drum classes of the drum models and the General MIDI percussion notes that fall into each.

Class order is part of the model contract (rows of every drum grid, `instrument_names` and `gm_notes`
in the exported metadata): kick, snare, closed hat, open hat, low / mid / high tom, crash, ride.

The map covers the GM percussion keys 35..81, the GM2 extension 27..34 and 82..87, and the hi-hat
edge notes 22 / 26 that electronic kits (and many recorded drum MIDI files) send. Hand percussion is
folded into the class it plays the role of in a groove: shakers and clicks keep time like a closed hat,
congas / bongos / timbales are pitched skins like toms, bells ring like a ride.
"""

INSTRUMENT_NAMES: tuple[str, ...] = (
    "kick",
    "snare",
    "closed_hat",
    "open_hat",
    "low_tom",
    "mid_tom",
    "high_tom",
    "crash",
    "ride",
)
NUM_INSTRUMENTS = len(INSTRUMENT_NAMES)

# The note each class is played with when a grid is written back to MIDI.
DEFAULT_NOTES: tuple[int, ...] = (36, 38, 42, 46, 45, 47, 50, 49, 51)

KICK, SNARE, CLOSED_HAT, OPEN_HAT, LOW_TOM, MID_TOM, HIGH_TOM, CRASH, RIDE = range(NUM_INSTRUMENTS)

# note -> class; comments give the GM / GM2 names (and the e-kit use where it differs).
_NOTES_BY_CLASS: dict[int, tuple[int, ...]] = {
    KICK: (
        35,  # acoustic bass drum
        36,  # bass drum 1
    ),
    SNARE: (
        27,  # high Q (GM2)
        28,  # slap (GM2)
        29,  # scratch push (GM2)
        30,  # scratch pull (GM2)
        31,  # sticks (GM2)
        37,  # side stick (e-kits: cross stick)
        38,  # acoustic snare
        39,  # hand clap
        40,  # electric snare (e-kits: snare rim)
    ),
    CLOSED_HAT: (
        22,  # e-kits: closed hi-hat edge
        32,  # square click (GM2)
        33,  # metronome click (GM2)
        42,  # closed hi-hat
        44,  # pedal hi-hat
        54,  # tambourine
        69,  # cabasa
        70,  # maracas
        73,  # short guiro
        75,  # claves
        76,  # hi wood block
        77,  # low wood block
        82,  # shaker (GM2)
        85,  # castanets (GM2)
    ),
    OPEN_HAT: (
        26,  # e-kits: open hi-hat edge
        46,  # open hi-hat
        71,  # short whistle
        72,  # long whistle
        74,  # long guiro
    ),
    LOW_TOM: (
        41,  # low floor tom
        43,  # high floor tom
        45,  # low tom
        58,  # vibraslap (e-kits: floor tom rim)
        64,  # low conga
        66,  # low timbale
        86,  # mute surdo (GM2)
        87,  # open surdo (GM2)
    ),
    MID_TOM: (
        47,  # low-mid tom
        48,  # hi-mid tom
        61,  # low bongo
        62,  # mute hi conga
        63,  # open hi conga
        78,  # mute cuica
    ),
    HIGH_TOM: (
        50,  # high tom
        60,  # hi bongo
        65,  # high timbale
        79,  # open cuica
    ),
    CRASH: (
        49,  # crash cymbal 1
        52,  # chinese cymbal
        55,  # splash cymbal
        57,  # crash cymbal 2
        84,  # bell tree (GM2)
    ),
    RIDE: (
        34,  # metronome bell (GM2)
        51,  # ride cymbal 1
        53,  # ride bell
        56,  # cowbell
        59,  # ride cymbal 2
        67,  # high agogo
        68,  # low agogo
        80,  # mute triangle
        81,  # open triangle
        83,  # jingle bell (GM2)
    ),
}

NOTE_TO_CLASS: dict[int, int] = {note: cls for cls, notes in _NOTES_BY_CLASS.items() for note in notes}

# The notes of a plain drum kit (no hand percussion): used to tell a drums-only file from a bass line.
KIT_NOTES: frozenset[int] = frozenset(
    (22, 26, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51)
)


def note_to_class(note: int) -> int | None:
    """Class index (0..8) of a GM percussion note, or None for a note outside the drum map."""
    return NOTE_TO_CLASS.get(int(note))

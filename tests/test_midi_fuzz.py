"""The MIDI readers of the corpora, fed anything: random bytes, truncated files, every meter, type 0, 1 and 2,
huge time gaps. Reading either succeeds or raises one UserError line that names the file, never another
exception, and stays within bounded memory (measured with tracemalloc) and bounded output sizes."""

import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentlive.core.errors import UserError
from latentlive.corpus.band_rolls import STEPS
from latentlive.corpus.drum_corpus import load_drum_corpus
from latentlive.corpus.drum_midi import read_drum_midi
from latentlive.corpus.midi_length import MAX_MIDI_BEATS
from latentlive.corpus.multipart_midi import read_multipart_midi

# A reader of a file of a few hundred bytes needs a few MB at most; without the length bound the 36-byte
# file below needed 957 MB.
PEAK_BYTES = 48 * 2**20
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
)


def vlq(value: int) -> bytes:
    """A MIDI variable-length quantity (7 bits a byte, high bit set on all but the last)."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def midi_bytes(midi_type: int, division: int, tracks: list[list[tuple[int, bytes]]]) -> bytes:
    """A standard MIDI file from ``(delta ticks, event bytes)`` per track, each ended by end-of-track."""
    out = b"MThd" + struct.pack(">IHHH", 6, midi_type, len(tracks), division)
    for events in tracks:
        data = b"".join(vlq(delta) + event for delta, event in events) + b"\x00\xff\x2f\x00"
        out += b"MTrk" + struct.pack(">I", len(data)) + data
    return out


def huge_gap_file(channel: int = 9) -> bytes:
    """36 bytes: a note, and another (running status) 268 million ticks later, the largest delta: 2.8
    million beats at 96 ticks a beat (at 1 tick a beat, a reader without the bound would need gigabytes).
    Channel 10 (9) holds drums, the band reader wants any other."""
    events = [(0, bytes([0x90 | channel, 36, 100])), (0x0FFFFFFF, bytes([38, 100]))]
    data = midi_bytes(0, 96, [events])
    assert len(data) == 36
    return data


DELTAS = st.one_of(st.integers(0, 480), st.sampled_from([0x3FFF, 0x1FFFFF, 0x0FFFFFFF]))
EVENTS = st.one_of(
    # note-ons (velocity 0: a note-off), half of them drums (channel 10) on the kit's notes
    st.tuples(st.integers(0, 15), st.integers(0, 127), st.integers(0, 127)).map(
        lambda e: bytes([0x90 | e[0], e[1], e[2]])
    ),
    st.tuples(st.integers(35, 59), st.integers(1, 127)).map(lambda e: bytes([0x99, e[0], e[1]])),
    st.tuples(st.integers(0, 15), st.integers(0, 127)).map(lambda e: bytes([0x80 | e[0], e[1], 0])),
    # every meter, including numerators of 0 and denominators up to 2**255 that no editor writes
    st.tuples(st.integers(0, 255), st.integers(0, 255)).map(
        lambda m: bytes([0xFF, 0x58, 4, m[0], m[1], 24, 8])
    ),
    st.integers(0, 0xFFFFFF).map(lambda t: b"\xff\x51\x03" + t.to_bytes(3, "big")),
    st.tuples(st.integers(0, 15), st.integers(0, 127)).map(lambda e: bytes([0xC0 | e[0], e[1]])),
    st.text(max_size=8).map(lambda name: b"\xff\x03" + vlq(len(name.encode())) + name.encode()),
)
TRACKS = st.lists(st.lists(st.tuples(DELTAS, EVENTS), max_size=24), min_size=1, max_size=3)
FILES = st.builds(
    lambda midi_type, division, tracks: midi_bytes(
        midi_type, division, tracks[:1] if midi_type == 0 else tracks
    ),
    st.sampled_from([0, 1, 2]),
    st.sampled_from([1, 3, 24, 96, 480, 0x7FFF, 0xE728]),  # 0xE728: SMPTE 25 fps, 40 ticks a frame
    TRACKS,
)


def drum_sizes(path: Path) -> None:
    result = read_drum_midi(path)
    assert len(result.grids) <= MAX_MIDI_BEATS // 4 and result.grids.shape[1:] == (9, 16)
    assert len(result.velocities) == len(result.grids) == len(result.bpms)


def band_sizes(path: Path) -> None:
    piece = read_multipart_midi(path, path.stem)
    for part in piece.parts:
        assert len(part.notes) == 0 or int(part.notes[:, 0].max()) <= MAX_MIDI_BEATS * 4 + STEPS


READERS = {"drums": drum_sizes, "band": band_sizes}
GAP_CHANNEL = {"drums": 9, "band": 0}


def assert_read_or_one_line(read: Callable[[Path], None], path: Path, data: bytes) -> None:
    """``read(path)`` of ``data`` succeeds or raises a UserError of one line naming the file, in bounded
    memory; any other exception fails the test."""
    path.write_bytes(data)
    tracemalloc.start()
    try:
        read(path)
    except UserError as error:
        message = str(error)
        assert "\n" not in message and str(path) in message, message
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < PEAK_BYTES, f"{peak / 2**20:.0f} MB to read {len(data)} bytes"


@pytest.mark.parametrize("reader", READERS)
def test_a_file_with_a_huge_time_gap_is_refused_in_one_line(reader: str, tmp_path: Path) -> None:
    path = tmp_path / "gap ♪.mid"
    data = huge_gap_file(GAP_CHANNEL[reader])
    path.write_bytes(data)
    with pytest.raises(UserError, match=f"{MAX_MIDI_BEATS:,} beats") as caught:
        READERS[reader](path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert_read_or_one_line(READERS[reader], path, data)


def test_a_drum_folder_skips_a_too_long_file_with_a_line_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "drums"
    folder.mkdir()
    (folder / "gap.mid").write_bytes(huge_gap_file())
    lines: list[str] = []
    with pytest.raises(UserError, match="none of the 1 MIDI files could be read"):
        load_drum_corpus(folder, log=lines.append)
    assert [line for line in lines if "gap.mid" in line and "beats" in line], lines


@pytest.mark.parametrize(
    ("numerator", "denominator_power"), [(1, 0), (3, 2), (7, 3), (5, 6), (1, 255), (0, 2)]
)
def test_every_meter_before_4_4_bars_is_one_stretch(
    numerator: int, denominator_power: int, tmp_path: Path
) -> None:
    """A bar in any meter, then two 4/4 bars of drums: the first is counted as a non-4/4 bar, the others used
    (a denominator of 2**255, a bar of 1e-75 ticks, once looped without end; a numerator of 0, no bar)."""
    sixteenth, bar = 24, 4 * 96
    first = bar * numerator // 2**denominator_power or bar  # a meter without a length lasts a 4/4 bar here
    events = [(0, bytes([0xFF, 0x58, 4, numerator, denominator_power, 24, 8])), (0, bytes([0x99, 36, 100]))]
    events += [(first, bytes([0xFF, 0x58, 4, 4, 2, 24, 8])), (0, bytes([0x99, 38, 100]))]
    events += [(4 * sixteenth, bytes([0x99, 42, 100])), (bar - 4 * sixteenth, bytes([0x99, 38, 100]))]
    path = tmp_path / "meter.mid"
    path.write_bytes(midi_bytes(0, 96, [events]))
    result = read_drum_midi(path)
    assert len(result.grids) == 2 and result.counts["bars_used"] == 2
    assert result.counts["non_4_4_bars"] == 1


@pytest.mark.parametrize("reader", READERS)
@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes(reader: str, data: bytes, tmp_path: Path) -> None:
    assert_read_or_one_line(READERS[reader], tmp_path / "random.mid", data)


@pytest.mark.parametrize("reader", READERS)
@FUZZ
@given(header=st.sampled_from([0, 1, 2]), division=st.integers(0, 0xFFFF), body=st.binary(max_size=200))
def test_a_valid_header_before_random_tracks(
    reader: str, header: int, division: int, body: bytes, tmp_path: Path
) -> None:
    data = (
        b"MThd" + struct.pack(">IHHH", 6, header, 2, division) + b"MTrk" + struct.pack(">I", len(body)) + body
    )
    assert_read_or_one_line(READERS[reader], tmp_path / "header.mid", data)


@pytest.mark.parametrize("reader", READERS)
@FUZZ
@given(data=FILES)
def test_every_type_meter_and_gap(reader: str, data: bytes, tmp_path: Path) -> None:
    assert_read_or_one_line(READERS[reader], tmp_path / "song.mid", data)


@pytest.mark.parametrize("reader", READERS)
@FUZZ
@given(data=FILES, cut=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_files(reader: str, data: bytes, cut: float, tmp_path: Path) -> None:
    assert_read_or_one_line(READERS[reader], tmp_path / "cut.mid", data[: int(len(data) * cut)])

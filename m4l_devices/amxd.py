"""Reading and writing Max for Live device files (``.amxd``).

An unfrozen ``.amxd`` is a flat list of chunks, each a 4-byte ASCII tag, a little-endian
uint32 payload length (tag and length not counted) and the payload, with no padding:

==========  =====================================================================
``ampf``    4 bytes: the device type, ``mmmm`` MIDI effect, ``iiii`` instrument,
            ``aaaa`` audio effect (there is no separate version field)
``meta``    4 bytes; written as zeros (Live reads devices whatever they hold)
``ptch``    the patcher JSON (``{"patcher": {...}}``), UTF-8, ending in ``"\\n\\0"``
==========  =====================================================================

Frozen devices keep an ``mx@c`` archive in ``ptch`` and encrypted ones add a ``ciph``
chunk; the reader refuses both with a clear message since the suite only builds open devices.
"""

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latentlive.core.errors import UserError
from latentlive.core.files import atomic_write_bytes

MIDI_EFFECT = "mmmm"
INSTRUMENT = "iiii"
AUDIO_EFFECT = "aaaa"
DEVICE_TYPES = {MIDI_EFFECT: "MIDI effect", INSTRUMENT: "instrument", AUDIO_EFFECT: "audio effect"}

DEFAULT_META = b"\x00\x00\x00\x00"
_HEADER = struct.Struct("<4sI")


@dataclass(frozen=True)
class AmxdDevice:
    """A device read back from disk: its type code, its patcher dict and the raw meta payload."""

    device_type: str
    patcher: dict[str, Any]
    meta: bytes


def _chunk(tag: bytes, payload: bytes) -> bytes:
    return _HEADER.pack(tag, len(payload)) + payload


def amxd_bytes(patcher: dict[str, Any], device_type: str, meta: bytes = DEFAULT_META) -> bytes:
    """The bytes of an ``.amxd`` holding ``patcher`` (a ``{"patcher": {...}}`` dict)."""
    if device_type not in DEVICE_TYPES:
        raise ValueError(f"device_type must be one of {sorted(DEVICE_TYPES)}, not {device_type!r}")
    if "patcher" not in patcher:
        raise ValueError('patcher must be the whole document, {"patcher": {...}}')
    text = json.dumps(patcher, indent=2, ensure_ascii=False) + "\n"
    return (
        _chunk(b"ampf", device_type.encode("ascii"))
        + _chunk(b"meta", meta)
        + _chunk(b"ptch", text.encode("utf-8") + b"\0")
    )


def write_amxd(path: str | Path, patcher: dict[str, Any], device_type: str) -> Path:
    """Write ``patcher`` as a device of type ``device_type`` (``mmmm``, ``iiii``, ``aaaa``).

    The file is written to a temporary file in the same folder and renamed over ``path``,
    so a reader never sees half a device. Returns the path written.
    """
    path = Path(path)
    return atomic_write_bytes(path, amxd_bytes(patcher, device_type))


def _read_chunks(path: Path, data: bytes) -> dict[str, bytes]:
    chunks: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        if pos + _HEADER.size > len(data):
            raise UserError(
                f"{path}: truncated .amxd (a chunk header is cut at byte {pos}); rebuild the device"
            )
        raw_tag, length = _HEADER.unpack_from(data, pos)
        tag = raw_tag.decode("latin-1")
        pos += _HEADER.size
        if pos + length > len(data):
            raise UserError(
                f"{path}: truncated .amxd (chunk {tag!r} declares {length} bytes, {len(data) - pos} left); "
                "rebuild the device"
            )
        chunks[tag] = data[pos : pos + length]
        pos += length
    return chunks


def read_amxd(path: str | Path) -> AmxdDevice:
    """Read an unfrozen ``.amxd``; raise :class:`UserError` naming the file when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such device file; pass an .amxd written by `latentlive devices`")
    data = path.read_bytes()
    if data[:4] != b"ampf":
        raise UserError(f"{path}: not a Max for Live device (no 'ampf' header); pass an .amxd file")
    chunks = _read_chunks(path, data)
    device_type = chunks["ampf"].decode("latin-1")
    if len(chunks["ampf"]) != 4 or device_type not in DEVICE_TYPES:
        raise UserError(f"{path}: unknown device type {device_type!r} in 'ampf'; expected mmmm, iiii or aaaa")
    if "ciph" in chunks:
        raise UserError(f"{path}: the device is encrypted; use an unencrypted copy")
    if "ptch" not in chunks:
        raise UserError(f"{path}: no 'ptch' chunk (the patcher is missing); rebuild the device")
    payload = chunks["ptch"]
    if payload[:4] == b"mx@c":
        raise UserError(f"{path}: the device is frozen; unfreeze it in Max (or use the unfrozen source)")
    try:
        patcher = json.loads(payload.rstrip(b"\0").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: the patcher JSON does not parse ({err}); rebuild the device") from None
    if not isinstance(patcher, dict) or not isinstance(patcher.get("patcher"), dict):
        raise UserError(f'{path}: the patcher JSON has no "patcher" object; rebuild the device')
    return AmxdDevice(device_type=device_type, patcher=patcher, meta=chunks.get("meta", b""))

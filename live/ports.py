"""MIDI ports for the players: virtual ports through mido + python-rtmidi, with the API chosen per platform.

Which rtmidi API (``alsa``, ``jack``, ``coremidi``, ``winmm``) is used:

- the ``api`` argument (``--api`` on the command line), else
- the environment variable ``LATENTLIVE_MIDI_API`` (same names), else mido's ``MIDO_BACKEND`` when it names an
  rtmidi API (``mido.backends.rtmidi/UNIX_JACK``), else
- automatic: on Linux the ALSA sequencer, then JACK if a JACK server runs; CoreMIDI on macOS; WinMM on Windows.

ALSA, JACK and CoreMIDI create virtual ports that other programs (Live, a DAW, a synth) connect to. Windows has
no virtual ports: the player opens an existing port by name (a loopMIDI port, for instance) given by ``--port``.
"""

import ctypes
import ctypes.util
import os
import re
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mido
import rtmidi

from latentlive.core.errors import UserError
from latentlive.live.polled_input import PolledInput

API_ENV = "LATENTLIVE_MIDI_API"

# Our short names -> rtmidi API names (as mido spells them after "mido.backends.rtmidi/").
RTMIDI_API_NAMES: dict[str, str] = {
    "alsa": "LINUX_ALSA",
    "jack": "UNIX_JACK",
    "coremidi": "MACOSX_CORE",
    "winmm": "WINDOWS_MM",
}
VIRTUAL_PORT_APIS = ("alsa", "jack", "coremidi")

# What a send or open on a port that went away raises (rtmidi errors are OSError / ValueError subclasses).
PORT_ERRORS: tuple[type[BaseException], ...] = (OSError, rtmidi.RtMidiError)

_FIX_NO_BACKEND = (
    "start JACK (`jackd -d dummy -r 48000`, or scripts/start_jackd.sh) or load the ALSA sequencer "
    "(`sudo modprobe snd-seq`)"
)


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence C-level stderr: libjack and alsa-lib print several lines when no server / sequencer exists."""
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (embedded interpreters): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _rtmidi_api_id(api: str) -> int:
    return getattr(rtmidi, "API_" + RTMIDI_API_NAMES[api])


def api_usable(api: str) -> bool:
    """True when python-rtmidi was built with ``api`` and it can open a client now (a server / sequencer runs)."""
    if api not in RTMIDI_API_NAMES or _rtmidi_api_id(api) not in rtmidi.get_compiled_api():
        return False
    try:
        with _quiet_stderr():
            probe = rtmidi.MidiOut(rtapi=_rtmidi_api_id(api))
            # JACK connects lazily: listing the ports makes it reach the server.
            probe.get_ports()
            probe.delete()
    except PORT_ERRORS:
        return False
    return True


def _requested_api() -> tuple[str | None, str]:
    """The API named by the environment, and where it came from."""
    value = os.environ.get(API_ENV, "").strip().lower()
    if value:
        return value, API_ENV
    backend = os.environ.get("MIDO_BACKEND", "")
    if backend.startswith("mido.backends.rtmidi/"):
        rt_name = backend.split("/", 1)[1]
        for short, long in RTMIDI_API_NAMES.items():
            if long == rt_name:
                return short, "MIDO_BACKEND"
    return None, ""


def _why_unusable(api: str) -> str:
    if _rtmidi_api_id(api) not in rtmidi.get_compiled_api():
        return f"python-rtmidi was built without {api}"
    if api == "alsa":
        return "no ALSA sequencer (/dev/snd/seq); load it with `sudo modprobe snd-seq` or use --api jack"
    if api == "jack":
        return "no JACK server runs; start one (`jackd -d dummy -r 48000`, or scripts/start_jackd.sh)"
    return "its MIDI service cannot be opened"


def choose_api(api: str | None = None) -> str:
    """Return the short name of the MIDI API to use (see the module docstring), or raise UserError."""
    source = "--api"
    if api is None:
        api, source = _requested_api()
    if api is not None:
        api = api.strip().lower()
        if api not in RTMIDI_API_NAMES:
            raise UserError(f"{source} {api!r}: unknown MIDI API; use one of {', '.join(RTMIDI_API_NAMES)}")
        if not api_usable(api):
            raise UserError(f"{source} {api!r}: this MIDI API is not available here ({_why_unusable(api)})")
        return api
    if sys.platform.startswith("linux"):
        candidates = ["alsa", "jack"]
    elif sys.platform == "darwin":
        candidates = ["coremidi", "jack"]
    elif sys.platform.startswith("win"):
        candidates = ["winmm"]
    else:
        candidates = ["alsa", "jack", "coremidi"]
    for candidate in candidates:
        if api_usable(candidate):
            return candidate
    raise UserError(f"no MIDI backend: no ALSA sequencer and no JACK server; {_FIX_NO_BACKEND}")


def backend_for(api: str) -> mido.Backend:
    """The mido backend of an API short name (``choose_api``'s result)."""
    return mido.Backend("mido.backends.rtmidi/" + RTMIDI_API_NAMES[api], load=True)


def find_port(names: list[str], wanted: str, substring: bool = True) -> str | None:
    """The port in ``names`` that ``wanted`` designates, or None.

    Exact match first, then the port part of ``client:port`` names (ALSA appends `` 128:0``), then (with
    ``substring``) a unique case-insensitive substring.
    """
    if wanted in names:
        return wanted
    for name in names:
        port_part = re.sub(r" \d+:\d+$", "", name).split(":", 1)[-1]
        if port_part == wanted:
            return name
    if not substring:
        return None
    matches = [name for name in names if wanted.lower() in name.lower()]
    return matches[0] if len(matches) == 1 else None


def _open_error(kind: str, name: str, api: str, err: BaseException) -> UserError:
    return UserError(f"MIDI {kind} {name!r} ({api}): cannot be opened ({err}); {_FIX_NO_BACKEND}")


def _open_port(
    kind: str, flag: str, name: str, api: str | None, existing: str | None, **options: Any
) -> mido.ports.BasePort:
    """Open the existing port ``existing`` if given and present, else a virtual port ``name``.

    ``kind`` is ``output`` or ``input``; ``flag`` the CLI option that names an existing port.
    """
    api = choose_api(api)
    backend = backend_for(api)
    opener = backend.open_output if kind == "output" else backend.open_input
    if kind == "input" and api == "jack":  # mido's callback would run Python in the JACK cycle
        opener = PolledInput
    if existing is not None:
        with _quiet_stderr():
            names = backend.get_output_names() if kind == "output" else backend.get_input_names()
        # Where virtual ports exist, a name that is not exactly a present port names a new virtual port.
        found = find_port(names, existing, substring=api not in VIRTUAL_PORT_APIS)
        if found is not None:
            try:
                return opener(found, **options)
            except PORT_ERRORS as err:
                raise _open_error(kind, found, api, err) from None
        if api not in VIRTUAL_PORT_APIS:
            listed = ", ".join(repr(n) for n in names) or "none"
            raise UserError(
                f"{flag} {existing!r}: no such MIDI {kind} ({api} has no virtual ports; present: {listed}); "
                "create one (e.g. with loopMIDI) and pass its name"
            )
        name = existing
    if api not in VIRTUAL_PORT_APIS:
        raise UserError(
            f"MIDI API {api} has no virtual ports; pass {flag} NAME of an existing {kind} (e.g. loopMIDI)"
        )
    try:
        return opener(name, virtual=True, client_name="latentlive", **options)
    except PORT_ERRORS as err:
        raise _open_error(kind, name, api, err) from None


def open_output(name: str, api: str | None = None, existing: str | None = None) -> mido.ports.BaseOutput:
    """Open a MIDI output: the existing destination ``existing`` if given and present, else a virtual port ``name``.

    On Windows (no virtual ports) ``existing`` must name a present port. ``api`` as in :func:`choose_api`.
    """
    return _open_port("output", "--port", name, api, existing)


InputPort = mido.ports.BaseInput | PolledInput  # what open_input gives: both have ``name`` and ``close()``


def open_input(
    name: str,
    api: str | None = None,
    existing: str | None = None,
    callback: Callable[[mido.Message], None] | None = None,
) -> InputPort:
    """Open a MIDI input (clock, CCs): the existing source ``existing`` if given and present, else a virtual one.

    ``callback(msg)`` runs for every message, MIDI clock included, on rtmidi's thread (ALSA, CoreMIDI) or, under
    JACK, on a thread of the port's own (:mod:`polled_input`: nothing is lost when the GIL is busy).
    """
    return _open_port("input", "--in-port", name, api, existing, callback=callback)


# -- noticing that the JACK server went away

JACK_NO_START_SERVER = 0x01  # jack_options_t: never start a server of our own
_JACK_TEXT = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
_JACK_SHUTDOWN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
# What libjack would print on stderr (several lines per client when the server dies), kept here instead so
# that a player ends with one line. Module-level: libjack keeps the callback for the life of the process.
JACK_MESSAGES: deque[str] = deque(maxlen=20)
_jack_text_callback = _JACK_TEXT(lambda text: JACK_MESSAGES.append(text.decode(errors="replace")))


def _libjack() -> ctypes.CDLL | None:
    """The libjack that python-rtmidi runs on: the copy its wheel bundles, else the system's; None if none."""
    bundled = sorted(Path(rtmidi.__file__).resolve().parents[1].glob("python_rtmidi*/libjack*.so*"))
    for candidate in [*map(str, bundled), ctypes.util.find_library("jack")]:
        if not candidate:
            continue
        try:
            lib = ctypes.CDLL(candidate)
        except OSError:
            continue
        lib.jack_client_open.restype = ctypes.c_void_p
        lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p]
        lib.jack_on_shutdown.argtypes = [ctypes.c_void_p, _JACK_SHUTDOWN, ctypes.c_void_p]
        lib.jack_client_close.argtypes = [ctypes.c_void_p]
        lib.jack_set_error_function.argtypes = [_JACK_TEXT]
        lib.jack_set_info_function.argtypes = [_JACK_TEXT]
        return lib
    return None


class ServerWatch:
    """Notices that the MIDI server of ``api`` went away and calls back (from libjack's thread).

    rtmidi does not notice: its JACK output queues messages for a server that no longer drains them and,
    the queue full, a send spins forever holding the GIL, so a player ran on silently, then hung. For JACK
    a client of its own ("latentlive watch", no ports) gets the server's shutdown notice. The ALSA
    sequencer, CoreMIDI and WinMM belong to the system: a failing send raises there, and nothing is watched.
    """

    def __init__(self, api: str) -> None:
        self.gone = threading.Event()
        self.reason = ""
        self._callbacks: list[Callable[[str], None]] = []
        self._lib = _libjack() if api == "jack" else None
        self._client = None
        self._shutdown = _JACK_SHUTDOWN(self._server_gone)  # kept: libjack holds the pointer
        if self._lib is None:
            return
        self._lib.jack_set_error_function(_jack_text_callback)
        self._lib.jack_set_info_function(_jack_text_callback)
        self._client = self._lib.jack_client_open(b"latentlive watch", JACK_NO_START_SERVER, None)
        if self._client:
            self._lib.jack_on_shutdown(self._client, self._shutdown, None)

    def _server_gone(self, _arg: object) -> None:
        self.reason = "the JACK server stopped"
        self.gone.set()
        for callback in list(self._callbacks):
            callback(self.reason)

    def on_gone(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(reason)`` when the server goes (at once if it already went)."""
        self._callbacks.append(callback)
        if self.gone.is_set():
            callback(self.reason)

    def close(self) -> None:
        """Close the watching client (after the player's ports: its callbacks then have nobody to stop)."""
        self._callbacks.clear()
        if self._lib is not None and self._client:
            self._lib.jack_client_close(self._client)
        self._client = None


@contextmanager
def server_watch(api: str) -> Iterator[ServerWatch]:
    """A :class:`ServerWatch` of ``api`` for the block, closed at its end."""
    watch = ServerWatch(api)
    try:
        yield watch
    finally:
        watch.close()

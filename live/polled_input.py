"""A JACK MIDI input that never runs Python inside the JACK cycle.

rtmidi calls an input's callback from the JACK process thread. A Python callback there (mido's always is one)
first needs the GIL, and while another thread holds it (a prediction, a test, the interpreter's 5 ms switch
interval) the client can miss its cycle: JACK then drops what arrived in that cycle. A lost clock tick puts a
player a step behind for the rest of the song; a lost note changes what it heard. Without a callback rtmidi
keeps the bytes in its own queue, in C++, and a Python thread here takes them off in order and hands them to
the callback: late by at most a poll, never lost.
"""

import threading
import traceback
from collections.abc import Callable

import mido
import rtmidi

POLL_S = 0.001  # how long the thread sleeps when rtmidi's queue is empty: under a JACK period, 3 % of a core
QUEUE_SIZE = 4096  # messages rtmidi keeps between polls (a second of dense MIDI with clock)


class PolledInput:
    """An open rtmidi input (JACK) whose messages reach ``callback`` from a thread of its own.

    Opened as mido's backends open an input (``port``, ``callback``, ``virtual``, ``client_name``). ``name`` is
    the port's name as listed; :meth:`close` stops the thread and closes the port.
    """

    def __init__(
        self,
        port: str,
        callback: Callable[[mido.Message], None] | None = None,
        virtual: bool = False,
        client_name: str | None = None,
    ) -> None:
        self._rt = rtmidi.MidiIn(rtapi=rtmidi.API_UNIX_JACK, name=client_name, queue_size_limit=QUEUE_SIZE)
        try:
            if virtual:
                self._rt.open_virtual_port(port)
            else:
                present = self._rt.get_ports()
                if port not in present:
                    raise OSError(f"no input {port!r}; present: {', '.join(map(repr, present)) or 'none'}")
                self._rt.open_port(present.index(port))
            self._rt.ignore_types(sysex=False, timing=False, active_sense=True)  # MIDI clock is wanted
        except BaseException:
            self._rt.delete()
            raise
        self.name = port
        self.closed = False
        self._callback = callback or (lambda msg: None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"MIDI in {port}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._rt.get_message()
            if message is None:
                self._stop.wait(POLL_S)
                continue
            try:
                msg = mido.Message.from_bytes(message[0])
            except ValueError:  # not a whole MIDI message: skipped, as mido does
                continue
            try:
                self._callback(msg)
            except Exception:  # a bug in the callback: reported, and the port goes on, as rtmidi's does
                traceback.print_exc()

    def close(self) -> None:
        """Stop handing messages on and close the port (from any thread but the callback's)."""
        if self.closed:
            return
        self.closed = True
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        self._rt.close_port()
        self._rt.delete()

    def __repr__(self) -> str:
        return f"PolledInput({self.name!r})"

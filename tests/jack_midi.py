"""MIDI through a JACK server for the player tests (no sound card, no ALSA sequencer needed): a recorder on
a player's output and a sender to its input, both real rtmidi ports. The ``jack_server`` fixture is in
conftest.py."""

import subprocess
import threading
import time

import mido

from latentlive.live import ports
from latentlive.live.playback import ALL_NOTES_OFF

API = "jack"


def jack_running() -> bool:
    result = subprocess.run(["jack_wait", "-c"], capture_output=True, text=True, check=False)
    return result.stdout.strip() == "running"


class Recorder:
    """A test input on another port: records (arrival time, message) of everything it receives. It is opened
    as the players open theirs (:mod:`latentlive.live.polled_input`), so a busy GIL loses nothing."""

    def __init__(self, source_name: str) -> None:
        backend = ports.backend_for(API)
        deadline = time.monotonic() + 20.0
        found = None
        while found is None and time.monotonic() < deadline:
            found = ports.find_port(backend.get_input_names(), source_name)
            if found is None:
                time.sleep(0.05)
        assert found is not None, f"port {source_name!r} never appeared"
        self.messages: list[tuple[float, mido.Message]] = []
        self._lock = threading.Lock()
        self.port = ports.open_input(found, api=API, existing=found, callback=self._record)

    def _record(self, msg: mido.Message) -> None:
        with self._lock:
            self.messages.append((time.perf_counter(), msg))

    def note_ons(self) -> list[tuple[float, mido.Message]]:
        with self._lock:
            return [(t, m) for t, m in self.messages if m.type == "note_on" and m.velocity > 0]

    def all_notes_offs(self) -> int:
        with self._lock:
            return sum(m.type == "control_change" and m.control == ALL_NOTES_OFF for _, m in self.messages)

    def wait_until(self, condition, timeout: float = 10.0, poll: float = 0.005) -> bool:
        """Wait (at most ``timeout``) until ``condition()`` holds: messages may be delayed on a busy machine."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(poll)
        return True

    def wait_for_note_ons(self, count: int, timeout: float = 10.0) -> bool:
        return self.wait_until(lambda: len(self.note_ons()) >= count, timeout)

    def wait_for_all_notes_off(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until ``count`` All Notes Off have arrived: the player sends one when it releases the notes."""
        return self.wait_until(lambda: self.all_notes_offs() >= count, timeout)

    def close(self) -> None:
        self.port.close()


def sender_to(dest_name: str) -> mido.ports.BaseOutput:
    """A test output connected to the player's virtual input ``dest_name``."""
    backend = ports.backend_for(API)
    found = ports.find_port(backend.get_output_names(), dest_name)
    assert found is not None, f"port {dest_name!r} not found"
    return backend.open_output(found)

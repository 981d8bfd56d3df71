"""What the players share: a MIDI output that remembers what sounds, and clean stops.

Every note on sent through :class:`NoteOutput` is remembered until its note off is sent, so that
:meth:`NoteOutput.release_all` (on Ctrl-C, SIGTERM, a MIDI Stop, the end, or a port error) leaves nothing
hanging. Note offs are sent at a time given with the note on, or explicitly; note ons can be queued for a
time ahead (:meth:`NoteOutput.note_on_at`, how the drum player plays a step's microtiming).
"""

import heapq
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

import mido

from latentlive.core.errors import UserError
from latentlive.live.ports import PORT_ERRORS, InputPort
from latentlive.live.scheduler import sleep_until

ALL_NOTES_OFF = 123
LEAD_IN_S = 0.05  # time between opening the ports and the first step, so the first step is not late
POLL_S = 0.05  # longest wait without looking at the stop flag
DRAIN_S = 0.1  # time for queued messages to leave before the output port is closed


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class PortLost(Exception):
    """The output port failed while playing (device unplugged, JACK server gone)."""


def port_lost_error(err: PortLost) -> UserError:
    """The one line of a player whose port failed, once it released what the port still took."""
    return UserError(
        f"MIDI port {err} (failed while playing); the player stopped and released the notes the port still "
        "took; check the device or start the JACK server again, then restart"
    )


class NoteOutput:
    """Sends notes to a port on ``channels`` (mido's 0..15) and remembers which sound.

    ``channels[0]`` is the channel of calls that name none; :meth:`release_all` ends with All Notes Off
    (CC 123) on every one of ``channels``.
    """

    def __init__(self, port: mido.ports.BaseOutput, channels: Sequence[int] = (0,)) -> None:
        self.port = port
        self.channels = list(channels)
        self._offs: list[tuple[float, int, int]] = []  # heap of (note-off time, channel, note)
        self._sounding: dict[tuple[int, int], float | None] = {}  # (channel, note) -> its note-off time
        # heap of queued note ons: (time, order queued, channel, note, velocity, gate seconds)
        self._ons: list[tuple[float, int, int, int, int, float]] = []
        self._queued = 0
        self.lost: str | None = None  # why the port is known to be gone (set from a watcher's thread)

    def mark_lost(self, reason: str) -> None:
        """The port is gone (its server stopped): every later send raises PortLost instead of reaching it."""
        self.lost = f"{getattr(self.port, 'name', self.port)!r}: {reason}"

    def _send(self, msg: mido.Message) -> None:
        if self.lost is not None:
            # Never into a dead JACK port: rtmidi queues for a server that no longer drains the queue, and
            # once it is full, a send spins forever, holding the GIL.
            raise PortLost(self.lost)
        try:
            self.port.send(msg)
        except PORT_ERRORS as err:
            raise PortLost(f"{getattr(self.port, 'name', self.port)!r}: {err}") from err

    def is_sounding(self, note: int, channel: int | None = None) -> bool:
        return (self.channels[0] if channel is None else channel, note) in self._sounding

    def note_on(
        self, note: int, velocity: int, off_time: float | None = None, channel: int | None = None
    ) -> None:
        """Start ``note`` now; its note off is sent at ``perf_counter`` time ``off_time`` (None: by :meth:`note_off`)."""
        key = (self.channels[0] if channel is None else channel, note)
        if key in self._sounding:
            self.note_off(note, key[0])  # a new hit of a sounding note: end the old one first
        # Marked as sounding before sending: an interrupt between the two still gets a note off.
        self._sounding[key] = off_time
        if off_time is not None:
            heapq.heappush(self._offs, (off_time, *key))
        self._send(mido.Message("note_on", channel=key[0], note=note, velocity=velocity))

    def note_off(self, note: int, channel: int | None = None) -> None:
        """End ``note`` now if it sounds."""
        key = (self.channels[0] if channel is None else channel, note)
        if key not in self._sounding:
            return
        # Forgotten only once sent: if the port fails here, release_all tries this note off again.
        self._send(mido.Message("note_off", channel=key[0], note=note, velocity=0))
        del self._sounding[key]

    def note_on_at(
        self, when: float, note: int, velocity: int, gate_s: float, channel: int | None = None
    ) -> None:
        """Queue ``note`` to start at ``perf_counter`` time ``when`` and end ``gate_s`` later; it is sent by
        :meth:`wait_until` / :meth:`send_due` and dropped by :meth:`release_all` (never sent after a stop)."""
        key_channel = self.channels[0] if channel is None else channel
        heapq.heappush(self._ons, (when, self._queued, key_channel, note, velocity, gate_s))
        self._queued += 1

    def next_on_time(self) -> float | None:
        """When the earliest queued note on is due."""
        return self._ons[0][0] if self._ons else None

    def next_due_time(self) -> float | None:
        """When the earliest queued note on or timed note off is due."""
        times = [t for t in (self.next_off_time(), self.next_on_time()) if t is not None]
        return min(times) if times else None

    def send_due(self, now: float) -> None:
        """Send the timed note offs and the queued note ons due at ``now``, in time order (an off before an
        on at the same time, so that a note hit again is ended first)."""
        while True:
            off, on = self.next_off_time(), self.next_on_time()
            if off is not None and off <= now and (on is None or off <= on):
                _, channel, note = heapq.heappop(self._offs)
                self.note_off(note, channel)
            elif on is not None and on <= now:
                when, _, channel, note, velocity, gate_s = heapq.heappop(self._ons)
                self.note_on(note, velocity, when + gate_s, channel)
            else:
                return

    def next_off_time(self) -> float | None:
        """When the earliest pending timed note off is due."""
        while self._offs and self._sounding.get(self._offs[0][1:]) != self._offs[0][0]:
            heapq.heappop(self._offs)  # stale: that note was already ended
        return self._offs[0][0] if self._offs else None

    def send_due_offs(self, now: float) -> None:
        """Send the timed note offs due at ``now``."""
        while (due := self.next_off_time()) is not None and due <= now:
            _, channel, note = heapq.heappop(self._offs)
            self.note_off(note, channel)

    def wait_until(self, deadline: float, stop: threading.Event) -> bool:
        """Wait until ``deadline``, sending note offs and queued note ons as they fall due; False when
        ``stop`` is set first."""
        while (due := self.next_due_time()) is not None and due <= deadline:
            if not sleep_until(due, stop):
                return False
            self.send_due(time.perf_counter())
        return sleep_until(deadline, stop)

    def release_all(self, best_effort: bool = False) -> None:
        """Note off for every sounding note, then All Notes Off (CC 123) on every channel.

        ``best_effort``: ignore port errors (the port may be gone)."""
        keys = list(self._sounding)
        self._sounding.clear()
        self._offs.clear()
        self._ons.clear()
        messages = [mido.Message("note_off", channel=c, note=n, velocity=0) for c, n in keys]
        messages += [
            mido.Message("control_change", channel=c, control=ALL_NOTES_OFF, value=0) for c in self.channels
        ]
        for msg in messages:
            try:
                self._send(msg)
            except PortLost:
                if not best_effort:
                    raise


@contextmanager
def signals_held() -> Iterator[None]:
    """Ignore Ctrl-C / SIGTERM while the notes are being released (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Player(Protocol):
    """What :func:`play_until_stopped` plays and a session feeds: the drum and band players."""

    steps_played: int
    out: NoteOutput

    def play(self, bars: int | None = None) -> int: ...

    def stop(self) -> None: ...

    def handle_message(self, msg: mido.Message) -> None: ...


@contextmanager
def stopped_once(exiting: bool = False) -> Iterator[None]:
    """Within: the first Ctrl-C or SIGTERM raises KeyboardInterrupt (the player stops), and every later one
    is ignored until the block ends, so that the release of the notes and the closing of the ports run to
    their end. A second Ctrl-C used to break into them, and rtmidi's threads then ran on into a dying
    interpreter: a segfault, 3 times in 12. Main thread only (elsewhere signals are not delivered).

    ``exiting``: the process ends with the player (the CLI): once stopped, the signals stay ignored after
    the block too, so that a late Ctrl-C cannot interrupt the exit either.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopped = threading.Event()

    def first_stop(signum: int, frame: object) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        stopped.set()
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, first_stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        if not (exiting and stopped.is_set()):
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def stop_when_lost(player: Player, reason: str) -> None:
    """What a server watch calls when the MIDI server goes away: no more sends, and the player stops."""
    player.out.mark_lost(reason)
    player.stop()


def play_until_stopped(player: Player, bars: int | None) -> int:
    """``player.play(bars)``, which Ctrl-C or SIGTERM stop alike (inside :func:`stopped_once`): the steps
    it played."""
    try:
        return player.play(bars)
    except KeyboardInterrupt:
        return player.steps_played


def close_ports(output: mido.ports.BaseOutput, input_port: InputPort | None) -> None:
    """Close a player's ports once what is queued has left (the input even when the output fails).

    rtmidi hands messages to JACK / CoreMIDI asynchronously, and closing a port (even the input: JACK then
    rebuilds its graph) drops or garbles what is still queued, the last note offs included: give the driver
    a few periods first.
    """
    time.sleep(DRAIN_S)
    try:
        if input_port is not None:
            input_port.close()
    finally:
        output.close()

"""The players' MIDI input under JACK (live/polled_input.py): no message is lost while Python is busy."""

import sys
import threading
import time

import mido
from jack_midi import API, sender_to

from latentlive.live import ports
from latentlive.live.polled_input import PolledInput


def busy_interpreter(stop: threading.Event) -> None:
    """Holds the GIL as long as the interpreter lets one thread run (the switch interval)."""
    count = 0
    while not stop.is_set():
        count += 1


def test_jack_input_loses_nothing_while_another_thread_holds_the_gil(jack_server):
    """A Python callback inside the JACK cycle waits for the GIL and misses cycles: JACK drops their messages
    (mido's own input lost 408 to 534 of these 3000 here). The players' input hands on every one, in order."""
    received: list[mido.Message] = []
    name = f"ll input test {threading.get_ident()}"
    port = ports.open_input(name, api=API, callback=received.append)
    assert isinstance(port, PolledInput)
    sender = sender_to(name)
    sent = [
        mido.Message("clock") if k % 3 else mido.Message("note_on", note=k % 128, velocity=1 + k % 127)
        for k in range(3000)
    ]
    stop = threading.Event()
    hog = threading.Thread(target=busy_interpreter, args=(stop,))
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.02)  # four JACK periods of 256 frames at 48 kHz
    hog.start()
    try:
        for k, msg in enumerate(sent):
            sender.send(msg)
            if k % 10 == 0:
                time.sleep(0.001)
        deadline = time.monotonic() + 10.0
        while len(received) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        hog.join()
        sys.setswitchinterval(interval)
        sender.close()
        port.close()
    assert len(received) == len(sent), f"{len(sent) - len(received)} of {len(sent)} messages lost"
    assert received == sent


def test_a_callback_that_raises_is_reported_and_the_input_goes_on(jack_server, capsys):
    received: list[mido.Message] = []

    def handle(msg: mido.Message) -> None:
        if msg.type == "start":
            raise RuntimeError("a bug in the handler")
        received.append(msg)

    name = f"ll input raise test {threading.get_ident()}"
    port = ports.open_input(name, api=API, callback=handle)
    sender = sender_to(name)
    try:
        for msg in (mido.Message("start"), mido.Message("clock"), mido.Message("stop")):
            sender.send(msg)
        deadline = time.monotonic() + 5.0
        while len(received) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        sender.close()
        port.close()
    assert received == [mido.Message("clock"), mido.Message("stop")]
    assert "RuntimeError: a bug in the handler" in capsys.readouterr().err

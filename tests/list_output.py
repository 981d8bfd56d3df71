"""An output port for the player tests that keeps what it is sent, in place of a real MIDI port."""

import mido


class ListOutput:
    """An output port that keeps what is sent."""

    name = "list"

    def __init__(self) -> None:
        self.sent: list[mido.Message] = []

    def send(self, msg: mido.Message) -> None:
        self.sent.append(msg)

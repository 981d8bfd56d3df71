"""What ``play_drums`` and ``play_band`` share around their player: the ports, the server watch, the stops.

A session checks the bars to play, opens the output port, watches the MIDI server (a JACK server that
stops stops the player), lets the first Ctrl-C or SIGTERM stop the player and ignores the later ones
(:func:`playback.stopped_once`), and closes the ports at the end, whatever ends it.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import mido

from latentlive.core.errors import UserError, check_range
from latentlive.live.playback import Player, close_ports, stop_when_lost, stopped_once
from latentlive.live.ports import InputPort, ServerWatch, choose_api, open_input, open_output, server_watch

MAX_BARS = 1_000_000  # weeks of playing (three at 124 bpm): a bound that only refuses nonsense


class PlayerSession:
    """The open ports of a player: ``output`` from the start, ``input`` once :meth:`listen` opened it."""

    def __init__(self, api: str, watch: ServerWatch, output: mido.ports.BaseOutput) -> None:
        self.api, self.watch, self.output = api, watch, output
        self.input: InputPort | None = None

    def listen(
        self, player: Player, name: str, existing: str | None, required: bool = True
    ) -> InputPort | None:
        """Stop ``player`` when the MIDI server goes away, and feed its ``handle_message`` from the input
        ``name`` (a virtual port; the existing source ``existing`` when given). The input; None when it
        cannot be opened and is not ``required`` (no virtual ports: Windows)."""
        self.watch.on_gone(lambda reason: stop_when_lost(player, reason))
        try:
            self.input = open_input(name, api=self.api, existing=existing, callback=player.handle_message)
        except UserError:
            if required:
                raise
        return self.input


@contextmanager
def player_session(
    out_name: str, existing: str | None, api: str | None, bars: int | None, exiting: bool
) -> Iterator[PlayerSession]:
    """A player's ports, from the output ``out_name`` (the existing destination ``existing`` when given) on
    MIDI ``api`` (:func:`ports.choose_api`), to play ``bars`` bars (None: until stopped; UserError beyond
    :data:`MAX_BARS`).

    Ctrl-C and SIGTERM stop the player cleanly (all notes released; a second one is ignored while that
    happens) and :func:`playback.play_until_stopped` returns normally (``exiting``: the process ends then,
    and later signals stay ignored). A port that fails or a JACK server that stops ends it with a UserError.
    """
    if bars is not None:
        check_range("--bars", bars, 1, MAX_BARS, "bars to play; leave it out to play until stopped")
    api = choose_api(api)
    with stopped_once(exiting), server_watch(api) as watch:
        session = PlayerSession(api, watch, open_output(out_name, api=api, existing=existing))
        try:
            yield session
        finally:
            close_ports(session.output, session.input)

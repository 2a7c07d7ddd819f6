"""``ws``: the live view's WebSocket (``/ws`` on ``--http-port``): every message goes to every connected client
(``realtime.view.server.WsHub``; each client has its own bounded queue there). Always connected while the view runs;
with no client a message is delivered to nobody, as a broadcast is. A client too slow for the messages loses the
oldest waiting for it: ``stats`` adds those drops, per client and in all, to the sink's counters."""
from __future__ import annotations

from realtime.publish.base import Message, Transport


class WsTransport(Transport):
    name = "ws"

    def __init__(self, hub):
        self.hub = hub

    def connect(self) -> None:
        pass

    def send(self, batch: list[Message]) -> None:
        self.hub.broadcast([m.payload for m in batch])

    def stats(self) -> dict:
        return self.hub.stats()

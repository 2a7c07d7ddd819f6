"""``stdout``: one message a line on standard output (every log line goes to standard error), so that
``qem predict ... --sink stdout | jq`` works. A reader that goes away (``| head``) stops the sink with one line
(state ``stopped``; what follows is counted as dropped); the run goes on."""
from __future__ import annotations

import os
import sys

from realtime.publish.base import Message, ReceiverGone, Transport


class StdoutTransport(Transport):
    name = "stdout"

    def __init__(self, stream=None):
        self.stream = stream  # None: sys.stdout at connect time (tests swap it)
        self.closed = False

    def connect(self) -> None:
        if self.closed:
            raise ReceiverGone("standard output was closed by its reader")
        if self.stream is None:
            self.stream = sys.stdout

    def send(self, batch: list[Message]) -> None:
        try:
            self.stream.write("".join(m.payload + "\n" for m in batch))
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            self.closed = True
            try:  # later writes (and the interpreter's own flush at exit) go nowhere instead of failing
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.stream.fileno())
                os.close(devnull)
            except (OSError, ValueError, AttributeError):
                pass
            raise ReceiverGone("standard output was closed by its reader") from None

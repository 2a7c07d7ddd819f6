"""The fan-out: each result becomes its frame message plus the track events it causes (``messages``), serialised
once; the JSONL recorder and every sink get the same text. Stream states reach the sinks that publish them."""
from __future__ import annotations

import threading
import time

from realtime.frames import Result
from realtime.publish.base import Message, QueuedSink
from realtime.publish.messages import TrackLedger, dumps, frame_message


class Dispatcher:
    def __init__(self, names: list[str], sources: list[str], live: list[bool], sinks: list[QueuedSink],
                 max_age: int = 30, track_events: bool = True):
        self.names, self.sources, self.sinks, self.max_age = [], [], sinks, max_age
        self.retired: list[QueuedSink] = []   # sinks of streams that left, closing or closed (``retire``)
        self._closers: list[threading.Thread] = []
        self.ledgers: list[TrackLedger] | None = [] if track_events else None
        self.last: list[Result | None] = []
        self.states: list[str | None] = []
        for name, source, is_live in zip(names, sources, live):
            self.add(name, source, is_live)

    def add(self, name: str, source: str, live: bool) -> int:
        """A stream more (one that joins the run); returns its index."""
        index = len(self.names)
        self.names.append(name)
        self.sources.append(source)
        if self.ledgers is not None:
            self.ledgers.append(TrackLedger(index, name, self.max_age, live))
        self.last.append(None)
        self.states.append(None)
        return index

    def messages(self, result: Result) -> list[Message]:
        """The result's messages (frame first), handed to every sink already; the caller writes them to JSONL."""
        i = result.frame.source
        self.last[i] = result
        source = result.frame.path or self.sources[i]  # an images source names the image file
        out = [Message("frame", self.names[i], dumps(frame_message(result, i, self.names[i], source)))]
        if self.ledgers is not None:
            out += [Message(e["type"], self.names[i], dumps(e)) for e in self.ledgers[i].update(result)]
        self._offer(out)
        return out

    def _offer(self, messages: list[Message]) -> None:
        now = time.monotonic()
        for sink in self.sinks:
            for m in messages:
                sink.offer(m, now)

    def state(self, index: int, state: str) -> None:
        if self.states[index] != state:
            self.states[index] = state
            for sink in self.sinks:
                sink.set_state(self.names[index], state)

    def end(self, index: int) -> list[Message]:
        """Stream ``index`` is done (the run stops, or the stream leaves it): its open tracks end, reported at its last
        frame, and it is ``ended``. Returns the end events for the JSONL. Once more: nothing (no track is open)."""
        out = []
        last = self.last[index]
        if self.ledgers is not None and last is not None:
            f = last.frame
            ledger = self.ledgers[index]
            out = [Message(e["type"], ledger.stream, dumps(e)) for e in ledger.close(f.seq, f.pts, f.wall_time)]
        self._offer(out)
        self.state(index, "ended")
        return out

    def retire(self, index: int, flush_timeout: float = 2.0) -> None:
        """The sinks that carry stream ``index`` alone close, as it left the run (a stream of its name that joins
        later has sinks of its own): they drain in the background for at most ``flush_timeout`` s, and their figures
        stay in ``stats``."""
        own = [s for s in self.sinks if s.options.streams == frozenset([self.names[index]])]
        if not own:
            return
        self.sinks = [s for s in self.sinks if s not in own]
        self.retired += own
        for sink in own:
            sink.begin_close()
        deadline = time.monotonic() + flush_timeout

        def drain() -> None:
            for sink in own:
                sink.end_close(deadline)
        closer = threading.Thread(target=drain, name="sink-retire", daemon=True)
        closer.start()
        self._closers.append(closer)

    def close(self, flush_timeout: float = 2.0) -> None:
        """Every sink drains for at most ``flush_timeout`` s, all at the same time (the retired ones too)."""
        for sink in self.sinks:
            sink.begin_close()
        deadline = time.monotonic() + flush_timeout
        for sink in self.sinks:
            sink.end_close(deadline)
        for closer in self._closers:
            closer.join()

    def stats(self) -> list[dict]:
        return [s.stats() for s in (*self.sinks, *self.retired)]

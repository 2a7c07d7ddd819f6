"""A sink: one transport (stdout, MQTT, Redis, the view's WebSocket) behind a bounded queue and a thread of its own,
so that a slow or absent receiver never stalls the pipeline.

``QueuedSink.offer`` (the output stage's thread) only filters and appends; the worker thread connects, sends in
batches and reconnects. The queue holds at most ``options.queue`` messages: when it is full the oldest is dropped
and counted. A receiver that is down at start or goes away is retried with the capture's backoff (0.5, 1, 2, ...
``backoff_max`` s); a batch the transport could not confirm is kept aside (``retry``, never trimmed: the receiver
may have it already, so dropping it could count a received message as lost) and sent first after the reconnection
(at least once: a receiver may see a message twice after a reconnection; ``(stream, type, seq, track_id)``
identifies it). At ``close`` the queue gets ``flush_timeout`` seconds to drain; what is left is dropped. So at the
end ``sent == delivered + dropped``, exactly, and a receiver has ``sent - dropped`` distinct messages. The counters
(sent, delivered, dropped, and ``unconfirmed``: the messages sent and not yet confirmed, which the receiver may or may
not have) live in ``options.counters`` when it names a row of a counter file (``realtime.counters``): a process
killed by a signal then leaves its last figures there for another to read.

Transports implement the small interface of ``Transport``; adding one touches one file (see ``realtime.publish``).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from realtime.counters import open_row
from realtime.sources.capture import backoff_delay


@dataclass(frozen=True)
class Message:
    """One message on its way: ``kind`` (``frame``, ``track_started``, ``track_ended``), the stream's name, the
    JSON text (shared by every sink)."""

    kind: str
    stream: str
    payload: str


class SendFailed(Exception):
    """The connection broke during a send; ``undelivered`` are the batch's messages the receiver did not confirm."""

    def __init__(self, reason: str, undelivered: list[Message]):
        super().__init__(reason)
        self.undelivered = undelivered


class ReceiverGone(ConnectionError):
    """The receiver is gone for good (standard output closed by its reader): the sink stops, state ``stopped``, and
    what comes after is counted as dropped."""


class Transport:
    """What a transport does; every method runs in the sink's worker thread (``connect`` and ``send`` may block up to
    a few seconds and raise ``OSError``/``ConnectionError``/``SendFailed``)."""

    name: str = "?"          # the URI with credentials masked: what logs and the view show

    def connect(self) -> None:
        raise NotImplementedError

    def send(self, batch: list[Message]) -> None:
        """Returns once the receiver accepted every message of ``batch``."""
        raise NotImplementedError

    def set_state(self, stream: str, state: str) -> None:
        """A stream's state changed (running, reconnecting, ended, ...); default: not published."""

    def close(self) -> None:
        """Says goodbye (ended states, last will) when connected, then disconnects."""

    def poll(self) -> None:
        """Called about twice a second while nothing is sent (keepalives of a transport that runs its own network
        work); raises like ``send`` when the connection is gone."""

    def stats(self) -> dict:
        """Figures of the transport's own beside the sink's counters (the WebSocket's client drops); none by default."""
        return {}


@dataclass(frozen=True)
class SinkOptions:
    """Per sink: ``every`` N-th frame of each stream, at most ``fps`` frames a second per stream, ``events_only``
    (track events, no frames), ``queue`` messages at most waiting, ``streams`` (names; None: all), ``counters``
    (``(path, row, width)`` of a counter file for sent, delivered, dropped, unconfirmed; None: in memory)."""

    every: int = 1
    fps: float | None = None
    events_only: bool = False
    queue: int = 1000
    streams: frozenset[str] | None = None
    counters: tuple[str, int, int] | None = None


def _counter(index: int) -> property:
    return property(lambda self: self.counts[index], lambda self, n: self.counts.__setitem__(index, n))


class QueuedSink:
    def __init__(self, transport: Transport, options: SinkOptions, log: Callable[[str], None],
                 backoff_base: float = 0.5, backoff_max: float = 10.0, batch: int = 100):
        self.transport, self.options, self.log = transport, options, log
        self.name = transport.name
        self.backoff_base, self.backoff_max, self.batch = backoff_base, backoff_max, batch
        self.queue: deque[Message] = deque()
        self.retry: list[Message] = []       # the unconfirmed batch of a broken connection, sent first
        self.cond = threading.Condition()
        self.state = "connecting"
        self.counts = open_row(options.counters)   # sent, delivered, dropped, unconfirmed
        self.failures = 0
        self.cpu_s = 0.0                     # the worker thread's CPU time (benchmark)
        self._frame_count: dict[str, int] = {}
        self._last_frame: dict[str, float] = {}
        self._states: dict[str, str] = {}    # stream -> newest state, sent on every (re)connection
        self._dirty_states: set[str] = set()
        self._closing = False
        self._stop = False
        self.thread = threading.Thread(target=self._run, name=f"sink-{self.name}", daemon=True)

    sent = _counter(0)        # messages taken (queued)
    delivered = _counter(1)   # messages the receiver confirmed
    dropped = _counter(2)     # messages given up (queue full, left at close)
    unconfirmed = _counter(3)  # messages sent (or kept to send again) that the receiver has not confirmed yet

    def start(self) -> "QueuedSink":
        self.thread.start()
        return self

    def wants(self, kind: str, stream: str, now: float) -> bool:
        o = self.options
        if o.streams is not None and stream not in o.streams:
            return False
        if kind != "frame":
            return True
        if o.events_only:
            return False
        n = self._frame_count.get(stream, 0)
        self._frame_count[stream] = n + 1
        if n % o.every:
            return False
        if o.fps is not None:
            if now - self._last_frame.get(stream, -1e18) < 1.0 / o.fps:
                return False
            self._last_frame[stream] = now
        return True

    def offer(self, message: Message, now: float | None = None) -> None:
        """Queues ``message`` if the options want it (never blocks)."""
        if not self.wants(message.kind, message.stream, time.monotonic() if now is None else now):
            return
        with self.cond:
            if self._closing:
                return
            self.sent += 1
            if self.state == "stopped":
                self.dropped += 1
                return
            self.queue.append(message)
            self._trim()
            self.cond.notify()

    def set_state(self, stream: str, state: str) -> None:
        if self.options.streams is not None and stream not in self.options.streams:
            return
        with self.cond:
            self._states[stream] = state
            self._dirty_states.add(stream)
            self.cond.notify()

    def _trim(self) -> None:
        while len(self.queue) > self.options.queue:
            self.queue.popleft()
            self.dropped += 1

    def stats(self) -> dict:
        with self.cond:
            counters = {"name": self.name, "state": self.state, "sent": self.sent, "delivered": self.delivered,
                        "dropped": self.dropped, "queued": len(self.queue) + len(self.retry)}
        return {**counters, **self.transport.stats()}

    def close(self, flush_timeout: float = 2.0) -> None:
        """Stops taking messages, gives the queue ``flush_timeout`` s to drain, drops the rest (counted)."""
        self.begin_close()
        self.end_close(time.monotonic() + flush_timeout)

    def begin_close(self) -> None:
        with self.cond:
            self._closing = True
            self.cond.notify()

    def end_close(self, deadline: float) -> None:
        while time.monotonic() < deadline and self.thread.is_alive():
            with self.cond:
                if not self.queue and not self.retry and not self._dirty_states:
                    break
            time.sleep(0.01)
        with self.cond:
            self._stop = True
            self.cond.notify()
        self.thread.join(timeout=5.0)
        with self.cond:
            self.dropped += len(self.queue) + len(self.retry)
            self.unconfirmed = 0
            self.queue.clear()
            self.retry = []
            self.state = "closed"

    # -- the worker thread -------------------------------------------------------------------------------------
    def _set(self, state: str, detail: str = "") -> None:
        old, self.state = self.state, state
        if old == state:
            return
        if state == "reconnecting" and self.failures >= 10 and self.failures % 10:
            return  # a broker down for a day: every 10th line only
        self.log(f"sink {self.name}: {old} -> {state}" + (f" ({detail})" if detail else ""))

    def _sleep(self, seconds: float) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self._stop, timeout=seconds)

    def _run(self) -> None:
        t0 = time.thread_time()
        try:
            while not self._stop and self.state != "stopped":
                if self.state not in ("connected",):
                    if not self._connect():
                        continue
                with self.cond:
                    self.cond.wait_for(lambda: self.queue or self.retry or self._dirty_states or self._stop,
                                       timeout=0.5)
                    if self._stop:
                        break
                    batch, self.retry = self.retry, []
                    batch += [self.queue.popleft() for _ in range(min(self.batch, len(self.queue)))]
                    states = {s: self._states[s] for s in self._dirty_states}
                    self._dirty_states.clear()
                self._send(batch, states)
                self.cpu_s = time.thread_time() - t0
        finally:
            try:
                if self.state == "connected":
                    self.transport.close()
            except Exception:  # noqa: BLE001 - the receiver is gone anyway
                pass
            self.cpu_s = time.thread_time() - t0

    def _connect(self) -> bool:
        try:
            self.transport.connect()
        except Exception as exc:  # noqa: BLE001 - any failure to connect is retried
            self.failures += 1
            wait = backoff_delay(self.failures, self.backoff_base, self.backoff_max)
            self._set("reconnecting", f"{_reason(exc)}; next try in {wait:.1f}s")
            self._sleep(wait)
            return False
        self.failures = 0
        self._set("connected")
        with self.cond:
            self._dirty_states |= set(self._states)  # a new connection (a restarted broker) learns every state
        return True

    def _send(self, batch: list[Message], states: dict[str, str]) -> None:
        try:
            for stream, state in states.items():
                self.transport.set_state(stream, state)
            if batch:
                self.unconfirmed = len(batch)
                self.transport.send(batch)
                with self.cond:
                    self.delivered += len(batch)
                    self.unconfirmed = 0
            elif not states:
                self.transport.poll()
        except ReceiverGone as exc:
            with self.cond:
                self.dropped += len(batch) + len(self.queue)
                self.queue.clear()
                self.unconfirmed = 0
            self._set("stopped", f"{_reason(exc)}; what follows is dropped")
        except Exception as exc:  # noqa: BLE001 - the connection is gone: requeue, reconnect
            undelivered = exc.undelivered if isinstance(exc, SendFailed) else batch
            with self.cond:
                self.delivered += len(batch) - len(undelivered)
                self.retry = list(undelivered)
                self.unconfirmed = len(self.retry)
                self._dirty_states |= set(states)
            self.failures += 1
            self._set("reconnecting", _reason(exc))
            try:
                self.transport.close()
            except Exception:  # noqa: BLE001
                pass
            self._sleep(backoff_delay(self.failures, self.backoff_base, self.backoff_max))


def _reason(exc: BaseException) -> str:
    from realtime.sources.redact import redact

    text = (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).strip().splitlines()
    return redact(text[0].rstrip(". ") if text else type(exc).__name__)  # redis-py's reasons end in a full stop

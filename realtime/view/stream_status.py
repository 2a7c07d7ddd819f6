"""What the live view says about each stream: its state (with the next try's countdown), FPS, p95 end-to-end
latency and people count, from the captures and from the results as they pass.

``LiveStatus.record`` is called by the output stage for every result; ``snapshot`` (any thread) returns a
JSON-ready dict, the body of the view's ``/status.json`` (with the message sinks' counters: state, sent, delivered,
dropped, queued). Names are redacted (``SourceSpec.name``), errors are
already redacted by ``SourceError``. ``STATE_COLOURS`` (RGB) is shared by the page and the banner drawn on frames.
"""
from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from realtime.frames import Result

# One colour per kind of state: running green, on the way (connecting, stalled, reconnecting) amber, ended grey,
# failed red.
STATE_COLOURS = {"running": (46, 125, 50), "connecting": (230, 145, 0), "stalled": (230, 145, 0),
                 "reconnecting": (230, 145, 0), "ended": (97, 97, 97), "failed": (198, 40, 40)}


def state_text(capture, now: float | None = None) -> str:
    """The state as a user reads it: ``running``, ``reconnecting, next try in 4 s``, ``stalled, no frame for 3 s``,
    ``failed: <error>``, ..."""
    now = time.perf_counter() if now is None else now
    state = capture.state
    if state == "reconnecting":
        wait = capture.next_try_in(now)
        return "reconnecting" if wait is None else f"reconnecting, next try in {int(np.ceil(wait))} s"
    if state == "stalled":
        return f"stalled, no frame for {int(now - capture.last_frame_time)} s"
    if state == "failed":
        return f"failed: {capture.error or 'unknown error'}"
    return state


class StreamStats:
    """Rolling figures of one stream's results: FPS over the last ``span`` seconds, p95 of the last ``n``
    end-to-end latencies, people in the newest result."""

    def __init__(self, span: float = 2.0, n: int = 100):
        self.span = span
        self.times: deque[float] = deque()
        self.latencies: deque[float] = deque(maxlen=n)
        self.people = 0
        self.frames = 0

    def add(self, done_time: float, latency_ms: float, people: int) -> None:
        self.times.append(done_time)
        while self.times and self.times[0] < done_time - self.span:
            self.times.popleft()
        self.latencies.append(latency_ms)
        self.people = people
        self.frames += 1

    def fps(self, now: float) -> float:
        recent = [t for t in self.times if t >= now - self.span]
        if len(recent) < 2:
            return 0.0
        # results per second over the window, counted from the oldest result in it
        return (len(recent) - 1) / max(now - recent[0], recent[-1] - recent[0], 1e-6)

    def p95(self) -> float | None:
        return float(np.percentile(np.asarray(self.latencies), 95)) if self.latencies else None


class LiveStatus:
    """Per-stream figures for the view, fed by the output stage, read by the HTTP threads."""

    def __init__(self, captures, names: list[str] | None = None):
        """``names``: how the page names each stream (default: its source, the URL redacted)."""
        self.captures = list(captures)
        self.names = list(names) if names is not None else [c.spec.name for c in self.captures]
        self.stats = [StreamStats() for _ in self.captures]
        self.lock = threading.Lock()
        self.sink_stats = lambda: []  # the message sinks' counters (set by the output stage)

    def add(self, capture, name: str) -> None:
        with self.lock:
            self.stats.append(StreamStats())
            self.names.append(name)
            self.captures.append(capture)

    def record(self, result: Result) -> None:
        with self.lock:
            self.stats[result.frame.source].add(result.done_time, result.latency_ms, len(result.poses))

    def stream(self, i: int, now: float | None = None) -> dict:
        now = time.perf_counter() if now is None else now
        c = self.captures[i]
        with self.lock:
            s = self.stats[i]
            fps, p95, people, frames = s.fps(now), s.p95(), s.people, s.frames
        wait = c.next_try_in(now)
        return {"index": i, "name": self.names[i], "state": c.state, "text": state_text(c, now),
                "error": c.error, "next_try_s": None if wait is None else round(wait, 1),
                "fps": round(fps, 1), "p95_ms": None if p95 is None else round(p95, 1), "people": people,
                "frames": frames, "drops": c.drops, "reconnects": c.reconnects,
                "colour": "#%02x%02x%02x" % STATE_COLOURS.get(c.state, (97, 97, 97))}

    def snapshot(self) -> dict:
        now = time.perf_counter()
        with self.lock:
            n = len(self.captures)
        return {"time": round(time.time(), 3), "streams": [self.stream(i, now) for i in range(n)],
                "sinks": self.sink_stats()}


def figures_text(stream: dict) -> str:
    """``14.8 fps · p95 52 ms · 2 people`` (the page's JavaScript builds the same line)."""
    p95 = "–" if stream["p95_ms"] is None else f"{stream['p95_ms']:.0f}"
    people = stream["people"]
    return f"{stream['fps']:.1f} fps · p95 {p95} ms · {people} {'person' if people == 1 else 'people'}"

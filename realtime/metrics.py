"""Latency and rate figures: per-stage latency (p50/p95/max, ms), end-to-end latency (result time minus receive
time), FPS in (frames received) and out (results), drops and reconnects per source.

Stage samples are kept in a window of the last ``window`` values per stage (percentiles of recent behaviour);
counters cover the whole run. ``line()`` is the periodic one-line report, ``summary()`` the table at exit.
``sink_stats`` (set by the output stage) gives the message sinks' counters (``realtime.publish``): their drops are
in the line, the dict and the summary.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

import numpy as np

STAGES = ("queue", "preprocess", "forward", "postprocess", "post", "render", "outputs", "end_to_end")


class Metrics:
    def __init__(self, captures=(), window: int = 2000, label: Callable[[int], str] | None = None):
        self.captures = list(captures)
        self.label = label or (lambda i: self.captures[i].spec.name)  # how the summary names stream i
        self.samples: dict[str, deque] = {s: deque(maxlen=window) for s in STAGES}
        # (seconds since start, end-to-end ms) of the last 200k results: the age-over-time figures of the benchmark
        self.all_e2e: deque[tuple[float, float]] = deque(maxlen=200_000)
        self.frames_out = 0
        self.batches = 0
        self.start = time.perf_counter()
        self._lock = threading.Lock()
        self._last = (self.start, 0, 0)
        self.sink_stats = lambda: []

    def add(self, stage: str, ms: float) -> None:
        with self._lock:
            self.samples[stage].append(ms)

    def add_result(self, stage_ms: dict[str, float], e2e_ms: float) -> None:
        with self._lock:
            for stage, ms in stage_ms.items():
                self.samples.setdefault(stage, deque(maxlen=2000)).append(ms)
            self.samples["end_to_end"].append(e2e_ms)
            self.all_e2e.append((time.perf_counter() - self.start, e2e_ms))
            self.frames_out += 1

    def stats(self, stage: str) -> tuple[float, float, float, int]:
        with self._lock:
            data = np.asarray(self.samples.get(stage, ()), np.float64)
        if data.size == 0:
            return (float("nan"),) * 3 + (0,)
        return float(np.percentile(data, 50)), float(np.percentile(data, 95)), float(data.max()), int(data.size)

    def totals(self) -> dict[str, int]:
        return {"frames_in": sum(c.frames_in for c in self.captures), "frames_out": self.frames_out,
                "drops": sum(c.drops for c in self.captures), "reconnects": sum(c.reconnects for c in self.captures)}

    def line(self) -> str:
        """FPS since the last call, end-to-end latency and counters, on one line."""
        now = time.perf_counter()
        t = self.totals()
        last_t, last_in, last_out = self._last
        dt = max(now - last_t, 1e-9)
        self._last = (now, t["frames_in"], t["frames_out"])
        p50, p95, _, _ = self.stats("end_to_end")
        _, fwd95, _, _ = self.stats("forward")
        return (f"fps in {(t['frames_in'] - last_in) / dt:5.1f} out {(t['frames_out'] - last_out) / dt:5.1f} | "
                f"latency p50 {_ms(p50)} ms p95 {_ms(p95)} ms | forward p95 {_ms(fwd95)} ms | "
                f"drops {t['drops']} reconnects {t['reconnects']}" + self._sinks_note() + self._states_note())

    def _sinks_note(self) -> str:
        """`` | sink mqtt://host:1883/qem reconnecting, dropped 12`` per message sink (the view's own ws only when it
        or one of its clients dropped: `` | sink ws connected, dropped 0, client drops 35 (2 clients)``)."""
        return "".join(f" | sink {s['name']} {s['state']}, dropped {s['dropped']}" + _client_note(s)
                       for s in self.sink_stats()
                       if s["name"].split("?")[0] != "ws" or s["dropped"] or s.get("client_drops"))

    def _states_note(self) -> str:
        """`` | source 1 reconnecting (next try in 4.0s)`` for each source that is not running; '' when all are."""
        notes = []
        for i, c in enumerate(self.captures):
            if c.state != "running":
                wait = c.next_try_in()
                notes.append(f"source {i} {c.state}" + (f" (next try in {wait:.1f}s)" if wait is not None else ""))
        return "".join(f" | {n}" for n in notes)

    def as_dict(self) -> dict:
        elapsed = time.perf_counter() - self.start
        t = self.totals()
        stages = {}
        for stage in self.samples:
            p50, p95, mx, n = self.stats(stage)
            if n:
                stages[stage] = {"p50_ms": round(p50, 3), "p95_ms": round(p95, 3), "max_ms": round(mx, 3), "n": n}
        return {"elapsed_s": round(elapsed, 3), **t, "fps_in": round(t["frames_in"] / elapsed, 2),
                "fps_out": round(t["frames_out"] / elapsed, 2), "stages": stages,
                "sources": [{"name": self.label(i), "state": c.state, "frames_in": c.frames_in, "drops": c.drops,
                             "reconnects": c.reconnects, "running_s": round(c.running_seconds(), 3),
                             "failed_attempts": c.attempts,
                             "next_try_s": c.next_try_in(), "error": c.error}
                            for i, c in enumerate(self.captures)],
                "sinks": self.sink_stats()}

    def summary(self) -> str:
        d = self.as_dict()
        skipped = sum(c.skipped for c in self.captures)
        unfinished = d["frames_in"] - d["frames_out"] - d["drops"] - skipped
        rows = [f"summary: {_count(d['frames_out'], 'frame')} out of {d['frames_in']} in {d['elapsed_s']:.1f} s "
                f"({d['fps_out']:.1f} fps out, {d['fps_in']:.1f} fps in), drops {d['drops']}, "
                f"reconnects {d['reconnects']}" + (f", skipped {skipped} (the fps cap)" if skipped else "")
                + (f", {unfinished} read but not finished when the run stopped" if unfinished > 0 else ""),
                f"  {'stage':<12} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9} {'n':>7}"]
        for stage, s in d["stages"].items():
            rows.append(f"  {stage:<12} {s['p50_ms']:9.2f} {s['p95_ms']:9.2f} {s['max_ms']:9.2f} {s['n']:7d}")
        for i, s in enumerate(d["sources"]):
            live = self.captures[i].live and s["frames_in"] and s["running_s"] > 0
            rows.append(f"  source {i} {s['name']}: {s['state']}, {_count(s['frames_in'], 'frame')}"
                        + (f" ({s['frames_in'] / s['running_s']:.1f} fps in while running {s['running_s']:.1f} s)"
                           if live else "")
                        + f", drops {s['drops']}, reconnects {s['reconnects']}")
        for s in d["sinks"]:
            rows.append(f"  sink {s['name']}: {s['state']}, sent {s['sent']}, delivered {s['delivered']}, "
                        f"dropped {s['dropped']}" + _client_note(s))
        return "\n".join(rows)


def _ms(value: float) -> str:
    """A latency of the metrics line, six wide; a dash before the first result."""
    return f"{value:6.1f}" if value == value else f"{'-':>6}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _client_note(sink: dict) -> str:
    """``, client drops 35 (2 clients)`` for a sink with clients of its own (the view's WebSocket); '' otherwise."""
    if "client_drops" not in sink:
        return ""
    n = len(sink["clients"])
    return f", client drops {sink['client_drops']} ({n} client{'' if n == 1 else 's'})"

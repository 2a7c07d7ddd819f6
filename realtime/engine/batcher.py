"""Multi-stream batching: one frame from each source that has one, gathered within a short window.

``next_batch`` is called by the engine when it is ready for work, so a batch is formed from the freshest frames
at that moment and never waits in a queue. It waits for the first frame (any source), then up to ``window``
seconds more for the other sources that are *running*; a source that is connecting, stalled or reconnecting is
never waited for. Returns ``[]`` on timeout and ``None`` when every source is finished.
"""
from __future__ import annotations

import threading
import time
from typing import Sequence

from realtime.sources.capture import Capture
from realtime.frames import Frame


class Batcher:
    def __init__(self, captures: Sequence[Capture], notify: threading.Condition, window: float = 0.004):
        self.captures, self.notify, self.window = list(captures), notify, window

    def _ready(self) -> list[Capture]:
        return [c for c in self.captures if c.has_frame()]

    def next_batch(self, timeout: float = 0.1) -> list[Frame] | None:
        deadline = time.perf_counter() + timeout
        with self.notify:
            while not self._ready():
                if all(c.finished for c in self.captures):
                    return None
                left = deadline - time.perf_counter()
                if left <= 0:
                    return []
                self.notify.wait(min(left, 0.05))
            gather_until = time.perf_counter() + self.window
            while True:
                waiting = [c for c in self.captures if not c.has_frame() and c.state == "running"]
                left = gather_until - time.perf_counter()
                if not waiting or left <= 0:
                    break
                self.notify.wait(left)
        frames = [c.take() for c in self.captures]
        return [f for f in frames if f is not None]

"""One reader thread per source, with a state machine, reconnection and the newest-frame rule for live sources.

States: ``connecting`` -> ``running`` -> (``stalled`` when no frame came for ``stall_timeout`` seconds) ->
``reconnecting`` (after a read error or timeout; waits the backoff, then ``connecting`` again) ... and finally
``ended`` (a file or folder is done, or the pipeline stopped) or ``failed``. Every change is reported to
``on_event``.

Giving up: a live source that has delivered a frame once is retried for as long as the pipeline runs, whatever
the error (a camera that reboots may refuse or answer 404 for a while), as DeepStream and Frigate do. A source
never reached fails after ``max_attempts`` connection attempts in a row (0: never), or at once on a permanent
error (malformed address, no such file, credentials refused), so a wrong address fails fast. Files fail on any
error.

Backoff after n failed connection attempts in a row (a stream that broke after frames counts as n = 1):
``backoff_delay(n)`` = ``min(backoff_max, backoff_base * 2 ** (n - 1))`` seconds, so 0.5, 1, 2, 4, 8, 10, 10, ...
by default; the count resets once a frame arrives.
``next_try_at`` (``time.perf_counter()``) says when the next attempt starts while ``reconnecting``.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Callable

from realtime.frames import Frame
from realtime.sources.readers import SourceError, SourceSpec, make_reader

STATES = ("connecting", "running", "stalled", "reconnecting", "ended", "failed")


def backoff_delay(failures: int, base: float = 0.5, cap: float = 10.0) -> float:
    """Seconds to wait after ``failures`` (1, 2, ...) failed attempts in a row; the exponent is bounded so that
    days of retrying never overflow a float."""
    return min(cap, base * 2 ** min(max(failures - 1, 0), 60))


class Capture(threading.Thread):
    """Reads one source into a mailbox: the newest frame (live) or a bounded FIFO (files, nothing lost)."""

    def __init__(self, index: int, spec: SourceSpec, *, on_event: Callable[[int, str, str, str], None],
                 notify: threading.Condition, open_timeout: float = 5.0, read_timeout: float = 5.0,
                 stall_timeout: float = 2.0, max_attempts: int = 6, backoff_base: float = 0.5,
                 backoff_max: float = 10.0, pace: bool = False, fifo_size: int = 8, loop: bool = False,
                 as_live: bool = False, max_fps: float | None = None, reader_factory=make_reader,
                 on_warning: Callable[[int, str], None] | None = None, shrink=None):
        super().__init__(name=f"capture-{index}", daemon=True)
        self.index, self.spec = index, spec
        self.on_event, self.notify = on_event, notify
        self.open_timeout, self.read_timeout, self.stall_timeout = open_timeout, read_timeout, stall_timeout
        self.max_attempts, self.backoff_base, self.backoff_max = max_attempts, backoff_base, backoff_max
        self.reader_factory = reader_factory
        self.shrink = shrink  # realtime.sources.frontend.ShrinkTarget: frames come shrunk to the network's canvas content
        self.on_warning = on_warning or (lambda index, line: None)
        self._warned: set[str] = set()  # a looped folder warns about a damaged file once
        self._again_at_once = False  # the last attempt only waited (a listener): again at once, state unchanged
        # ``as_live`` plays a file like a camera (paced, newest frame only); ``loop`` restarts a file at its end.
        self.live = spec.live or as_live
        self.loop = loop and not spec.live
        self.pace = pace or (as_live and not spec.live)
        self.max_fps = max_fps  # a frame-rate cap: frames closer than 1/max_fps on the source's clock are skipped
        self.skipped = 0        # frames left out by that cap (their seq numbers stay unused)
        self._next_due = float("-inf")
        self.state = "connecting"
        self.error: str | None = None
        self.frames_in = 0
        self.drops = 0
        self.reconnects = 0
        self.attempts = 0  # failed connection attempts in a row (since the last frame)
        self.next_try_at: float | None = None  # perf_counter time of the next attempt while reconnecting
        self.fps: float | None = None
        self.num_frames: int | None = None
        self.last_frame_time = time.perf_counter()
        self._running_s, self._running_since = 0.0, None  # time in state "running" (frames arriving)
        self._clock_lock = threading.Lock()
        self._latest: Frame | None = None
        self._fifo: queue.Queue[Frame] = queue.Queue(maxsize=fifo_size)
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._seq = 0
        self._pts_offset = 0.0  # a looped file keeps a growing clock
        self._last_pts: float | None = None

    # -- consumer side --------------------------------------------------------------------------------------
    def has_frame(self) -> bool:
        return self._latest is not None if self.live else not self._fifo.empty()

    def take(self) -> Frame | None:
        """The next frame to process, or None; live sources hand over only their newest frame."""
        if self.live:
            with self._lock:
                frame, self._latest = self._latest, None
            return frame
        try:
            return self._fifo.get_nowait()
        except queue.Empty:
            return None

    @property
    def finished(self) -> bool:
        """No frame will come any more (ended or failed, and the mailbox is empty)."""
        return self.state in ("ended", "failed") and not self.has_frame()

    def check_stall(self, now: float) -> None:
        """Called by the supervisor: a running live source with no frame for ``stall_timeout`` is stalled."""
        if self.state == "running" and self.live and now - self.last_frame_time > self.stall_timeout:
            self._set_state("stalled", f"no frame for {now - self.last_frame_time:.1f}s")

    def running_seconds(self, now: float | None = None) -> float:
        """Seconds spent running so far (not connecting, stalled or reconnecting): a live source's rate while it
        delivered is ``frames_in / running_seconds()``."""
        with self._clock_lock:
            now = time.perf_counter() if now is None else now
            return self._running_s + (now - self._running_since if self._running_since is not None else 0.0)

    def next_try_in(self, now: float | None = None) -> float | None:
        """Seconds until the next connection attempt while ``reconnecting``, else None."""
        at = self.next_try_at  # read once: the reader thread clears it
        return None if at is None else max(0.0, at - (time.perf_counter() if now is None else now))

    def stop(self) -> None:
        self._halt.set()

    # -- reader side ----------------------------------------------------------------------------------------
    def _set_state(self, state: str, detail: str = "") -> None:
        if state != self.state:
            with self._clock_lock:  # the supervisor (stalled) and the reader thread both change the state
                now = time.perf_counter()
                if self._running_since is not None:
                    self._running_s += now - self._running_since
                self._running_since = now if state == "running" else None
            old, self.state = self.state, state
            self.on_event(self.index, old, state, detail)
            with self.notify:
                self.notify.notify_all()

    def _deliver(self, frame: Frame) -> None:
        if self.live:
            with self._lock:
                if self._latest is not None:
                    self.drops += 1
                self._latest = frame
        else:
            while not self._halt.is_set():
                try:
                    self._fifo.put(frame, timeout=0.1)
                    break
                except queue.Full:
                    continue
        with self.notify:
            self.notify.notify_all()

    def run(self) -> None:
        while not self._halt.is_set():
            extra = {"shrink": self.shrink} if self.shrink is not None else {}
            reader = self.reader_factory(self.spec, open_timeout=self.open_timeout, read_timeout=self.read_timeout,
                                         warn=self._warn, **extra)
            try:
                reader.open()
                self.fps, self.num_frames = reader.fps, reader.num_frames
                if self._read_all(reader):
                    if self._halt.is_set():
                        break  # stopped (Ctrl-C, --max-frames, a stream that left): not the end of the input
                    if self.loop:
                        if self._last_pts is not None:
                            self._pts_offset = self._last_pts + 1.0 / (self.fps or 30.0)
                        continue
                    if not self.spec.live:
                        self._set_state("ended", "end of input")
                        return
            except SourceError as exc:
                self.error, self._again_at_once = str(exc), exc.again_at_once
                if not self.spec.live or (exc.permanent and not self.frames_in):
                    self._set_state("failed", self.error)
                    return
            finally:
                reader.close()
            if self._halt.is_set():
                break
            if self.state in ("running", "stalled"):
                self.attempts = 0  # frames came in this attempt before it broke: start the backoff afresh
            else:
                self.attempts += 1
            if not self.frames_in and 0 < self.max_attempts <= self.attempts:
                self._set_state("failed", f"gave up after {self.attempts} failed connection attempts ({self.error}); "
                                          f"check the address and that the source is up")
                return
            if self._again_at_once:  # a listener still waiting for its publisher: listen again, quietly
                self._again_at_once = False
                continue
            if not self._wait_backoff():
                break
            self._set_state("connecting")
        self._set_state("ended", "stopped")

    def _warn(self, line: str) -> None:
        if line not in self._warned:
            self._warned.add(line)
            self.on_warning(self.index, line)

    def _wait_backoff(self) -> bool:
        """``reconnecting`` for the backoff delay; False when the pipeline stopped meanwhile."""
        delay = backoff_delay(max(self.attempts, 1), self.backoff_base, self.backoff_max)
        self.next_try_at = time.perf_counter() + delay
        bounded = not self.frames_in and self.max_attempts > 0
        bound = f", attempt {self.attempts + 1} of {self.max_attempts}" if bounded else ""
        self._set_state("reconnecting", f"{self.error or 'stream ended'}; next try in {delay:.1f}s{bound}")
        if self.frames_in:  # a source never reached is not reconnecting: its tries are ``attempts``
            self.reconnects += 1
        stopped = self._halt.wait(delay)
        self.next_try_at = None
        return not stopped

    def _capped(self, t: float) -> bool:
        """True when the frame at ``t`` (seconds) comes before the cap lets the next one through."""
        period = 1.0 / self.max_fps
        if t < self._next_due - 1e-3:
            self.skipped += 1
            return True
        self._next_due = t + period if t - self._next_due > period else self._next_due + period
        return False

    def _read_all(self, reader) -> bool:
        """Reads until the end or an error; True when at least one frame arrived. Raises SourceError."""
        got_any = False
        start_wall, start_pts = None, None
        while not self._halt.is_set():
            item = reader.read()
            if item is None:
                if self.live:
                    self.error = ("stream ended: the publisher left" if self.spec.listen else
                                  "stream ended: the server closed it" if self.spec.kind == "stream" else
                                  "stream ended")
                return got_any
            image, pts = item
            if pts is not None:
                pts = self._last_pts = pts + self._pts_offset
            now = time.perf_counter()
            if self.pace and not self.spec.live and pts is not None:
                if start_wall is None:
                    start_wall, start_pts = now, pts
                ahead = (pts - start_pts) - (now - start_wall)
                if ahead > 0 and self._halt.wait(ahead):
                    return got_any
                now = time.perf_counter()
            self.last_frame_time = now
            self.frames_in += 1
            if not got_any:
                got_any = True
                self.error, self.attempts = None, 0
                self._set_state("running")
            elif self.state == "stalled":
                self._set_state("running", "frames again")
            if self.max_fps and self._capped(pts if (pts is not None and not self.spec.live) else now):
                self._seq += 1
                continue
            # images name their file (``ImageReader.path``); video and stream readers have none
            self._deliver(Frame(self.index, self._seq, pts, time.time(), now, image, getattr(reader, "path", None),
                                getattr(reader, "full_size", None)))
            self._seq += 1
        return got_any

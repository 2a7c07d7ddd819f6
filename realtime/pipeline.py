"""The real-time pipeline: capture threads -> batcher + engine thread -> post thread -> outputs (caller's thread).

When every source is a file (nothing live), batching and preprocessing move to a thread of their own that
prepares the next batch while the network runs on the current one (throughput; nothing is dropped anyway), and an
engine with several inference streams (``Engine.depth``) keeps that many batches in flight, finishing them in
order. With a live source they stay in the engine thread, so a batch is formed from the freshest frames just before
the forward. A live stream that joins a pipeline of files ends the prefetching: the batches already prepared
and in flight are finished, then the engine thread forms the batches from then on.

Queues between the stages are small and bounded; a full queue blocks the stage before it, so a slow stage makes
live sources drop their older frames (capture keeps only the newest) instead of letting latency grow, while
files lose nothing. The outputs run in the thread that calls ``run()`` (the main thread in the CLI), so Ctrl-C
lands there and every file is finalised on the way out.
"""
from __future__ import annotations

import contextlib
import queue
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from realtime.engine.batcher import Batcher
from realtime.cameras import StreamOptions
from realtime.sources.capture import Capture
from realtime.sources.frontend import shrink_targets
from realtime.metrics import Metrics
from realtime.outputs.stage import Outputs
from realtime.post.stage import StreamPost
from realtime.sources.readers import SourceSpec
from realtime.post.tracking import TrackerSettings

_END = object()


@dataclass
class PipelineConfig:
    specs: list[SourceSpec]
    out_dir: Path | None = None          # None: no files
    save_mp4: bool = True
    save_jsonl: bool = True
    show: bool = False
    http_host: str = "127.0.0.1"
    http_port: int | None = None         # None: no browser view; 0: any free port
    max_frames: int | None = None        # stop after this many results (all streams together)
    pace: bool = False                   # files at their own frame rate
    smooth: bool | None = None           # None: on for live sources, off for files
    track: bool = True
    tracker: TrackerSettings = field(default_factory=TrackerSettings)
    nms_oks: float = 1.0                 # 1.0: no extra NMS (the Predictor's own NMS runs)
    min_score: float = 0.0
    batch_window: float = 0.004
    open_timeout: float = 5.0
    read_timeout: float = 5.0
    stall_timeout: float = 2.0
    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_max: float = 10.0
    report_every: float = 5.0            # seconds between metric lines (live sources)
    progress: bool = True                # tqdm bar when every source is a file or folder
    loop: bool = False                   # files restart at their end
    as_live: bool = False                # files play like cameras (paced, newest frame only)
    segment: float | None = None         # seconds per recording segment (None: one file per stream)
    keep: int | None = None              # segments kept per stream (None: all)
    keep_gb: float | None = None         # GB the finished segments may take (None: no limit)
    mp4_faststart: bool = False          # classic MP4 (index at the end, moved up front) instead of fragmented
    keyframe_every: float = 1.0          # seconds of video between forced keyframes (= MP4 fragments)
    capture_kwargs: dict = field(default_factory=dict)
    captions: dict[int, str] = field(default_factory=dict)  # stream -> text drawn on its frames (realtime.provenance)
    stream_names: list[str] = field(default_factory=list)  # names in messages and topics (default stream<i>)
    sinks: list = field(default_factory=list)  # realtime.publish.SinkSpec: where the messages go besides the JSONL
    sink_flush: float = 2.0              # seconds the sinks may take to send what is queued when the run stops
    per_stream: list[StreamOptions] = field(default_factory=list)  # [] or one per spec (a camera file)
    file_tags: bool = False              # files named after stream_names (annotated_<name>.mp4)

    def stream(self, i: int) -> StreamOptions:
        return self.per_stream[i] if self.per_stream else StreamOptions()

    def label(self, i: int) -> str:
        """Stream ``i`` as people see it (the log, the window, the view, the summary): its camera's name where a
        camera file named it, else its source (the URL redacted)."""
        return self.stream_names[i] if self.file_tags and self.stream_names else self.specs[i].name


class _Stage(threading.Thread):
    """A thread running ``step`` until it returns False; an exception is kept for the caller."""

    def __init__(self, name: str, step: Callable[[], bool], on_exit: Callable[[], None]):
        super().__init__(name=name, daemon=True)
        self.step, self.on_exit, self.error = step, on_exit, None

    def run(self) -> None:
        try:
            while self.step():
                pass
        except BaseException as exc:  # noqa: BLE001 - reported by the pipeline
            self.error = exc
        finally:
            self.on_exit()


class Pipeline:
    def __init__(self, config: PipelineConfig, engine, log: Callable[[str], None] | None = None):
        self.config, self.engine = config, engine
        self.log = log or self._print
        self._outputs: Outputs | None = None  # while running: log lines go above its progress bar, not into it
        self.stop_event = threading.Event()
        self.notify = threading.Condition()
        # per stream: frames shrunk to the network canvas while decoding when no output needs the full frame
        self.shrink = shrink_targets(config, engine)
        self.captures = [self._capture(i) for i in range(len(config.specs))]
        self.batcher = Batcher(self.captures, self.notify, window=config.batch_window)
        self.posts = [self._post(i) for i in range(len(config.specs))]
        self.metrics = Metrics(self.captures, label=config.label)
        self.events: deque[tuple[int, str, str, str]] = deque(maxlen=10_000)  # a dead camera retries for days
        self.view_url: str | None = None  # the browser view's address once ``run`` has started it
        self.recording_error: str | None = None  # set when the files could not be written any more (disk full)
        self.prefetch = not any(c.live for c in self.captures)
        self._go_live = threading.Event()  # a live stream joined the running pipeline of files: prefetching ends
        self._prep_q: queue.Queue = queue.Queue(maxsize=1)
        self._post_q: queue.Queue = queue.Queue(maxsize=4)
        self._out_q: queue.Queue = queue.Queue(maxsize=4)
        self._in_flight: deque = deque()  # engine.start()ed batches, oldest first (files with engine.depth > 1)
        self._leaving: deque[int] = deque()  # streams to take out of the run (``leave``), for the outputs' thread
        self._joining: deque[tuple[int, list]] = deque()  # streams that joined (``join``) and their own sinks
        self._members = threading.Lock()   # join against the start of the run
        self._started = False              # the outputs exist: a stream that joins is made by the outputs' thread

    def _capture(self, i: int) -> Capture:
        c = self.config
        return Capture(i, c.specs[i], on_event=self._on_event, notify=self.notify, open_timeout=c.open_timeout,
                       read_timeout=c.read_timeout, stall_timeout=c.stall_timeout, max_attempts=c.max_attempts,
                       backoff_base=c.backoff_base, backoff_max=c.backoff_max, pace=c.pace,
                       loop=c.loop or c.stream(i).loop,
                       as_live=c.as_live or c.stream(i).as_live, max_fps=c.stream(i).max_fps,
                       on_warning=lambda i, line: self.log(f"warning: {line}"), shrink=self.shrink[i],
                       **c.capture_kwargs)

    def _post(self, i: int) -> StreamPost:
        """Stream ``i``'s post stage; images (a file, a folder, a glob) are each on their own: no tracks or smoothing
        across unrelated pictures."""
        c, spec = self.config, self.config.specs[i]
        return StreamPost(spec.live or c.as_live or c.stream(i).as_live, nms_oks=c.nms_oks,
                          track=c.track and spec.kind != "images", smooth=c.smooth, min_score=c.min_score,
                          tracker=c.tracker)

    def _print(self, line: str) -> None:
        outputs = self._outputs
        bar = outputs.bar if outputs is not None else None
        if bar is not None:
            bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def _on_event(self, index: int, old: str, new: str, detail: str) -> None:
        """Every event is kept; the log gets one line per retry, and every 10th only once 10 failed in a row (a
        camera down for a day would write thousands of lines; the metrics line still says it every few seconds)."""
        self.events.append((index, old, new, detail))
        if (old, new) == ("reconnecting", "connecting"):
            return  # implied by the reconnecting line's "next try in"
        failures = self.captures[index].attempts
        if new == "reconnecting" and failures >= 10:
            if failures % 10:
                return
            detail += f"; {failures} failed attempts in a row, logging every 10th"
        self.log(f"source {index} {self.config.label(index)}: {old} -> {new}" + (f" ({detail})" if detail else ""))

    def leave(self, index: int) -> None:
        """Takes stream ``index`` out of the running pipeline while the others go on: its capture stops, then (in
        the outputs' thread) its open tracks end and its files close. Safe from any thread."""
        self.captures[index].stop()
        self._leaving.append(index)
        with self.notify:
            self.notify.notify_all()

    def join(self, spec: SourceSpec, options: StreamOptions | None = None, name: str | None = None,
             sinks: Sequence = (), wrap_post: Callable | None = None) -> int:
        """Adds a stream to the pipeline, running or not, while the others go on; returns its index (the next one:
        indices are never reused). ``options``: its own settings; ``name``: its name in messages (and in file names
        with ``file_tags``); ``sinks``: message sinks of its own (``SinkSpec``, opened when it joins); ``wrap_post``
        wraps its post stage. Once running, the outputs' thread makes its files, opens its sinks and gives it a
        window or a place in the browser view when the run has one, then its capture starts. The pipeline's config
        grows by the stream. Safe from any thread."""
        c = self.config
        with self._members:
            i = len(c.specs)
            if options is not None and not c.per_stream:
                c.per_stream = [StreamOptions() for _ in range(i)]
            if c.per_stream:
                c.per_stream.append(options or StreamOptions())
            if name is not None and not c.stream_names:
                c.stream_names = [f"stream{k}" for k in range(i)]
            if c.stream_names:
                c.stream_names.append(name or f"stream{i}")
            c.specs.append(spec)
            c.sinks.extend(sinks)
            self.shrink.append(shrink_targets(c, self.engine)[i])
            post = self._post(i)
            self.posts.append(wrap_post(post) if wrap_post is not None else post)
            capture = self._capture(i)
            if capture.live and self.prefetch:
                if self._started:
                    self._go_live.set()
                else:
                    self.prefetch = False
            with self.notify:
                self.captures.append(capture)
                self.batcher.captures.append(capture)
                self.metrics.captures.append(capture)
            if self._started:
                self._joining.append((i, list(sinks)))
        return i

    def _put(self, q: queue.Queue, item) -> bool:
        while not self.stop_event.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _prep_step(self) -> bool:
        if self.stop_event.is_set() or self._go_live.is_set():
            return False
        frames = self.batcher.next_batch(timeout=0.1)
        if frames is None:
            return False
        return self._put(self._prep_q, self.engine.prepare(frames)) if frames else True

    def _engine_step(self) -> bool:
        if self.stop_event.is_set():
            return False
        if self.prefetch:
            try:
                prepared = self._prep_q.get(timeout=0.1)
            except queue.Empty:
                return self._finish_in_flight(0)
            if prepared is _END:
                if not self._finish_in_flight(0):
                    return False
                if self._go_live.is_set() and not self.stop_event.is_set():
                    self.prefetch = False  # the prepare thread ended; from now on batches are formed here
                    return True
                return False
            self.metrics.batches += 1
            self._in_flight.append(self.engine.start(prepared))
            # a file read at full speed: keep the streams busy; paced files: no result waits for the next frame
            return self._finish_in_flight(0 if self.config.pace else self.engine.depth - 1)
        frames = self.batcher.next_batch(timeout=0.1)
        if frames is None:
            return False
        if not frames:
            return True
        self.metrics.batches += 1
        for result in self.engine.run(self.engine.prepare(frames)):
            if not self._put(self._post_q, result):
                return False
        return True

    def _finish_in_flight(self, keep: int) -> bool:
        """Finishes the oldest started batches until ``keep`` remain; False once stopped."""
        while len(self._in_flight) > keep:
            for result in self.engine.finish(self._in_flight.popleft()):
                if not self._put(self._post_q, result):
                    return False
        return True

    def _end_engine(self) -> None:
        """Waits for the batches still in flight when the run stopped (their results are dropped), so that the
        engine is idle for the next run, then closes the post stage's queue."""
        while self._in_flight:
            with contextlib.suppress(Exception):  # a failed forward: the stage's own error is the one reported
                self._in_flight.popleft().pending.result()
        self._put(self._post_q, _END)

    def _post_step(self) -> bool:
        try:
            item = self._post_q.get(timeout=0.1)
        except queue.Empty:
            return not self.stop_event.is_set()
        if item is _END:
            return False
        result = self.posts[item.frame.source](item)
        result.done_time = time.perf_counter()
        return self._put(self._out_q, result)

    def run(self) -> Metrics:
        """Runs until every source is finished, ``max_frames`` results are out, the window is closed, or Ctrl-C."""
        with self._members:  # a stream that joins from now on is made by the outputs' thread
            outputs = Outputs(self.config, self.captures, self.metrics, self.log)  # may raise SinkError
            self._started, initial = True, list(self.captures)
        self.view_url = outputs.view.url if outputs.view is not None else None
        self._outputs = outputs
        prep_t = _Stage("prepare", self._prep_step, lambda: self._put(self._prep_q, _END))
        engine_t = _Stage("engine", self._engine_step, self._end_engine)
        post_t = _Stage("post", self._post_step, lambda: self._put(self._out_q, _END))
        stages = (prep_t, engine_t, post_t) if self.prefetch else (engine_t, post_t)
        try:
            for c in initial:
                c.start()
            for t in stages:
                t.start()
            while not self.stop_event.is_set():
                try:
                    item = self._out_q.get(timeout=0.1)
                except queue.Empty:
                    item = None
                while self._leaving:
                    outputs.leave(self._leaving.popleft())
                while self._joining:
                    index, sinks = self._joining.popleft()
                    outputs.join(index, sinks)
                    self.captures[index].start()
                outputs.tick()
                if item is _END:
                    break
                if item is not None and not outputs.emit(item):
                    break
                if self.config.max_frames and self.metrics.frames_out >= self.config.max_frames:
                    break
        finally:
            self.stop_event.set()
            for c in self.captures:
                c.stop()
            with self.notify:
                self.notify.notify_all()
            self._outputs = None
            outputs.close()
            self.recording_error = outputs.recording_error
            for t in (*stages, *self.captures):
                if t.is_alive():
                    t.join(timeout=2.0)
        for t in stages:
            if t.error is not None:
                raise t.error
        return self.metrics

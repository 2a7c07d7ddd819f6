"""The output stage: draws each result, then hands it to the sinks (MP4, JSONL), the message sinks
(``realtime.publish``: stdout, MQTT, Redis, the view's WebSocket), the window and the browser view; shows a progress
bar for files or a periodic metrics line for live sources.

Files per stream in ``out_dir``: see ``realtime.outputs.recording`` (names, segments, retention); an images source (an
image file, a folder, a glob) writes one annotated image per input image under its name instead of an MP4, through
one ``ImageSink`` for the run (two folders that both hold ``img1.jpg`` give ``img1.jpg`` and ``img1_2.jpg``).

A file that cannot be written any more (disk full, file size limit, folder gone) stops the recording of every
stream with one line, and the pipeline keeps running (browser view, window, metrics); ``recording_error`` then
holds that line.
"""
from __future__ import annotations

import time
from typing import Callable

import av

from realtime.view.display import Window
from realtime.frames import Result
from realtime.view.server import FrameBoard, HttpView
from realtime.metrics import Metrics
from realtime.publish import open_sink
from realtime.publish.dispatcher import Dispatcher
from realtime.view.render import draw, draw_caption
from realtime.outputs.recording import Retention, StreamRecorder
from realtime.outputs.files import ImageSink, SinkError


class Outputs:
    def __init__(self, config, captures, metrics: Metrics, log: Callable[[str], None]):
        self.config, self.captures, self.metrics, self.log = config, captures, metrics, log
        n = len(config.specs)
        self.names = [s.name for s in config.specs]
        self.recorders: list[StreamRecorder | None] = [None] * n
        self.recording_error: str | None = None
        self.left: set[int] = set()       # streams that left the run (``leave``): their late results are dropped
        self.view = self.window = self.bar = None
        self.publisher: Dispatcher | None = None
        self._retention = Retention(config.keep, config.keep_gb) if config.segment else None  # the run's, shared
        self._image_sink: ImageSink | None = None   # one for every images source of the run, made at the first
        try:
            for i in range(n):
                self.recorders[i] = self._recorder(i)
            if config.http_port is not None:
                labels = [config.label(i) for i in range(n)]
                self.view = HttpView(FrameBoard(labels), captures, config.http_host, config.http_port).start()
                log(f"live view: {self.view.url}")
            self.publisher = self._publisher(config, captures, log)
            self._update_publishing()
        except BaseException:
            self.close()
            raise
        self.window = Window([config.label(i) for i in range(n)]) if config.show else None
        self.live = any(c.live for c in captures)
        self._want_bar = config.progress and not self.live  # shown once its total is known, or a result is out
        self._next_report = time.perf_counter() + config.report_every

    def _recorder(self, i: int) -> StreamRecorder | None:
        """Stream ``i``'s files, or None when it writes none."""
        config, spec, per = self.config, self.config.specs[i], self.config.stream(i)
        if config.out_dir is None or not (config.save_mp4 or config.save_jsonl) or not per.record:
            return None
        images = spec.kind == "images"
        if images and config.save_mp4 and self._image_sink is None:
            self._image_sink = ImageSink(config.out_dir)
        segment = per.segment or config.segment
        own = Retention(per.keep, config.keep_gb) if per.keep is not None else self._retention
        tag = None
        if config.file_tags:  # a name that left and joins again: <name>.2, never the files it wrote before
            name = config.stream_names[i]
            before = config.stream_names[:i].count(name)
            tag = f"{name}.{before + 1}" if before else name
        return StreamRecorder(
            config.out_dir, i, len(config.specs), save_mp4=config.save_mp4 and not images,
            images=self._image_sink if images else None, save_jsonl=config.save_jsonl, segment=segment,
            fragmented=not config.mp4_faststart, keyframe_every=config.keyframe_every,
            retention=own if segment else None, tag=tag)

    def _publisher(self, config, captures, log) -> Dispatcher:
        """The message sinks of ``config.sinks`` (the view's WebSocket always, when the view runs), started."""
        n = len(config.specs)
        names = list(config.stream_names) or [f"stream{i}" for i in range(n)]
        hub = self.view.hub if self.view is not None else None
        specs = list(config.sinks)
        if hub is not None and not any(s.scheme == "ws" for s in specs):
            from realtime.publish import parse_sink
            specs.append(parse_sink("ws"))
        dispatcher = Dispatcher(names, self.names, [c.live for c in captures], [],
                                max_age=config.tracker.max_age, track_events=config.track)
        try:
            for spec in specs:
                dispatcher.sinks.append(open_sink(spec, log, hub=hub, backoff_max=config.backoff_max))
        except BaseException:
            dispatcher.close(0.0)
            raise
        self.metrics.sink_stats = dispatcher.stats
        if self.view is not None:
            self.view.status.sink_stats = dispatcher.stats
        return dispatcher

    def needs_image(self, stream: int) -> bool:
        """Whether stream ``stream``'s results are drawn (``realtime.sources.frontend.needs_full_frame`` says the same from
        the configuration, before anything starts)."""
        recorder = self.recorders[stream]
        return (recorder is not None and recorder.needs_image) or self.window is not None or self.view is not None

    def emit(self, result: Result) -> bool:
        """Writes one result everywhere; False when the user closed the window."""
        i = result.frame.source
        if i in self.left:
            return True
        t0 = time.perf_counter()
        image = draw(result) if self.needs_image(i) else None
        if image is not None and i in self.config.captions:
            draw_caption(image, self.config.captions[i])
        t1 = time.perf_counter()
        keep_going = True
        messages = self.publisher.messages(result) if self._publishing else ()
        if self.recorders[i] is not None:
            f = result.frame
            t = f.wall_time if (f.pts is None or self.captures[i].live) else f.pts
            try:
                self.recorders[i].write(result, image, t, [m.payload for m in messages])
            except (OSError, SinkError, av.error.FFmpegError) as exc:
                self._stop_recording(self.recorders[i].current, exc)
        if self.view is not None:
            self.view.show(result, image)
        if self.window is not None:
            keep_going = self.window.show(i, image)
        t2 = time.perf_counter()
        result.stage_ms["render"], result.stage_ms["outputs"] = (t1 - t0) * 1e3, (t2 - t1) * 1e3
        result.stage_ms["written"] = (t2 - result.frame.recv_time) * 1e3  # frame received -> every output written
        self.metrics.add_result(result.stage_ms, result.latency_ms)
        if self.bar is not None:
            self.bar.update(1)
        return keep_going

    def tick(self) -> None:
        """Housekeeping between results: stall checks, the progress bar's total, the periodic metrics line."""
        now = time.perf_counter()
        for i, c in enumerate(self.captures[:len(self.names)]):  # a stream joining has no place here yet
            c.check_stall(now)
            if self.publisher is not None:
                self.publisher.state(i, c.state)
        if self.view is not None:
            self.view.tick()
        if self._want_bar and (self.bar is None or self.bar.total is None):
            self._show_bar()
        if self.live and now >= self._next_report:
            self._next_report = now + self.config.report_every
            self.log(self.metrics.line())

    def _show_bar(self) -> None:
        """The progress bar, once its total is known or a result is out (a bar without a total first would be left
        on the screen above the real one); its total filled in once known."""
        total = self._total()
        if self.bar is None and (total is not None or self.metrics.frames_out):
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=self.metrics.frames_out, unit="frame", dynamic_ncols=True,
                            leave=True)
        elif self.bar is not None and total is not None:
            self.bar.total = total
            self.bar.refresh()

    def _total(self) -> int | None:
        """Results the run will give, once known: every source's frame count (files that do not loop), at most
        ``max_frames``."""
        max_frames = self.config.max_frames
        if any(c.loop for c in self.captures) or not all(c.num_frames for c in self.captures):
            return max_frames
        total = sum(c.num_frames for c in self.captures)
        return min(total, max_frames or total)

    def leave(self, i: int) -> None:
        """Stream ``i`` leaves the run while the others go on (its camera moved elsewhere): its open tracks end, its
        files and its own message sinks close, its state is ``ended``; results of it still on their way are dropped."""
        if i in self.left:
            return
        self.left.add(i)
        self._write_last_events(i, self.publisher.end(i))
        self.publisher.retire(i, self.config.sink_flush)
        self._close_recorder(i)
        self._update_publishing()

    def join(self, i: int, sinks=()) -> None:
        """Stream ``i``, the newest of ``config.specs`` (``Pipeline.join``), joins the run: its files (unless the
        recording stopped), its place in the messages, and ``sinks``, message sinks of its own, opened now."""
        config = self.config
        assert i == len(self.recorders), "streams join in order"
        self.names.append(config.specs[i].name)
        self.recorders.append(None)
        if not self.recording_error:
            try:
                self.recorders[i] = self._recorder(i)
            except (OSError, SinkError, av.error.FFmpegError) as exc:  # as a full disk mid-run: recording stops
                self._stop_recording(config.out_dir, exc)
        name = config.stream_names[i] if config.stream_names else f"stream{i}"
        self.publisher.add(name, self.names[i], self.captures[i].live)
        if self.view is not None:
            self.view.add(config.label(i), self.captures[i])
        if self.window is not None:
            self.window.add(config.label(i))
        for spec in sinks:
            self.publisher.sinks.append(open_sink(spec, self.log, backoff_max=config.backoff_max))
        self._update_publishing()
        if self.bar is not None:  # the bar counts again with the stream joined; a live one ends it
            self.bar.total = config.max_frames
            if self.captures[i].live:
                self.bar.close()
                self.bar = None
        self.live = self.live or self.captures[i].live
        self._want_bar = self._want_bar and not self.live

    def _update_publishing(self) -> None:
        """Messages are made only when something takes them: a message sink or a JSONL file."""
        self._publishing = bool(self.publisher.sinks) or any(r is not None and r.save_jsonl for r in self.recorders)

    def _stop_recording(self, path, exc: BaseException) -> None:
        """One line, then no more files: every stream's files are closed (what is on disk stays playable)."""
        reason = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0]
        self.recording_error = f"recording stopped: cannot write {path}: {reason}"
        still = "the live view keeps running" if self.view is not None else "the pipeline keeps running"
        self.log(f"error: {self.recording_error} ({still})")
        self._close_recorders(quiet=True)

    def _finish_messages(self) -> None:
        """The tracks still open end (their events go to the JSONL too), then the sinks drain and close."""
        for i in range(len(self.publisher.names)):
            self._write_last_events(i, self.publisher.end(i))
        self.publisher.close(self.config.sink_flush)  # the figures: Metrics.summary()

    def _write_last_events(self, i: int, messages) -> None:
        """A stream's end events (its tracks ended) into its JSONL, when it has one."""
        rec = self.recorders[i]
        if not messages or rec is None or rec.jsonl is None:
            return
        try:
            rec.jsonl.write([m.payload for m in messages])
        except (OSError, SinkError) as exc:
            self.log(f"warning: cannot write the last track events to {rec.current}: {exc}")

    def _close_recorders(self, quiet: bool = False) -> None:
        for i in range(len(self.recorders)):
            self._close_recorder(i, quiet)

    def _close_recorder(self, i: int, quiet: bool = False) -> None:
        rec, self.recorders[i] = self.recorders[i], None
        if rec is None:
            return
        try:
            rec.close()
        except Exception as exc:  # noqa: BLE001 - one broken file must not keep the others open
            if not quiet:
                self.log(f"warning: closing {rec.current} failed: {exc}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.publisher is not None:
            self._finish_messages()
        self._close_recorders()
        if self.view is not None:
            self.view.close()
        if self.window is not None:
            self.window.close()

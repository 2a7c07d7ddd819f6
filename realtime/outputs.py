"""The output stage: draws each result, then hands it to the sinks (MP4, JSONL), the window and the browser view;
shows a progress bar for files or a periodic metrics line for live sources.

Files per stream in ``out_dir``: ``annotated.mp4`` and ``poses.jsonl`` for one stream, ``annotated_<i>.mp4``
and ``poses_<i>.jsonl`` when there are several.
"""
from __future__ import annotations

import time
from typing import Callable

from realtime.display import Window
from realtime.frames import Result
from realtime.http_view import FrameBoard, HttpView
from realtime.metrics import Metrics
from realtime.render import draw, draw_caption
from realtime.sinks import JsonlSink, Mp4Sink


def output_paths(out_dir, n: int, i: int) -> tuple:
    suffix = "" if n == 1 else f"_{i}"
    return out_dir / f"annotated{suffix}.mp4", out_dir / f"poses{suffix}.jsonl"


class Outputs:
    def __init__(self, config, captures, metrics: Metrics, log: Callable[[str], None]):
        self.config, self.captures, self.metrics, self.log = config, captures, metrics, log
        n = len(config.specs)
        self.names = [s.name for s in config.specs]
        self.mp4: list[Mp4Sink | None] = [None] * n
        self.jsonl: list[JsonlSink | None] = [None] * n
        self.view = self.window = self.bar = None
        try:
            if config.out_dir is not None:
                for i in range(n):
                    mp4_path, jsonl_path = output_paths(config.out_dir, n, i)
                    self.mp4[i] = Mp4Sink(mp4_path) if config.save_mp4 else None
                    self.jsonl[i] = JsonlSink(jsonl_path) if config.save_jsonl else None
            if config.http_port is not None:
                self.view = HttpView(FrameBoard(self.names), captures, config.http_host, config.http_port).start()
                log(f"live view: {self.view.url}")
        except BaseException:
            self.close()
            raise
        self.window = Window(self.names) if config.show else None
        self.live = any(c.live for c in captures)
        if config.progress and not self.live:
            from tqdm import tqdm

            self.bar = tqdm(total=config.max_frames, unit="frame", dynamic_ncols=True, leave=True)
        self._next_report = time.perf_counter() + config.report_every

    @property
    def needs_image(self) -> bool:
        return any(self.mp4) or self.window is not None or self.view is not None

    def emit(self, result: Result) -> bool:
        """Writes one result everywhere; False when the user closed the window."""
        i = result.frame.source
        t0 = time.perf_counter()
        image = draw(result) if self.needs_image else None
        if image is not None and i in self.config.captions:
            draw_caption(image, self.config.captions[i])
        t1 = time.perf_counter()
        keep_going = True
        if self.jsonl[i] is not None:
            self.jsonl[i].write(result, self.names[i])
        if self.mp4[i] is not None:
            f = result.frame
            self.mp4[i].write(image, f.wall_time if (f.pts is None or self.captures[i].live) else f.pts)
        if self.view is not None:
            self.view.show(result, image)
        if self.window is not None:
            keep_going = self.window.show(i, image)
        t2 = time.perf_counter()
        result.stage_ms["render"], result.stage_ms["sinks"] = (t1 - t0) * 1e3, (t2 - t1) * 1e3
        self.metrics.add_result(result.stage_ms, result.latency_ms)
        if self.bar is not None:
            self.bar.update(1)
        return keep_going

    def tick(self) -> None:
        """Housekeeping between results: stall checks, the progress bar's total, the periodic metrics line."""
        now = time.perf_counter()
        for c in self.captures:
            c.check_stall(now)
        if self.view is not None:
            self.view.tick()
        if (self.bar is not None and self.bar.total is None and not self.config.loop
                and all(c.num_frames for c in self.captures)):
            total = sum(c.num_frames for c in self.captures)
            self.bar.total = min(total, self.config.max_frames or total)
            self.bar.refresh()
        if self.live and now >= self._next_report:
            self._next_report = now + self.config.report_every
            self.log(self.metrics.line())

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        for sink in (*self.mp4, *self.jsonl):
            if sink is not None:
                try:
                    sink.close()
                except Exception as exc:  # noqa: BLE001 - one broken file must not keep the others open
                    self.log(f"warning: closing {sink.path} failed: {exc}")
        if self.view is not None:
            self.view.close()
        if self.window is not None:
            self.window.close()

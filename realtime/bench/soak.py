"""Soak benchmark: live streams of the bundled clip (looped, played like cameras) for a long time with the MP4 and
JSONL recording on (in segments, with retention, as an unattended recorder runs), while the process's resident
memory (RSS), open file descriptors and threads (all OS threads: capture, encoder, OpenMP, HTTP) are sampled every
``every`` seconds.

Figures over the last 80% of the run (in the first 20% the model, the encoders and the buffers reach their
working size): each quantity at its start and at the last sample while running, and the RSS growth in percent
from a straight line fitted to those samples (RSS moves by tens of MB from one sample to the next as frames and
encoder buffers come and go; the fitted line's rise is the trend, two single samples are mostly that noise); and
the descriptors and threads left once the pipeline stopped (back to where they were before). Target:
RSS growth < 5% over 30 minutes, no growth in descriptors and threads. Linux only (reads ``/proc/self``).
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from realtime import BUNDLED_CLIP
from realtime.pipeline import Pipeline, PipelineConfig
from realtime.sources.readers import parse_source


def process_sample() -> tuple[float, int, int]:
    """(RSS in MB, open file descriptors, OS threads) of this process."""
    status = Path("/proc/self/status").read_text().splitlines()
    fields = {line.split(":", 1)[0]: line.split(":", 1)[1].split() for line in status if ":" in line}
    return int(fields["VmRSS"][0]) / 1024.0, len(os.listdir("/proc/self/fd")), int(fields["Threads"][0])


class Sampler(threading.Thread):
    """Samples ``process_sample()`` every ``every`` seconds while the pipeline runs: rows (s, MB, fds, threads)."""

    def __init__(self, every: float, stopping: threading.Event):
        super().__init__(name="soak-sampler", daemon=True)
        self.every, self.stopping, self.rows, self.t0 = every, stopping, [], time.monotonic()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            row = (time.monotonic() - self.t0, *process_sample())
            if not self.stopping.is_set():  # a sample taken while the pipeline shuts down is not a running one
                self.rows.append(row)
            if self._halt.wait(self.every):
                return

    def stop(self) -> list[tuple[float, float, int, int]]:
        self._halt.set()
        self.join()
        return self.rows


def summarize(rows: list[tuple[float, float, int, int]]) -> dict:
    """Start (first sample at or after 20% of the run) and end values, and the RSS growth between them along a
    fitted straight line (in percent of the line's start)."""
    end_t = rows[-1][0]
    window = [r for r in rows if r[0] >= 0.2 * end_t]
    start, end = window[0], rows[-1]
    slope, at_start = (np.polyfit([r[0] - start[0] for r in window], [r[1] for r in window], 1)
                       if len(window) > 1 else (0.0, start[1]))
    return {"seconds": end_t, "samples": len(rows), "rss_mb_start": start[1], "rss_mb_end": end[1],
            "rss_mb_max": max(r[1] for r in rows),
            "rss_growth_pct": 100.0 * slope * (end[0] - start[0]) / at_start,
            "fds_start": start[2], "fds_end": end[2], "fds_max": max(r[2] for r in rows),
            "threads_start": start[3], "threads_end": end[3], "threads_max": max(r[3] for r in rows)}


def bench_soak(engine, minutes: float, streams: int = 4, every: float = 10.0, segment: float | None = 60.0,
               keep: int = 3) -> dict:
    specs = [parse_source(str(BUNDLED_CLIP)) for _ in range(streams)]
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        config = PipelineConfig(specs=specs, out_dir=Path(tmp), loop=True, as_live=True, progress=False,
                                report_every=1e9, segment=segment, keep=keep if segment else None)
        pipeline = Pipeline(config, engine, log=lambda line: errors.append(line) if "error" in line else None)
        timer = threading.Timer(minutes * 60.0, pipeline.stop_event.set)
        sampler = Sampler(every, pipeline.stop_event)
        sampler.start()
        timer.start()
        t0 = time.perf_counter()
        try:
            pipeline.run()
        finally:
            timer.cancel()
            rows = sampler.stop()
        wall = time.perf_counter() - t0
        after = process_sample()  # the pipeline stopped: its threads joined, its files closed
        files = sorted(p.name for p in Path(tmp).iterdir())
    totals = pipeline.metrics.totals()
    return {**summarize(rows), "streams": streams, "rows": rows, "errors": errors, "files_left": len(files),
            "rss_mb_after": after[0], "fds_after": after[1], "threads_after": after[2],
            "fps_out": totals["frames_out"] / wall, "drops": totals["drops"], "segment_s": segment, "keep": keep,
            "recording_error": pipeline.recording_error}


def plot(rows: list[tuple[float, float, int, int]], path: str) -> str | None:
    """The three curves in one PNG; None when matplotlib is missing (the plot is optional)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    t = [r[0] / 60.0 for r in rows]
    fig, axes = plt.subplots(3, 1, sharex=True, figsize=(7, 6))
    for ax, k, label in zip(axes, (1, 2, 3), ("RSS (MB)", "open fds", "threads")):
        ax.plot(t, [r[k] for r in rows], marker=".")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("minutes")
    axes[0].set_title("soak: live streams of the bundled clip, MP4 + JSONL recorded")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

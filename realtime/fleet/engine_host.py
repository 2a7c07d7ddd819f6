"""One engine of the fleet: the project's own pipeline (``realtime.pipeline.Pipeline``: capture, batching, network,
tracking, recording, sinks) for the cameras it is given. Nothing here knows about Ray: the coordinator wraps this
class in an actor; a plain process can run it the same way (the benchmark does).

Cameras taken away leave the running pipeline (their tracks end, their files close) and new ones join it (their
capture, files and sinks start) while the others go on. A new pipeline starts only when none runs, or when a camera
that records joins a pipeline that writes no files; the network stays loaded. Messages: every sink of the run is
opened once per camera (``SinkSpec.for_streams``), so the sinks' counters are per camera and add up across the
pipelines the camera ran in.

Counters outlive the process: each pipeline, and each set of cameras that joined one, keeps its cameras' frames and
its sinks' counters in the fleet's counter files on the node (``realtime.fleet.counter_files``). An engine killed by
a signal leaves its last figures there; any engine of the fleet on that node reports them (``status()["orphans"]``,
by incarnation) until the coordinator, having taken them, calls ``release``. An engine of no fleet (``fleet_id``
empty) keeps its files in a folder of its own, removed at ``stop``.

Recordings (``record_root`` set and the camera's ``record``): ``<record_root>/<start time>-<engine>/
annotated_<camera>.mp4`` and ``poses_<camera>.jsonl`` on the node's own disk (or shared storage mounted there); a
camera that comes back to a pipeline it left writes ``annotated_<camera>.2.mp4``, and so on.
"""
from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace

from realtime.cameras import Camera
from realtime.counters import CounterFile
from realtime.fleet.counter_files import add_rows, counter_folder, read_incarnations, write_counter_file

REFERENCE_FRAME = (360, 640)   # h, w of the frames the capacity is measured on
REFERENCE_BATCH = 4            # frames a batch: an engine of several cameras batches them


@dataclass(frozen=True)
class EngineOptions:
    """How each engine loads its network (the flags of ``qem predict``) and runs its pipeline."""

    weights: str | None = None
    model: str = "tiny"
    imgsz: int | None = None
    device: str = "cpu"
    backend: str = "torch"
    precision: str | None = None
    threads: int | None = None
    half: bool = False
    record_root: str | None = None       # None: no files
    capacity: float | None = None        # pixels a second; None: measured at start
    headroom: float = 0.8                # share of the measured rate offered to cameras
    batch_window: float = 0.004
    open_timeout: float = 5.0
    read_timeout: float = 5.0
    stall_timeout: float = 2.0
    backoff_max: float = 10.0
    sink_flush: float = 2.0
    fleet_id: str = ""                   # the fleet's engines share <temp>/qem-fleet/<fleet_id>/ on a node
    extra: dict = field(default_factory=dict)   # other PipelineConfig fields


class _Counted:
    """Wraps a stream's post stage: every result it hands on is counted in that camera's ``StreamStats`` and in its
    frames counter (a row of the pipeline's counter file)."""

    def __init__(self, post, stats, size: list, frames):
        self.post, self.stats, self.size, self.frames = post, stats, size, frames

    def __call__(self, result):
        result = self.post(result)
        now = time.perf_counter()
        self.frames[0] += 1
        self.stats.add(now, (now - result.frame.recv_time) * 1e3, len(result.poses))
        self.size[:] = [result.frame.width, result.frame.height]
        return result


class EngineHost:
    def __init__(self, name: str, options: EngineOptions, sinks: tuple = ()):
        import cv2

        cv2.setNumThreads(1)
        from realtime.engine.model import load_engine

        self.name, self.options, self.sinks = name, options, tuple(sinks)
        o = options
        args = SimpleNamespace(weights=o.weights, model=o.model, imgsz=o.imgsz, device=o.device, backend=o.backend,
                               precision=o.precision, threads=o.threads, half=o.half, compile=False,
                               cuda_graphs=False, infer_streams=None, rect=True)
        self.engine = load_engine(args, num_streams=1)
        self.started = time.time()
        self.capacity = o.capacity if o.capacity else self._measure_capacity()
        self.lock = threading.Lock()
        self.cameras: tuple[Camera, ...] = ()
        self.pipeline = None
        self.thread: threading.Thread | None = None
        self.generation = 0
        self.logs: deque[str] = deque(maxlen=200)
        self.error: str | None = None
        self.incarnation = f"{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.folder = counter_folder(options.fleet_id)
        self._counters: list[tuple[list, CounterFile]] = []   # (rows described, counter file): per pipeline and
        self._parts = 0                                       # per join, numbered in this process
        self._frame_rows: dict[str, list] = {}
        self._stats: dict[str, object] = {}
        self._sizes: dict[str, list] = {}
        self._index: dict[str, int] = {}

    def _measure_capacity(self) -> float:
        """Pixels a second this engine carries: frames a second of batches of reference frames through the network
        (preprocess, forward, postprocess), times a frame's pixels, times ``headroom``."""
        import numpy as np

        from realtime.frames import Frame

        h, w = REFERENCE_FRAME
        rng = np.random.default_rng(0)
        image = rng.integers(0, 255, (h, w, 3), np.uint8)
        batch = [Frame(i, 0, None, time.time(), time.perf_counter(), image) for i in range(REFERENCE_BATCH)]
        for _ in range(2):
            self.engine.infer(batch)
        t0, n = time.perf_counter(), 5
        for _ in range(n):
            self.engine.infer(batch)
        fps = n * len(batch) / (time.perf_counter() - t0)
        return fps * h * w * self.options.headroom

    def _log(self, line: str) -> None:
        line = f"engine {self.name}: {line}"
        self.logs.append(line)
        print(line, file=sys.stderr, flush=True)

    # -- what the coordinator calls -------------------------------------------------------------------------------
    def info(self) -> dict:
        return {"name": self.name, "pid": os.getpid(), "incarnation": self.incarnation, "host": socket.gethostname(),
                "capacity": self.capacity, "started": self.started, "device": str(self.engine.device)}

    def assign(self, cameras: list[Camera]) -> int:
        """Runs exactly ``cameras`` from now on; returns the generation. While a pipeline runs, cameras taken away
        leave it (``Pipeline.leave``) and new ones join it (``Pipeline.join``): the others never pause. A new
        pipeline starts when none runs, or when a camera that records joins one that writes no files."""
        cameras = tuple(cameras)
        with self.lock:
            if cameras == self.cameras and (self.thread is not None or not cameras):
                return self.generation
            running = self.thread is not None and self.thread.is_alive()
            gone = [c for c in self.cameras if c not in cameras]
            new = [c for c in cameras if c not in self.cameras]
            files = self.pipeline is not None and self.pipeline.config.out_dir is not None
            if running and cameras and all(files or not self._records(c) for c in new):
                for cam in gone:
                    self.pipeline.leave(self._index.pop(cam.name))
                if new:
                    self._join(new)
                self.cameras = tuple(c for c in self.cameras if c in cameras) + tuple(new)
                changes = [f"{', '.join(c.name for c in gone)} left"] if gone else []
                changes += [f"{', '.join(c.name for c in new)} joined"] if new else []
                self._log(f"{'; '.join(changes)}; running {len(self.cameras)} camera(s): "
                          f"{', '.join(c.name for c in self.cameras)}")
                return self.generation
            self._stop_pipeline()
            self.cameras = cameras
            if cameras:
                self._start_pipeline()
            return self.generation

    def stop(self) -> None:
        with self.lock:
            self._stop_pipeline()
            self.cameras = ()
            if not self.options.fleet_id:
                self.discard()

    def orphans(self) -> dict[str, dict]:
        """The counters of the fleet's engine processes on this node that are gone (killed), by incarnation."""
        return read_incarnations(self.folder, skip=self.incarnation) if self.folder.is_dir() else {}

    def release(self, incarnations: list[str]) -> None:
        """The coordinator has the counters of ``incarnations``: their files go."""
        for inc in incarnations:
            for path in self.folder.glob(f"{inc}.*"):
                path.unlink(missing_ok=True)

    def discard(self) -> None:
        """This process's counter files go (the fleet stopped and its figures were read)."""
        self.release([self.incarnation])
        self._counters = []
        if not self.options.fleet_id:
            shutil.rmtree(self.folder, ignore_errors=True)
            return
        try:
            self.folder.rmdir()   # the last engine of the fleet on this node: the fleet's folder goes too
        except OSError:
            pass

    def status(self) -> dict:
        """Per camera: state, FPS, p95 latency, people, frames, size, source FPS, sinks (this engine's totals)."""
        now = time.perf_counter()
        pipeline = self.pipeline
        cams = []
        for cam in self.cameras:
            stats = self._stats.get(cam.name)
            i = self._index.get(cam.name)
            capture = pipeline.captures[i] if pipeline is not None and i is not None else None
            size = self._sizes.get(cam.name) or [0, 0]
            cams.append({
                "name": cam.name, "state": capture.state if capture is not None else "starting",
                "error": capture.error if capture is not None else None,
                "fps": round(stats.fps(now), 2) if stats else 0.0,
                "p95_ms": (None if stats is None or stats.p95() is None else round(stats.p95(), 1)),
                "people": stats.people if stats else 0, "width": size[0], "height": size[1],
                "source_fps": capture.fps if capture is not None else None,
                "reconnects": capture.reconnects if capture is not None else 0,
                "drops": capture.drops if capture is not None else 0})
        return {**self.info(), "generation": self.generation, "running": self.thread is not None,
                "cameras": cams, "totals": self.counters(), "orphans": self.orphans(), "error": self.error,
                "log": list(self.logs)[-5:]}

    def counters(self) -> dict[str, dict]:
        """Per camera, everything it did in this process: frames out and, per sink, sent / delivered / dropped."""
        out: dict[str, dict] = {}
        for described, file in self._counters:
            add_rows(out, described, file.values())
        return out

    # -- the pipeline ----------------------------------------------------------------------------------------------
    def _counter_file(self, described: list) -> CounterFile:
        """A new counter file (rows: per camera its frames, then its sinks), described beside it."""
        self._parts += 1
        file = write_counter_file(self.folder, self.name, self.incarnation, self._parts, described)
        self._counters.append((described, file))
        return file

    def _counted_sinks(self, cams) -> dict[str, list]:
        """A new counter file for ``cams`` (their frames rows, kept in ``_frame_rows``); per camera its message
        sinks, each opened for that camera alone and counting in its own row."""
        rows = [(cam.name, spec) for cam in cams for spec in (None, *self.sinks, *cam.sinks)]
        file = self._counter_file([(cam, spec.name if spec else None) for cam, spec in rows])
        sinks: dict[str, list] = {cam.name: [] for cam in cams}
        for i, (cam, spec) in enumerate(rows):
            if spec is None:
                self._frame_rows[cam] = file.row(i)
            else:
                mine = spec.for_streams([cam])
                sinks[cam].append(replace(mine, options=replace(mine.options,
                                                                counters=(str(file.path), i, file.width))))
        return sinks

    def _records(self, cam: Camera) -> bool:
        return self.options.record_root is not None and cam.record

    def _config(self):
        from realtime.cli import resolve_sources
        from realtime.pipeline import PipelineConfig

        o, cams = self.options, self.cameras
        self._frame_rows = {}
        sinks = [spec for specs in self._counted_sinks(cams).values() for spec in specs]
        record = any(self._records(c) for c in cams)
        out_dir = None
        if record:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            out_dir = Path(o.record_root) / f"{stamp}-{self.name}-{self.generation}"
        return PipelineConfig(
            specs=resolve_sources([c.url for c in cams]), out_dir=out_dir, save_mp4=record, save_jsonl=record,
            show=False, progress=False, report_every=1e9, batch_window=o.batch_window, open_timeout=o.open_timeout,
            read_timeout=o.read_timeout, stall_timeout=o.stall_timeout, backoff_max=o.backoff_max, max_attempts=0,
            stream_names=[c.name for c in cams], sinks=sinks, sink_flush=o.sink_flush, file_tags=True,
            per_stream=[c.options() for c in cams], **o.extra)

    def _start_pipeline(self) -> None:
        from realtime.pipeline import Pipeline
        from realtime.view.stream_status import StreamStats

        self.generation += 1
        pipeline = Pipeline(self._config(), self.engine, log=self._log)
        self._index = {c.name: i for i, c in enumerate(self.cameras)}   # camera -> its stream in the pipeline
        self._stats = {c.name: StreamStats() for c in self.cameras}
        self._sizes = {c.name: [0, 0] for c in self.cameras}
        pipeline.posts = [_Counted(post, self._stats[c.name], self._sizes[c.name], self._frame_rows[c.name])
                          for post, c in zip(pipeline.posts, self.cameras)]
        self.pipeline = pipeline
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(pipeline,), name=f"pipeline-{self.generation}",
                                       daemon=True)
        self.thread.start()
        self._log(f"running {len(self.cameras)} camera(s): {', '.join(c.name for c in self.cameras)}")

    def _join(self, cams: list[Camera]) -> None:
        """``cams`` join the running pipeline, each with its sinks, counters and stats."""
        from realtime.cli import resolve_sources
        from realtime.view.stream_status import StreamStats

        sinks = self._counted_sinks(cams)
        for cam in cams:
            stats = self._stats[cam.name] = StreamStats()
            size = self._sizes[cam.name] = [0, 0]
            frames = self._frame_rows[cam.name]
            self._index[cam.name] = self.pipeline.join(
                resolve_sources([cam.url])[0], cam.options(), name=cam.name, sinks=sinks[cam.name],
                wrap_post=lambda post, stats=stats, size=size, frames=frames: _Counted(post, stats, size, frames))

    def _run(self, pipeline) -> None:
        try:
            pipeline.run()
        except Exception as exc:  # noqa: BLE001 - reported in status(); the coordinator sees it
            self.error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            self._log(f"error: {self.error}")

    def _stop_pipeline(self) -> None:
        pipeline, thread = self.pipeline, self.thread
        if pipeline is None:
            return
        pipeline.stop_event.set()
        if thread is not None:
            thread.join(timeout=30.0)
        self.pipeline, self.thread = None, None


"""Helpers of the real-time tests: real video files written with PyAV, free loopback ports, the GStreamer RTSP
server as a subprocess, and a pipeline running in a thread."""
from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from realtime.pipeline import Pipeline, PipelineConfig

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SYSTEM_PYTHON = "/usr/bin/python3"


def pattern(i: int, h: int, w: int) -> np.ndarray:
    """Frame i of a test clip: a bright block moving right on a dark background, RGB uint8."""
    image = np.full((h, w, 3), 30, np.uint8)
    bw = max(4, w // 8)
    x = (i * 5) % max(1, w - bw)
    image[h // 4: 3 * h // 4, x:x + bw] = (220, 180, 40)
    return image


def write_video(path: Path, frames: int = 20, size=(160, 120), fps: int = 10, pix_fmt: str = "yuv420p",
                codec: str = "libx264", sizes=None, image_fn=pattern) -> Path:
    """An MP4 of ``frames`` frames; ``sizes`` (a list of (w, h) per frame) makes the resolution change mid-stream
    (written as separate segments through one container is impossible, so each size change restarts the
    encoder into a new MPEG-TS segment and the segments are concatenated)."""
    path = Path(path)
    if sizes is None:
        out = av.open(str(path), "w")
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = pix_fmt
        for i in range(frames):
            fmt = "gray" if pix_fmt == "gray" else "rgb24"
            image = image_fn(i, size[1], size[0])
            frame = av.VideoFrame.from_ndarray(image[..., 0].copy() if fmt == "gray" else image, format=fmt)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        out.close()
        return path
    data = b""
    start = 0
    for seg, (count, (w, h)) in enumerate(sizes):
        seg_path = path.with_name(f"{path.stem}_seg{seg}.ts")
        out = av.open(str(seg_path), "w", format="mpegts")
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        stream.codec_context.time_base = Fraction(1, fps)
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(image_fn(start + i, h, w), format="rgb24")
            frame.pts = start + i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        out.close()
        start += count
        data += seg_path.read_bytes()
    path.write_bytes(data)
    return path


def set_rotation(path: Path, degrees: int) -> Path:
    """Writes a display matrix (the MP4 ``tkhd`` matrix) that tells players to turn the video clockwise."""
    matrices = {90: (0, 65536, 0, -65536, 0, 0), 180: (-65536, 0, 0, 0, -65536, 0), 270: (0, -65536, 0, 65536, 0, 0)}
    data = bytearray(Path(path).read_bytes())
    i = data.find(b"tkhd")
    version = data[i + 4]
    off = i + 8 + (12 if version == 0 else 24) + 4 + (4 if version == 0 else 8) + 8 + 8
    data[off:off + 36] = struct.pack(">9i", *matrices[degrees], 0, 0, 1 << 30)
    Path(path).write_bytes(bytes(data))
    return path


def count_frames(path: Path) -> tuple[int, tuple[int, int], list[float]]:
    """Decodes a video back: (number of frames, (w, h), frame times in seconds)."""
    with av.open(str(path)) as c:
        times, size = [], None
        for f in c.decode(video=0):
            times.append(float(f.pts * f.time_base))
            size = (f.width, f.height)
    return len(times), size, times


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gst_available() -> str | None:
    """None when GStreamer's RTSP server can run here, else the reason it cannot."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                            "gi.require_version('Gst', '1.0'); from gi.repository import Gst, GstRtspServer; "
                            "Gst.init(None); assert Gst.ElementFactory.find('x264enc')"],
                           capture_output=True, text=True)
    if probe.returncode:
        return "gi / gst-rtsp-server / x264enc missing (run .ci/install-system-deps as root)"
    return None


class GstServer:
    """The camera-like RTSP server (tests/realtime/gst_rtsp_server.py) in a subprocess."""

    def __init__(self, port: int = 0, **options):
        self.options = options
        self.port = port
        self.proc = None

    def start(self, timeout: float = 15.0) -> "GstServer":
        cmd = [SYSTEM_PYTHON, str(HERE / "gst_rtsp_server.py"), "--port", str(self.port)]
        for key, value in self.options.items():
            cmd += [f"--{key}", str(value)]
        deadline = time.monotonic() + timeout
        while True:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            line = self.proc.stdout.readline()
            if line.startswith("PORT "):
                self.port = int(line.split()[1])
                return self
            self.proc.wait()
            if time.monotonic() > deadline:  # e.g. the old socket of a restarted server still held
                raise RuntimeError("GStreamer RTSP server did not start")
            time.sleep(0.3)

    def url(self, credentials: str = "") -> str:
        return f"rtsp://{credentials + '@' if credentials else ''}127.0.0.1:{self.port}/live"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_cli(args, tmp_path, timeout=120, script="demos/webcam.py") -> subprocess.CompletedProcess:
    """A demo (or ``-m realtime``) in a subprocess from ``tmp_path``, headless, one OpenMP thread."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    cmd = [sys.executable, *(["-m", "realtime"] if script == "-m" else [str(ROOT / script)]), *args]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


def python() -> str:
    return sys.executable


class Running:
    """A pipeline running in a thread; its log lines are collected."""

    def __init__(self, specs, engine, out_dir, report_every: float = 1.0, **kwargs):
        self.logs = []
        config = PipelineConfig(specs=specs, out_dir=out_dir, progress=False, report_every=report_every, **kwargs)
        self.pipeline = Pipeline(config, engine, log=self.logs.append)
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.pipeline.run()
        except BaseException as exc:  # noqa: BLE001
            self.error = exc

    def wait_for(self, condition, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; log: {self.logs[-8:]}")
            time.sleep(0.05)

    @property
    def frames_out(self):
        return self.pipeline.metrics.frames_out

    def stop(self):
        self.pipeline.stop_event.set()
        self.thread.join(15)
        assert not self.thread.is_alive() and self.error is None


def decode_cut(path: Path) -> list[float]:
    """Frame times (seconds) of a video that may end mid-fragment (a recording cut by a crash): decodes until the
    data ends; the error FFmpeg raises at a cut end is the end of the recording, not a failure."""
    times = []
    with av.open(str(path)) as c:
        try:
            for f in c.decode(video=0):
                times.append(float(f.pts * f.time_base))
        except (av.error.InvalidDataError, av.error.EOFError):
            pass
    return times


def mp4_boxes(data: bytes) -> list[tuple[str, int, int]]:
    """Top-level MP4 boxes as (type, offset, size); a box cut short is listed with its declared size."""
    boxes, i = [], 0
    while i + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        boxes.append((kind.decode("latin-1"), i, size))
        i += max(size, 8)
    return boxes


@contextmanager
def view_running(config: PipelineConfig, engine, timeout: float = 10.0):
    """A pipeline with a live view (``config.http_port``) running in a thread: yields it once its view's URL is known;
    stopped and joined at the end."""
    pipeline = Pipeline(config, engine, log=lambda line: None)
    runner = threading.Thread(target=pipeline.run)
    runner.start()
    try:
        deadline = time.monotonic() + timeout
        while pipeline.view_url is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pipeline.view_url is not None, "the live view did not start"
        yield pipeline
    finally:
        pipeline.stop_event.set()
        runner.join(10)
    assert not runner.is_alive()

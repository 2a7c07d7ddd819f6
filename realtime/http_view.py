"""A live view in the browser: MJPEG over HTTP (``http.server.ThreadingHTTPServer``), bound to 127.0.0.1 by default.

Routes: ``/`` the page (``realtime.view_page``): per stream its frames, state, FPS, p95 latency and people count;
``/status.json`` those figures (``realtime.stream_status``), polled by the page; ``/stream/<i>.mjpg`` a
``multipart/x-mixed-replace`` stream of JPEG frames; ``/frame/<i>.jpg`` the newest frame as one JPEG.
Frames are JPEG-encoded lazily (only when someone asks, once per new frame, whatever the number of clients); an
idle stream repeats its newest frame every ``KEEPALIVE_S`` seconds.
A stream that is not running keeps its last frame on the board with its state drawn over it
(``realtime.view_overlay``).
"""
from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from realtime.stream_status import LiveStatus
from realtime.view_overlay import StateOverlay
from realtime.view_page import page

BOUNDARY = "qemframe"
# An MJPEG stream with nothing new (a dropped source whose state text stays the same) repeats its newest frame
# this often: proxies and players that close idle connections keep it, and a client that joins sees it at once.
KEEPALIVE_S = 1.0


class FrameBoard:
    """The newest annotated frame of each stream, with a version counter clients wait on."""

    def __init__(self, names: list[str], quality: int = 80):
        self.names, self.quality = names, quality
        self.cond = threading.Condition()
        self.images: list[np.ndarray | None] = [None] * len(names)
        self.versions = [0] * len(names)
        self._jpeg: list[tuple[int, bytes] | None] = [None] * len(names)
        self.closed = False

    def update(self, stream: int, image: np.ndarray) -> None:
        with self.cond:
            self.images[stream] = image
            self.versions[stream] += 1
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def jpeg(self, stream: int, after_version: int, timeout: float = 5.0) -> tuple[int, bytes] | None:
        """The JPEG of a frame newer than ``after_version`` (waits up to ``timeout``); None when closed/timed out."""
        with self.cond:
            if not self.cond.wait_for(lambda: self.closed or self.versions[stream] > after_version, timeout):
                return None
            if self.closed and self.versions[stream] <= after_version:
                return None
            version, image = self.versions[stream], self.images[stream]
            cached = self._jpeg[stream]
            if cached is not None and cached[0] == version:
                return cached
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        item = (version, buf.tobytes())
        with self.cond:
            self._jpeg[stream] = item
        return item


class _Handler(BaseHTTPRequestHandler):
    board: FrameBoard
    status: LiveStatus

    def log_message(self, *args) -> None:  # keep the console for the pipeline's own lines
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?")[0]
        m = re.fullmatch(r"/(stream|frame)/(\d+)\.(mjpg|jpg)", path)
        if path in ("/", "/index.html"):
            self._send(200, "text/html; charset=utf-8", page(self.status.snapshot()))
        elif path == "/status.json":
            self._send(200, "application/json", json.dumps(self.status.snapshot()).encode())
        elif m and int(m[2]) < len(self.board.names):
            (self._stream if m[1] == "stream" else self._frame)(int(m[2]))
        else:
            self._send(404, "text/plain", b"not found\n")

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _frame(self, stream: int) -> None:
        item = self.board.jpeg(stream, 0)
        if item is None:
            self._send(503, "text/plain", b"no frame yet\n")
        else:
            self._send(200, "image/jpeg", item[1])

    def _stream(self, stream: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        version = 0
        try:
            while True:
                item = self.board.jpeg(stream, version, timeout=KEEPALIVE_S)
                if item is None:
                    if self.board.closed:
                        return
                    item = self.board.jpeg(stream, 0, timeout=0)  # nothing new: repeat the newest frame
                    if item is None:
                        continue
                version, data = item
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
                                 .encode() + data + b"\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return


class HttpView:
    """Serves a FrameBoard and the status of the captures; ``port`` 0 picks a free port (see ``.port``).

    The output stage calls ``show`` for every annotated result and ``tick`` between results."""

    def __init__(self, board: FrameBoard, captures, host: str = "127.0.0.1", port: int = 8080):
        self.board, self.status = board, LiveStatus(captures)
        self.overlay = StateOverlay(board, captures)
        handler = type("Handler", (_Handler,), {"board": board, "status": self.status})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.host, self.port = host, self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="http-view", daemon=True)

    def show(self, result, image: np.ndarray) -> None:
        self.status.record(result)
        self.overlay.frame(result.frame.source, image)

    def tick(self) -> None:
        self.overlay.tick()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> "HttpView":
        self.thread.start()
        return self

    def close(self) -> None:
        self.board.close()
        self.server.shutdown()
        self.server.server_close()

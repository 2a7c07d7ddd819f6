"""A live view in the browser: MJPEG over HTTP (``http.server.ThreadingHTTPServer``), bound to 127.0.0.1 by default.

Routes: ``/`` a small HTML page with one ``<img>`` per stream; ``/stream/<i>.mjpg`` a
``multipart/x-mixed-replace`` stream of JPEG frames; ``/frame/<i>.jpg`` the newest frame as one JPEG.
Frames are JPEG-encoded lazily (only when someone asks, once per new frame, whatever the number of clients).
"""
from __future__ import annotations

import html
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

BOUNDARY = "qemframe"


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


def _page(names: list[str]) -> bytes:
    items = "\n".join(f'<figure><img src="/stream/{i}.mjpg" alt="stream {i}"><figcaption>{html.escape(n)}'
                      f"</figcaption></figure>" for i, n in enumerate(names))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>qem-pose live</title><style>"
            f"body{{background:#111;color:#ddd;font-family:sans-serif}}img{{max-width:100%}}"
            f"figure{{display:inline-block;margin:8px}}</style></head><body>{items}</body></html>").encode()


class _Handler(BaseHTTPRequestHandler):
    board: FrameBoard

    def log_message(self, *args) -> None:  # keep the console for the pipeline's own lines
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        m = re.fullmatch(r"/(stream|frame)/(\d+)\.(mjpg|jpg)", self.path.split("?")[0])
        if self.path in ("/", "/index.html"):
            body = _page(self.board.names)
            self._send(200, "text/html; charset=utf-8", body)
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
                item = self.board.jpeg(stream, version)
                if item is None:
                    if self.board.closed:
                        return
                    continue
                version, data = item
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
                                 .encode() + data + b"\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return


class HttpView:
    """Serves a FrameBoard; ``port`` 0 picks a free port (see ``.port``)."""

    def __init__(self, board: FrameBoard, host: str = "127.0.0.1", port: int = 8080):
        handler = type("Handler", (_Handler,), {"board": board})
        self.board = board
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.host, self.port = host, self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="http-view", daemon=True)

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

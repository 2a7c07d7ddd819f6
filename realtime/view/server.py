"""A live view in the browser, served by aiohttp in a thread of its own, bound to 127.0.0.1 by default.

Routes: ``/`` the page (``realtime.view.page``): per stream its frames, state, FPS, p95 latency and people count,
and the message sinks with their drops; ``/status.json`` those figures (``realtime.view.stream_status``);
``/stream/<i>.mjpg`` a ``multipart/x-mixed-replace`` stream of JPEG frames; ``/frame/<i>.jpg`` the newest frame as
one JPEG; ``/ws`` a WebSocket that pushes every message of the run (``realtime.publish``, schema 1: frames and track
events) to every client, plus a ``status`` message (the body of ``/status.json``) on connection and twice a second:
the page updates from it. A client that reads slower than the messages come loses the oldest of its
``WsHub.client_queue`` waiting messages; the pipeline never waits for a client. Those drops are counted per client and
in all (``WsHub.stats``: the ``ws`` sink's ``client_drops`` and ``clients`` in ``/status.json``, the metrics line,
the summary and the page).
Frames are JPEG-encoded lazily (only when someone asks, once per new frame, whatever the number of clients); an
idle stream repeats its newest frame every ``KEEPALIVE_S`` seconds.
A stream that is not running keeps its last frame on the board with its state drawn over it
(``realtime.view.overlay``).
"""
from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from aiohttp import WSMsgType, web

from realtime.view.app_thread import AppThread
from realtime.view.stream_status import LiveStatus
from realtime.view.overlay import StateOverlay
from realtime.view.page import page

BOUNDARY = "qemframe"
# An MJPEG stream with nothing new (a dropped source whose state text stays the same) repeats its newest frame
# this often: proxies and players that close idle connections keep it, and a client that joins sees it at once.
KEEPALIVE_S = 1.0
STATUS_EVERY_S = 0.5


class FrameBoard:
    """The newest annotated frame of each stream, with a version counter clients wait on."""

    def __init__(self, names: list[str], quality: int = 80):
        self.names, self.quality = list(names), quality
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

    def add(self, name: str) -> None:
        """A stream that joined the run: its slot, empty until its first frame."""
        with self.cond:
            self.images.append(None)
            self.versions.append(0)
            self._jpeg.append(None)
            self.names.append(name)  # last: a stream's URL answers once its slot exists

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


class WsHub:
    """The clients of ``/ws``. ``broadcast`` may be called from any thread; each client has its own bounded queue."""

    def __init__(self, client_queue: int = 1000):
        self.client_queue = client_queue
        self.loop: asyncio.AbstractEventLoop | None = None
        self.clients: set["_WsClient"] = set()
        self.client_drops = 0  # every client's, those gone included
        self._connections = 0

    def broadcast(self, texts: list[str]) -> None:
        loop = self.loop
        if loop is not None and self.clients:
            try:
                loop.call_soon_threadsafe(self._push, texts)
            except RuntimeError:  # the loop closed: the view is going away
                pass

    def _push(self, texts: list[str]) -> None:
        for client in list(self.clients):
            self.client_drops += client.put(texts)

    def add(self, ws: web.WebSocketResponse, peer: str) -> "_WsClient":
        self._connections += 1
        client = _WsClient(ws, self.client_queue, self._connections, peer)
        self.clients.add(client)
        return client

    def stats(self) -> dict:
        """``client_drops`` (every client's, those gone included) and, per connected client in order of connection,
        its number, address, messages sent to it, dropped and waiting."""
        clients = sorted(list(self.clients), key=lambda c: c.number)
        return {"client_drops": self.client_drops, "clients": [c.stats() for c in clients]}


class _WsClient:
    def __init__(self, ws: web.WebSocketResponse, size: int, number: int = 0, peer: str = "?"):
        self.ws, self.size, self.number, self.peer = ws, size, number, peer
        self.pending: deque[str] = deque()
        self.ready = asyncio.Event()
        self.sent = self.dropped = 0

    def put(self, texts: list[str]) -> int:
        self.pending.extend(texts)
        dropped = 0
        while len(self.pending) > self.size:
            self.pending.popleft()
            dropped += 1
        self.dropped += dropped
        self.ready.set()
        return dropped

    def stats(self) -> dict:
        return {"number": self.number, "peer": self.peer, "sent": self.sent, "dropped": self.dropped,
                "queued": len(self.pending)}

    async def send_loop(self) -> None:
        while not self.ws.closed:
            await self.ready.wait()
            self.ready.clear()
            while self.pending and not self.ws.closed:
                await self.ws.send_str(self.pending.popleft())
                self.sent += 1


class HttpView(AppThread):
    """Serves a FrameBoard, the status of the captures and the ``/ws`` messages; ``port`` 0 picks a free port
    (see ``.port``). The port is bound in the constructor (an address in use raises ``OSError`` there).

    The output stage calls ``show`` for every annotated result and ``tick`` between results."""

    def __init__(self, board: FrameBoard, captures, host: str = "127.0.0.1", port: int = 8080):
        self.board, self.status = board, LiveStatus(captures, board.names)
        self.overlay = StateOverlay(board, captures)
        self.hub = WsHub()
        self.pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="view-jpeg")  # waits for new frames
        app = web.Application()
        app.add_routes([web.get("/", self._page), web.get("/index.html", self._page),
                        web.get("/status.json", self._status), web.get("/ws", self._ws),
                        web.get(r"/stream/{i:\d+}.mjpg", self._stream), web.get(r"/frame/{i:\d+}.jpg", self._frame)])
        super().__init__(app, host, port, "live view")

    def show(self, result, image: np.ndarray) -> None:
        self.status.record(result)
        self.overlay.frame(result.frame.source, image)

    def tick(self) -> None:
        self.overlay.tick()

    def add(self, name: str, capture) -> None:
        """A stream that joined the run (``Pipeline.join``): a page loaded before reloads to show it."""
        self.overlay.add(capture)
        self.status.add(capture, name)
        self.board.add(name)

    def close(self) -> None:
        self.board.close()
        super().close()
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- the server's thread -------------------------------------------------------------------------------------
    async def on_startup(self) -> None:
        self.hub.loop = asyncio.get_running_loop()
        self._ticker = asyncio.ensure_future(self._push_status())

    async def on_shutdown(self) -> None:
        self.hub.loop = None
        self._ticker.cancel()
        for client in list(self.hub.clients):
            await client.ws.close()

    def _status_text(self) -> str:
        return json.dumps({"schema": 1, "type": "status", **self.status.snapshot()})

    async def _push_status(self) -> None:
        while True:
            await asyncio.sleep(STATUS_EVERY_S)
            if self.hub.clients:
                self.hub._push([self._status_text()])

    # -- routes --------------------------------------------------------------------------------------------------
    @staticmethod
    def _headers() -> dict:
        return {"Cache-Control": "no-store"}

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(body=page(self.status.snapshot()), content_type="text/html", charset="utf-8",
                            headers=self._headers())

    async def _status(self, request: web.Request) -> web.Response:
        return web.Response(body=json.dumps(self.status.snapshot()).encode(), content_type="application/json",
                            headers=self._headers())

    def _stream_index(self, request: web.Request) -> int:
        i = int(request.match_info["i"])
        if i >= len(self.board.names):
            raise web.HTTPNotFound(text="not found\n")
        return i

    async def _jpeg(self, stream: int, after: int, timeout: float):
        return await asyncio.get_running_loop().run_in_executor(self.pool, self.board.jpeg, stream, after, timeout)

    async def _frame(self, request: web.Request) -> web.Response:
        item = await self._jpeg(self._stream_index(request), 0, 5.0)
        if item is None:
            return web.Response(status=503, text="no frame yet\n", headers=self._headers())
        return web.Response(body=item[1], content_type="image/jpeg", headers=self._headers())

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        stream = self._stream_index(request)
        response = web.StreamResponse(headers={"Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                                               **self._headers()})
        await response.prepare(request)
        version = 0
        try:
            while True:
                item = await self._jpeg(stream, version, KEEPALIVE_S)
                if item is None:
                    if self.board.closed:
                        break
                    item = await self._jpeg(stream, 0, 0)  # nothing new: repeat the newest frame
                    if item is None:
                        continue
                version, data = item
                await response.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}"
                                     f"\r\n\r\n".encode() + data + b"\r\n")
        except ConnectionResetError:  # the client went away
            pass
        return response

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20.0)
        await ws.prepare(request)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        client = self.hub.add(ws, f"{peer[0]}:{peer[1]}" if peer else "?")
        client.put([self._status_text()])
        sender = asyncio.ensure_future(client.send_loop())
        try:
            async for msg in ws:  # nothing is expected from a client; reading keeps the connection's pings going
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.hub.clients.discard(client)
            sender.cancel()
        return ws

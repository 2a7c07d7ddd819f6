"""The browser view, fetched over HTTP by a real client while the pipeline runs; JPEGs decoded from it."""
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from realtime.pipeline import PipelineConfig
from realtime.sources.readers import parse_source
from tests.realtime.helpers import view_running, write_video


def test_a_port_in_use_is_one_line_naming_the_address_and_what_to_do():
    from realtime.view.server import FrameBoard, HttpView

    taken = HttpView(FrameBoard([]), [], port=0)
    try:
        with pytest.raises(OSError) as err:
            HttpView(FrameBoard([]), [], port=taken.port)
        assert str(err.value).startswith("[Errno 98] the live view cannot listen on 127.0.0.1:")
        assert "give --http-port another port, or 0 for any free one" in str(err.value)
    finally:
        taken.close()


def test_live_view_serves_page_single_jpeg_and_mjpeg(tmp_path, engine):
    src = write_video(tmp_path / "clip.mp4", frames=40, size=(160, 120), fps=20)
    config = PipelineConfig(specs=[parse_source(str(src))], out_dir=None, http_port=0, pace=True, progress=False)
    with view_running(config, engine) as pipeline:
        base = pipeline.view_url
        assert base.startswith("http://127.0.0.1:")
        page = urllib.request.urlopen(base, timeout=5).read().decode()
        assert '<img src="/stream/0.mjpg"' in page and "clip.mp4" in page
        single = urllib.request.urlopen(base + "frame/0.jpg", timeout=5)
        assert single.headers["Content-Type"] == "image/jpeg"
        image = cv2.imdecode(np.frombuffer(single.read(), np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (120, 160, 3)
        stream = urllib.request.urlopen(base + "stream/0.mjpg", timeout=5)
        assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        jpegs = []
        for _ in range(2):
            headers = {}
            while True:
                line = stream.readline().strip()
                if not line and headers:
                    break
                if b":" in line:
                    key, value = line.decode().split(":", 1)
                    headers[key.strip().lower()] = value.strip()
            jpegs.append(stream.read(int(headers["content-length"])))
        frames = [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) for j in jpegs]
        assert all(f is not None and f.shape == (120, 160, 3) for f in frames)
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(base + "stream/7.mjpg", timeout=5)


def test_a_slow_websocket_client_loses_its_oldest_messages_counted_per_client_and_shown(tmp_path):
    """Two real clients on /ws: one reads everything, one reads nothing through a small receive buffer. Only the slow
    one loses messages; its drops show per client and in all in /status.json, the metrics line, the summary and the
    page, and a client's messages add up: received = pushed while connected - dropped."""
    import asyncio
    import json
    import re
    import socket

    import aiohttp
    import jsonschema

    from realtime.metrics import Metrics
    from realtime.publish import open_sink, parse_sink
    from realtime.publish.base import Message
    from realtime.publish.messages import SCHEMA_PATH
    from realtime.view.server import FrameBoard, HttpView

    view = HttpView(FrameBoard([]), [], port=0)
    view.hub.client_queue = 300  # above the sink's batch of 100: a client that keeps up loses nothing
    view.start()
    sink = open_sink(parse_sink("ws?queue=5000"), log=lambda line: None, hub=view.hub)
    view.status.sink_stats = lambda: [sink.stats()]
    payload = json.dumps({"pad": "x" * 20_000})  # 1000 of them: 20 MB, far more than the socket buffers hold
    received = {"pads": 0, "all": 0}
    connected = threading.Event()
    done = threading.Event()

    def small_buffer(addr_info):
        family, type_, proto, _, _ = addr_info
        sock = socket.socket(family, type_, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        return sock

    def settled() -> bool:  # everything offered went out, and the fast client has read all that was sent to it
        fast = max(view.hub.stats()["clients"], key=lambda c: c["number"])
        return done.is_set() and sink.stats()["queued"] == 0 and fast["queued"] == 0 and received["all"] == fast["sent"]

    async def clients():
        async with aiohttp.ClientSession() as fast_session, aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(socket_factory=small_buffer)) as slow_session:
            async with slow_session.ws_connect(view.url + "ws"), fast_session.ws_connect(view.url + "ws") as fast:
                connected.set()
                while not settled():
                    try:
                        msg = await fast.receive(timeout=0.2)
                    except asyncio.TimeoutError:
                        continue
                    received["all"] += 1
                    received["pads"] += json.loads(msg.data).get("pad") is not None
                stats = sink.stats()
                status = json.loads(urllib.request.urlopen(view.url + "status.json", timeout=5).read())
                page = urllib.request.urlopen(view.url, timeout=5).read().decode()
                return stats, status, page

    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(out=asyncio.run(asyncio.wait_for(clients(), 120))))
    thread.start()
    try:
        assert connected.wait(10)
        deadline = time.monotonic() + 10
        while len(view.hub.clients) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        for i in range(1000):
            sink.offer(Message("frame", "s0", payload))
            if i % 10 == 9:
                time.sleep(0.02)  # 500 messages (10 MB) a second
        done.set()
        thread.join(150)
    finally:
        done.set()
        sink.close()
        view.close()
    stats, status, page = result["out"]
    slow, fast = stats["clients"]
    assert slow["number"] < fast["number"] and slow["peer"].startswith("127.0.0.1:")
    assert stats["dropped"] == 0 and slow["dropped"] > 0 and fast["dropped"] == 0
    assert stats["client_drops"] == slow["dropped"] + fast["dropped"]
    assert received["pads"] == 1000  # and it read every message sent to it (settled)
    sink_status, = status["sinks"]
    assert sink_status["client_drops"] >= slow["dropped"] and len(sink_status["clients"]) == 2
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(
        {"schema": 1, "type": "status", **status})
    shown = re.search(r"sink ws\?queue=5000: connected · sent 1000 · dropped 0 · 2 clients · client drops (\d+)",
                      page)
    assert shown and int(shown[1]) >= sink_status["client_drops"]
    metrics = Metrics()
    metrics.sink_stats = lambda: [stats]
    note = f"| sink ws?queue=5000 connected, dropped 0, client drops {stats['client_drops']} (2 clients)"
    assert note in metrics.line() and f"client drops {stats['client_drops']} (2 clients)" in metrics.summary()

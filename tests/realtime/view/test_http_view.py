"""The browser view, fetched over HTTP by a real client while the pipeline runs; JPEGs decoded from it."""
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from realtime.pipeline import Pipeline, PipelineConfig
from realtime.sources.readers import parse_source
from tests.realtime.helpers import write_video


def test_live_view_serves_page_single_jpeg_and_mjpeg(tmp_path, engine):
    src = write_video(tmp_path / "clip.mp4", frames=40, size=(160, 120), fps=20)
    config = PipelineConfig(specs=[parse_source(str(src))], out_dir=None, http_port=0, pace=True, progress=False)
    pipeline = Pipeline(config, engine, log=lambda line: None)
    runner = threading.Thread(target=pipeline.run)
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while pipeline.view_url is None and time.monotonic() < deadline:
            time.sleep(0.02)
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
    finally:
        pipeline.stop_event.set()
        runner.join(10)
    assert not runner.is_alive()

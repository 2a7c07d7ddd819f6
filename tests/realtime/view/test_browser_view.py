"""The live view in a real browser: headless Chromium loads the page while the pipeline pulls two cameras (the
GStreamer RTSP server on loopback); the screenshot holds the frames and the coloured state bands, the DOM (after
the page's script polled ``/status.json``) the state, FPS, p95 latency and people count; when one camera goes
away, the page still loads and shows that stream's state over its last frame. A page loaded before a state
change shows the change (its script, not the server's render).

``LIVE_VIEW_SCREENSHOT=docs/img/live_view.png pytest tests/realtime/view/test_browser_view.py`` also saves the
screenshot taken after the drop (the picture of the docs)."""
import json
import os
import re
import shutil
import threading
import urllib.request
from html.parser import HTMLParser

import numpy as np
import pytest

from realtime.sources.capture import Capture
from realtime.view.server import FrameBoard, HttpView
from realtime.sources.readers import parse_source
from realtime.view.stream_status import STATE_COLOURS
from realtime.view.overlay import StateOverlay
from tests.realtime.browser import chromium, load, regions_of_colour
from tests.realtime.helpers import Running, free_port

FIGURES = r"\d+\.\d fps · p95 \d+ ms · \d+ (person|people)"
AMBER = STATE_COLOURS["reconnecting"]


class PageStreams(HTMLParser):
    """Per figure of the page: the band's ``state`` attribute, its ``text`` and ``figures``, the ``caption``."""

    def __init__(self, dom: str):
        super().__init__()
        self.streams: dict[int, dict] = {}
        self.updates = int(re.search(r'<body[^>]* data-updates="(\d+)"', dom)[1])
        self._current, self._field = None, None
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "figure" and "stream" in (a.get("class") or ""):
            self._current = self.streams[int(a["data-index"])] = {"text": "", "figures": "", "caption": ""}
        elif self._current is not None and tag == "div" and a.get("class") == "state":
            self._current["state"] = a.get("data-state")
        elif self._current is not None and tag == "span" and a.get("class") in ("text", "figures"):
            self._field = a["class"]
        elif self._current is not None and tag == "figcaption":
            self._field = "caption"

    def handle_endtag(self, tag):
        if tag in ("span", "figcaption"):
            self._field = None
        elif tag == "figure":
            self._current = None

    def handle_data(self, data):
        if self._current is not None and self._field:
            self._current[self._field] += data


@pytest.fixture
def browser():
    if chromium() is None:
        pytest.skip("chromium not installed (Debian package chromium; .ci/install-system-deps installs it as root)")


def status(base: str) -> dict:
    return json.loads(urllib.request.urlopen(base + "status.json", timeout=5).read())


def frame_above(image: np.ndarray, band: tuple[int, int, int, int]) -> np.ndarray:
    """The picture above a state band: the stream's frame (320x240 shown at the band's width)."""
    x, y, w, _ = band
    height = w * 240 // 320
    assert y >= height - 2, f"the frame above the band at y={y} is cut off"
    return image[y - height + 2: y - 1, x + 1: x + w - 1]


@pytest.mark.slow
def test_chromium_shows_frames_states_and_a_dropped_stream_over_its_last_frame(tmp_path, engine, gst_server,
                                                                              browser):
    cam = gst_server()
    other = gst_server(user="viewer", password="s3cr3t-pw")
    specs = [parse_source(cam.url()), parse_source(other.url("viewer:s3cr3t-pw"))]
    run = Running(specs, engine, None, http_port=0, open_timeout=2.0, read_timeout=2.0, stall_timeout=3.0,
                  backoff_base=0.5, backoff_max=2.0)
    try:
        run.wait_for(lambda: run.pipeline.view_url is not None, 10, "the live view")
        base = run.pipeline.view_url
        assert base.startswith("http://127.0.0.1:")
        run.wait_for(lambda: all(s["state"] == "running" and s["frames"] >= 5 for s in status(base)["streams"]),
                     30, "both streams running")
        image, dom = load(base, tmp_path / "running.png")
        page = PageStreams(dom)
        assert page.updates >= 2  # the script got status messages on /ws and rewrote the bands (live updates)
        for i in (0, 1):
            assert page.streams[i]["state"] == "running" and page.streams[i]["text"] == "running"
            assert re.fullmatch(FIGURES, page.streams[i]["figures"]), page.streams[i]["figures"]
        assert page.streams[1]["caption"] == other.url("***")
        bands = regions_of_colour(image, STATE_COLOURS["running"])
        assert len(bands) == 2 and bands[0][0] < bands[1][0]
        for band in bands:
            frame = frame_above(image, band)
            assert frame.std() > 8 and (frame > 150).all(axis=2).sum() > 100  # the picture, with its white ball

        other.stop()
        run.wait_for(lambda: status(base)["streams"][1]["state"] == "reconnecting" and
                     status(base)["streams"][1]["fps"] == 0, 15, "stream 1 reconnecting, its FPS down to 0")
        image, dom = load(base, tmp_path / "dropped.png")
        page = PageStreams(dom)
        assert page.updates >= 2 and page.streams[0]["state"] == "running"
        assert page.streams[1]["state"] in ("reconnecting", "connecting")
        assert re.fullmatch(r"reconnecting, next try in [0-2] s|connecting", page.streams[1]["text"])
        assert re.fullmatch(r"0\.0 fps · p95 \d+ ms · \d+ (person|people)", page.streams[1]["figures"])
        running_band, = regions_of_colour(image, STATE_COLOURS["running"])
        assert frame_above(image, running_band).std() > 8
        # The amber areas: the band of the page (lowest) and the banner drawn over the last frame above it.
        page_band = max(regions_of_colour(image, AMBER), key=lambda box: box[1])
        assert page_band[0] > running_band[0] and abs(page_band[1] - running_band[1]) <= 2
        last_frame = frame_above(image, page_band)
        rows = np.flatnonzero((np.abs(last_frame.astype(int) - AMBER) <= 40).all(axis=2).mean(axis=1) > 0.6)
        assert len(rows) >= 10 and len(rows) >= 0.7 * (rows.max() - rows.min() + 1), \
            "no state banner over the dropped stream's last frame"
        outside = np.ones(len(last_frame), bool)
        outside[rows.min() - 3: rows.max() + 4] = False  # the band and its text
        rest = last_frame[outside].reshape(-1, 3)
        # The last frame, dimmed: its black background (the placeholder is grey 24), and its white ball at most
        # 0.4 x 255 (plus JPEG's ringing) where the running stream's ball is 255.
        assert np.median(rest) < 12 and rest.min(axis=1).max() < 140
        everything = dom + json.dumps(status(base))
        assert "s3cr3t-pw" not in everything and "viewer" not in everything
        if os.environ.get("LIVE_VIEW_SCREENSHOT"):
            shutil.copyfile(tmp_path / "dropped.png", os.environ["LIVE_VIEW_SCREENSHOT"])
    finally:
        run.stop()


def test_the_page_follows_a_state_change_after_it_loaded(tmp_path, browser):
    # The page is rendered while the source is connecting; the source fails afterwards (a closed port, one
    # attempt), and only the page's own polling can bring that to the DOM and the screenshot.
    spec = parse_source(f"rtsp://127.0.0.1:{free_port()}/live")
    capture = Capture(0, spec, on_event=lambda *a: None, notify=threading.Condition(), max_attempts=1)
    view = HttpView(FrameBoard([spec.name]), [capture], port=0).start()
    rendered = threading.Event()
    snapshot = view.status.snapshot

    def snapshot_then_fail():  # the first snapshot is the page's own render: the source starts after it
        states = snapshot()
        if not rendered.is_set():
            rendered.set()
            capture.start()
        return states
    view.status.snapshot = snapshot_then_fail
    stop = threading.Event()

    def tick_like_the_output_stage():
        while not stop.wait(0.1):
            view.tick()
    ticker = threading.Thread(target=tick_like_the_output_stage)
    ticker.start()
    try:
        image, dom = load(view.url, tmp_path / "page.png", size=(700, 500), budget_ms=3000)
    finally:
        stop.set()
        ticker.join()
        view.close()
        capture.join(10)
    assert rendered.is_set() and capture.state == "failed"
    page = PageStreams(dom)
    assert page.updates >= 2 and page.streams[0]["state"] == "failed"
    assert page.streams[0]["text"].startswith("failed: ") and "Connection refused" in page.streams[0]["text"]
    assert len(regions_of_colour(image, STATE_COLOURS["failed"])) >= 1


@pytest.mark.slow
def test_a_page_loaded_before_a_stream_joined_reloads_to_show_it(tmp_path, browser):
    specs = [parse_source(f"rtsp://127.0.0.1:{free_port()}/{name}") for name in ("door", "yard")]
    captures = [Capture(i, spec, on_event=lambda *a: None, notify=threading.Condition())
                for i, spec in enumerate(specs)]  # not started: both stay connecting
    view = HttpView(FrameBoard([specs[0].name]), captures[:1], port=0).start()
    snapshot = view.status.snapshot

    def snapshot_then_join():  # the first snapshot is the page's own render: the second stream joins after it
        states = snapshot()
        if len(view.board.names) == 1:
            view.add(specs[1].name, captures[1])
        return states
    view.status.snapshot = snapshot_then_join
    try:
        _, dom = load(view.url, tmp_path / "page.png", size=(700, 500), budget_ms=3000)
    finally:
        view.close()
    page = PageStreams(dom)
    assert sorted(page.streams) == [0, 1] and page.updates >= 1
    assert page.streams[1]["caption"].endswith("/yard") and page.streams[1]["state"] == "connecting"


def test_a_stream_that_is_not_running_shows_its_state_over_a_placeholder_or_its_last_frame():
    spec = parse_source(f"rtsp://127.0.0.1:{free_port()}/live")
    capture = Capture(0, spec, on_event=lambda *a: None, notify=threading.Condition())  # not started: connecting
    board = FrameBoard([spec.name])
    overlay = StateOverlay(board, [capture])
    overlay.tick()
    image = board.images[0]
    assert image.shape == (360, 640, 3) and board.versions[0] == 1
    band_rows = (image == STATE_COLOURS["connecting"]).all(axis=2).mean(axis=1) > 0.5
    assert 10 <= band_rows.sum() < 100 and (image[~band_rows] == 24).all()
    overlay.tick()
    assert board.versions[0] == 1  # same text: not redrawn
    # A result that arrives while its source is not running (queued before the source dropped) keeps the banner.
    frame = np.full((120, 160, 3), 200, np.uint8)
    overlay.frame(0, frame)
    shown = board.images[0]
    assert board.versions[0] == 2 and shown.shape == (120, 160, 3) and shown.max() == 255
    assert (shown == 80).all(axis=2).mean() > 0.5  # dimmed around the band
    overlay.tick()
    assert board.versions[0] == 2 and overlay.clean[0] is frame

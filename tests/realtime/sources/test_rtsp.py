"""Real RTSP on loopback: GStreamer's RTSP server (TCP pull, with credentials), FFmpeg's listen mode fed by a
publisher process, a server that dies and comes back, a server that accepts and says nothing, a closed port."""
import json
import socket
import subprocess
import sys
import threading
import time

import pytest

from realtime.pipeline import Pipeline, PipelineConfig
from realtime.sources.readers import parse_source
from tests.realtime.helpers import HERE, Running, count_frames, free_port, write_video

FAST_RETRY = dict(open_timeout=2.0, read_timeout=2.0, stall_timeout=1.0, backoff_base=0.2, backoff_max=1.0)


@pytest.mark.slow
def test_pull_with_credentials_never_leaks_them(tmp_path, engine, gst_server):
    server = gst_server(user="viewer", password="s3cr3t-pw")
    url = server.url("viewer:s3cr3t-pw")
    config = PipelineConfig(specs=[parse_source(url)], out_dir=tmp_path, max_frames=8, progress=False,
                            report_every=0.5, **FAST_RETRY)
    logs = []
    metrics = Pipeline(config, engine, log=logs.append).run()
    assert metrics.frames_out >= 8
    records = [json.loads(line) for line in (tmp_path / "poses.jsonl").read_text().splitlines()]
    records = [r for r in records if r["type"] == "frame"]
    assert len(records) == metrics.frames_out and records[0]["source"] == server.url("***")
    assert count_frames(tmp_path / "annotated.mp4")[:2] == (metrics.frames_out, (320, 240))
    everything = "\n".join(logs) + metrics.summary() + json.dumps(metrics.as_dict()) + \
        (tmp_path / "poses.jsonl").read_text()
    assert "s3cr3t-pw" not in everything and "viewer" not in everything


@pytest.mark.slow
def test_reconnects_after_the_server_dies_and_keeps_writing(tmp_path, engine, gst_server):
    server = gst_server()
    run = Running([parse_source(server.url())], engine, tmp_path, **FAST_RETRY)
    try:
        run.wait_for(lambda: run.frames_out >= 5, 20, "first frames")
        server.stop()
        run.wait_for(lambda: any("-> reconnecting" in line for line in run.logs), 15, "reconnecting")
        before = run.frames_out
        gst_server(port=server.port)
        run.wait_for(lambda: run.frames_out >= before + 5, 30, "frames after the restart")
    finally:
        run.stop()
    states = [e[2] for e in run.pipeline.events]
    assert states[0] == "running" and "reconnecting" in states and states[-2:] == ["running", "ended"]
    assert run.pipeline.captures[0].reconnects >= 1
    n_out = run.frames_out
    frames = [m for m in map(json.loads, (tmp_path / "poses.jsonl").read_text().splitlines()) if m["type"] == "frame"]
    assert len(frames) == n_out and all(m["index"] == 0 and m["stream"] == "stream0" for m in frames)
    n, _, times = count_frames(tmp_path / "annotated.mp4")
    assert n == n_out and times == sorted(times)
    # The outage shows in the MP4's clock as a gap: timestamps are wall time for live sources.
    assert max(b - a for a, b in zip(times, times[1:])) > 0.5


def publish(seconds: int) -> tuple[str, subprocess.Popen]:
    """A loopback address to listen on, and the test publisher pushing to it for ``seconds``."""
    url = f"rtsp://127.0.0.1:{free_port()}/live"
    return url, publish_to(url, seconds)


def publish_to(url: str, seconds: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE / "rtsp_publisher.py"), url, "--seconds", str(seconds)],
                            stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_listen_mode_receives_a_published_stream(tmp_path, engine):
    url, publisher = publish(20)
    try:
        config = PipelineConfig(specs=[parse_source(url, listen=True)], out_dir=tmp_path, max_frames=10,
                                progress=False, open_timeout=10.0, read_timeout=3.0)
        metrics = Pipeline(config, engine, log=lambda line: None).run()
    finally:
        publisher.kill()
        publisher.wait()
    assert metrics.frames_out >= 10
    assert count_frames(tmp_path / "annotated.mp4")[:2] == (metrics.frames_out, (320, 240))


@pytest.mark.slow
def test_a_publisher_that_leaves_is_said_so_and_awaited_again(tmp_path, engine):
    """The listener says once that its publisher left, then listens again and again, quietly (no backoff, no line
    per attempt: waiting for a publisher is not a failure), until one comes back."""
    url, publisher = publish(4)
    run = Running([parse_source(url, listen=True)], engine, None, **{**FAST_RETRY, "open_timeout": 1.0},
                  max_attempts=0)
    capture = run.pipeline.captures[0]
    try:
        run.wait_for(lambda: run.frames_out >= 1, 40, "frames from the publisher")
        publisher.wait(30)
        run.wait_for(lambda: any("running -> reconnecting" in line for line in run.logs), 30, "the publisher left")
        run.wait_for(lambda: capture.attempts >= 3, 30, "listening again")
        assert capture.state == "connecting" and capture.error.endswith("no publisher pushed a stream within 1s")
        publisher = publish_to(url, 3)
        run.wait_for(lambda: capture.state == "running", 40, "the publisher back")
    finally:
        run.stop()
        publisher.kill()
        publisher.wait()
    left = [line for line in run.logs if "running -> reconnecting" in line]
    assert "(stream ended: the publisher left;" in left[0]
    assert not any("no publisher pushed" in line for line in run.logs)
    assert not any("Immediate exit" in line for line in run.logs)


@pytest.mark.slow
def test_silent_server_times_out_and_does_not_stall_a_file(tmp_path, engine):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []
    stop = threading.Event()

    def accept_and_say_nothing():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept_and_say_nothing, daemon=True).start()
    silent = parse_source(f"rtsp://127.0.0.1:{listener.getsockname()[1]}/live")
    clip = parse_source(str(write_video(tmp_path / "clip.mp4", frames=10)))
    start = time.monotonic()
    try:
        config = PipelineConfig(specs=[silent, clip], out_dir=tmp_path / "out", progress=False,
                                max_attempts=2, **{**FAST_RETRY, "open_timeout": 1.0, "read_timeout": 1.0})
        logs = []
        pipeline = Pipeline(config, engine, log=logs.append)
        metrics = pipeline.run()
    finally:
        stop.set()
        listener.close()
        for conn in accepted:
            conn.close()
    assert time.monotonic() - start < 20
    assert accepted, "the pipeline never connected to the silent server"
    assert metrics.frames_out == 10 and pipeline.captures[0].state == "failed"
    failure = [line for line in logs if "source 0" in line and "-> failed" in line]
    assert len(failure) == 1 and "gave up after 2" in failure[0]


def test_closed_port_fails_with_one_line(tmp_path, engine):
    spec = parse_source(f"rtsp://127.0.0.1:{free_port()}/live")
    config = PipelineConfig(specs=[spec], out_dir=None, progress=False, max_attempts=2, **FAST_RETRY)
    logs = []
    pipeline = Pipeline(config, engine, log=logs.append)
    pipeline.run()
    capture = pipeline.captures[0]
    assert capture.state == "failed" and "cannot open" in capture.error and "\n" not in capture.error
    assert (capture.attempts, capture.reconnects) == (2, 0)  # never reached: it tried twice, it never reconnected


def test_http_source_through_pyav(tmp_path, engine):
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    write_video(tmp_path / "clip.mp4", frames=30)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.mp4"
        config = PipelineConfig(specs=[parse_source(url)], out_dir=tmp_path / "out", max_frames=3, progress=False,
                                **FAST_RETRY)
        metrics = Pipeline(config, engine, log=lambda line: None).run()
    finally:
        server.shutdown()
        server.server_close()
    assert metrics.frames_out >= 3 and metrics.totals()["frames_in"] >= 3


def test_an_answer_that_is_not_video_says_so_at_once_and_a_foreign_listen_address_is_permanent(tmp_path):
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from realtime.sources.readers import PyAVReader, SourceError

    (tmp_path / "a.txt").write_text("not a video\n")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        reader = PyAVReader(parse_source(f"http://127.0.0.1:{server.server_address[1]}/a.txt"), open_timeout=5.0)
        with pytest.raises(SourceError, match="the server's answer is not a video stream$"):
            reader.open()
    finally:
        server.shutdown()
        server.server_close()
    listener = PyAVReader(parse_source("rtsp://192.0.2.1:8554/live", listen=True), open_timeout=2.0)
    with pytest.raises(SourceError, match="192.0.2.1 is not an address of this machine") as err:
        listener.open()
    assert err.value.permanent

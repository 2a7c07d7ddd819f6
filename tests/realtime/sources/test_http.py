"""Video and images over HTTP on loopback (Python's own HTTP server, and an MJPEG camera): a URL ending in a video
suffix is a file read over the network (every frame, in order; a server that stops sending is one error line, never a
silent end), one ending in an image suffix is one image, any other URL a live stream (a file behind it plays like
one, with a warning)."""
import functools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from realtime.pipeline import Pipeline, PipelineConfig
from realtime.sources.readers import PyAVReader, SourceError, make_reader, parse_source
from tests.realtime.helpers import view_running, write_video


def faststart(tmp_path: Path, name: str, frames: int = 30) -> Path:
    """An MP4 whose index comes first, as files meant for the web are written (Python's server has no ranges)."""
    import av

    plain = write_video(tmp_path / "plain.mp4", frames=frames)
    out_path = tmp_path / name
    with av.open(str(plain)) as inp, av.open(str(out_path), "w", format="mp4",
                                            options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return out_path


@pytest.fixture
def serve():
    """``serve(handler_class) -> base URL``; every server is stopped at the end."""
    servers = []

    def start(handler) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def folder_handler(folder: Path):
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    return handler


def read_all(reader) -> int:
    reader.open()
    try:
        frames = 0
        while reader.read() is not None:
            frames += 1
        return frames
    finally:
        reader.close()


def test_a_video_url_runs_as_a_file_every_frame_in_order(tmp_path, engine, serve):
    faststart(tmp_path, "clip.mp4")
    url = serve(folder_handler(tmp_path)) + "/clip.mp4"
    out = tmp_path / "run"
    metrics = Pipeline(PipelineConfig(specs=[parse_source(url)], out_dir=out, progress=False, save_mp4=False),
                       engine, log=lambda line: None).run()
    assert metrics.frames_out == 30 and metrics.totals()["drops"] == 0
    frames = [json.loads(line) for line in (out / "poses.jsonl").read_text().splitlines()]
    frames = [f for f in frames if f["type"] == "frame"]
    assert [f["seq"] for f in frames] == list(range(30)) and frames[0]["source"] == url


def test_any_other_http_url_is_a_stream_and_a_file_behind_it_gives_its_frames_and_a_warning(tmp_path, serve):
    """Streams are opened with nobuffer (what is read while probing is dropped: lower latency); for a file that would
    be its first frames, and a short file all of them: it is opened again without."""
    faststart(tmp_path, "clip")
    warnings = []
    spec = parse_source(serve(folder_handler(tmp_path)) + "/clip")
    assert spec.kind == "stream"
    assert read_all(make_reader(spec, warn=warnings.append)) == 30
    assert len(warnings) == 1 and "is a file served over the network" in warnings[0]
    assert "a URL ending in a video suffix (.mp4, " in warnings[0]


def test_a_file_whose_server_stops_sending_fails_in_one_line_not_a_silent_end(tmp_path, serve):
    data = faststart(tmp_path, "clip.mp4", frames=60).read_bytes()

    class Stalls(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            time.sleep(4.0)

        def log_message(self, *args):
            pass

    reader = PyAVReader(parse_source(serve(Stalls) + "/clip.mp4"), open_timeout=2.0, read_timeout=1.0)
    with pytest.raises(SourceError) as err:
        read_all(reader)
    assert str(err.value).endswith("/clip.mp4: no data within 1s (the server stopped sending)")


def test_a_missing_video_url_fails_at_once_in_one_line(tmp_path, serve):
    reader = make_reader(parse_source(serve(folder_handler(tmp_path)) + "/nope.mp4"))
    with pytest.raises(SourceError, match="refused by the server") as err:
        reader.open()
    assert err.value.permanent


def test_an_mjpeg_camera_over_http_is_read_as_a_live_stream(tmp_path, engine):
    """Many IP cameras send ``multipart/x-mixed-replace`` JPEGs over HTTP; the live view of another pipeline is
    such a camera here (the clip looped and paced)."""
    from realtime.pipeline import PipelineConfig

    clip = write_video(tmp_path / "clip.mp4", frames=20, size=(160, 120), fps=20)
    config = PipelineConfig(specs=[parse_source(str(clip))], out_dir=None, http_port=0, pace=True, loop=True,
                            progress=False)
    with view_running(config, engine) as camera:
        spec = parse_source(camera.view_url + "stream/0.mjpg")
        assert spec.kind == "stream" and spec.live
        reader = make_reader(spec, open_timeout=5.0, read_timeout=5.0)
        reader.open()
        try:
            frames = [reader.read() for _ in range(10)]
        finally:
            reader.close()
    assert all(f is not None and f[0].shape == (120, 160, 3) for f in frames)


def test_an_image_url_is_one_image_named_after_the_url_with_its_credentials_kept_out(tmp_path, engine, serve):
    """As in other pose tools' predict on an image URL: one annotated image under the URL's file name, a JSONL line
    naming the URL; the URL's user and password go to the server as basic authentication and nowhere else."""
    import base64

    import cv2

    from realtime.pipeline import Pipeline, PipelineConfig
    from tests.realtime.helpers import pattern

    ok, jpeg = cv2.imencode(".jpg", pattern(0, 90, 160))
    expected = "Basic " + base64.b64encode(b"viewer:s3cr3t-pw").decode()

    class Guarded(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.headers.get("Authorization") != expected:
                self.send_error(401)
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(jpeg)))
            self.end_headers()
            self.wfile.write(jpeg.tobytes())

        def log_message(self, *args):
            pass

    base = serve(Guarded)
    url = base.replace("http://", "http://viewer:s3cr3t-pw@") + "/people/bus.jpg?size=large"
    spec = parse_source(url)
    assert (spec.kind, spec.live) == ("images", False)
    out = tmp_path / "run"
    logs = []
    metrics = Pipeline(PipelineConfig(specs=[spec], out_dir=out, progress=False), engine, log=logs.append).run()
    assert metrics.frames_out == 1
    assert sorted(p.name for p in out.iterdir()) == ["bus.jpg", "poses.jsonl"]
    assert cv2.imread(str(out / "bus.jpg")).shape == (90, 160, 3)
    record = json.loads((out / "poses.jsonl").read_text().splitlines()[0])
    assert record["source"] == base.replace("http://", "http://***@") + "/people/bus.jpg?size=large"
    everything = "\n".join(logs) + metrics.summary() + (out / "poses.jsonl").read_text()
    assert "s3cr3t-pw" not in everything and "viewer" not in everything
    unauthorized = make_reader(parse_source(base + "/people/bus.jpg"))
    unauthorized.open()
    with pytest.raises(SourceError, match=r"refused by the server \(HTTP 401") as err:
        unauthorized.read()
    assert err.value.permanent


def test_an_image_url_that_is_missing_or_not_an_image_is_one_line(tmp_path, serve):
    (tmp_path / "notes.jpg").write_text("not an image")
    base = serve(folder_handler(tmp_path))
    for name, problem in [("gone.jpg", "refused by the server (HTTP 404"), ("notes.jpg", "not a readable image")]:
        reader = make_reader(parse_source(f"{base}/{name}"))
        reader.open()
        with pytest.raises(SourceError) as err:
            reader.read()
        assert problem in str(err.value) and err.value.permanent and "\n" not in str(err.value)

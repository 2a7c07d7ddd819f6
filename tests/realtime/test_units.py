"""Small stages on their own: redaction, source parsing, One-Euro smoothing, device letterbox, metrics."""
import numpy as np
import pytest
import torch

from models.preprocess import batch_canvas, letterbox
from realtime.engine.preprocess import DevicePreprocess
from realtime.sources.redact import redact
from realtime.post.smoothing import OneEuro
from realtime.sources.readers import SourceError, parse_source


def test_redact_masks_userinfo_and_secret_query_values():
    text = "open rtsp://admin:hunter2@10.0.0.5:554/stream1?token=abc123&channel=2 failed"
    out = redact(text)
    assert "hunter2" not in out and "admin" not in out and "abc123" not in out
    assert out == "open rtsp://***@10.0.0.5:554/stream1?token=***&channel=2 failed"
    assert redact("rtsp://cam.local/live") == "rtsp://cam.local/live"


@pytest.mark.parametrize("text, problem", [
    ("rtsp://host:99999/live", "malformed URL"),
    ("rtsp://host:port/live", "malformed URL"),
    ("gopher://host/x", "unsupported URL scheme"),
    ("rtsp:///live", "no host"),
    ("/no/such/file.mp4", "no such file"),
])
def test_parse_source_rejects_bad_input_in_one_permanent_line(text, problem):
    with pytest.raises(SourceError) as err:
        parse_source(text)
    assert problem in str(err.value) and err.value.permanent and "\n" not in str(err.value)


def test_parse_source_kinds(tmp_path):
    assert parse_source("0").kind == "camera" and parse_source("0").live
    spec = parse_source("rtsp://u:p@127.0.0.1:8554/live")
    assert spec.kind == "stream" and spec.live and spec.name == "rtsp://***@127.0.0.1:8554/live"
    assert parse_source(str(tmp_path)).kind == "images"
    (tmp_path / "a.mp4").write_bytes(b"")
    assert not parse_source(str(tmp_path / "a.mp4")).live


@pytest.mark.parametrize("url, kind", [
    ("https://example.com/clips/walk.mp4", "file"),
    ("http://u:p@10.0.0.5/a/b.MKV?sig=1", "file"),
    ("https://example.com/images/bus.jpg", "images"),
    ("http://10.0.0.5/video.mjpg", "stream"),  # an MJPEG camera
    ("https://example.com/live/index.m3u8", "stream"),
    ("http://10.0.0.5:8080/video", "stream"),
    ("rtsp://10.0.0.5/cam.mp4", "stream"),  # only HTTP names files
])
def test_an_http_url_ending_in_a_video_suffix_is_a_file_read_over_the_network(url, kind):
    spec = parse_source(url)
    assert (spec.kind, spec.live, spec.remote) == (kind, kind == "stream", True)


def test_the_metrics_line_has_a_dash_before_the_first_result_and_the_summary_counts_in_words():
    from realtime.metrics import Metrics

    metrics = Metrics()
    assert "nan" not in metrics.line() and "latency p50      - ms p95      - ms" in metrics.line()
    metrics.add_result({"forward": 5.0}, 12.0)
    assert "latency p50   12.0 ms" in metrics.line() and "forward p95    5.0 ms" in metrics.line()
    assert metrics.summary().startswith("summary: 1 frame out of 0 in")


def test_one_euro_reduces_jitter_and_follows_motion():
    rng = np.random.default_rng(0)
    f = OneEuro(min_cutoff=1.0, beta=0.02)
    still = [f(np.array([100.0 + rng.normal(0, 2.0)]), t / 30)[0] for t in range(90)]
    assert np.std(still[30:]) < 0.5 * 2.0  # jitter at least halved on a still point
    g = OneEuro(min_cutoff=1.0, beta=0.02)
    moving = [g(np.array([10.0 * t]), t / 30)[0] for t in range(60)]  # 300 px/s ramp
    assert abs(moving[-1] - 590.0) < 15.0  # lag stays small for fast motion


def test_one_euro_ignores_a_repeated_timestamp():
    f = OneEuro()
    f(np.array([0.0]), 1.0)
    assert f(np.array([50.0]), 1.0)[0] == 0.0


@pytest.mark.parametrize("shape", [(359, 641), (480, 640), (64, 300), (300, 64)])
@pytest.mark.parametrize("rect", [True, False])
def test_device_letterbox_matches_opencv_path(shape, rect):
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    smooth = [127 + 100 * np.sin(xx / 37.0), 127 + 100 * np.cos(yy / 23.0), 255 * xx / shape[1]]
    image = np.ascontiguousarray(np.stack(smooth, -1).clip(0, 255).astype(np.uint8))
    pre = DevicePreprocess(128, torch.device("cpu"), rect=rect)
    cv_batch, cv_boxes = pre([image])
    t_batch, t_boxes = pre.torch_letterbox([torch.from_numpy(image)])
    assert cv_boxes == t_boxes and cv_batch.shape == t_batch.shape
    canvas, box = letterbox(image, 128, batch_canvas([image.shape], 128, rect))
    assert box == cv_boxes[0]
    # OpenCV's INTER_AREA and torch's antialiased bilinear agree on smooth content to about one gray level
    # (1 normalised unit is about 57 gray levels); the padding is identical.
    diff = (cv_batch - t_batch).abs()
    assert diff.mean() < 0.02 and diff.max() < 0.2


def test_cpu_preprocess_equals_the_predictors_reference():
    from models.preprocess import normalize

    image = (np.random.default_rng(0).random((359, 641, 3)) * 255).astype(np.uint8)
    batch, boxes = DevicePreprocess(128, torch.device("cpu"))([image, image[:100]])
    assert batch.shape == (2, 3, 96, 128)  # 128x72 and 128x20 content: the larger rectangle, 96 rows
    for i, im in enumerate([image, image[:100]]):
        canvas, box = letterbox(im, 128, (128, 96))
        assert boxes[i] == box
        torch.testing.assert_close(batch[i], normalize(torch.from_numpy(canvas))[0], atol=1e-5, rtol=0)


def test_cpu_threads_leave_a_core_to_the_pipeline_only_for_eager_torch():
    import os

    from realtime.engine.model import cpu_threads

    cores = len(os.sched_getaffinity(0))
    assert cpu_threads(None, exported=True) == cores
    assert cpu_threads(None) == max(1, cores - 1)
    assert cpu_threads(3) == cpu_threads(3, exported=True) == 3

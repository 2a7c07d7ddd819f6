"""The front end (realtime.sources.frontend): frames shrunk while decoding give the poses of today's path, map back to
full-frame pixels exactly, and are used only when no output draws on the full frame."""
from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from models.preprocess import Letterbox, letterbox
from realtime.cameras import StreamOptions
from realtime import BUNDLED_CLIP
from realtime.frames import Frame
from realtime.sources.frontend import (ShrinkTarget, decoder_options, decoder_threads, needs_full_frame, place, shrink, shrink_targets)
from realtime.pipeline import Pipeline, PipelineConfig
from realtime.engine.preprocess import DevicePreprocess
from realtime.sources.readers import PyAVReader, parse_source
from tests.realtime.helpers import set_rotation, write_video

BACKGROUND, SQUARE = 20, 235


def square_image(h: int, w: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """A dark frame with one bright square; ``box`` = (x0, y0, x1, y1), end exclusive."""
    image = np.full((h, w, 3), BACKGROUND, np.uint8)
    x0, y0, x1, y1 = box
    image[y0:y1, x0:x1] = SQUARE
    return image


def centre_in_image(canvas: np.ndarray, box: Letterbox, full: tuple[int, int]) -> np.ndarray:
    """The bright square's centre found in the canvas (brightness-weighted, content area only), mapped back to
    full-frame pixels with the Letterbox."""
    new_w, new_h = box.content_size(*full)
    px, py = int(box.pad_x), int(box.pad_y)
    weight = canvas[py:py + new_h, px:px + new_w].astype(np.float64).mean(-1) - BACKGROUND
    weight = np.clip(weight, 0, None)
    ys, xs = np.mgrid[py:py + new_h, px:px + new_w]
    centre = np.array([(xs * weight).sum(), (ys * weight).sum()]) / weight.sum()
    return box.to_image(centre[None].astype(np.float32))[0]


def frames_of(path: Path, target: ShrinkTarget | None, count: int) -> list[Frame]:
    reader = PyAVReader(parse_source(str(path)), shrink=target)
    reader.open()
    try:
        out = []
        while len(out) < count and (item := reader.read()) is not None:
            out.append(Frame(0, len(out), item[1], 0.0, 0.0, item[0], full_size=reader.full_size))
        return out
    finally:
        reader.close()


@pytest.mark.parametrize("size", [(1280, 720), (1279, 719), (641, 359), (333, 500), (200, 120)])
def test_a_bright_square_maps_back_to_its_place_in_the_full_frame(size):
    w, h = size
    square = (w // 3, h // 5, w // 3 + max(8, w // 9), h // 5 + max(8, h // 7))
    true_centre = np.array([(square[0] + square[2] - 1) / 2, (square[1] + square[3] - 1) / 2])
    rgb = square_image(h, w, square)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv444p")
    content, full = shrink(frame, ShrinkTarget(320))
    assert full == (h, w)
    canvas, box = place(content, full, 320, (320, 320))
    today_canvas, today_box = letterbox(rgb, 320, (320, 320))
    assert box == today_box
    # area filtering keeps the centre of mass; a canvas pixel is 1/scale frame pixels
    tolerance = 0.1 / box.scale
    np.testing.assert_allclose(centre_in_image(canvas, box, full), true_centre, atol=tolerance)
    np.testing.assert_allclose(centre_in_image(today_canvas, today_box, full), true_centre, atol=tolerance)


def test_a_720p_h264_file_read_shrunk_maps_the_square_back_like_todays_path(tmp_path):
    square = (500, 300, 600, 380)
    clip = write_video(tmp_path / "square.mp4", frames=3, size=(1280, 720),
                       image_fn=lambda i, h, w: square_image(h, w, square))
    (whole,), (small,) = frames_of(clip, None, 1), frames_of(clip, ShrinkTarget(320), 1)
    assert small.full_size == (720, 1280) and small.image.shape == (180, 320, 3)
    assert (small.height, small.width) == (whole.height, whole.width) == (720, 1280)
    pre = DevicePreprocess(320, torch.device("cpu"), uint8=True)
    canvases, boxes = pre([whole.image, small.image], full_sizes=[None, small.full_size])
    assert boxes[0] == boxes[1] and tuple(canvases.shape) == (2, 192, 320, 3)
    centres = [centre_in_image(c.numpy(), b, (720, 1280)) for c, b in zip(canvases, boxes)]
    np.testing.assert_allclose(centres[1], [549.5, 339.5], atol=0.1 / boxes[1].scale)
    np.testing.assert_allclose(centres[1], centres[0], atol=0.05 / boxes[1].scale)
    # the letterboxed pixels themselves: libswscale's area filter against OpenCV's, on the same decoded frame
    assert np.abs(canvases[0].numpy().astype(int) - canvases[1].numpy()).mean() < 1.0


def test_a_rotated_video_is_shrunk_upright_with_the_full_frames_upright_size(tmp_path):
    square = (40, 20, 80, 50)
    clip = set_rotation(write_video(tmp_path / "turned.mp4", frames=2, size=(320, 240),
                                    image_fn=lambda i, h, w: square_image(h, w, square)), 90)
    (whole,), (small,) = frames_of(clip, None, 1), frames_of(clip, ShrinkTarget(160), 1)
    assert whole.image.shape == (320, 240, 3) and small.full_size == (320, 240)
    assert small.image.shape == (160, 120, 3)
    canvas, box = place(small.image, small.full_size, 160, (128, 160))
    expected = letterbox(whole.image, 160, (128, 160))[1]
    assert box == expected
    bright = whole.image.mean(-1) > 128
    ys, xs = np.nonzero(bright)
    np.testing.assert_allclose(centre_in_image(canvas, box, small.full_size), [xs.mean(), ys.mean()],
                               atol=0.1 / box.scale)


@pytest.fixture(scope="module")
def scene_720p(tmp_path_factory) -> Path:
    """16 frames of the project's synthetic walking scene at 1280x720 (H.264): shrunk 4x, decoded without deblocking."""
    from models.data import synth
    from models.data.synth_video import write_clip

    scene = synth.SceneConfig(width=1280, height=720)
    return write_clip(tmp_path_factory.mktemp("scene"), "scene", 16, 30, 0, scene)[0]


@pytest.mark.parametrize("clip", ["bundled", "720p"])
def test_poses_from_shrunk_frames_match_todays_path_on_a_real_video(tiny_checkpoint, scene_720p, clip):
    """Tolerance: the keypoints of every pose scored above 0.3 today, against the nearest pose of the fast path,
    mean distance per pose in canvas pixels: median <= 1, 95th percentile <= 5. That is the spread between two
    resamplers of the project itself: the GPU path's (bilinear + antialias) against OpenCV's measured 0.7 / 3.6
    canvas pixels on the bundled clip; the fast path 0.6 / 3.0 there, 0.6 / 4.0 on a 720p scene (no deblocking)."""
    import models
    from realtime.engine.stage import Engine

    path = BUNDLED_CLIP if clip == "bundled" else scene_720p
    torch.set_num_threads(1)
    predictor = models.Predictor(models.load_checkpoint(tiny_checkpoint), device="cpu", input_size=320)
    engine = Engine(predictor, 320, "cpu")
    today, fast = frames_of(path, None, 16), frames_of(path, ShrinkTarget(320), 16)
    assert len(today) == len(fast) == 16
    distances, people = [], 0
    for a, b in zip(today, fast):
        ra, rb = engine.infer([a])[0], engine.infer([b])[0]
        ka, kb = ra.poses.keypoints[..., :2], rb.poses.keypoints[..., :2]
        scale = Letterbox.fit(a.height, a.width, 320).scale
        for i in np.flatnonzero(ra.poses.scores > 0.3):
            people += 1
            assert len(kb), "the fast path lost every pose of a frame"
            distances.append(np.linalg.norm(kb - ka[i][None], axis=-1).mean(-1).min() * scale)
    if people < 10:
        pytest.skip("the checkpoint finds too few people on the clip (untrained fallback)")
    assert np.median(distances) <= 1.0 and np.percentile(distances, 95) <= 5.0, (np.median(distances),
                                                                                 np.percentile(distances, 95))


def config(**kwargs) -> PipelineConfig:
    return PipelineConfig(specs=[parse_source(str(BUNDLED_CLIP))], progress=False, **kwargs)


@pytest.mark.parametrize("outputs, shrunk", [
    ({}, True),
    ({"out": True, "save_mp4": False}, True),           # JSONL only
    ({"out": True}, False),                             # MP4 (and JSONL)
    ({"show": True}, False),
    ({"http_port": 0}, False),
])
def test_the_fast_path_is_chosen_only_when_no_output_draws_on_the_full_frame(tmp_path, engine, outputs, shrunk):
    out = outputs.pop("out", False)
    cfg = config(out_dir=tmp_path if out else None, **outputs)
    assert needs_full_frame(cfg, 0) is not shrunk
    targets = shrink_targets(cfg, engine)
    assert (targets[0] is not None) is shrunk
    if shrunk:
        assert targets[0] == ShrinkTarget(engine.preprocess.size, engine.preprocess.resize)


def test_per_stream_recording_and_other_source_kinds_choose_their_own_path(tmp_path, engine):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((10, 10, 3), np.uint8))
    specs = [parse_source(str(BUNDLED_CLIP)), parse_source(str(BUNDLED_CLIP)), parse_source(str(image)),
             parse_source("rtsp://127.0.0.1:1/live"), parse_source("0")]
    cfg = PipelineConfig(specs=specs, out_dir=tmp_path, per_stream=[StreamOptions(record=True),
                         StreamOptions(record=False), StreamOptions(record=False), StreamOptions(record=False),
                         StreamOptions(record=False)], progress=False)
    assert [t is not None for t in shrink_targets(cfg, engine)] == [False, True, False, True, False]


def test_a_pipeline_without_picture_outputs_shrinks_its_frames_and_speaks_of_the_full_frame(tmp_path, engine):
    clip = write_video(tmp_path / "clip.mp4", frames=6, size=(640, 360))
    runs = {}
    for name, mp4 in (("fast", False), ("today", True)):
        pipeline = Pipeline(PipelineConfig(specs=[parse_source(str(clip))], out_dir=tmp_path / name, save_mp4=mp4,
                                           progress=False, track=False), engine, log=lambda line: None)
        seen = []
        real_prepare = engine.prepare
        engine.prepare = lambda frames: (seen.extend(frames), real_prepare(frames))[1]
        try:
            pipeline.run()
        finally:
            del engine.prepare
        runs[name] = seen
    assert len(runs["fast"]) == len(runs["today"]) == 6
    assert all(f.full_size == (360, 640) and f.image.shape == (72, 128, 3) for f in runs["fast"])
    assert all(f.full_size is None and f.image.shape == (360, 640, 3) for f in runs["today"])
    assert (tmp_path / "today" / "annotated.mp4").is_file() and not (tmp_path / "fast" / "annotated.mp4").exists()
    for name in runs:  # messages speak of the decoded frame, whichever image travelled
        records = [json.loads(line) for line in (tmp_path / name / "poses.jsonl").read_text().splitlines()]
        frames = [r for r in records if r["type"] == "frame"]
        assert len(frames) == 6 and all((r["width"], r["height"]) == (640, 360) for r in frames)


def test_a_short_side_batch_of_two_shapes_resizes_a_shrunk_frame_to_the_batchs_scale():
    """resize="short" (DEKR): the long side of a batch follows its widest frame, so a frame shrunk alone is
    resized again to the batch's scale; its Letterbox is the one today's path gives."""
    pre = DevicePreprocess(64, torch.device("cpu"), resize="short", uint8=True)
    wide, square = np.full((90, 160, 3), 60, np.uint8), np.full((100, 100, 3), 60, np.uint8)
    target = ShrinkTarget(64, "short")
    frame = av.VideoFrame.from_ndarray(square, format="rgb24").reformat(format="yuv420p")
    small, full = shrink(frame, target)
    assert small.shape == (64, 64, 3)
    _, boxes = pre([wide, small], full_sizes=[None, full])
    _, expected = pre([wide, square])
    assert boxes == expected


def test_decoder_threads_grow_past_1080p():
    assert decoder_threads(640, 360) == decoder_threads(1280, 720) == decoder_threads(1920, 1080) == 1
    assert decoder_threads(3840, 2160) == 2


def test_deblocking_is_skipped_only_for_frames_shrunk_three_times_or_more():
    target = ShrinkTarget(320)
    assert decoder_options(1280, 720, target) == decoder_options(1920, 1080, target) == {"skip_loop_filter": "all"}
    assert decoder_options(640, 360, target) == decoder_options(1280, 720, None) == {}
    assert decoder_options(720, 1280, target) == {"skip_loop_filter": "all"}  # portrait
    assert decoder_options(0, 0, target) == {}  # size not known yet

"""Readers and capture threads on real files written with PyAV: odd sizes, grayscale, 10-bit, rotation,
resolution changes, and broken files (zero bytes, truncated, not a video)."""
import threading
import time

import numpy as np
import pytest

from realtime.sources.capture import Capture
from realtime.sources.readers import PyAVReader, SourceError, parse_source
from tests.realtime.helpers import set_rotation, write_video


def read_all(path):
    reader = PyAVReader(parse_source(str(path)))
    reader.open()
    frames = []
    try:
        while (item := reader.read()) is not None:
            frames.append(item)
    finally:
        reader.close()
    return frames


def test_odd_size_file_keeps_its_size(tmp_path):
    # libx264 with yuv444p accepts odd sizes; the reader must hand them over as they are.
    frames = read_all(write_video(tmp_path / "odd.mp4", frames=6, size=(641, 359), pix_fmt="yuv444p"))
    assert len(frames) == 6
    assert all(im.shape == (359, 641, 3) and im.dtype == np.uint8 for im, _ in frames)
    assert [round(pts, 3) for _, pts in frames] == [round(i / 10, 3) for i in range(6)]


def test_grayscale_and_10bit_come_out_as_rgb8(tmp_path):
    gray = read_all(write_video(tmp_path / "gray.mkv", frames=4, size=(96, 64), pix_fmt="gray", codec="ffv1"))
    assert len(gray) == 4 and gray[0][0].shape == (64, 96, 3)
    assert np.array_equal(gray[0][0][..., 0], gray[0][0][..., 2])  # gray: equal channels
    deep = read_all(write_video(tmp_path / "ten.mp4", frames=4, size=(96, 64), pix_fmt="yuv420p10le"))
    assert len(deep) == 4 and deep[0][0].dtype == np.uint8 and deep[0][0].shape == (64, 96, 3)
    assert deep[0][0][32, 48].tolist() != [0, 0, 0]  # the content survived the conversion


def test_rotated_video_is_turned_upright(tmp_path):
    path = write_video(tmp_path / "rot.mp4", frames=3, size=(96, 64), pix_fmt="yuv444p",
                       image_fn=lambda i, h, w: _corner_marker(h, w))
    plain = read_all(path)[0][0]
    turned = read_all(set_rotation(path, 90))[0][0]
    assert plain.shape == (64, 96, 3) and turned.shape == (96, 64, 3)
    assert plain[:16, :16].mean() > 200 and turned[:16, -16:].mean() > 200  # top-left -> top-right (clockwise)
    assert turned[:16, :16].mean() < 60


def _corner_marker(h, w):
    image = np.zeros((h, w, 3), np.uint8)
    image[: h // 3, : w // 3] = 255
    return image


def test_resolution_change_mid_stream(tmp_path):
    path = write_video(tmp_path / "change.ts", sizes=[(5, (160, 120)), (5, (96, 64))])
    shapes = [im.shape[:2] for im, _ in read_all(path)]
    assert shapes == [(120, 160)] * 5 + [(64, 96)] * 5


def test_truncated_file_delivers_what_it_holds(tmp_path):
    path = write_video(tmp_path / "full.ts", sizes=[(30, (160, 120))])
    data = path.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: len(data) // 2])
    frames = read_all(cut)
    assert 0 < len(frames) < 30


@pytest.mark.parametrize("content, problem", [(b"", "not a video"), (b"hello, this is text\n" * 50, "not a video")])
def test_broken_files_fail_permanently_in_one_line(tmp_path, content, problem):
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    with pytest.raises(SourceError) as err:
        read_all(path)
    assert problem in str(err.value) and err.value.permanent and "\n" not in str(err.value)


def run_capture(spec, **kwargs):
    events = []
    cond = threading.Condition()
    cap = Capture(0, spec, on_event=lambda *e: events.append(e[1:3]), notify=cond, **kwargs)
    cap.start()
    frames = []
    deadline = time.monotonic() + 20
    while not cap.finished and time.monotonic() < deadline:
        frame = cap.take()
        if frame is None:
            time.sleep(0.005)
        else:
            frames.append(frame)
    cap.stop()
    cap.join(5)
    return cap, frames, events


def test_file_capture_delivers_every_frame_in_order_then_ends(tmp_path):
    cap, frames, events = run_capture(parse_source(str(write_video(tmp_path / "a.mp4", frames=25))), fifo_size=2)
    assert [f.seq for f in frames] == list(range(25)) and cap.drops == 0
    assert events == [("connecting", "running"), ("running", "ended")]
    assert all(f.wall_time > 0 and f.recv_time > 0 and f.pts is not None for f in frames)


def test_paced_file_capture_follows_the_frame_rate(tmp_path):
    path = write_video(tmp_path / "a.mp4", frames=11, fps=20)
    start = time.monotonic()
    _, frames, _ = run_capture(parse_source(str(path)), pace=True)
    assert len(frames) == 11 and time.monotonic() - start >= 0.45  # 10 intervals of 50 ms


def test_non_video_file_capture_fails_without_retrying(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("not a video")
    cap, frames, events = run_capture(parse_source(str(path)))
    assert frames == [] and cap.state == "failed" and events == [("connecting", "failed")]
    assert "not a video" in cap.error


def test_looped_file_as_live_source_drops_old_frames_and_keeps_a_growing_clock(tmp_path):
    path = write_video(tmp_path / "a.mp4", frames=5, fps=50)
    events = []
    cap = Capture(0, parse_source(str(path)), on_event=lambda *e: events.append(e), notify=threading.Condition(),
                  loop=True, as_live=True)
    cap.start()
    time.sleep(0.5)  # about 25 frames at 50 fps, nobody taking them
    frame = cap.take()
    cap.stop()
    cap.join(5)
    assert cap.live and cap.frames_in >= 15 and cap.drops >= cap.frames_in - 2
    assert frame.seq >= 10 and frame.pts == pytest.approx(frame.seq / 50, abs=1e-3)  # clock runs on


def test_running_time_counts_only_the_time_in_state_running(monkeypatch):
    """``running_seconds`` adds up the spans in ``running``; connecting, stalled and reconnecting do not count."""
    import realtime.sources.capture as capture_module

    clock = [100.0]
    monkeypatch.setattr(capture_module.time, "perf_counter", lambda: clock[0])
    cap = Capture(0, parse_source("rtsp://127.0.0.1:9/live"), on_event=lambda *e: None, notify=threading.Condition())
    for state, seconds in [("connecting", 2.0), ("running", 5.0), ("stalled", 1.0), ("reconnecting", 3.0),
                           ("running", 4.0)]:
        cap._set_state(state)
        clock[0] += seconds
    assert cap.running_seconds() == 9.0
    cap._set_state("ended")
    clock[0] += 10.0
    assert cap.running_seconds() == 9.0

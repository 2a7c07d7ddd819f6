"""The first frame's size, read before the model loads so ``--backend auto`` measures at its canvas: files and
images as the run will see them, live sources not opened twice."""
from __future__ import annotations

import cv2
import numpy as np

from realtime import BUNDLED_CLIP
from realtime.sources.first_frame import first_frame_size
from realtime.sources.readers import SourceSpec, parse_source


def test_a_video_file_gives_its_first_frames_size():
    assert first_frame_size(parse_source(str(BUNDLED_CLIP))) == (360, 640)


def test_an_image_folder_gives_its_first_readable_images_size(tmp_path):
    (tmp_path / "a_broken.jpg").write_bytes(b"not an image")
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((480, 270, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "c.png"), np.zeros((100, 100, 3), np.uint8))
    assert first_frame_size(parse_source(str(tmp_path))) == (480, 270)


def test_live_sources_are_not_opened_and_unreadable_files_give_none(tmp_path):
    assert first_frame_size(SourceSpec("rtsp://127.0.0.1:9/none", "stream")) is None
    assert first_frame_size(SourceSpec("0", "camera")) is None
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\0" * 100)
    assert first_frame_size(parse_source(str(bad))) is None

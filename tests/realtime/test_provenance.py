"""Honest live use: a checkpoint trained only on synthetic figures says so, in one line at start and in a caption on
the frames, whenever it runs on something other than the bundled clip."""
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from models import DEFAULT_CHECKPOINT, build_model, save_checkpoint
from models.poses import Poses
from realtime import BUNDLED_CLIP
from realtime.frames import Frame, Result
from realtime.metrics import Metrics
from realtime.outputs.stage import Outputs
from realtime.pipeline import PipelineConfig
from realtime.provenance import CAPTION, NOTICE, synthetic_captions
from realtime.view.render import draw, draw_caption
from realtime.sources.readers import SourceSpec
from tests.realtime.helpers import run_cli, write_video

needs_bundled = pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="bundled checkpoint missing")


def _saved(tmp_path, meta):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "net.pt", build_model("tiny", input_size=64), meta=meta)


@pytest.mark.slow
@needs_bundled
def test_the_line_appears_for_a_users_video_and_not_for_the_bundled_clip(tmp_path):
    clip = write_video(tmp_path / "mine.mp4", frames=4, size=(160, 120))
    mine = run_cli(["--source", str(clip), "--no-show", "--max-frames", "2", "--no-save", "--name", "a"], tmp_path,
                   script="-m")
    assert mine.returncode == 0, mine.stderr
    assert mine.stderr.splitlines().count(NOTICE) == 1
    bundled = run_cli(["--source", "synth", "--no-show", "--max-frames", "2", "--no-save", "--name", "b"], tmp_path,
                      script="-m")
    assert bundled.returncode == 0, bundled.stderr
    assert NOTICE not in bundled.stderr


@needs_bundled
def test_captions_go_to_every_source_but_the_bundled_clip(tmp_path):
    clip = tmp_path / "mine.mp4"
    clip.write_bytes(b"")
    specs = [SourceSpec(str(BUNDLED_CLIP), "file"), SourceSpec("0", "camera"), SourceSpec(str(clip), "file"),
             SourceSpec("rtsp://cam/live", "stream"), SourceSpec(str(tmp_path), "images")]
    assert synthetic_captions(None, specs) == {1: CAPTION, 2: CAPTION, 3: CAPTION, 4: CAPTION}
    assert synthetic_captions(None, specs[:1]) == {}


def test_only_a_synthetic_only_checkpoint_gets_captions(tmp_path):
    specs = [SourceSpec("0", "camera")]
    assert synthetic_captions(str(_saved(tmp_path, {"data": "synthetic"})), specs) == {0: CAPTION}
    assert synthetic_captions(str(_saved(tmp_path, {"data": "synthetic + coco-format: t.json"})), specs) == {}
    assert synthetic_captions(str(_saved(tmp_path, None)), specs) == {}  # unknown data: nothing claimed


def test_draw_caption_darkens_the_bottom_left_and_writes_on_it():
    image = np.full((360, 640, 3), 200, np.uint8)
    out = draw_caption(image.copy(), CAPTION)
    band = np.any(out != image, axis=2)
    rows, cols = np.nonzero(band)
    assert rows.min() > 360 * 3 // 4 and cols.min() == 0  # a strip along the bottom, from the left edge
    assert (out[band] < 100).mean() > 0.5 and (out[band] > 220).any()  # dark band, white letters
    assert np.array_equal(out[: rows.min()], image[: rows.min()])  # the rest of the frame untouched


def test_the_browser_view_shows_the_caption_of_a_captioned_stream():
    specs = [SourceSpec("0", "camera"), SourceSpec("1", "camera")]
    config = PipelineConfig(specs=specs, http_port=0, progress=False, captions={0: CAPTION})
    captures = [SimpleNamespace(live=True, num_frames=0, check_stall=lambda now: None, state="running")
                for _ in specs]
    outputs = Outputs(config, captures, Metrics(), log=lambda line: None)
    try:
        image = np.full((120, 160, 3), 180, np.uint8)
        for i in range(2):
            frame = Frame(i, 0, None, time.time(), time.perf_counter(), image.copy())
            result = Result(frame, Poses.empty())
            assert outputs.emit(result)
            shown, plain = outputs.view.board.images[i], draw(result)
            bottom = np.s_[-20:, :60]
            if i == 0:
                assert np.abs(shown[bottom].astype(int) - plain[bottom]).max() > 50
            else:
                assert np.array_equal(shown, plain)
    finally:
        outputs.close()

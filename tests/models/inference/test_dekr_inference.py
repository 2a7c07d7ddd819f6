"""DEKR's inference rules on hand-made poses: its pose NMS, input pixels at 4 x map pixels, its short-side input
and its shifted flip view; and an imported model end to end through the Predictor and an ONNX export."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from kernels.candidates import Candidates
from models import Predictor, build_model
from models.inference.dekr import dekr_nms_np, dekr_poses
from models.inference.views import View, mirror_shift, view_batch
from models.modeling.qem import SparseOutput


def pose(x: float, y: float, size: float = 40.0, k: int = 17) -> np.ndarray:
    t = np.linspace(0, 1, k, dtype=np.float32)
    return np.stack([x + size * t, y + size * t[::-1]], -1)


def test_nms_keeps_the_highest_heat_score_of_each_group_in_peak_order():
    poses = np.stack([pose(0, 0), pose(0.5, 0.5), pose(100, 100), pose(100.4, 100), pose(300, 0)])
    heat = np.array([0.2, 0.9, 0.5, 0.4, 0.1])
    # groups: {0, 1} -> 1 (higher heat), {2, 3} -> 2, {4}; kept in the order DEKR visits them
    assert dekr_nms_np(poses, heat).tolist() == [1, 2, 4]


def test_nms_counts_joints_against_the_row_pose_box_diagonal():
    a = pose(0, 0, size=100.0)  # diagonal 141: 0.05 of it is 7.07 px
    b = a.copy()
    b[:9] += 6.0  # 9 joints 8.5 px away, 8 joints on top: 8 close joints, not more than 8
    assert dekr_nms_np(np.stack([a, b]), np.array([1.0, 0.5])).tolist() == [0, 1]
    b[8] = a[8]  # now 9 close joints
    assert dekr_nms_np(np.stack([a, b]), np.array([1.0, 0.5])).tolist() == [0]


def test_poses_come_back_in_input_pixels_sorted_by_score_and_capped():
    net = build_model("dekr_w32", max_people=2)
    kp = torch.from_numpy(np.stack([pose(0, 0), pose(50, 0), pose(0, 50)]) / 4.0).unsqueeze(0)  # map px
    valid = torch.tensor([[True, True, True]])
    cands = Candidates(scores=torch.zeros(1, 3), indices=torch.arange(3).view(1, 3), valid=valid, keypoints=kp,
                       kpt_queries=torch.zeros(1, 3, 17, 1), inst_queries=torch.zeros(1, 3, 1))
    heat = torch.tensor([0.3, 0.6, 0.5]).view(1, 3, 1).expand(1, 3, 17)
    sparse = SparseOutput(keypoints=kp, keypoint_scores=heat * 0.5, score_logits=torch.tensor([[0.9, 0.1, 0.5]]),
                          keypoint_logits=heat)
    (out,) = dekr_poses(net, cands, sparse)
    # the two highest heat scores are kept (poses 1 and 2), then ordered by pose score (2 before 1)
    assert np.allclose(out.scores, [0.5, 0.1])
    assert np.allclose(out.keypoints[0], pose(0, 50)) and np.allclose(out.keypoints[1], pose(50, 0))


def test_short_side_goes_to_input_size_on_dekrs_canvas():
    predictor = Predictor(build_model("dekr_w32"))
    batch, (box,) = predictor.preprocess([np.zeros((480, 640, 3), np.uint8)])
    assert batch.shape == (1, 3, 512, 704) and (box.scale_y, box.pad_x, box.pad_y) == (512 / 480, 10, 0)


def test_flip_view_is_moved_three_pixels_left_as_dekr_does():
    x = torch.arange(2 * 3 * 4 * 8.0).view(2, 3, 4, 8)
    expected = x.flip(3).clone()
    expected[..., :-3] = expected[..., 3:].clone()  # DEKR's get_multi_stage_outputs
    shift = mirror_shift(build_model("dekr_w32").cfg.feature_origin)
    assert shift == 3 and mirror_shift(build_model("tiny").cfg.feature_origin) == 0
    assert torch.equal(view_batch(x, View(mirrored=True), mirror_shift=shift), expected)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    from models.imports.dekr import import_dekr
    from tests.models.imports.dekr_layouts import random_state

    folder = tmp_path_factory.mktemp("dekr")
    state = random_state("dekr_release_w32_coco", seed=6)
    state["head_heatmap.1.bias"][17] += 1.0  # centre values around 1: peaks above DEKR's 0.01
    torch.save(state, folder / "w.pth")
    return import_dekr(folder / "w.pth", folder / "dekr.pt")


def test_imported_model_finds_poses_in_image_pixels(imported):
    image = (np.random.default_rng(0).random((120, 150, 3)) * 255).astype(np.uint8)
    (poses,) = Predictor(imported, input_size=96, flip_test=True).predict([image])
    assert len(poses) > 0 and np.all(np.diff(poses.scores) <= 0)


def test_onnx_export_gives_the_same_candidates(imported, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from models.export.exporter import export

    monkeypatch.setenv("QEM_CACHE_DIR", str(tmp_path / "cache"))
    onnx = export(imported, "onnx", imgsz=[96, 128], out=tmp_path / "dekr.onnx", quiet=True)
    image = (np.random.default_rng(1).random((120, 150, 3)) * 255).astype(np.uint8)
    ref = Predictor(imported, input_size=96, decode_backend="torch")
    batch, _ = ref.preprocess([image])
    (c0, s0), (c1, s1) = ref.forward(batch), Predictor(onnx).forward(batch)
    assert torch.equal(c0.indices, c1.indices) and c0.valid.any()
    assert torch.allclose(c0.keypoints, c1.keypoints, atol=1e-3)
    assert torch.allclose(s0.keypoint_scores, s1.keypoint_scores, atol=1e-3, rtol=1e-4)

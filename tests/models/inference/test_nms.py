"""Pose NMS: duplicates go, distinct poses stay, the greedy order is exact."""
import pytest
import torch

from models.inference.nms import duplicate_matrix, pose_nms


def pose(x: float, y: float, size: float = 40.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(17, 2, generator=g) * size + torch.tensor([x, y])


@pytest.mark.parametrize("method", ["distance", "oks"])
def test_near_copies_are_removed_and_distinct_poses_kept(method):
    a, far = pose(0, 0), pose(200, 0)
    near = a + 0.3
    kps = torch.stack([near, a, far])
    scores = torch.tensor([0.5, 0.9, 0.7])
    keep = pose_nms(kps, scores, method)
    assert keep.tolist() == [1, 2]  # by score; the weaker copy of a is gone


def test_greedy_chain_keeps_a_pose_whose_suppressor_was_suppressed():
    # a ~ b and b ~ c but not a ~ c: greedy NMS keeps a and c.
    a = pose(0, 0, 100)
    b = a + 3.0
    c = a + 6.0
    kps, scores = torch.stack([a, b, c]), torch.tensor([0.9, 0.8, 0.7])
    diag = float((a.amax(0) - a.amin(0)).norm())
    dist = 6.0 / diag  # b is 4.2 px from a and from c, c is 8.5 px from a
    dup = duplicate_matrix(kps, "distance", dist=dist, count=8)
    assert dup[0, 1] and dup[1, 2] and not dup[0, 2]
    assert pose_nms(kps, scores, "distance", dist=dist).tolist() == [0, 2]
    assert pose_nms(kps, scores, "distance", dist=10.0 / diag).tolist() == [0]


def test_none_and_empty_inputs():
    kps = torch.stack([pose(0, 0), pose(0, 0)])
    assert pose_nms(kps, torch.tensor([0.2, 0.4]), "none").tolist() == [1, 0]
    assert pose_nms(torch.zeros(0, 17, 2), torch.zeros(0)).numel() == 0
    with pytest.raises(ValueError, match="unknown pose NMS method"):
        pose_nms(kps, torch.tensor([0.2, 0.4]), "iou")

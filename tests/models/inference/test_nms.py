"""Pose NMS: duplicates go, distinct poses stay, the greedy order is exact; the NumPy twin keeps what torch keeps."""
import numpy as np
import pytest
import torch

from models.inference.nms import duplicate_matrix, pose_nms, pose_nms_np


def nms_np(keypoints, scores, *args, **kwargs):
    """``pose_nms_np`` behind ``pose_nms``'s torch signature, so that every case runs on both."""
    return torch.from_numpy(pose_nms_np(keypoints.numpy(), scores.numpy(), *args, **kwargs))


IMPLEMENTATIONS = pytest.mark.parametrize("nms", [pose_nms, nms_np], ids=["torch", "numpy"])


def pose(x: float, y: float, size: float = 40.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(17, 2, generator=g) * size + torch.tensor([x, y])


@IMPLEMENTATIONS
@pytest.mark.parametrize("method", ["distance", "oks"])
def test_near_copies_are_removed_and_distinct_poses_kept(nms, method):
    a, far = pose(0, 0), pose(200, 0)
    near = a + 0.3
    kps = torch.stack([near, a, far])
    scores = torch.tensor([0.5, 0.9, 0.7])
    keep = nms(kps, scores, method)
    assert keep.tolist() == [1, 2]  # by score; the weaker copy of a is gone


@IMPLEMENTATIONS
def test_greedy_chain_keeps_a_pose_whose_suppressor_was_suppressed(nms):
    # a ~ b and b ~ c but not a ~ c: greedy NMS keeps a and c.
    a = pose(0, 0, 100)
    b = a + 3.0
    c = a + 6.0
    kps, scores = torch.stack([a, b, c]), torch.tensor([0.9, 0.8, 0.7])
    diag = float((a.amax(0) - a.amin(0)).norm())
    dist = 6.0 / diag  # b is 4.2 px from a and from c, c is 8.5 px from a
    dup = duplicate_matrix(kps, "distance", dist=dist, count=8)
    assert dup[0, 1] and dup[1, 2] and not dup[0, 2]
    assert nms(kps, scores, "distance", dist=dist).tolist() == [0, 2]
    assert nms(kps, scores, "distance", dist=10.0 / diag).tolist() == [0]


@IMPLEMENTATIONS
def test_equal_scores_keep_the_lower_index_first(nms):
    kps = torch.stack([pose(0, 0), pose(300, 0), pose(0, 300)])
    assert nms(kps, torch.tensor([0.5, 0.7, 0.5]), "distance").tolist() == [1, 0, 2]
    copies = torch.stack([pose(0, 0)] * 3)  # identical poses, equal scores: the first one stays
    assert nms(copies, torch.full((3,), 0.5), "distance").tolist() == [0]


@IMPLEMENTATIONS
def test_none_and_empty_inputs(nms):
    kps = torch.stack([pose(0, 0), pose(0, 0)])
    assert nms(kps, torch.tensor([0.2, 0.4]), "none").tolist() == [1, 0]
    assert nms(torch.zeros(0, 17, 2), torch.zeros(0)).numel() == 0
    assert nms(kps[:1], torch.tensor([0.3]), "distance").tolist() == [0]
    with pytest.raises(ValueError, match="unknown pose NMS method"):
        nms(kps, torch.tensor([0.2, 0.4]), "iou")


@pytest.mark.parametrize("method", ["distance", "oks"])
@pytest.mark.parametrize("seed", range(25))
def test_numpy_twin_keeps_what_torch_keeps_on_random_crowds(method, seed):
    g = torch.Generator().manual_seed(seed)
    p = int(torch.randint(6, 31, (1,), generator=g))
    bases = torch.rand(4, 1, 2, generator=g) * 120 + torch.randn(4, 17, 2, generator=g) * 15
    jitter = torch.rand(p, 1, 1, generator=g) ** 2 * 4  # copies of 4 people, from near-exact to loose
    kps = bases[torch.randint(0, 4, (p,), generator=g)] + torch.randn(p, 17, 2, generator=g) * jitter
    scores = torch.rand(p, generator=g).round(decimals=1)  # ties too
    count = int(torch.randint(4, 12, (1,), generator=g))
    expected = pose_nms(kps, scores, method, dist=0.15, count=count)
    got = pose_nms_np(kps.numpy(), scores.numpy(), method, dist=0.15, count=count)
    assert got.dtype == np.int64
    assert got.tolist() == expected.tolist()
    assert 0 < len(got) < p  # the crowds really exercise suppression

"""models.oks equals pycocotools' COCOeval.computeOks on the same poses."""
import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from models.keypoints import NUM_KEYPOINTS
from models.oks import keypoint_similarity, oks, oks_matrix


def coco_ious(gt_kps, gt_areas, gt_boxes, dt_kps, dt_scores):
    """computeOks of real pycocotools on one image: returns [D, G] in its score order."""
    coco = COCO()
    anns = [{"id": i + 1, "image_id": 1, "category_id": 1, "keypoints": gt_kps[i].reshape(-1).tolist(),
             "num_keypoints": int((gt_kps[i][:, 2] > 0).sum()), "area": float(gt_areas[i]),
             "bbox": gt_boxes[i].tolist(), "iscrowd": 0} for i in range(len(gt_kps))]
    coco.dataset = {"images": [{"id": 1, "width": 640, "height": 480}], "annotations": anns,
                    "categories": [{"id": 1, "name": "person"}]}
    coco.createIndex()
    dets = [{"image_id": 1, "category_id": 1, "score": float(s),
             "keypoints": np.concatenate([d, np.ones((NUM_KEYPOINTS, 1))], 1).reshape(-1).tolist()}
            for d, s in zip(dt_kps, dt_scores)]
    ev = COCOeval(coco, coco.loadRes(dets), "keypoints")
    ev.params.imgIds = [1]
    ev._prepare()
    return np.asarray(ev.computeOks(1, 1))


def test_oks_matrix_equals_pycocotools_compute_oks():
    rng = np.random.default_rng(0)
    g, d = 4, 6
    gt = np.zeros((g, NUM_KEYPOINTS, 3))
    gt[..., :2] = rng.uniform(50, 400, (g, NUM_KEYPOINTS, 2))
    gt[..., 2] = rng.choice([0, 1, 2], (g, NUM_KEYPOINTS), p=[0.3, 0.3, 0.4])
    gt[3, :, :] = 0  # a person with no labelled keypoint: pycocotools measures to its box
    areas = rng.uniform(500, 20000, g)
    boxes = np.array([[100.0, 120.0, 80.0, 160.0]] * g)
    dt = gt[rng.integers(0, g, d), :, :2] + rng.normal(0, 8, (d, NUM_KEYPOINTS, 2))
    dt[5] = rng.uniform(0, 500, (NUM_KEYPOINTS, 2))  # one far off, some near the box
    scores = np.linspace(0.9, 0.4, d)  # already in pycocotools' (descending) order
    expected = coco_ious(gt, areas, boxes, dt, scores)
    ours = oks_matrix(dt, gt, areas, boxes=boxes)
    assert ours.shape == expected.shape == (d, g)
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-12)
    assert expected[:, :3].max() > 0.3  # the check covers non-trivial similarities


def test_oks_broadcasts_and_accepts_tensors():
    gt = torch.rand(3, NUM_KEYPOINTS, 3) * 100
    gt[..., 2] = 2
    areas = torch.tensor([900.0, 1600.0, 2500.0])
    assert torch.allclose(oks(gt[..., :2], gt, areas), torch.ones(3))
    pred = gt[..., :2] + 3.0
    single = torch.stack([oks(pred[i], gt[i], areas[i]) for i in range(3)])
    assert torch.allclose(oks(pred, gt, areas), single)
    assert torch.allclose(oks_matrix(pred, gt, areas).diagonal(), single)


def test_unlabelled_keypoints_do_not_count_and_empty_people_score_zero():
    gt = torch.zeros(NUM_KEYPOINTS, 3)
    gt[:, 2] = 2
    gt[0, 2] = 0
    pred = torch.zeros(NUM_KEYPOINTS, 2)
    pred[0] = 1e4  # wildly wrong, but keypoint 0 is not labelled
    assert oks(pred, gt, torch.tensor(100.0)).item() == pytest.approx(1.0)
    sim, labelled = keypoint_similarity(pred, gt, torch.tensor(100.0))
    assert not labelled[0] and labelled[1:].all() and sim.shape == (NUM_KEYPOINTS,)
    gt[:, 2] = 0
    assert oks(pred, gt, torch.tensor(100.0)).item() == 0.0


def test_a_14_point_pose_is_scored_with_crowdpose_sigmas_unless_given():
    """One point off by d, the rest exact: its term is exp(-d^2 / (2 area (2 sigma_k)^2)) with the convention's sigma."""
    from models.keypoints import CROWDPOSE_SIGMAS

    gt = np.concatenate([np.full((14, 2), 50.0), np.full((14, 1), 2.0)], 1)
    pred = gt[:, :2].copy()
    pred[12, 0] += 3.0  # the head top
    sim, _ = keypoint_similarity(pred, gt, 100.0)
    expected = np.exp(-9.0 / (2 * 100.0 * (2 * CROWDPOSE_SIGMAS[12]) ** 2))
    assert float(sim[12]) == pytest.approx(expected, rel=1e-6) and float(sim[0]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no keypoint convention has 15"):
        keypoint_similarity(np.zeros((15, 2)), np.zeros((15, 3)), 1.0)

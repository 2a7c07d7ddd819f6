"""CrowdPose evaluation on a hand-made CrowdPose-format file: one person in each of four images, crowd indices
0.05 and 0.15 (easy), 0.5 (medium), 0.85 (hard); every person's box is 100x100, so its OKS scale is 0.53 * 10^4."""
import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.keypoints import CROWDPOSE_NAMES
from models.evaluation.crowdpose import (CROWDPOSE_SIGMAS, NOSE_TO_HEAD_TOP, crowd_buckets, crowdpose_eval,
                                         crowdpose_results, is_crowdpose, to_crowdpose)
from models.evaluation.evaluate import load_ground_truth
from models.keypoints import KEYPOINT_NAMES

ROOT = Path(__file__).resolve().parents[3]
CROWD_INDEX = {1: 0.05, 2: 0.15, 3: 0.5, 4: 0.85}


def person_keypoints(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(60, 140, (14, 2)), np.full((14, 1), 2.0)], 1)


def write_crowdpose(tmp_path: Path, crowd_index=CROWD_INDEX) -> Path:
    images, anns = [], []
    for image_id, index in crowd_index.items():
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": 200, "height": 200,
                       "crowdIndex": index})
        anns.append({"id": 10 + image_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "num_keypoints": 14,
                     "bbox": [50.0, 50.0, 100.0, 100.0], "keypoints": person_keypoints(image_id).ravel().tolist()})
    doc = {"images": images, "annotations": anns,
           "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(CROWDPOSE_NAMES),
                           "skeleton": [[13, 14], [14, 1], [14, 2]]}]}
    path = tmp_path / "crowdpose_test.json"
    path.write_text(json.dumps(doc))
    return path


def result(image_id: int, keypoints: np.ndarray, score: float = 0.9) -> dict:
    flat = np.concatenate([keypoints[:, :2], np.ones((14, 1))], 1).ravel()
    return {"image_id": image_id, "category_id": 1, "keypoints": flat.tolist(), "score": score}


def test_perfect_predictions_score_one_everywhere(tmp_path):
    gt = load_ground_truth(write_crowdpose(tmp_path))
    assert is_crowdpose(gt)
    report = crowdpose_eval(gt, [result(i, person_keypoints(i)) for i in CROWD_INDEX])
    assert [report.ap, report.ap50, report.ap75, report.ar, report.ap_easy, report.ap_medium, report.ap_hard] == \
        pytest.approx([1.0] * 7)
    assert report.num_poses == 4 and report.num_images == 4


def test_predictions_on_the_easy_images_only(tmp_path):
    """Two of four people found, both exactly: recall 0.5 at precision 1, so AP = 51 / 101 (recall thresholds
    0, 0.01, ..., 0.5 reached); easy 1, medium and hard 0 (people there, nothing found)."""
    gt = load_ground_truth(write_crowdpose(tmp_path))
    report = crowdpose_eval(gt, [result(i, person_keypoints(i)) for i in (1, 2)])
    assert report.ap == pytest.approx(51 / 101) and report.ar == pytest.approx(0.5)
    assert (report.ap_easy, report.ap_medium, report.ap_hard) == pytest.approx((1.0, 0.0, 0.0))


def test_oks_uses_crowdpose_sigmas_and_053_times_the_box_area(tmp_path):
    """Every point 7 px off: OKS = mean_k exp(-49 / (2 * 5300 * (2 sigma_k)^2)) = 0.833, a hit at thresholds
    0.50 .. 0.80: AP 0.7, AP50 1, AP75 1. With the plain box area (10^4) it would be 0.907 and AP 0.9."""
    oks = np.mean(np.exp(-49 / (2 * 5300 * (2 * np.array(CROWDPOSE_SIGMAS)) ** 2)))
    assert 0.80 < oks < 0.85
    gt = load_ground_truth(write_crowdpose(tmp_path))
    shifted = [result(i, person_keypoints(i) + [7.0, 0.0, 0.0]) for i in CROWD_INDEX]
    report = crowdpose_eval(gt, shifted)
    assert (report.ap, report.ap50, report.ap75) == pytest.approx((0.7, 1.0, 1.0))
    assert report.ap_easy == pytest.approx(0.7) and report.ap_hard == pytest.approx(0.7)


def test_crowd_index_buckets_follow_the_toolkit_and_an_empty_bucket_is_minus_one(tmp_path):
    gt = load_ground_truth(write_crowdpose(tmp_path, {1: 0.0, 2: 0.15, 3: 0.2, 4: 0.79, 5: 0.8, 6: 1.0}))
    assert crowd_buckets(gt, gt.getImgIds()) == ([1, 2], [3, 4], [5, 6])
    assert crowd_buckets(gt, gt.getImgIds(), splits=(0.1, 0.8)) == ([1], [2, 3, 4], [5, 6])  # the paper's bounds
    calm = load_ground_truth(write_crowdpose(tmp_path, {1: 0.05, 2: 0.3}))
    report = crowdpose_eval(calm, [result(i, person_keypoints(i)) for i in (1, 2)])
    assert (report.ap_easy, report.ap_medium, report.ap_hard) == pytest.approx((1.0, 1.0, -1.0))
    assert report.table().splitlines()[1].split()[6] == "n/a"


def test_coco_poses_map_back_to_crowdpose_points():
    kps = np.zeros((1, 17, 2))
    scores = np.full((1, 17), 0.5)
    for i, name in enumerate(KEYPOINT_NAMES):
        kps[0, i] = (i, 100 + i)
    kps[0, KEYPOINT_NAMES.index("nose")] = (50, 20)
    kps[0, KEYPOINT_NAMES.index("left_shoulder")] = (40, 60)
    kps[0, KEYPOINT_NAMES.index("right_shoulder")] = (60, 60)
    scores[0, KEYPOINT_NAMES.index("nose")] = 0.2
    out, out_scores = to_crowdpose(kps, scores)
    assert out.shape == (1, 14, 2) and out_scores.shape == (1, 14)
    for i, name in enumerate(CROWDPOSE_NAMES[:12]):
        assert tuple(out[0, i]) == tuple(kps[0, KEYPOINT_NAMES.index(name)])
    assert tuple(out[0, 13]) == (50.0, 60.0)  # neck: between the shoulders
    assert tuple(out[0, 12]) == pytest.approx((50.0, 60.0 - 40.0 * NOSE_TO_HEAD_TOP))  # head top: past the nose
    assert out_scores[0, 12] == 0.2 and out_scores[0, 13] == 0.5
    res = crowdpose_results([{"image_id": 1, "category_id": 1, "score": 0.7,
                              "keypoints": np.concatenate([kps[0], scores[0][:, None]], 1).ravel().tolist()}])
    assert len(res[0]["keypoints"]) == 42 and res[0]["score"] == 0.7
    assert res[0]["keypoints"][13 * 3:14 * 3] == [50.0, 60.0, 0.5]


def test_a_coco_file_is_not_crowdpose(tmp_path):
    doc = {"images": [], "annotations": [],
           "categories": [{"id": 1, "name": "person", "keypoints": list(KEYPOINT_NAMES)}]}
    (tmp_path / "coco.json").write_text(json.dumps(doc))
    assert not is_crowdpose(load_ground_truth(tmp_path / "coco.json"))


@pytest.mark.slow
def test_qem_val_on_a_crowdpose_file_prints_its_table_and_writes_14_points(tmp_path):
    """The bundled checkpoint through the command line: the CrowdPose table, 14-point results pycocotools loads."""
    ann = write_crowdpose(tmp_path)
    rng = np.random.default_rng(0)
    for image_id in CROWD_INDEX:
        cv2.imwrite(str(tmp_path / f"{image_id}.jpg"), rng.integers(0, 255, (200, 200, 3), dtype=np.uint8))
    out, metrics = tmp_path / "results.json", tmp_path / "metrics.json"
    proc = subprocess.run([sys.executable, "-m", "models", "val", "--ann", str(ann), "--images", str(tmp_path),
                           "--no-flip", "--no-progress", "--out", str(out), "--metrics-out", str(metrics)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "AP easy" in proc.stdout and "AP hard" in proc.stdout
    report = json.loads(metrics.read_text())
    assert report["dataset"] == "crowdpose" and {"ap_easy", "ap_medium", "ap_hard"} <= set(report)
    results = json.loads(out.read_text())
    assert all(len(r["keypoints"]) == 42 for r in results)
    with contextlib.redirect_stdout(io.StringIO()):
        assert len(load_ground_truth(ann).loadRes(str(out)).getAnnIds()) == len(results)

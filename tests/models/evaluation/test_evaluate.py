"""qem val: our COCO numbers equal pycocotools' own, the results file loads, the CLI fails in one line."""
import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from models.evaluation.evaluate import (MATCHED_OKS, coco_keypoint_eval, load_ground_truth, oks_matrix, poses_to_results,
                             score_oks_spearman, true_oks)
from models.keypoints import NUM_KEYPOINTS, SIGMAS
from models.poses import Poses
from tests.cli import assert_one_error_line, run_module

ROOT = Path(__file__).resolve().parents[3]


def _gt_and_results(tmp_path: Path, seed: int = 0):
    """Three images of people with random poses; predictions = GT plus noise of varied size, some false ones."""
    rng = np.random.default_rng(seed)
    images, anns, results = [], [], []
    aid = 1
    for image_id in (1, 2, 3):
        images.append({"id": image_id, "file_name": f"{image_id}.png", "width": 320, "height": 240})
        for _ in range(rng.integers(1, 4)):
            cx, cy, size = rng.uniform(60, 260), rng.uniform(60, 180), rng.uniform(30, 120)
            xy = np.stack([cx + rng.normal(0, size / 4, NUM_KEYPOINTS), cy + rng.normal(0, size / 3, NUM_KEYPOINTS)], 1)
            v = rng.choice([0, 1, 2], NUM_KEYPOINTS, p=[0.1, 0.2, 0.7])
            xy[v == 0] = 0
            kp = np.concatenate([xy, v[:, None]], 1)
            area = float(size * size * 0.6)
            anns.append({"id": aid, "image_id": image_id, "category_id": 1, "iscrowd": 0, "area": area,
                         "bbox": [cx - size / 2, cy - size / 2, size, size], "num_keypoints": int((v > 0).sum()),
                         "keypoints": [float(t) for t in kp.reshape(-1)]})
            aid += 1
            noise = rng.uniform(0.5, 12.0)
            pred = np.where(v[:, None] > 0, xy, [cx, cy]) + rng.normal(0, noise, (NUM_KEYPOINTS, 2))
            score = float(np.clip(1.0 - noise / 15 + rng.normal(0, 0.1), 0.01, 0.99))
            results += poses_to_results(image_id, Poses(pred[None].astype(np.float32),
                                                        np.full((1, NUM_KEYPOINTS), 0.9, np.float32),
                                                        np.array([score], np.float32)))
        fake = rng.uniform(0, 240, (1, NUM_KEYPOINTS, 2)).astype(np.float32)
        results += poses_to_results(image_id, Poses(fake, np.full((1, NUM_KEYPOINTS), 0.3, np.float32),
                                                    np.array([0.2], np.float32)))
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}
    ann_file = tmp_path / "gt.json"
    ann_file.write_text(json.dumps(gt))
    return ann_file, results


def _pycocotools_stats(ann_file: Path, results: list[dict]):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        ev = COCOeval(gt, gt.loadRes(results), iouType="keypoints")
        ev.params.kpt_oks_sigmas = np.array(SIGMAS)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def test_ap_equals_pycocotools_on_a_fixed_results_file(tmp_path):
    ann_file, results = _gt_and_results(tmp_path)
    ev = _pycocotools_stats(ann_file, results)
    report = coco_keypoint_eval(load_ground_truth(ann_file), results)
    ours = [report.ap, report.ap50, report.ap75, report.apm, report.apl, report.ar]
    assert ours == [float(v) for v in ev.stats[:6]]
    assert 0.0 < report.ap < 1.0  # a non-trivial case: some poses are good, some poor
    assert report.num_poses == len(results)


def test_results_json_loads_with_loadres(tmp_path):
    ann_file, results = _gt_and_results(tmp_path, seed=1)
    out = tmp_path / "results.json"
    out.write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        dt = COCO(str(ann_file)).loadRes(str(out))
    assert len(dt.getAnnIds()) == len(results)
    assert all(len(a["keypoints"]) == 3 * NUM_KEYPOINTS for a in dt.anns.values())


def test_oks_matches_pycocotools_compute_oks(tmp_path):
    ann_file, results = _gt_and_results(tmp_path, seed=2)
    ev = _pycocotools_stats(ann_file, results)
    gt = load_ground_truth(ann_file)
    for image_id in gt.getImgIds():
        dts = sorted([r for r in results if r["image_id"] == image_id], key=lambda r: -r["score"])
        anns = gt.imgToAnns[image_id]
        ours = oks_matrix(np.array([d["keypoints"] for d in dts]).reshape(len(dts), -1, 3)[..., :2],
                          np.array([a["keypoints"] for a in anns]), np.array([a["area"] for a in anns]))
        np.testing.assert_allclose(ours, ev.ious[(image_id, 1)], rtol=1e-9, atol=1e-12)


def test_true_oks_is_best_match_and_zero_without_ground_truth(tmp_path):
    ann_file, results = _gt_and_results(tmp_path, seed=3)
    gt = load_ground_truth(ann_file)
    ann = gt.anns[1]
    exact = {"image_id": ann["image_id"], "category_id": 1, "keypoints": ann["keypoints"], "score": 0.5}
    lonely = {"image_id": 99, "category_id": 1, "keypoints": ann["keypoints"], "score": 0.5}
    assert true_oks(gt, [exact, lonely]).tolist() == [pytest.approx(1.0), 0.0]


def test_spearman_is_reported_and_tracks_quality(tmp_path):
    ann_file, results = _gt_and_results(tmp_path, seed=4)
    gt = load_ground_truth(ann_file)
    good = coco_keypoint_eval(gt, results)
    oks = true_oks(gt, results)
    ranked = [dict(r, score=float(o)) for r, o in zip(results, oks)]
    reversed_ = [dict(r, score=float(1 - o)) for r, o in zip(results, oks)]
    assert coco_keypoint_eval(gt, ranked).spearman == pytest.approx(1.0)
    assert coco_keypoint_eval(gt, reversed_).spearman == pytest.approx(-1.0)
    assert good.spearman is not None and good.spearman > 0
    # matched: only poses with true OKS >= the bar count; a perfect ranking of them is still 1
    bar = float(np.median(oks))
    mixed = [dict(r, score=float(o) if o >= bar else 1.0) for r, o in zip(results, oks)]  # misses score highest
    assert score_oks_spearman(gt, mixed, min_oks=bar) == pytest.approx(1.0)
    assert score_oks_spearman(gt, mixed) < 0.5
    assert good.spearman_matched == score_oks_spearman(gt, results, min_oks=MATCHED_OKS)


def test_empty_results_give_zero_ap(tmp_path):
    ann_file, _ = _gt_and_results(tmp_path, seed=5)
    report = coco_keypoint_eval(load_ground_truth(ann_file), [])
    assert report.ap == 0.0 and report.num_poses == 0 and report.spearman is None


@pytest.mark.parametrize("args, words", [
    (["--data", "/nonexistent/synth"], "/nonexistent/synth"),
    (["--ann", "/nonexistent/a.json", "--images", "/nonexistent"], "/nonexistent/a.json"),
])
def test_cli_missing_data_is_one_line(args, words, tmp_path):
    assert_one_error_line(run_module("models.evaluation.evaluate", *args, "--out", tmp_path / "r.json"), words)


def test_cli_missing_checkpoint_is_one_line(tmp_path):
    ann_file, _ = _gt_and_results(tmp_path, seed=6)
    proc = run_module("models.evaluation.evaluate", "--ann", ann_file, "--images", tmp_path, "--checkpoint",
                      tmp_path / "missing.pt", "--out", tmp_path / "r.json")
    assert_one_error_line(proc, "missing.pt")


def test_cli_snapping_without_heatmaps_is_one_line(tmp_path):
    ann_file, _ = _gt_and_results(tmp_path, seed=7)
    proc = run_module("models.evaluation.evaluate", "--ann", ann_file, "--images", tmp_path, "--snap-radius", "2")
    assert_one_error_line(proc, "keypoint heatmaps")


def test_cli_bad_shift_is_one_line(tmp_path):
    ann_file, _ = _gt_and_results(tmp_path, seed=7)
    proc = run_module("models.evaluation.evaluate", "--ann", ann_file, "--images", tmp_path, "--shift-test", "6")
    assert_one_error_line(proc, "shift test: shifts must be distinct multiples of 4")


@pytest.mark.slow
def test_cli_on_the_bundled_checkpoint_writes_loadable_results(tmp_path):
    """The default checkpoint on four synthetic images: a table is printed and loadRes reads the results file."""
    from models import DEFAULT_CHECKPOINT

    if not DEFAULT_CHECKPOINT.is_file():
        pytest.fail(f"bundled checkpoint {DEFAULT_CHECKPOINT} is missing")
    data = tmp_path / "synth"
    subprocess.run([sys.executable, "-m", "models.data.synth", "--out", str(data), "--num-images", "4", "--seed", "77",
                    "--split", "val", "--quiet"], cwd=ROOT, check=True, capture_output=True, timeout=120)
    out, metrics = tmp_path / "results.json", tmp_path / "metrics.json"
    proc = subprocess.run([sys.executable, "-m", "models.evaluation.evaluate", "--data", str(data), "--out", str(out),
                           "--metrics-out", str(metrics), "--no-progress"],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "AP50" in proc.stdout and "Spearman" in proc.stdout
    results = json.loads(out.read_text())
    assert results, "the bundled checkpoint found nobody in four synthetic images"
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(data / "annotations" / "person_keypoints_val.json"))
        dt = gt.loadRes(str(out))
    assert len(dt.getAnnIds()) == len(results)
    report = json.loads(metrics.read_text())
    assert report["flip"] is True and report["pose_score"] == "labelled_mean" and 0.0 <= report["ap"] <= 1.0
    assert report["ap"] == coco_keypoint_eval(gt, results).ap
    for pose_score, equal in (("keypoint_mean", True), ("pqe", False), ("labelled_mean", False)):
        proc = subprocess.run([sys.executable, "-m", "models.evaluation.evaluate", "--data", str(data), "--out", str(out),
                               "--no-progress", "--pose-score", pose_score], cwd=ROOT, capture_output=True,
                              text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr
        results = json.loads(out.read_text())
        means = np.array([np.mean(r["keypoints"][2::3]) for r in results])
        scores = np.array([r["score"] for r in results])
        assert np.allclose(scores, means, atol=2e-3) == equal, pose_score  # keypoint scores are rounded to 1e-3

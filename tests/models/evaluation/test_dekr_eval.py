"""``qem val`` takes imported DEKR models: a CrowdPose model on a CrowdPose file with its own 14 points, and a clear
line when it is given a COCO file."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from models.imports.dekr import import_dekr
from tests.cli import run_module
from tests.models.evaluation.test_crowdpose import CROWD_INDEX, write_crowdpose
from tests.models.imports.dekr_layouts import random_state


@pytest.fixture(scope="module")
def crowdpose_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dekr")
    state = random_state("dekr_release_w32_crowdpose", seed=8)
    state["head_heatmap.1.bias"][14] += 1.0  # centre values around 1: people everywhere
    torch.save(state, folder / "pose_dekr_hrnetw32_crowdpose.pth")
    return import_dekr(folder / "pose_dekr_hrnetw32_crowdpose.pth", folder / "dekr_w32_crowdpose.pt")


def test_crowdpose_model_is_evaluated_on_its_own_14_points(tmp_path, crowdpose_model):
    model = crowdpose_model
    ann = write_crowdpose(tmp_path)
    rng = np.random.default_rng(0)
    for image_id in CROWD_INDEX:
        cv2.imwrite(str(tmp_path / f"{image_id}.jpg"), rng.integers(0, 255, (200, 200, 3), dtype=np.uint8))
    out = tmp_path / "results.json"
    proc = run_module("models", "val", "--ann", ann, "--images", tmp_path, "--checkpoint", model, "--input-size",
                      "128", "--no-flip", "--no-progress", "--out", out, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "AP easy" in proc.stdout
    results = json.loads(out.read_text())
    assert results and all(len(r["keypoints"]) == 42 for r in results)


def test_crowdpose_model_on_a_coco_file_is_one_line(tmp_path, crowdpose_model):
    model = crowdpose_model
    ann = tmp_path / "coco.json"
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "1.jpg", "width": 64, "height": 64}],
                               "annotations": [], "categories": [{"id": 1, "name": "person"}]}))
    cv2.imwrite(str(tmp_path / "1.jpg"), np.zeros((64, 64, 3), np.uint8))
    proc = run_module("models", "val", "--ann", ann, "--images", tmp_path, "--checkpoint", model, "--no-progress")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]  # after the line naming the backend
    assert last.startswith("error:") and "the model predicts 14 keypoints (CrowdPose's)" in last

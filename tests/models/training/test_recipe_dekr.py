"""The CIR + QEM fine-tuning recipes from DEKR's weights: the network starts from an imported DEKR checkpoint (CIR from
the centre heatmap, QEM fresh), and each recipe runs both stages at smoke scale: on a COCO-layout folder, and (14
points, from DEKR's CrowdPose weights) on a CrowdPose-layout folder made from synthetic people."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from models import build_model
from models.checkpoint import load_checkpoint
from models.imports.dekr import import_dekr
from models.evaluation.crowdpose import to_crowdpose
from models.keypoints import CROWDPOSE_NAMES
from models.modeling.dekr import CIR_FROM_CENTRE
from models.training.recipes import RECIPES
from models.training.recipes.stages import estimated_hours
from tests.cli import run_module
from tests.models.imports.dekr_layouts import random_state


@pytest.fixture(scope="module")
def dekr_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dekr")
    torch.save(random_state("dekr_release_w32_coco", seed=11), folder / "pose_dekr_hrnetw32_coco.pth")
    return import_dekr(folder / "pose_dekr_hrnetw32_coco.pth", folder / "dekr_w32_coco.pt")


def test_cir_score_starts_from_the_centre_heatmap_and_the_rest_is_dekrs(dekr_checkpoint):
    dekr = load_checkpoint(dekr_checkpoint)
    net = build_model("dekr_qem_w32", pretrained=dekr_checkpoint).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ours, theirs = net.dense(x), dekr.dense(x)
    a, b = CIR_FROM_CENTRE
    assert torch.allclose(ours.score, a * theirs.score + b, atol=1e-4)
    assert torch.equal(ours.offsets, theirs.offsets) and torch.equal(ours.kfeat, theirs.kfeat)
    assert torch.equal(ours.ifeat, theirs.ifeat)


def test_only_an_imported_dekr_checkpoint_starts_it(tmp_path):
    from models import DEFAULT_CHECKPOINT

    with pytest.raises(ValueError, match="not an imported DEKR checkpoint"):
        build_model("dekr_qem_w32", pretrained=DEFAULT_CHECKPOINT)


def test_recipe_is_marked_not_yet_run_with_an_estimate():
    recipe = RECIPES["coco_dekr_qem_w32"]
    assert "NOT YET RUN" in recipe.status and round(estimated_hours(recipe), 1) == 1.1


@pytest.mark.slow
def test_recipe_runs_both_stages_at_smoke_scale(dekr_checkpoint, tmp_path):
    data = tmp_path / "coco"
    proc = run_module("models", "synth", "--out", data, "--num-images", "8", "--seed", "4", "--split", "train2017:4",
                      "val2017:4")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "run"
    proc = run_module("models", "train", "--recipe", "coco_dekr_qem_w32", "--smoke", "--data", data, "--pretrained",
                      dekr_checkpoint, "--out", out, "--nproc-per-node", "1", "--threads", "2", "--workers", "0",
                      timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    net = load_checkpoint(out / "final.pt")
    assert net.cfg.head == "dekr_qem" and net.cfg.labelled_head and net.cfg.use_kqe and net.cfg.use_pqe


def crowdpose_folder(synth: Path, out: Path) -> Path:
    """CrowdPose's layout (json/crowdpose_{trainval,test}.json, one images/ folder) from a ``qem synth`` folder with
    splits trainval and test: 14 points (head top and neck made from the face and shoulders, as ``to_crowdpose``
    does, labelled where what they are made from is), no ``area`` (CrowdPose has none), a crowd index per image."""
    (out / "json").mkdir(parents=True)
    (out / "images").mkdir()
    for split in ("trainval", "test"):
        doc = json.loads((synth / "annotations" / f"person_keypoints_{split}.json").read_text())
        for image in doc["images"]:
            shutil.copy(synth / split / image["file_name"], out / "images" / f"{split}_{image['file_name']}")
            image.update(file_name=f"{split}_{image['file_name']}", crowdIndex=0.3)
        for ann in doc["annotations"]:
            kps = np.asarray(ann.pop("keypoints"), np.float64).reshape(1, 17, 3)
            xy, v = to_crowdpose(kps[..., :2], kps[..., 2])
            ann.pop("area", None)
            ann.update(keypoints=np.concatenate([xy[0], v[0][:, None]], 1).ravel().tolist(),
                       num_keypoints=int((v[0] > 0).sum()))
        doc["categories"] = [{"id": 1, "name": "person", "supercategory": "person",
                              "keypoints": list(CROWDPOSE_NAMES), "skeleton": []}]
        (out / "json" / f"crowdpose_{split}.json").write_text(json.dumps(doc))
    return out


def test_crowdpose_recipe_fine_tunes_the_14_point_network_on_trainval():
    recipe = RECIPES["crowdpose_dekr_qem_w32"]
    assert recipe.data == "crowdpose" and "NOT YET RUN" in recipe.status
    heads, whole = recipe.stages
    assert "dekr_qem_w32_crowdpose" in heads.args and "{data}/json/crowdpose_trainval.json" in heads.args
    assert heads.args[heads.args.index("--lr-drops") + 1] == "30" and whole.args[whole.args.index("--epochs") + 1] == "60"
    assert round(estimated_hours(recipe), 2) == 0.40  # 100 epochs x 12,000 images at 8 x 104 images/s


@pytest.mark.slow
def test_crowdpose_recipe_runs_both_stages_at_smoke_scale(tmp_path):
    folder = tmp_path / "dekr"
    folder.mkdir()
    torch.save(random_state("dekr_release_w32_crowdpose", seed=12), folder / "pose_dekr_hrnetw32_crowdpose.pth")
    dekr = import_dekr(folder / "pose_dekr_hrnetw32_crowdpose.pth", folder / "dekr_w32_crowdpose.pt",
                       data="crowdpose")
    synth = tmp_path / "synth"
    proc = run_module("models", "synth", "--out", synth, "--num-images", "8", "--seed", "5", "--split", "trainval:4",
                      "test:4")
    assert proc.returncode == 0, proc.stderr
    data = crowdpose_folder(synth, tmp_path / "crowdpose")
    out = tmp_path / "run"
    proc = run_module("models", "train", "--recipe", "crowdpose_dekr_qem_w32", "--smoke", "--data", data,
                      "--pretrained", dekr, "--out", out, "--nproc-per-node", "1", "--threads", "2", "--workers", "0",
                      timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    net = load_checkpoint(out / "final.pt")
    assert net.cfg.head == "dekr_qem" and net.cfg.num_keypoints == 14 and net.cfg.use_kqe and net.cfg.use_pqe


def test_a_coco_folder_for_the_crowdpose_recipe_is_one_line(tmp_path):
    """A COCO annotation file where the CrowdPose recipe expects CrowdPose's: the training stage fails in one line
    naming the missing points."""
    folder = tmp_path / "dekr"
    folder.mkdir()
    data = tmp_path / "coco"
    proc = run_module("models", "synth", "--out", data, "--num-images", "2", "--seed", "6", "--split", "train:2")
    assert proc.returncode == 0, proc.stderr
    proc = run_module("models", "train", "--config", "dekr_qem_w32_crowdpose", "--train-ann",
                      data / "annotations" / "person_keypoints_train.json", "--train-images", data / "train",
                      "--epochs", "1", "--batch-size", "2", "--input-size", "128", "--out", tmp_path / "run",
                      "--workers", "0", "--threads", "2", timeout=300)
    assert proc.returncode != 0
    assert "have no head, neck" in proc.stderr and "Traceback" not in proc.stderr

"""The CIR + QEM fine-tuning recipe from DEKR's weights: its network starts from an imported DEKR checkpoint (CIR from
the centre heatmap, QEM fresh), and the recipe runs both stages at smoke scale on a COCO-layout folder."""
import pytest
import torch

from models import build_model
from models.checkpoint import load_checkpoint
from models.imports.dekr import import_dekr
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

"""Each loss term falls when the tiny network overfits one small batch; switches select the right terms."""
import pytest
import torch

from models import build_model
from models.training.losses import quality_loss, training_losses
from models.data.persons import Persons
from models.preprocess import normalize
from models.modeling.qem import candidates_at
from models.training.targets import build_targets

# A stick figure (x, y) in units of s around its centre, COCO keypoint order.
FIGURE = torch.tensor([[0, -3], [-.5, -3.3], [.5, -3.3], [-1, -3], [1, -3], [-1.5, -2], [1.5, -2], [-2, -.5],
                       [2, -.5], [-2, 1], [2, 1], [-1, .5], [1, .5], [-1, 2.5], [1, 2.5], [-1, 4], [1, 4]])


def figure(cx: float, cy: float, s: float) -> torch.Tensor:
    return torch.cat([FIGURE * s + torch.tensor([cx, cy]), torch.full((17, 1), 2.0)], dim=1)


def batch():
    g = torch.Generator().manual_seed(0)
    images = normalize(torch.randint(0, 255, (2, 96, 96, 3), dtype=torch.uint8, generator=g))
    persons = [Persons(torch.stack([figure(30, 40, 5), figure(66, 50, 6)]), torch.tensor([1400.0, 2000.0])),
               Persons(figure(48, 44, 7)[None], torch.tensor([2700.0]))]
    return images, persons


def overfit(steps: int, **overrides) -> list[dict]:
    torch.manual_seed(0)
    net = build_model("tiny", input_size=96, **overrides)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    images, persons = batch()
    history = []
    for _ in range(steps):
        terms = training_losses(net, images, persons)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        history.append({k: v.item() for k, v in terms.items()})
    return history


@pytest.mark.slow
def test_every_term_falls_when_overfitting_one_batch():
    history = overfit(40)
    first, last = history[0], history[-1]
    assert set(first) == {"loss", "score_map", "offset", "offset_oks", "refine", "refine_oks", "final_score",
                          "kpt_score"}
    for name in first:
        assert last[name] < first[name], (name, first[name], last[name])
    assert last["offset_oks"] < 0.5 * first["offset_oks"] and last["loss"] < 0.5 * first["loss"]


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [{"score_mode": "center_gaussian", "cir_loss": "mse"},
                                       {"cir_loss": "varifocal", "use_kqe": False, "use_pqe": False}])
def test_ablation_switches_train_and_select_terms(overrides):
    history = overfit(12, **overrides)
    names = set(history[0])
    assert ("refine" in names) == overrides.get("use_kqe", True)
    assert ("final_score" in names) == overrides.get("use_pqe", True)
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["offset"] < history[0]["offset"]
    if overrides.get("score_mode") == "center_gaussian":
        assert history[-1]["score_map"] < history[0]["score_map"]


@pytest.mark.slow
def test_keypoint_heatmaps_add_a_term_that_falls():
    history = overfit(12, keypoint_heatmaps=True)
    assert "heatmap" in history[0]
    assert history[-1]["heatmap"] < 0.75 * history[0]["heatmap"]
    assert history[-1]["offset"] < history[0]["offset"]


@pytest.mark.slow
def test_labelled_head_learns_which_keypoints_are_labelled():
    """The second figure of the first image has no face labelled (v = 0, as for a face turned away): at its
    positive pixels its face comes out less likely labelled than its body; the other figure comes out labelled."""
    torch.manual_seed(0)
    net = build_model("tiny", input_size=96, labelled_head=True)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    images, persons = batch()
    persons[0].keypoints[1, :5, 2] = 0
    history = []
    for _ in range(40):
        terms = training_losses(net, images, persons)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        history.append(terms["labelled"].item())
    assert history[-1] < 0.4 * history[0]
    with torch.no_grad():  # train mode: the batch statistics the head learnt with
        dense = net.dense(images)
        t = build_targets(persons, dense.score.shape[-2:], images.shape[-2:], 17, net.cfg.positive_radius,
                          net.cfg.center_sigma)
        owner = t.owner[0].flatten()
        index = torch.stack([torch.where(owner >= 0, torch.arange(owner.numel()), -1)] * 2)
        p = net.sparse(dense, candidates_at(dense.score, dense.offsets, dense.kfeat, dense.ifeat, index))
        p = p.labelled_logits[0].sigmoid()
    faceless, whole = owner == 1, owner == 0
    assert faceless.any() and whole.any()
    assert p[faceless][:, :5].max() < 0.8 < p[faceless][:, 5:].min()  # 40 steps: still learning, but apart
    assert p[whole].min() > 0.8 and p[whole][:, :5].median() > 0.9


def test_quality_losses_vanish_at_their_target_and_weigh_errors():
    target = torch.tensor([0.0, 0.3, 0.9])
    exact = torch.logit(target.clamp(1e-6, 1 - 1e-6))
    for kind in ("qfl", "varifocal", "mse"):
        wrong = quality_loss(exact + 2.0, target, kind)
        assert quality_loss(exact, target, kind) < 1e-3 * wrong + 1e-6 or kind == "varifocal"
        assert wrong > 0
    # QFL is BCE times |t - p|^beta: an element at its target contributes nothing.
    assert quality_loss(exact, target, "qfl") < 1e-6
    with pytest.raises(ValueError, match="unknown score loss"):
        quality_loss(exact, target, "l2")


def test_images_and_persons_must_agree():
    net = build_model("tiny", input_size=96)
    images, persons = batch()
    with pytest.raises(ValueError, match="2 images but 1 Persons"):
        training_losses(net, images, persons[:1])


@pytest.mark.gpu
def test_losses_under_cuda_autocast_are_finite_and_backpropagate():
    net = build_model("tiny", input_size=96).cuda()
    images, persons = batch()
    with torch.autocast("cuda", dtype=torch.float16):
        terms = training_losses(net, images.cuda(), [p.to("cuda") for p in persons])
    assert all(torch.isfinite(v) for v in terms.values())
    terms["loss"].backward()
    assert torch.isfinite(net.heads.keypoints.offset.weight.grad).all()

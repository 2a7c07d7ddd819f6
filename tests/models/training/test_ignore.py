"""Ignore regions in the losses: no loss on background there, and no background candidate drawn there.

The tiny network on a 64 px input (16x16 map), one labelled figure at the top left, an ignore region over the
bottom-right quarter of the input (map rows and columns 8-15). A prediction is changed at one map pixel by adding to
the network's output; inside the ignore region no loss moves, in ordinary background the score-map loss does.
"""
from dataclasses import replace

import pytest
import torch

from models import build_model
from models.data.persons import Persons
from models.preprocess import normalize
from models.training.losses import sample_candidates, training_losses
from models.training.targets import build_targets
from tests.models.training.test_losses import figure

INSIDE, OUTSIDE = (12, 12), (12, 3)  # map (row, column): in the ignore region / background, far from the figure


class Nudged(torch.nn.Module):
    """The network with ``amount`` added to one dense output (``field``) at map pixel ``at``."""

    def __init__(self, net, field: str, at: tuple[int, int], amount: float):
        super().__init__()
        self.net, self.field, self.at, self.amount = net, field, at, amount
        self.cfg = net.cfg

    def dense(self, images):
        out = self.net.dense(images)
        value = getattr(out, self.field).clone()
        value[..., self.at[0], self.at[1]] += self.amount
        return replace(out, **{self.field: value})

    def sparse(self, dense, candidates):
        return self.net.sparse(dense, candidates)


def people(ignore: bool) -> list[Persons]:
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[32:, 32:] = True
    return [Persons(figure(14, 18, 2.0)[None], torch.tensor([600.0]), mask if ignore else None)]


def losses(net, persons) -> dict[str, float]:
    torch.manual_seed(0)  # the positive candidates are drawn at random
    images = normalize(torch.randint(0, 255, (1, 64, 64, 3), dtype=torch.uint8,
                                     generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        return {k: float(v) for k, v in training_losses(net, images, persons).items()}


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {heatmaps: build_model("tiny", input_size=64, keypoint_heatmaps=heatmaps).eval()
            for heatmaps in (False, True)}


@pytest.mark.parametrize("field", ["score", "heatmaps"])
def test_a_prediction_inside_the_ignore_region_moves_no_loss(nets, field):
    net = nets[field == "heatmaps"]
    base = losses(net, people(ignore=True))
    term = "score_map" if field == "score" else "heatmap"
    for amount in (-4.0, 4.0):
        assert losses(Nudged(net, field, INSIDE, amount), people(ignore=True)) == base
        assert losses(Nudged(net, field, OUTSIDE, amount), people(ignore=True))[term] != base[term]


def test_without_the_mask_the_same_prediction_is_trained_as_background(nets):
    base = losses(nets[False], people(ignore=False))
    assert losses(Nudged(nets[False], "score", INSIDE, 4.0), people(ignore=False))["score_map"] > base["score_map"]


def test_the_mask_does_not_silence_a_labelled_persons_positive_pixels(nets):
    """A labelled person inside an ignore region (a crowd around them) keeps its positives' loss."""
    net = nets[False]
    everywhere = [Persons(p.keypoints, p.areas, torch.ones(64, 64, dtype=torch.bool)) for p in people(True)]
    t = build_targets(everywhere, (16, 16), (64, 64), 17, net.cfg.positive_radius, net.cfg.center_sigma)
    row, col = (int(v) for v in t.positive[0].nonzero()[0])
    base = losses(net, everywhere)
    assert losses(Nudged(net, "score", (row, col), 4.0), everywhere)["score_map"] != base["score_map"]
    assert losses(Nudged(net, "score", OUTSIDE, 4.0), everywhere)["score_map"] == base["score_map"]


def test_the_sparse_stage_never_draws_a_background_candidate_inside_the_region():
    persons = people(ignore=True)
    t = build_targets(persons, (16, 16), (64, 64), 17, 2.0, 2.0)
    assert t.ignore[0, 8:, 8:].all() and not t.ignore[0, :8].any() and not t.ignore[0, :, :8].any()
    score = torch.zeros(1, 1, 16, 16)
    score[..., 8:, 8:] = 5.0 + torch.rand(8, 8)  # the highest scores of the image lie in the ignore region
    index, is_pos = sample_candidates(t, score, positives=4, negatives=16)
    negatives = index[0][~is_pos[0] & (index[0] >= 0)]
    assert len(negatives) == 16
    rows, cols = negatives // 16, negatives % 16
    assert not ((rows >= 8) & (cols >= 8)).any()
    unmasked = build_targets(people(ignore=False), (16, 16), (64, 64), 17, 2.0, 2.0)
    index, is_pos = sample_candidates(unmasked, score, positives=4, negatives=16)
    negatives = index[0][~is_pos[0]]
    assert ((negatives // 16 >= 8) & (negatives % 16 >= 8)).all()  # without the mask they are all drawn there


def test_no_ignore_regions_flag_turns_the_masks_off(tmp_path):
    from models.training.args import build_args
    from models.training.distributed import DistInfo
    from models.training.loaders import make_loader
    from tests.models.data.test_regions import write_coco

    ann, images = write_coco(tmp_path)
    info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    for flag, on in (([], True), (["--no-ignore-regions"], False)):
        args = build_args(["--train-ann", str(ann), "--train-images", str(images), "--input-size", "32",
                           "--workers", "0", "--batch-size", "2", *flag])
        loader, _ = make_loader(ann, images, args, info, seed=0, num_keypoints=17)
        assert loader.dataset.ignore_regions is on
        _, persons, _, _ = next(iter(loader))
        assert all((p.ignore is not None) is on for p in persons)  # both images have a crowd

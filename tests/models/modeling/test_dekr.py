"""DEKR's heads: the adaptive block's affine places the taps, DEKR's heat values read the map at the floor of the
input pixel, and its scores and rescoring follow DEKR's rules."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels.candidates import Candidates
from models import build_model
from models.modeling.dekr import AdaptiveBlock, DekrScores, build_rescore, heat_values


def block_with(bias: list[float], k: int = 2, ck: int = 3, seed: int = 0) -> AdaptiveBlock:
    block = AdaptiveBlock(k, ck).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        block.affine.weight.zero_()
        block.affine.bias.copy_(torch.tensor(bias).repeat(k))
        block.weight.copy_(torch.randn(block.weight.shape, generator=gen))
    return block


def test_identity_affine_is_a_grouped_3x3_convolution_with_residual():
    block = block_with([1, 0, 0, 0, 1, 0])
    x = torch.randn(1, 6, 7, 9)
    conv = F.conv2d(x, block.weight, padding=1, groups=2)
    assert torch.allclose(block(x), F.relu(block.bn(conv) + x), atol=1e-5)


def test_translation_moves_every_tap_one_row_down():
    block = block_with([1, 0, 1, 0, 1, 0])  # M = [I | (1, 0)]: every tap reads one row lower
    x = torch.randn(1, 6, 7, 9)
    below = F.pad(x, (1, 1, 0, 2))  # taps of row y read rows y, y + 1, y + 2 (zeros past the bottom)
    conv = F.conv2d(below, block.weight, groups=2)
    assert torch.allclose(block(x), F.relu(block.bn(conv) + x), atol=1e-5)


def test_heat_value_is_read_at_the_floor_of_the_input_pixel_and_clamped():
    heat = torch.arange(20.0).view(1, 1, 4, 5)  # value = 5 y + x
    points = torch.tensor([[[[1.30, 2.10]], [[1.49, 0.0]], [[-3.0, 9.0]]]])  # [B, N, K=1, 2] map px (x, y)
    # 4 m = (5.2, 8.4) -> floor (5, 8) -> (1.25, 2.0); (5.96, 0) -> (1.25, 0); outside -> clamped to (0, 3)
    assert torch.allclose(heat_values(heat, points)[0, :, 0], torch.tensor([11.25, 1.25, 15.0]))


def test_scores_are_centre_times_heat_and_zero_in_unused_slots():
    centre = torch.zeros(1, 1, 4, 5)
    centre[0, 0, 2, 3] = 0.8
    heatmaps = torch.full((1, 2, 4, 5), 0.5)
    cands = Candidates(scores=torch.zeros(1, 2), indices=torch.tensor([[13, -1]]), valid=torch.tensor([[True, False]]),
                       keypoints=torch.ones(1, 2, 2, 2), kpt_queries=torch.zeros(1, 2, 2, 1),
                       inst_queries=torch.zeros(1, 2, 1))
    out = DekrScores()(centre, heatmaps, cands)
    assert torch.allclose(out.keypoint_scores[0, 0], torch.tensor([0.4, 0.4]))
    assert torch.allclose(out.score_logits, torch.tensor([[0.4, 0.0]]))
    assert torch.equal(out.keypoint_scores[0, 1], torch.zeros(2)) and torch.equal(out.keypoint_logits[0, 1], torch.zeros(2))


def test_rescoring_features_are_scale_free():
    net = build_rescore(17)
    pose = torch.rand(3, 17, 2) * 100 + 50
    joint = torch.rand(3, 17)
    assert torch.allclose(net(pose, joint), net(pose * 3.0, joint), atol=1e-5)


def test_dekr_presets_have_dekrs_size():
    assert sum(p.numel() for p in build_model("dekr_w32").parameters()) == 29_561_182  # DEKR's W32: 29.6 M
    net = build_model("dekr_w32_crowdpose")
    d = net.dense(torch.zeros(1, 3, 64, 96))
    assert d.offsets.shape == (1, 28, 16, 24) and d.heatmaps.shape == (1, 14, 16, 24) and d.kfeat.shape[1] == 14 * 15

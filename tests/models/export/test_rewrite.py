"""The export-time pairing of the keypoint branches gives the original outputs: a hand-made weight layout, and the
whole dense stage in float64 on a network with random weights and batch-norm statistics."""
import torch

from models import build_model
from models.export.rewrite import PairedKeypointHead, _paired_weight, pair_keypoint_groups


def randomised(net):
    torch.manual_seed(1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(), m.running_mean.normal_(), m.running_var.uniform_(0.5, 2)
        for p in net.heads.keypoints.parameters():
            p.normal_(std=0.3)
    return net.eval()


def test_three_groups_become_two_block_diagonal_pairs():
    # 3 groups, 1 output and 2 inputs each: weights a, b, c (1x1 kernels)
    w = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]).view(3, 2, 1, 1)
    got = _paired_weight(w, groups=3, out_per_group=1, in_per_group=2, pairs=2, out_channels=4).view(4, 4)
    want = torch.tensor([[1.0, 2.0, 0.0, 0.0],   # keypoint 0: first half of pair 0's inputs
                         [0.0, 0.0, 3.0, 4.0],   # keypoint 1: second half of pair 0's inputs
                         [5.0, 6.0, 0.0, 0.0],   # keypoint 2: first half of pair 1's inputs
                         [0.0, 0.0, 0.0, 0.0]])  # the padding keypoint
    assert torch.equal(got, want)


def test_paired_head_gives_the_original_dense_outputs_and_exact_zeros_in_its_padding():
    net = randomised(build_model("tiny", kpt_blocks=3)).double()
    paired = pair_keypoint_groups(net)
    head = paired.heads.keypoints
    assert isinstance(head, PairedKeypointHead) and net.heads.keypoints is not head
    assert head.branches[0].conv1.groups == 9 and head.branches[0].conv1.in_channels == 144
    x = torch.randn(2, 3, 64, 96, dtype=torch.float64)
    with torch.no_grad():
        a, b = net.dense(x), paired.dense(x)
        features = paired.backbone(x)
        padded = head.branches(head.transition(features))
    used = {"score": 1, "offsets": 34, "kfeat": 136, "ifeat": a.ifeat.shape[1]}  # the dense outputs keep a padding slot
    assert b.offsets.shape[1] == 36 and b.kfeat.shape[1] == 144
    for name, channels in used.items():
        torch.testing.assert_close(getattr(b, name)[:, :channels], getattr(a, name), rtol=0, atol=1e-12)
        assert torch.equal(getattr(b, name)[:, channels:], torch.zeros_like(getattr(b, name)[:, channels:]))
    assert padded.shape[1] == 144 and torch.equal(padded[:, 136:], torch.zeros_like(padded[:, 136:]))
    assert padded[:, :136].abs().max() > 0


def test_maps_are_cut_back_for_a_heatmap_head_or_when_asked():
    net = randomised(build_model("tiny", kpt_blocks=1, keypoint_heatmaps=True)).double()
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        a, b = net.dense(x), pair_keypoint_groups(net).dense(x)
        c = pair_keypoint_groups(randomised(build_model("tiny", kpt_blocks=1)), padded=False).dense(x.float())
    assert b.kfeat.shape == a.kfeat.shape and b.heatmaps.shape == a.heatmaps.shape
    torch.testing.assert_close(b.heatmaps, a.heatmaps, rtol=0, atol=1e-12)
    assert c.offsets.shape[1] == 34 and c.kfeat.shape[1] == 136


def test_wide_branches_are_left_as_they_are():
    net = build_model("tiny", kpt_channels=16).eval()
    assert pair_keypoint_groups(net) is net

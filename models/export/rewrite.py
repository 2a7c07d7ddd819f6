"""Export-time rewrites that keep a network's outputs and run faster in the CPU runtimes.

``pair_keypoint_groups``: the keypoint head's branches are grouped convolutions with one group of ``Ck`` channels
per keypoint (17 groups of 8 for ``tiny``). oneDNN's bf16 kernels (AMX, AVX-512) work on blocks of 16 or more
channels, so 8-channel groups waste half of every block. The rewrite merges the branches two by two into groups of
``2 * Ck`` channels with block-diagonal weights (zeros across the two keypoints) and pads the odd keypoint out with
a branch of zeros: 9 groups of 16 for ``tiny``. Each output channel still sums over its own keypoint's channels
only, plus exact zeros, so the outputs are the original's (bit for bit in float64; within rounding of the summation
order in float32). The padding channels stay exactly zero through every layer (zero weights, batch-norm scale and
shift zero). ``kfeat`` and the offsets keep the padding slot (``2 * pairs`` slots; the exported decode reads the
first K, ``models.export.graph.gather_candidates_rows``): cutting a whole map back to 17 slots cost OpenVINO a
reference slice and two layout conversions, about a tenth of the graph. A network with a heatmap head, which reads
``kfeat``, gets the maps cut back.

``kfeat`` leaves the branches through an identity (a depthwise 1x1 convolution of weight 1, exact in any
precision): OpenVINO in bf16 mode otherwise keeps the branches' whole residual chain in f32, because its last tensor
feeds the decode's float gathers and a fused residual sum keeps its destination's type, and converts it to bf16
before every convolution. Together the two rewrites take about a quarter off the exported graph's time.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from models.modeling.backbones.common import BasicBlock
from models.modeling.heads import KeypointHead, full_precision


def _paired_weight(weight: torch.Tensor, groups: int, out_per_group: int, in_per_group: int, pairs: int,
                   out_channels: int) -> torch.Tensor:
    """A grouped conv's weight ``[groups*out_per_group, in_per_group, kh, kw]`` as the weight of ``pairs`` groups
    of two: ``[out_channels, 2*in_per_group, kh, kw]``, block-diagonal within each pair, zero beyond the original
    outputs."""
    out = weight.new_zeros(out_channels, 2 * in_per_group, *weight.shape[2:])
    for g in range(groups):
        rows = slice(g * out_per_group, (g + 1) * out_per_group)
        cols = slice((g % 2) * in_per_group, (g % 2 + 1) * in_per_group)
        out[rows, cols] = weight[rows]
    return out


def _padded_bn(bn: nn.BatchNorm2d, channels: int) -> nn.BatchNorm2d:
    """``bn`` widened to ``channels``; the new channels output exactly 0 (scale 0, shift 0)."""
    new = nn.BatchNorm2d(channels, eps=bn.eps).to(bn.weight.dtype)
    n = bn.num_features
    with torch.no_grad():
        new.weight.zero_()
        new.bias.zero_()
        new.running_mean.zero_()
        new.running_var.fill_(1.0)
        new.weight[:n], new.bias[:n] = bn.weight, bn.bias
        new.running_mean[:n], new.running_var[:n] = bn.running_mean, bn.running_var
    return new.eval()


def _paired_conv(conv: nn.Conv2d, groups: int, pairs: int, width: int, out_channels: int) -> nn.Conv2d:
    new = nn.Conv2d(width, out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation, groups=pairs,
                    bias=conv.bias is not None).to(conv.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(_paired_weight(conv.weight, groups, conv.out_channels // groups, conv.in_channels // groups,
                                        pairs, out_channels))
        if conv.bias is not None:
            new.bias.zero_()
            new.bias[:conv.out_channels] = conv.bias
    return new


class PairedKeypointHead(nn.Module):
    """``KeypointHead`` with its per-keypoint groups merged two by two; returns its ``(offsets, kfeat)`` with the
    padding slot kept (``padded``) or cut off (the original shapes)."""

    def __init__(self, head: KeypointHead, num_keypoints: int, padded: bool = False):
        super().__init__()
        self.padded = padded
        k = num_keypoints
        ck = head.branches[0].conv1.in_channels // k
        self.num_offsets, self.width, self.offset_scale = 2 * k, k * ck, head.offset_scale
        pairs = (k + 1) // 2
        width = 2 * ck * pairs
        conv, bn = head.transition[0], head.transition[1]
        transition = nn.Conv2d(conv.in_channels, width, 1, bias=False).to(conv.weight.dtype)
        with torch.no_grad():
            transition.weight.zero_()
            transition.weight[:conv.out_channels] = conv.weight
        self.transition = nn.Sequential(transition, _padded_bn(bn, width), nn.ReLU(inplace=True))
        blocks = []
        for block in head.branches:
            new = BasicBlock(width, width, groups=pairs, dilation=block.conv1.dilation[0])
            new.conv1 = _paired_conv(block.conv1, k, pairs, width, width)
            new.conv2 = _paired_conv(block.conv2, k, pairs, width, width)
            new.bn1, new.bn2 = _padded_bn(block.bn1, width), _padded_bn(block.bn2, width)
            blocks.append(new)
        self.branches = nn.Sequential(*blocks)
        self.offset = _paired_conv(head.offset, k, pairs, width, 4 * pairs)
        # kfeat leaves the branches through an identity (a depthwise 1x1 conv of weight 1): fed straight to the
        # decode's float gathers, the whole residual chain of the branches would be kept in f32 by OpenVINO in bf16
        # mode, with a reorder to bf16 before every convolution
        self.kfeat_out = nn.Conv2d(width, width, 1, groups=width, bias=False).to(conv.weight.dtype)
        with torch.no_grad():
            self.kfeat_out.weight.fill_(1.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kfeat = self.branches(self.transition(x))
        offsets = full_precision(self.offset, kfeat) * self.offset_scale
        if self.padded:
            return offsets, self.kfeat_out(kfeat)
        return offsets[:, : self.num_offsets], self.kfeat_out(kfeat)[:, : self.width]


def pair_keypoint_groups(net, padded: bool | None = None):
    """A copy of ``net`` (eval mode) whose keypoint head is ``PairedKeypointHead``; ``net`` is left as it is.
    Networks whose branches already hold 16+ channels per keypoint are returned unchanged. ``padded`` (default:
    unless a heatmap head reads ``kfeat``): the dense stage's offsets and ``kfeat`` keep the padding slot."""
    if net.cfg.head != "qem":  # DEKR's branches hold 15 channels per keypoint in one grouped operation already
        return net
    head = net.heads.keypoints
    k = net.cfg.num_keypoints
    if head.branches[0].conv1.groups != k or head.branches[0].conv1.in_channels // k >= 16:
        return net
    paired = copy.deepcopy(net).eval()
    padded = net.heads.heatmaps is None if padded is None else padded
    paired.heads.keypoints = PairedKeypointHead(head, k, padded).eval()
    return paired

"""``realtime``: a CSP/ResNet-style encoder (strides 4..32) with a top-down neck back to stride 4.

Each stage: a strided 3x3 conv, then a CSP block (two 1x1 splits, BasicBlocks on one half, 1x1 fuse).
Widths 24 (stem) 48-96-192-320, blocks 1-2-2-1, neck 48 channels: about 2-3 GFLOPs at 320x320 with the heads
(measured with ``torch.utils.flop_counter``; the figure is in docs/architecture.md).
"""
from __future__ import annotations

import torch
from torch import nn

from models.modeling.backbones.common import BasicBlock, TopDownNeck, conv_bn_relu


class CSPBlock(nn.Module):
    def __init__(self, channels: int, blocks: int):
        super().__init__()
        half = channels // 2
        self.split_main = conv_bn_relu(channels, half, 1)
        self.split_skip = conv_bn_relu(channels, half, 1)
        self.blocks = nn.Sequential(*(BasicBlock(half, half) for _ in range(blocks)))
        self.fuse = conv_bn_relu(2 * half, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.blocks(self.split_main(x)), self.split_skip(x)], dim=1))


class RealtimeBackbone(nn.Module):
    def __init__(self, widths: tuple[int, ...] = (48, 96, 192, 320), blocks: tuple[int, ...] = (1, 2, 2, 1),
                 out_channels: int = 48, stem: int = 24):
        super().__init__()
        self.stem = conv_bn_relu(3, stem, 3, 2)
        cins = (stem,) + tuple(widths[:-1])
        self.stages = nn.ModuleList(
            nn.Sequential(conv_bn_relu(cin, cout, 3, 2), CSPBlock(cout, n))
            for cin, cout, n in zip(cins, widths, blocks))
        self.neck = TopDownNeck(list(widths), out_channels)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats, y = [], self.stem(x)
        for stage in self.stages:
            y = stage(y)
            feats.append(y)
        return self.neck(feats)

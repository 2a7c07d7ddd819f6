"""``tiny``: a four-level encoder with a top-down neck to stride 4, small enough to train on a CPU in minutes.

Layers (input 256 -> map 64x64): stem 3->16 (s2) -> 24 (s4) + BasicBlock; 48 (s8) + BasicBlock; 64 (s16) +
BasicBlock; 96 (s32) + BasicBlock; neck to 32 channels at stride 4. The stride-32 level gives a receptive field
larger than the synthetic people at this size. ``level_blocks`` > 1 stacks more BasicBlocks in each stride-8/16/32
level (module names ``levels.i.1``, ``levels.i.2``, ...; ``models.training.grow`` adds them to trained weights).
"""
from __future__ import annotations

import torch
from torch import nn

from models.modeling.backbones.common import BasicBlock, TopDownNeck, conv_bn_relu


class TinyBackbone(nn.Module):
    def __init__(self, widths: tuple[int, ...] = (24, 48, 64, 96), out_channels: int = 32, level_blocks: int = 1):
        super().__init__()
        self.stem = nn.Sequential(conv_bn_relu(3, 16, 3, 2), conv_bn_relu(16, widths[0], 3, 2),
                                  BasicBlock(widths[0], widths[0]))
        self.levels = nn.ModuleList(
            nn.Sequential(conv_bn_relu(cin, cout, 3, 2), *(BasicBlock(cout, cout) for _ in range(level_blocks)))
            for cin, cout in zip(widths[:-1], widths[1:]))
        self.neck = TopDownNeck(list(widths), out_channels)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [self.stem(x)]
        for level in self.levels:
            feats.append(level(feats[-1]))
        return self.neck(feats)

"""Dense heads on the stride-4 backbone map: CIR score, per-keypoint regression branches, instance features.

- Score head: 1x1 transition (C -> ``head_channels``) + BasicBlock + 1x1 -> 1 logit; bias starts at
  ``logit(0.01)`` (focal-loss prior) so the map starts near background.
- Keypoint head (DEKR-style): 1x1 transition C -> K*Ck, then ``kpt_blocks`` BasicBlocks with ``groups=K`` (one
  separate branch per keypoint; the second block dilated by 2 for a larger window), giving the per-keypoint
  features ``kfeat`` (channels ``k*Ck .. (k+1)*Ck-1`` = keypoint k); a grouped 1x1 conv K*Ck -> 2K turns branch k
  into ``(dx_k, dy_k)`` at channels ``2k, 2k+1``, in feature-map pixels (in the weights' precision even under
  autocast), times ``offset_scale`` (4 for tiny and realtime: on CPU-length schedules the offsets reach
  person-sized values sooner; 1 for HRNet, as DEKR).
- Keypoint heatmaps (``keypoint_heatmaps``, off in the paper's setting): on each keypoint branch a grouped 3x3
  conv (Ck -> Ck) and a grouped 1x1 conv give one logit map per keypoint (channel k = keypoint k), bias at the
  same prior as the score map; ``models.modeling.snap`` uses them to place keypoints locally.
- Instance head: 1x1 transition C -> Ci + a 3x3 conv, giving ``ifeat``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from models.modeling.backbones.common import BasicBlock, conv_bn_relu
from models.config import ModelConfig

SCORE_PRIOR = 0.01


def full_precision(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` in the precision of the layer's weights even under autocast: bf16 keeps 8 bits of mantissa, so
    an offset of 16-32 map px would come out rounded to 1/8 px."""
    if not torch.is_autocast_enabled(x.device.type):
        return layer(x)
    with torch.autocast(x.device.type, enabled=False):
        return layer(x.to(layer.weight.dtype))


class ScoreHead(nn.Module):
    def __init__(self, cin: int, width: int):
        super().__init__()
        self.trunk = nn.Sequential(conv_bn_relu(cin, width, 1), BasicBlock(width, width))
        self.out = nn.Conv2d(width, 1, 1)
        nn.init.normal_(self.out.weight, std=0.001)
        nn.init.constant_(self.out.bias, math.log(SCORE_PRIOR / (1 - SCORE_PRIOR)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.trunk(x))


class KeypointHeatmapHead(nn.Module):
    def __init__(self, num_keypoints: int, ck: int):
        super().__init__()
        width = num_keypoints * ck
        self.body = conv_bn_relu(width, width, 3, groups=num_keypoints)
        self.out = nn.Conv2d(width, num_keypoints, 1, groups=num_keypoints)
        nn.init.normal_(self.out.weight, std=0.001)
        nn.init.constant_(self.out.bias, math.log(SCORE_PRIOR / (1 - SCORE_PRIOR)))

    def forward(self, kfeat: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(kfeat))


class KeypointHead(nn.Module):
    """Returns ``(offsets [B,2K,h,w], kfeat [B,K*Ck,h,w])``."""

    def __init__(self, cin: int, num_keypoints: int, ck: int, blocks: int, offset_scale: float = 1.0):
        super().__init__()
        self.offset_scale = offset_scale
        width = num_keypoints * ck
        self.transition = conv_bn_relu(cin, width, 1)
        self.branches = nn.Sequential(*(BasicBlock(width, width, groups=num_keypoints, dilation=1 + (i % 2))
                                        for i in range(blocks)))
        self.offset = nn.Conv2d(width, 2 * num_keypoints, 1, groups=num_keypoints)
        nn.init.normal_(self.offset.weight, std=0.001)
        nn.init.zeros_(self.offset.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kfeat = self.branches(self.transition(x))
        return full_precision(self.offset, kfeat) * self.offset_scale, kfeat


class InstanceHead(nn.Module):
    def __init__(self, cin: int, ci: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(cin, ci, 1), conv_bn_relu(ci, ci, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class DenseHeads(nn.Module):
    def __init__(self, cin: int, cfg: ModelConfig):
        super().__init__()
        self.score = ScoreHead(cin, cfg.head_channels)
        self.keypoints = KeypointHead(cin, cfg.num_keypoints, cfg.kpt_channels, cfg.kpt_blocks, cfg.offset_scale)
        self.instance = InstanceHead(cin, cfg.inst_channels)
        self.heatmaps = KeypointHeatmapHead(cfg.num_keypoints, cfg.kpt_channels) if cfg.keypoint_heatmaps else None

    def forward(self, x: torch.Tensor):
        offsets, kfeat = self.keypoints(x)
        heatmaps = None if self.heatmaps is None else self.heatmaps(kfeat)
        return self.score(x), offsets, kfeat, self.instance(x), heatmaps

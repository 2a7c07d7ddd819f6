"""HRNet-v2 (W32 / W48) as DEKR uses it: four branches, all upsampled to stride 4 and concatenated.

Parameter names follow the official HRNet code (HRNet-Image-Classification, mmpose): ``conv1, bn1, conv2, bn2,
layer1, transition1, stage2, transition2, stage3, transition3, stage4`` with ``branches`` and ``fuse_layers``, so an
official ImageNet checkpoint loads by name (``load_pretrained``; its ``incre_modules``, ``downsamp_modules``,
``final_layer`` and ``classifier`` are ignored). Stage layout (modules, blocks per branch): stage2 1x4, stage3
4x4, stage4 3x4; branch widths W, 2W, 4W, 8W. The output has 15W channels at stride 4.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from models.modeling.backbones.common import BasicBlock, Bottleneck, upsample_to

IGNORED_PREFIXES = ("incre_modules", "downsamp_modules", "final_layer", "classifier")
STAGES = ((2, 1), (3, 4), (4, 3))  # (branches, modules) of stage2..stage4


def _conv3x3_bn(cin: int, cout: int, stride: int, relu: bool) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*(layers + [nn.ReLU(inplace=True)] if relu else layers))


class HighResolutionModule(nn.Module):
    """Parallel BasicBlock branches followed by all-to-all fusion (``fuse_layers[i][j]``: branch j -> i)."""

    def __init__(self, channels: list[int], blocks: int = 4):
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList(
            nn.Sequential(*(BasicBlock(c, c) for _ in range(blocks))) for c in channels)
        fuse = []
        for i in range(n):
            row = []
            for j in range(n):
                if j > i:
                    row.append(nn.Sequential(nn.Conv2d(channels[j], channels[i], 1, bias=False),
                                             nn.BatchNorm2d(channels[i])))
                elif j == i:
                    row.append(None)
                else:
                    steps = [_conv3x3_bn(channels[j], channels[j], 2, relu=True) for _ in range(i - j - 1)]
                    steps.append(_conv3x3_bn(channels[j], channels[i], 2, relu=False))
                    row.append(nn.Sequential(*steps))
            fuse.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[i]
            for j, layer in enumerate(row):
                if j < i:
                    y = y + layer(xs[j])
                elif j > i:
                    y = y + upsample_to(layer(xs[j]), xs[i], mode="nearest")
            out.append(self.relu(y))
        return out


def _transition(pre: list[int], cur: list[int]) -> nn.ModuleList:
    layers = []
    for i, c in enumerate(cur):
        if i < len(pre):
            layers.append(_conv3x3_bn(pre[i], c, 1, relu=True) if pre[i] != c else None)
        else:
            steps = [_conv3x3_bn(pre[-1], c if k == i - len(pre) else pre[-1], 2, relu=True)
                     for k in range(i + 1 - len(pre))]
            layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


class HRNet(nn.Module):
    def __init__(self, width: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        downsample = nn.Sequential(nn.Conv2d(64, 256, 1, bias=False), nn.BatchNorm2d(256))
        self.layer1 = nn.Sequential(Bottleneck(64, 64, downsample=downsample),
                                    *(Bottleneck(256, 64) for _ in range(3)))
        pre = [256]
        for index, (branches, modules) in enumerate(STAGES, start=1):
            cur = [width * 2 ** b for b in range(branches)]
            setattr(self, f"transition{index}", _transition(pre, cur))
            setattr(self, f"stage{index + 1}", nn.Sequential(*(HighResolutionModule(cur) for _ in range(modules))))
            pre = cur
        self.out_channels = sum(pre)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        ys = [self.layer1(x)]
        for index in range(1, len(STAGES) + 1):
            transition, stage = getattr(self, f"transition{index}"), getattr(self, f"stage{index + 1}")
            xs = []
            for i, layer in enumerate(transition):
                source = ys[i] if i < len(ys) else ys[-1]
                xs.append(source if layer is None else layer(source))
            ys = stage(xs)
        return torch.cat([ys[0]] + [F.interpolate(y, size=ys[0].shape[-2:], mode="bilinear", align_corners=False)
                                    for y in ys[1:]], dim=1)


def load_pretrained(net: HRNet, path: str | Path) -> int:
    """Load an official HRNet ImageNet checkpoint from a local file by parameter name; returns how many
    tensors were loaded. Accepts a bare state dict or one under ``state_dict``/``model``, with optional
    ``module.``/``backbone.`` prefixes. Raises ``ValueError`` naming the file on a missing backbone tensor or
    a shape mismatch."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: pretrained HRNet weights not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same message
        raise ValueError(f"{path}: not a readable weights file ({type(exc).__name__})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict of tensors")
    cleaned = {}
    for name, tensor in state.items():
        for prefix in ("module.", "backbone."):
            name = name[len(prefix):] if name.startswith(prefix) else name
        if not name.startswith(IGNORED_PREFIXES):
            cleaned[name] = tensor
    own = net.state_dict()
    missing = sorted(set(own) - set(cleaned))
    if missing:
        raise ValueError(f"{path}: {len(missing)} HRNet tensors missing, e.g. {missing[:3]}")
    wrong = [n for n in own if tuple(cleaned[n].shape) != tuple(own[n].shape)]
    if wrong:
        raise ValueError(f"{path}: shape mismatch for {wrong[:3]} (wrong HRNet width?)")
    net.load_state_dict({n: cleaned[n] for n in own}, strict=True)
    return len(own)

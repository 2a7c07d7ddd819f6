"""Backbones: each maps a normalised image ``[B,3,H,W]`` to one stride-4 feature map ``[B,C,H/4,W/4]`` and
exposes ``out_channels``. All are our own code; nothing is downloaded."""
from __future__ import annotations

from torch import nn

from models.modeling.backbones.hrnet import HRNet, load_pretrained
from models.modeling.backbones.realtime import RealtimeBackbone
from models.modeling.backbones.tiny import TinyBackbone


def build_backbone(name: str, encoder_blocks: int = 1) -> nn.Module:
    """The backbone ``name``; ``encoder_blocks``: BasicBlocks per stride-8/16/32 level (tiny only)."""
    if name == "tiny":
        return TinyBackbone(level_blocks=encoder_blocks)
    if name == "realtime":
        return RealtimeBackbone()
    if name == "hrnet_w32":
        return HRNet(32)
    if name == "hrnet_w48":
        return HRNet(48)
    raise ValueError(f"unknown backbone {name!r}; choose tiny, realtime, hrnet_w32 or hrnet_w48")


__all__ = ["HRNet", "RealtimeBackbone", "TinyBackbone", "build_backbone", "load_pretrained"]

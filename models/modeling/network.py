"""``PoseNet``: backbone + dense heads (dense stage), the fused decode, and QEM (sparse stage).

``net.dense(x)`` -> ``DenseOutput``; ``net.sparse(dense, cands)`` -> ``SparseOutput``; ``net.infer(x)`` runs
dense -> ``kernels.decode`` (with ``cfg.max_people``, ``cfg.threshold``, ``cfg.peak_window``) -> sparse -> ``snap``
(keypoint snapping on the heatmaps, ``models.modeling.snap``; only with ``cfg.snap_radius`` > 0).
All map coordinates are feature-map pixels at stride 4 (``models.config`` states the mapping to input pixels).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

import kernels
from kernels.candidates import Candidates
from models.modeling.backbones import build_backbone, load_pretrained
from models.config import STRIDE, ModelConfig, preset
from models.modeling.dekr import DekrHeads, DekrScores, build_rescore, start_from_dekr
from models.modeling.heads import DenseHeads
from models.modeling.qem import QEM, SparseOutput
from models.modeling.snap import snap_keypoints


@dataclass
class DenseOutput:
    """``score [B,1,h,w]`` CIR logits; ``offsets [B,2K,h,w]`` (dx_0, dy_0, ...) feature px; ``kfeat
    [B,K*Ck,h,w]`` per-keypoint features; ``ifeat [B,Ci,h,w]`` instance features; ``heatmaps [B,K,h,w]`` keypoint
    heatmap logits (``None`` unless ``cfg.keypoint_heatmaps``). h = H/4, w = W/4. DEKR's heads
    (``models.modeling.dekr``) give heatmap values, not logits, in ``score`` (the centre) and ``heatmaps``."""

    score: torch.Tensor
    offsets: torch.Tensor
    kfeat: torch.Tensor
    ifeat: torch.Tensor
    heatmaps: torch.Tensor | None = None


class PoseNet(nn.Module):
    stride = STRIDE

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(cfg.backbone, cfg.encoder_blocks)
        if cfg.head == "dekr":
            self.heads = DekrHeads(self.backbone.out_channels, cfg)
            self.qem = DekrScores(build_rescore(cfg.num_keypoints) if cfg.rescore else None)
        elif cfg.head == "dekr_qem":
            self.heads = DekrHeads(self.backbone.out_channels, cfg)
            self.qem = QEM(cfg)
        else:
            self.heads = DenseHeads(self.backbone.out_channels, cfg)
            self.qem = QEM(cfg)

    def dense(self, x: torch.Tensor) -> DenseOutput:
        """``x [B,3,H,W]`` normalised RGB (H, W multiples of 32) -> ``DenseOutput`` at stride 4."""
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] % 32 or x.shape[3] % 32:
            raise ValueError(f"expected images [B,3,H,W] with H, W multiples of 32, got {tuple(x.shape)}")
        return DenseOutput(*self.heads(self.backbone(x)))

    def sparse(self, dense: DenseOutput, cands: Candidates) -> SparseOutput:
        if self.cfg.head == "dekr":
            return self.qem(dense.score, dense.heatmaps, cands)
        return self.qem(dense.score, cands)

    def decode(self, dense: DenseOutput, backend: str = "auto") -> Candidates:
        return kernels.decode(dense.score, dense.offsets, dense.kfeat, dense.ifeat, max_people=self.cfg.max_people,
                              threshold=self.cfg.decode_threshold, nms_kernel=self.cfg.peak_window(*dense.score.shape[-2:]),
                              backend=backend)

    @property
    def snapping(self) -> tuple[int, float, float]:
        """The config's keypoint snapping settings: (radius, threshold, weight)."""
        return self.cfg.snap_radius, self.cfg.snap_threshold, self.cfg.snap_weight

    def snap(self, dense: DenseOutput, out: SparseOutput, valid: torch.Tensor,
             snapping: tuple[int, float, float] | None = None) -> SparseOutput:
        """``out`` with its keypoints snapped to the heatmaps (unchanged when the radius is 0); ``snapping`` =
        (radius, threshold, weight), default ``self.snapping``."""
        radius, threshold, weight = self.snapping if snapping is None else snapping
        if not radius or dense.heatmaps is None:
            return out
        snapped, _ = snap_keypoints(out.keypoints, dense.heatmaps, radius, threshold, weight)
        return replace(out, keypoints=torch.where(valid[..., None, None], snapped, 0.0))

    def infer(self, x: torch.Tensor, decode_backend: str = "auto",
              snapping: tuple[int, float, float] | None = None) -> tuple[Candidates, SparseOutput]:
        dense = self.dense(x)
        cands = self.decode(dense, decode_backend)
        return cands, self.snap(dense, self.sparse(dense, cands), cands.valid, snapping)

    def forward(self, x: torch.Tensor) -> tuple[Candidates, SparseOutput]:
        return self.infer(x)


def build_model(name: str, pretrained: str | Path | None = None, **overrides) -> PoseNet:
    """The network preset ``name`` ("tiny", "realtime", "hrnet_w32", "hrnet_w48", "dekr_w32", ...) with ``ModelConfig``
    ``overrides``. ``pretrained``: a local official HRNet ImageNet checkpoint loaded into the backbone by name, or for
    the ``dekr_qem`` networks an imported DEKR checkpoint (``models.modeling.dekr.start_from_dekr``)."""
    net = PoseNet(preset(name, **overrides))
    if pretrained is not None and net.cfg.head == "dekr_qem":
        start_from_dekr(net, pretrained)
    elif pretrained is not None:
        if not net.cfg.backbone.startswith("hrnet"):
            raise ValueError(f"pretrained weights load into HRNet backbones only, not {net.cfg.backbone!r}")
        load_pretrained(net.backbone, pretrained)
    return net

"""DEKR's heads (Geng et al., CVPR 2021), layer for layer, so that its published weights run in this pipeline.

On the HRNet backbone's stride-4 map (``models.modeling.backbones.hrnet``, DEKR's own joining of the four branches):

- Heatmap head: 1x1 transition (C -> ``dekr_heat_channels``, BN, ReLU), one BasicBlock, a 1x1 conv to K + 1 maps:
  the K keypoint heatmaps, then the person-centre heatmap (DEKR's order). Values, not logits: DEKR trains them
  towards gaussians of peak 1 with a squared error.
- Offset head: 1x1 transition (C -> K x 15, BN, ReLU), then per keypoint two adaptive blocks on its own 15
  channels, then a 1x1 conv per keypoint to its (dx, dy). ``AdaptiveBlock`` runs all K keypoints as one grouped
  operation (the authors' release keeps 17 separate modules; ``models.imports.dekr`` converts).
- Adaptive block: a 3x3 conv predicts, per pixel, a 2x3 affine ``M`` that places the 9 taps of a 3x3
  deformable convolution: tap t of output pixel (y, x) reads ``(y, x) + M (dy_t, dx_t, 1)`` (row 0 of M gives y,
  row 1 gives x; ``(dy_t, dx_t)`` the regular 3x3 grid). DEKR writes it as a 2x2 transform ``T`` and a
  translation ``u`` with torchvision offsets ``T r - r + u``, i.e. ``M = [T | u]``. Then BN, the residual, ReLU.

As a ``DenseOutput`` (``models.modeling.network``): ``score`` is the centre heatmap (values: the decode's threshold
is converted, ``ModelConfig.decode_threshold``), ``offsets`` are ours, keypoint = pixel + offset (the importer
negates DEKR's, whose keypoint is pixel - offset), ``kfeat`` is the offset head's per-keypoint features (K x 15),
``ifeat`` the heatmap head's features and ``heatmaps`` the keypoint heatmaps. Map pixel m is input pixel 4 m
(DEKR's convention: ``ModelConfig.feature_origin`` = 0).

``DekrScores`` is the sparse stage of an imported model: DEKR's scores for each decoded candidate (no parameters).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kernels.candidates import Candidates
from kernels.decode_ref import bilinear_sample_ref
from models.config import ModelConfig
from models.modeling.backbones.common import BasicBlock, conv_bn_relu
from models.modeling.deform import TAP_DX, TAP_DY, sample_taps, tap_grid
from models.modeling.heads import full_precision
from models.modeling.qem import SparseOutput

OFFSET_CHANNELS = 15  # per keypoint, DEKR's NUM_CHANNELS_PERKPT


class AdaptiveBlock(nn.Module):
    """K adaptive blocks of ``ck`` channels each, one per keypoint, run as grouped operations."""

    def __init__(self, num_keypoints: int, ck: int):
        super().__init__()
        self.groups, width = num_keypoints, num_keypoints * ck
        self.affine = nn.Conv2d(width, 6 * num_keypoints, 3, padding=1, groups=num_keypoints)
        self.weight = nn.Parameter(torch.empty(width, ck, 3, 3))
        nn.init.normal_(self.weight, std=0.001)
        nn.init.zeros_(self.affine.weight)
        with torch.no_grad():  # the identity transform: a plain 3x3 convolution to start from
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]).repeat(num_keypoints))
        self.bn = nn.BatchNorm2d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        m = full_precision(self.affine, x).view(b, self.groups, 2, 3, 1, h, w)  # positions need f32, even in bf16
        base_y, base_x = tap_grid(h, w, x.device, torch.float32)
        dy = torch.tensor(TAP_DY, device=x.device, dtype=torch.float32).view(9, 1, 1)
        dx = torch.tensor(TAP_DX, device=x.device, dtype=torch.float32).view(9, 1, 1)
        # (y, x) + M (dy, dx, 1); base_y - dy is the pixel's own row
        py = (base_y - dy) + m[:, :, 0, 0] * dy + m[:, :, 0, 1] * dx + m[:, :, 0, 2]  # [B, K, 9, H, W]
        px = (base_x - dx) + m[:, :, 1, 0] * dy + m[:, :, 1, 1] * dx + m[:, :, 1, 2]
        taps = sample_taps(x, py, px, self.groups).reshape(b, self.groups, -1, h * w)  # (group, channel, tap) rows
        # the 3x3 kernels as one batched MatMul over the sampled taps, not a grouped 1x1 convolution: the same sums,
        # 1.11x faster for W32's whole graph in OpenVINO f32 (the taps stay planar; BENCHMARKS.md, DEKR's weights)
        kernels = self.weight.reshape(self.groups, self.weight.shape[0] // self.groups, -1).to(taps.dtype)
        out = torch.matmul(kernels, taps).reshape(b, -1, h, w)
        return F.relu(self.bn(out) + x)


class DekrHeads(nn.Module):
    """Returns ``(centre [B,1,h,w], offsets [B,2K,h,w], kfeat [B,15K,h,w], ifeat [B,Ch,h,w], heatmaps
    [B,K,h,w])`` (see the module docstring)."""

    def __init__(self, cin: int, cfg: ModelConfig):
        super().__init__()
        k, ck, hc = cfg.num_keypoints, cfg.kpt_channels, cfg.dekr_heat_channels
        self.heat_transition = conv_bn_relu(cin, hc, 1)
        self.heat_block = BasicBlock(hc, hc)
        # DEKR's maps, or (head "dekr_qem") a CIR score logit in their place
        self.cir = cfg.head == "dekr_qem"
        self.heat_out = nn.Conv2d(hc, 1 if self.cir else k + 1, 1)
        self.offset_transition = conv_bn_relu(cin, k * ck, 1)
        self.offset_blocks = nn.Sequential(AdaptiveBlock(k, ck), AdaptiveBlock(k, ck))
        self.offset_out = nn.Conv2d(k * ck, 2 * k, 1, groups=k)
        for conv in (self.heat_out, self.offset_out):
            nn.init.normal_(conv.weight, std=0.001)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor):
        ifeat = self.heat_block(self.heat_transition(x))
        maps = self.heat_out(ifeat)
        kfeat = self.offset_blocks(self.offset_transition(x))
        offsets = full_precision(self.offset_out, kfeat)
        if self.cir:
            return maps, offsets, kfeat, ifeat, None
        return maps[:, -1:], offsets, kfeat, ifeat, maps[:, :-1]


def heat_values(heatmaps: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
    """DEKR's keypoint heat value: ``heatmaps [B,K,h,w]`` read at each keypoint ``[B,N,K,2]`` (map px) the way DEKR
    reads its heatmap upsampled 4x to input pixels (bilinear, corners aligned) at the floor of the keypoint's input
    pixel, i.e. the map read bilinearly at ``floor(4 m) / 4``, clamped to the map. -> ``[B,N,K]``."""
    b, k, h, w = heatmaps.shape
    q = torch.floor(keypoints.float() * 4.0) / 4.0
    return bilinear_sample_ref(heatmaps.float().view(b, k, 1, h, w), q).squeeze(-1)


class DekrScores(nn.Module):
    """DEKR's scores of the decoded candidates, as a ``SparseOutput`` whose fields, for this head, hold values (no
    sigmoid applies): ``keypoints`` the regressed ones (no refinement), ``keypoint_scores`` = centre value at the
    peak x keypoint heat value (DEKR's joint scores), ``keypoint_logits`` = the heat values themselves (DEKR's pose
    NMS ranks by their mean), ``score_logits`` = DEKR's pose score: the mean joint score, times the rescoring net's
    predicted OKS when there is one. DEKR rescores the poses kept by its NMS in image pixels; here every candidate
    is rescored in input pixels, which gives the same value (the features are scale-free) but for a pose whose
    torso is under 1 px, where the net's scale floor of 1 px differs."""

    def __init__(self, rescore: "RescoreNet | None" = None):
        super().__init__()
        self.rescore = rescore

    def forward(self, centre: torch.Tensor, heatmaps: torch.Tensor, cands: Candidates) -> SparseOutput:
        at_peak = centre.float().flatten(1).gather(1, cands.indices.clamp(min=0))
        at_peak = torch.where(cands.valid, at_peak, torch.zeros_like(at_peak))
        heat = heat_values(heatmaps, cands.keypoints)
        heat = torch.where(cands.valid.unsqueeze(-1), heat, torch.zeros_like(heat))
        joint = at_peak.unsqueeze(-1) * heat
        pose = joint.mean(-1)
        if self.rescore is not None:
            b, n, k, _ = cands.keypoints.shape
            oks = self.rescore(cands.keypoints.reshape(b * n, k, 2) * 4.0, joint.reshape(b * n, k)).view(b, n)
            pose = torch.where(cands.valid, pose * oks, torch.zeros_like(pose))
        return SparseOutput(keypoints=cands.keypoints.float(), keypoint_scores=joint, score_logits=pose,
                            keypoint_logits=heat)


class RescoreNet(nn.Module):
    """DEKR's pose rescoring net: a 3-layer MLP from a pose's joint links and joint scores to its predicted OKS;
    the pose score is multiplied by it. Features (DEKR's ``get_feature``): per link (a, b) the vector
    ``p_a - p_b`` and its length, divided by the torso scale (the mean length of links ``norm_links``, at least
    1 px), then the K joint scores."""

    def __init__(self, links: tuple[tuple[int, int], ...], num_keypoints: int, norm_links: tuple[int, int],
                 hidden: int = 256):
        super().__init__()
        self.links, self.norm_links = links, norm_links
        self.l1 = nn.Linear(3 * len(links) + num_keypoints, hidden)
        self.l2 = nn.Linear(hidden, hidden)
        self.l3 = nn.Linear(hidden, 1)

    def features(self, keypoints: torch.Tensor, joint_scores: torch.Tensor) -> torch.Tensor:
        a = torch.tensor([p[0] for p in self.links], device=keypoints.device)
        b = torch.tensor([p[1] for p in self.links], device=keypoints.device)
        rel = keypoints[:, a] - keypoints[:, b]  # [P, L, 2]
        length = rel.norm(dim=-1)
        scale = ((length[:, self.norm_links[0]] + length[:, self.norm_links[1]]) / 2).clamp(min=1.0).unsqueeze(1)
        return torch.cat([(rel / scale.unsqueeze(-1)).flatten(1), length / scale, joint_scores], dim=1)

    def forward(self, keypoints: torch.Tensor, joint_scores: torch.Tensor) -> torch.Tensor:
        """``keypoints [P,K,2]`` (any pixel unit), ``joint_scores [P,K]`` -> predicted OKS ``[P]`` (NaN -> 0)."""
        x = self.features(keypoints.float(), joint_scores.float())
        y = self.l3(F.relu(self.l2(F.relu(self.l1(x))))).squeeze(1)
        return torch.nan_to_num(y, nan=0.0)


# DEKR's joint links of the rescoring features and the two links whose mean length is the torso scale
COCO_LINKS = tuple(zip((0, 0, 1, 1, 2, 3, 4, 5, 5, 5, 6, 6, 7, 8, 11, 11, 12, 13, 14),
                       (1, 2, 2, 3, 4, 5, 6, 6, 7, 11, 8, 12, 9, 10, 12, 13, 14, 15, 16)))
CROWDPOSE_LINKS = tuple(zip((12, 13, 13, 0, 1, 2, 3, 0, 1, 6, 7, 8, 9, 6, 0),
                            (13, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 7, 1)))
NORM_LINKS = (9, 11)


def build_rescore(num_keypoints: int) -> RescoreNet:
    """DEKR's rescoring net for COCO's 17 or CrowdPose's 14 keypoints."""
    if num_keypoints not in (17, 14):
        raise ValueError(f"DEKR's rescoring net exists for 17 (COCO) or 14 (CrowdPose) keypoints, not {num_keypoints}")
    return RescoreNet(COCO_LINKS if num_keypoints == 17 else CROWDPOSE_LINKS, num_keypoints, NORM_LINKS)


CIR_FROM_CENTRE = (8.0, math.log(0.01 / 0.99))  # CIR logit = a x centre value + b: 0 -> 1% (our prior), 1 -> 96%


def start_from_dekr(net: nn.Module, path) -> int:
    """Load an imported DEKR checkpoint (``qem import dekr``) into a ``dekr_qem`` network: the backbone and DEKR's
    heads as they are, the CIR score initialised from the centre heatmap (``CIR_FROM_CENTRE``: the same features
    and filter, rescaled to logits), QEM fresh. Returns how many tensors were copied; raises ``ValueError`` naming
    the file when it is not a DEKR checkpoint of this network's width and keypoints."""
    from models.checkpoint import read_checkpoint

    payload = read_checkpoint(path)
    cfg = payload["config"]
    if cfg.get("head") != "dekr":
        raise ValueError(f"{path}: not an imported DEKR checkpoint (qem import dekr FILE makes one)")
    k = net.cfg.num_keypoints
    if cfg.get("backbone") != net.cfg.backbone or cfg.get("num_keypoints") != k:
        raise ValueError(f"{path}: DEKR with {cfg.get('backbone')} and {cfg.get('num_keypoints')} keypoints, not "
                         f"{net.cfg.backbone} with {k}")
    state = {n: v for n, v in payload["state_dict"].items()
             if not n.startswith(("heads.heat_out.", "qem.rescore."))}
    a, b = CIR_FROM_CENTRE
    state["heads.heat_out.weight"] = a * payload["state_dict"]["heads.heat_out.weight"][k:k + 1]
    state["heads.heat_out.bias"] = a * payload["state_dict"]["heads.heat_out.bias"][k:k + 1] + b
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or any(not n.startswith("qem.") for n in missing):
        raise ValueError(f"{path}: does not fit {net.cfg.name} (e.g. {(unexpected or missing)[0]})")
    return len(state)

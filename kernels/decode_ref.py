"""Plain-PyTorch reference of the fused decode: the truth the fast backends are tested against.

It is also the CPU path of the pipeline, so it is vectorised: no Python loop over images, peaks or people,
and no host synchronisation (no ``.item()``, ``nonzero()`` or data-dependent shapes).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kernels.candidates import Candidates


def threshold_logit(threshold: float) -> float:
    """The logit that ``sigmoid(logit) > threshold`` compares against; peaks need ``logit > threshold_logit``."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
    return math.log(threshold / (1.0 - threshold))


def check_inputs(score, offsets, kfeat, ifeat, max_people: int, nms_kernel: int) -> tuple[int, int]:
    """Validate shapes; returns (K, Ck)."""
    if score.dim() != 4 or score.shape[1] != 1:
        raise ValueError(f"score must be [B,1,h,w], got {tuple(score.shape)}")
    b, _, h, w = score.shape
    if h == 0 or w == 0:
        raise ValueError(f"score map must be at least 1x1, got {tuple(score.shape)}")
    if offsets.dim() != 4 or offsets.shape[1] % 2 or tuple(offsets.shape[2:]) != (h, w) or offsets.shape[0] != b:
        raise ValueError(f"offsets must be [B,2K,h,w] matching score {tuple(score.shape)}, got {tuple(offsets.shape)}")
    k = offsets.shape[1] // 2
    if kfeat.dim() != 4 or kfeat.shape[1] % k or tuple(kfeat.shape[2:]) != (h, w) or kfeat.shape[0] != b:
        raise ValueError(f"kfeat must be [B,K*Ck,h,w] with K={k}, got {tuple(kfeat.shape)}")
    if ifeat.dim() != 4 or tuple(ifeat.shape[2:]) != (h, w) or ifeat.shape[0] != b:
        raise ValueError(f"ifeat must be [B,Ci,h,w], got {tuple(ifeat.shape)}")
    if max_people < 1:
        raise ValueError(f"max_people must be >= 1, got {max_people}")
    if nms_kernel < 1 or nms_kernel % 2 == 0:
        raise ValueError(f"nms_kernel must be a positive odd number, got {nms_kernel}")
    return k, kfeat.shape[1] // k


def window_max(x: torch.Tensor, size: int) -> torch.Tensor:
    """Maximum of each ``size x size`` window of ``x [B,1,h,w]``, clipped at the border (separable, -inf padding)."""
    pad = size // 2
    padded = F.pad(x, (pad, pad, pad, pad), value=-math.inf)
    return padded.unfold(3, size, 1).amax(-1).unfold(2, size, 1).amax(-1)


def find_peaks_ref(score: torch.Tensor, max_people: int, threshold: float, nms_kernel: int = 3):
    """Top ``max_people`` peaks of ``score [B,1,h,w]`` (logits).

    A peak equals the maximum of its ``nms_kernel`` window (clipped at the border, ties are all peaks) and
    exceeds ``threshold_logit(threshold)``. Order: logit descending, flat index ascending.
    Returns ``(logits [B,N] float32, indices [B,N] int64, valid [B,N] bool)``, indices -1 where not valid.
    """
    logits = score.float().flatten(1)  # [B, h*w]
    pooled = window_max(score.float(), nms_kernel).flatten(1)
    is_peak = (logits == pooled) & (logits > threshold_logit(threshold))
    keyed = torch.where(is_peak, logits, torch.full_like(logits, -math.inf))
    # A stable descending sort keeps equal keys in index order: the tie rule of the contract.
    sorted_logits, order = torch.sort(keyed, dim=1, descending=True, stable=True)
    n_taken = min(max_people, order.shape[1])
    sorted_logits, order = sorted_logits[:, :n_taken], order[:, :n_taken]
    if n_taken < max_people:
        pad = max_people - n_taken
        sorted_logits = F.pad(sorted_logits, (0, pad), value=-math.inf)
        order = F.pad(order, (0, pad), value=0)
    valid = sorted_logits > -math.inf
    indices = torch.where(valid, order, torch.full_like(order, -1))
    return sorted_logits, indices, valid


def bilinear_corners(x: torch.Tensor, y: torch.Tensor, h: int, w: int):
    """Bilinear sampling at pixel coordinates ``(x, y)`` on an ``h x w`` map -> ``(x0, y0, x1, y1, wx, wy)``: the
    four corners (int64) and the fractional weights (fp32). Pixel (y, x) has its centre at integer (x, y); points
    are clamped to ``[0, w-1] x [0, h-1]`` first (border padding); a NaN coordinate counts as 0."""
    x = x.float().nan_to_num(nan=0.0).clamp(0, w - 1)
    y = y.float().nan_to_num(nan=0.0).clamp(0, h - 1)
    x0, y0 = x.floor(), y.floor()
    wx, wy = x - x0, y - y0
    x0, y0 = x0.long(), y0.long()
    return x0, y0, (x0 + 1).clamp(max=w - 1), (y0 + 1).clamp(max=h - 1), wx, wy


def bilinear_mix(v00, v01, v10, v11, wx, wy):
    """The corner values weighted, in this order of operations (the exported graph matches it bit for bit)."""
    return v00 * (1 - wx) * (1 - wy) + v01 * wx * (1 - wy) + v10 * (1 - wx) * wy + v11 * wx * wy


def bilinear_sample_ref(feat: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Sample ``feat [B,K,C,h,w]`` at ``points [B,N,K,2]`` (x, y) -> ``[B,N,K,C]`` in ``feat``'s dtype
    (``bilinear_corners``; interpolation in fp32, ``bilinear_mix``)."""
    b, k, c, h, w = feat.shape
    n = points.shape[1]
    x0, y0, x1, y1, wx, wy = (t.transpose(1, 2) for t in bilinear_corners(points[..., 0], points[..., 1], h, w))
    wx, wy = wx.unsqueeze(2), wy.unsqueeze(2)  # [B, K, 1, N]
    # One gather of the four corners in the input dtype, then fp32: no copy of the whole map.
    corners = torch.cat([y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1], dim=2)  # [B, K, 4N]
    v = torch.gather(feat.flatten(3), 3, corners.unsqueeze(2).expand(b, k, c, 4 * n)).float()
    out = bilinear_mix(*v.split(n, dim=3), wx, wy)  # [B, K, C, N]
    return out.permute(0, 3, 1, 2).to(feat.dtype)


def decode_ref(score: torch.Tensor, offsets: torch.Tensor, kfeat: torch.Tensor, ifeat: torch.Tensor, *,
               max_people: int, threshold: float, nms_kernel: int = 3) -> Candidates:
    """Reference decode; the contract is in ``kernels/__init__.py``."""
    check_inputs(score, offsets, kfeat, ifeat, max_people, nms_kernel)
    return gather_candidates(offsets, kfeat, ifeat, *find_peaks_ref(score, max_people, threshold, nms_kernel))


def gather_candidates(offsets: torch.Tensor, kfeat: torch.Tensor, ifeat: torch.Tensor, logits: torch.Tensor,
                      indices: torch.Tensor, valid: torch.Tensor) -> Candidates:
    """The gathers at the peaks ``(logits [B,N], indices [B,N], valid [B,N])`` of a peak search: scores,
    keypoints, keypoint queries (bilinear) and instance queries, zero in unused slots."""
    b, two_k, h, w = offsets.shape
    k, n = two_k // 2, indices.shape[1]
    safe = indices.clamp(min=0)  # [B, N]
    mask = valid.unsqueeze(-1)

    scores = torch.where(valid, torch.sigmoid(logits), torch.zeros_like(logits))
    off = torch.gather(offsets.flatten(2), 2, safe.unsqueeze(1).expand(-1, two_k, -1)).float()  # [B, 2K, N]
    off = off.view(b, k, 2, n).permute(0, 3, 1, 2)  # [B, N, K, 2]
    pixel = torch.stack([safe % w, safe // w], dim=-1).float().unsqueeze(2)  # [B, N, 1, 2]
    keypoints = torch.where(mask.unsqueeze(-1), pixel + off, torch.zeros_like(off))

    kq = bilinear_sample_ref(kfeat.view(b, k, kfeat.shape[1] // k, h, w), keypoints)
    kq = torch.where(mask.unsqueeze(-1), kq, torch.zeros_like(kq))
    iq = torch.gather(ifeat.flatten(2), 2, safe.unsqueeze(1).expand(-1, ifeat.shape[1], -1)).transpose(1, 2)
    iq = torch.where(mask, iq, torch.zeros_like(iq))
    return Candidates(scores=scores, indices=indices, valid=valid, keypoints=keypoints,
                      kpt_queries=kq, inst_queries=iq.contiguous())

"""Pose NMS: drop poses that duplicate a higher-scoring one. Greedy in score order (ties: lower index first).

Two duplicate tests, both on a [P,P] matrix computed at once in torch:

- ``"distance"`` (DEKR's ``pose_nms``): poses i (higher score) and j are duplicates when more than ``count``
  keypoints lie closer than ``dist * diag_i``, diag_i being the diagonal of pose i's keypoint bounding box
  (DEKR: ``sqrt(w^2 + h^2)``, NMS_THRE 0.15, NMS_NUM_THRE 10).
- ``"oks"``: OKS(j against i as ground truth, all keypoints labelled, scale = area_i) > ``oks_thresh``.

The greedy pass walks the P rows once (P <= max_people), each step a vector operation; no host sync.

``pose_nms`` (torch) is the reference; ``pose_nms_np`` is its NumPy twin with the same signature and the same kept
indices, for the host side of inference: with a few poses per image, torch's fixed cost per operation is most of
the time there.
"""
from __future__ import annotations

import numpy as np
import torch

from models.oks import oks_matrix

METHODS = ("distance", "oks", "none")


def box_areas(keypoints: torch.Tensor) -> torch.Tensor:
    """Area of each pose's keypoint bounding box, ``[P,K,2]`` -> ``[P]`` (at least 1 px^2)."""
    span = keypoints.amax(dim=1) - keypoints.amin(dim=1)
    return (span[:, 0] * span[:, 1]).clamp(min=1.0)


def box_diagonals(keypoints: torch.Tensor) -> torch.Tensor:
    """Diagonal of each pose's keypoint bounding box, ``[P,K,2]`` -> ``[P]``."""
    return (keypoints.amax(dim=1) - keypoints.amin(dim=1)).norm(dim=-1)


def duplicate_matrix(keypoints: torch.Tensor, method: str = "distance", dist: float = 0.15, count: int = 10,
                     oks_thresh: float = 0.8) -> torch.Tensor:
    """``[P,P]`` bool, entry (i, j): pose j duplicates pose i, i being the reference (its box sets the scale)."""
    kp = keypoints.float()
    if method == "distance":
        d = (kp.unsqueeze(1) - kp.unsqueeze(0)).norm(dim=-1)  # [P,P,K]
        close = d < dist * box_diagonals(kp).view(-1, 1, 1)
        return close.sum(-1) > count
    if method == "oks":
        gt = torch.cat([kp, torch.full_like(kp[..., :1], 2.0)], dim=-1)
        return oks_matrix(kp, gt, box_areas(kp)).T > oks_thresh
    raise ValueError(f"unknown pose NMS method {method!r}; choose one of {', '.join(METHODS)}")


def pose_nms(keypoints: torch.Tensor, scores: torch.Tensor, method: str = "distance", dist: float = 0.15,
             count: int = 10, oks_thresh: float = 0.8) -> torch.Tensor:
    """Indices of the kept poses, by score descending. ``keypoints [P,K,2]`` (any pixel unit), ``scores [P]``."""
    order = torch.sort(scores, descending=True, stable=True).indices
    if method == "none" or order.numel() < 2:
        return order
    dup = duplicate_matrix(keypoints[order], method, dist, count, oks_thresh)
    dup = torch.triu(dup, diagonal=1)  # only a higher-scoring pose can suppress
    keep = torch.ones(order.numel(), dtype=torch.bool, device=order.device)
    for i in range(order.numel()):
        keep &= ~(dup[i] & keep[i])
    return order[keep]


def pose_nms_np(keypoints: np.ndarray, scores: np.ndarray, method: str = "distance", dist: float = 0.15,
                count: int = 10, oks_thresh: float = 0.8) -> np.ndarray:
    """``pose_nms`` on NumPy arrays: the kept indices (int64), by score descending (ties: lower index first)."""
    order = np.argsort(-np.asarray(scores, np.float32), kind="stable")
    if method == "none" or len(order) < 2:
        return order
    kp = np.asarray(keypoints, np.float32)[order]
    if method == "distance":
        span = kp.max(axis=1) - kp.min(axis=1)
        diagonal = np.sqrt((span * span).sum(-1))
        delta = kp[:, None] - kp[None]
        close = np.sqrt((delta * delta).sum(-1)) < np.float32(dist) * diagonal[:, None, None]
        dup = close.sum(-1) > count
    else:  # "oks" (rare: off by default) and unknown methods take the reference's matrix and its error
        dup = duplicate_matrix(torch.from_numpy(kp), method, dist, count, oks_thresh).numpy()
    dup = np.triu(dup, k=1)
    keep = np.ones(len(order), bool)
    for i in range(len(order)):
        if keep[i]:
            keep &= ~dup[i]
    return order[keep]

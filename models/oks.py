"""Object Keypoint Similarity: the one implementation used by targets, losses, NMS and the tools.

It equals pycocotools' ``COCOeval.computeOks`` on the same poses:

    OKS = mean over labelled keypoints (v > 0) of exp(-d^2 / (2 * area * (2 sigma_k)^2))

with the sigmas of the K-point convention unless given (``models.keypoints``), ``d`` the distance between predicted and ground-truth keypoint, ``area`` the ground-truth area (the OKS
scale s^2, plus pycocotools' ``np.spacing(1)``). For a ground truth with no labelled keypoint pycocotools
measures the distance to a box twice the size of the ground-truth box (``boxes`` given) and averages over all
K keypoints; without ``boxes`` such a ground truth scores 0.

Units: any, as long as keypoints and ``sqrt(area)`` share them (input px and input px^2, or feature px and
feature px^2). Inputs may be torch tensors or numpy arrays; the result has the type of ``pred``.
"""
from __future__ import annotations

import numpy as np
import torch

from models.keypoints import keypoint_convention

AREA_EPS = float(np.spacing(1))


def _tensor(x, like: torch.Tensor | None = None) -> torch.Tensor:
    if like is None:
        return torch.as_tensor(x)
    return torch.as_tensor(x, dtype=like.dtype, device=like.device)  # no float32 detour for float64 inputs


def _sigmas(k: int, sigmas, like: torch.Tensor) -> torch.Tensor:
    values = keypoint_convention(k).sigmas if sigmas is None else sigmas
    if len(values) != k:
        raise ValueError(f"need {k} OKS sigmas, got {len(values)}")
    return _tensor(values, like)


def keypoint_similarity(pred, gt, areas, sigmas=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-keypoint OKS terms: ``pred [...,K,2]`` (x, y), ``gt [...,K,3]`` (x, y, v), ``areas [...]``
    (broadcastable). Returns ``(similarity [...,K] in [0, 1], labelled [...,K] bool)``."""
    pred = _tensor(pred)
    pred = pred if pred.is_floating_point() else pred.float()
    gt, areas = _tensor(gt, pred), _tensor(areas, pred)
    var = (2 * _sigmas(pred.shape[-2], sigmas, pred)) ** 2
    d2 = ((pred - gt[..., :2]) ** 2).sum(-1)
    e = d2 / var / (areas.unsqueeze(-1) + AREA_EPS) / 2
    return torch.exp(-e), gt[..., 2] > 0


def oks(pred, gt, areas, sigmas=None, boxes=None):
    """OKS of ``pred [...,K,2]`` against ``gt [...,K,3]`` with ``areas [...]`` -> ``[...]`` (broadcasting over
    the leading axes). ``boxes [...,4]`` (x, y, w, h) serve ground truths without labelled keypoints, as in
    pycocotools; without them those score 0."""
    as_numpy = isinstance(pred, np.ndarray)
    pred = _tensor(pred)
    pred = pred if pred.is_floating_point() else pred.float()
    sim, labelled = keypoint_similarity(pred, gt, areas, sigmas)
    count = labelled.sum(-1)
    value = (sim * labelled).sum(-1) / count.clamp(min=1)
    if boxes is not None:
        box = _tensor(boxes, pred)
        x0, x1 = box[..., 0] - box[..., 2], box[..., 0] + 2 * box[..., 2]
        y0, y1 = box[..., 1] - box[..., 3], box[..., 1] + 2 * box[..., 3]
        dx = (x0.unsqueeze(-1) - pred[..., 0]).clamp(min=0) + (pred[..., 0] - x1.unsqueeze(-1)).clamp(min=0)
        dy = (y0.unsqueeze(-1) - pred[..., 1]).clamp(min=0) + (pred[..., 1] - y1.unsqueeze(-1)).clamp(min=0)
        var = (2 * _sigmas(pred.shape[-2], sigmas, pred)) ** 2
        e = (dx ** 2 + dy ** 2) / var / (_tensor(areas, pred).unsqueeze(-1) + AREA_EPS) / 2
        value = torch.where(count > 0, value, torch.exp(-e).mean(-1))
    return value.numpy() if as_numpy else value


def oks_matrix(pred, gt, areas, sigmas=None, boxes=None):
    """Pairwise OKS: ``pred [N,K,2]``, ``gt [M,K,3]``, ``areas [M]`` (``boxes [M,4]``) -> ``[N,M]``
    (rows: predictions, columns: ground truths, as ``COCOeval.computeOks`` returns ``[D,G]``)."""
    as_numpy = isinstance(pred, np.ndarray)
    pred = _tensor(pred)
    gt, areas = _tensor(gt), _tensor(areas)
    box = None if boxes is None else _tensor(boxes).unsqueeze(0)
    out = oks(pred.unsqueeze(1), gt.unsqueeze(0), areas.unsqueeze(0), sigmas, box)
    return out.numpy() if as_numpy else out

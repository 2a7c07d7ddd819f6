"""DEKR's inference rules after the decode, for imported DEKR models (``ModelConfig.head == "dekr"``).

The decode is ours (``kernels.decode``: the peaks of the centre heatmap, with the same windows (DEKR's hierarchical
pool, ``ModelConfig.peak_window``), 0.01 threshold and 30 people as DEKR; at most 30 peaks above the threshold, ordered by value, equal values by index, where DEKR
takes a top-30 whose order between equal values is torch's); the scores come from ``DekrScores``. Then, as DEKR's
``core/nms.py``:

- pose NMS (``dekr_nms_np``): pose j duplicates pose i when more than ``count`` of their joints lie closer than
  ``dist`` x the diagonal of pose i's keypoint box (``sqrt(w^2 + h^2)``, input pixels). The poses are visited in peak
  order; each one not yet taken takes its group of duplicates and keeps the member with the highest heat score
  (mean joint heat value), unless that member was already taken;
- at most ``max_people`` kept, the highest heat scores;
- pose score = mean joint score (centre value x heat value), times the rescoring net's predicted OKS when the model
  has it (computed in the sparse stage, ``models.modeling.dekr.DekrScores``, so exported models carry it too).

Poses come back sorted by score descending, like every ``Poses``.
"""
from __future__ import annotations

import numpy as np

from models.config import to_input
from models.poses import Poses


def dekr_nms_np(keypoints: np.ndarray, heat_scores: np.ndarray, dist: float = 0.05, count: int = 8) -> np.ndarray:
    """Indices kept by DEKR's pose NMS, in the order DEKR keeps them. ``keypoints [P,K,2]`` input px (in peak order),
    ``heat_scores [P]``."""
    kp = np.asarray(keypoints, np.float32)
    if len(kp) == 0:
        return np.zeros(0, np.int64)
    span = kp.max(axis=1) - kp.min(axis=1)
    threshold = np.float32(dist) * np.sqrt((span * span).sum(-1))  # [P]: row i's scale
    delta = kp[:, None] - kp[None]
    close = np.sqrt((delta * delta).sum(-1)) < threshold[:, None, None]
    duplicates = close.sum(-1) > count  # [P, P]
    taken = np.zeros(len(kp), bool)
    kept: list[int] = []
    for i in range(len(kp)):
        if taken[i]:
            continue
        group = np.flatnonzero(duplicates[i])
        if len(group) == 0:  # a pose of one point has no scale; DEKR's argmax would fail on it
            group = np.array([i])
        best = int(group[np.argmax(heat_scores[group])])
        if taken[best]:
            continue
        kept.append(best)
        taken[group] = True
    return np.asarray(kept, np.int64)


def dekr_poses(net, cands, sparse, boxes=None) -> list[Poses]:
    """``Poses`` per image from an imported DEKR model's ``(Candidates, SparseOutput)``: in input pixels, or in each
    image's pixels through its ``Letterbox`` in ``boxes``."""
    cfg = net.cfg
    valid = cands.valid.cpu().numpy()
    keypoints = to_input(sparse.keypoints.float().cpu().numpy(), net.stride, cfg.feature_origin)
    joint = sparse.keypoint_scores.float().cpu().numpy()
    heat = sparse.keypoint_logits.float().cpu().numpy()
    pose = sparse.score_logits.float().cpu().numpy()  # DekrScores: the pose score itself
    results = []
    for b in range(len(valid)):
        kp, js, hs = keypoints[b][valid[b]], joint[b][valid[b]], heat[b][valid[b]].mean(-1)
        keep = dekr_nms_np(kp, hs, cfg.nms_dist, cfg.nms_count)
        if len(keep) > cfg.max_people:
            keep = keep[np.argsort(-hs[keep], kind="stable")[:cfg.max_people]]
        kp, js, scores = kp[keep], js[keep], pose[b][valid[b]][keep]
        if boxes is not None:
            kp = boxes[b].to_image(kp)
        order = np.argsort(-scores, kind="stable")
        results.append(Poses(kp[order].astype(np.float32), js[order].astype(np.float32),
                             scores[order].astype(np.float32)))
    return results

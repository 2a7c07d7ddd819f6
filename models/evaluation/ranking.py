"""How well pose scores rank pose quality: each predicted pose's true OKS against its image's ground truth, and the
Spearman rank correlation between scores and those OKS (``models.evaluation.evaluate``'s "Spearman" columns)."""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import spearmanr

from models.keypoints import SIGMAS

MATCHED_OKS = 0.5  # "Spearman matched" keeps poses at least this close to a person


def oks_matrix(pred: np.ndarray, gt: np.ndarray, areas: np.ndarray, sigmas=SIGMAS) -> np.ndarray:
    """OKS ``[D,G]`` between predicted keypoints ``pred [D,K,2]`` and ground truth ``gt [G,K,3]`` (x, y, v) with
    segment ``areas [G]``, as pycocotools computes it for ground truth with labelled keypoints (v > 0)."""
    pred = np.asarray(pred, np.float64).reshape(len(pred), -1, 2)
    gt = np.asarray(gt, np.float64).reshape(len(gt), -1, 3)
    var = (np.asarray(sigmas, np.float64) * 2) ** 2
    dx = pred[:, None, :, 0] - gt[None, :, :, 0]
    dy = pred[:, None, :, 1] - gt[None, :, :, 1]
    e = (dx ** 2 + dy ** 2) / var / (np.asarray(areas, np.float64)[None, :, None] + np.spacing(1)) / 2
    labelled = gt[None, :, :, 2] > 0
    counts = np.maximum(labelled.sum(-1), 1)
    return (np.exp(-e) * labelled).sum(-1) / counts


def true_oks(coco_gt, results: list[dict], sigmas=SIGMAS) -> np.ndarray:
    """For each result, its OKS against the best-matching non-crowd, labelled ground-truth person of its image
    (the ground truth's ``area`` is the OKS scale)."""
    out = np.zeros(len(results), np.float64)
    by_image: dict[int, list[int]] = {}
    for i, r in enumerate(results):
        by_image.setdefault(int(r["image_id"]), []).append(i)
    for image_id, idx in by_image.items():
        anns = [a for a in coco_gt.imgToAnns.get(image_id, [])
                if not a.get("iscrowd", 0) and a.get("num_keypoints", 1) > 0
                and np.any(np.asarray(a["keypoints"])[2::3] > 0)]
        if not anns:
            continue
        gt = np.array([a["keypoints"] for a in anns], np.float64).reshape(len(anns), -1, 3)
        areas = np.array([a["area"] for a in anns], np.float64)
        pred = np.array([results[i]["keypoints"] for i in idx], np.float64).reshape(len(idx), -1, 3)[..., :2]
        out[idx] = oks_matrix(pred, gt, areas, sigmas).max(axis=1)
    return out


def rank_correlation(scores: np.ndarray, oks: np.ndarray, min_oks: float | None = None) -> float | None:
    """Spearman's rho between ``scores`` and ``oks`` over the pairs with oks >= ``min_oks`` (all when None); None if
    undefined (fewer than 2, or constant)."""
    if min_oks is not None:
        scores, oks = scores[oks >= min_oks], oks[oks >= min_oks]
    if len(scores) < 2 or np.ptp(scores) == 0 or np.ptp(oks) == 0:
        return None
    rho = float(spearmanr(scores, oks).statistic)
    return None if math.isnan(rho) else rho


def score_oks_spearman(coco_gt, results: list[dict], min_oks: float | None = None, sigmas=SIGMAS) -> float | None:
    """Spearman's rho between pose scores and their true OKS (see ``rank_correlation``)."""
    return rank_correlation(np.array([r["score"] for r in results], np.float64), true_oks(coco_gt, results, sigmas),
                            min_oks)

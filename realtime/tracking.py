"""Per-stream tracking: greedy matching of poses to tracks on OKS, with a maximum age.

Each stream has its own ``Tracker``, so track ids are scoped per stream (1, 2, 3, ... in order of birth).
Matching: every (track, pose) pair with OKS >= ``min_oks`` is a candidate; pairs are accepted greedily by OKS
descending (ties: older track first), each track and pose at most once. Unmatched poses with a score
>= ``min_score`` start new tracks; a track unseen for more than ``max_age`` frames is dropped.
OKS uses COCO's sigmas, the track's last keypoints and the area of their bounding box.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.keypoints import SIGMAS
from models.poses import Poses


def oks_matrix(a: np.ndarray, b: np.ndarray, weights_b: np.ndarray | None = None,
               sigmas: np.ndarray | None = None) -> np.ndarray:
    """OKS between poses ``a [M,K,2]`` (reference; their box areas are the scale) and ``b [N,K,2]`` -> [M, N].

    ``weights_b [N,K]`` weights the keypoints of b (e.g. keypoint scores); all ones when None."""
    m, n = len(a), len(b)
    if m == 0 or n == 0:
        return np.zeros((m, n), np.float32)
    k = a.shape[1]
    sig = np.asarray(SIGMAS if sigmas is None and k == len(SIGMAS) else
                     (sigmas if sigmas is not None else np.full(k, 0.05)), np.float32)
    span = a.max(axis=1) - a.min(axis=1)  # [M, 2]
    area = np.maximum(span[:, 0] * span[:, 1], 1.0)  # [M]
    d2 = ((a[:, None] - b[None]) ** 2).sum(-1)  # [M, N, K]
    e = np.exp(-d2 / (2.0 * area[:, None, None] * (2.0 * sig) ** 2 + np.finfo(np.float32).eps))
    w = np.ones((n, k), np.float32) if weights_b is None else np.asarray(weights_b, np.float32)
    wsum = w.sum(-1)
    w = np.where(wsum[:, None] > 0, w, 1.0)
    return ((e * w[None]).sum(-1) / w.sum(-1)[None]).astype(np.float32)


@dataclass
class Track:
    track_id: int
    keypoints: np.ndarray  # [K, 2] last matched keypoints (image pixels)
    last_seen: int         # frame counter of the last match
    hits: int = 1


class Tracker:
    def __init__(self, min_oks: float = 0.3, max_age: int = 30, min_score: float = 0.0):
        self.min_oks, self.max_age, self.min_score = min_oks, max_age, min_score
        self.tracks: list[Track] = []
        self.next_id = 1
        self.frame = 0

    def update(self, poses: Poses) -> np.ndarray:
        """Assign ids to ``poses`` (-1 for a low-score pose that starts no track); returns ``[P]`` int64."""
        self.frame += 1
        self.tracks = [t for t in self.tracks if self.frame - t.last_seen <= self.max_age]
        ids = np.full(len(poses), -1, np.int64)
        if self.tracks and len(poses):
            ref = np.stack([t.keypoints for t in self.tracks])
            oks = oks_matrix(ref, poses.keypoints, poses.keypoint_scores)
            rows, cols = np.nonzero(oks >= self.min_oks)
            order = np.lexsort((rows, -oks[rows, cols]))
            used_t, used_p = set(), set()
            for i in order:
                t, p = int(rows[i]), int(cols[i])
                if t in used_t or p in used_p:
                    continue
                used_t.add(t)
                used_p.add(p)
                track = self.tracks[t]
                track.keypoints, track.last_seen = poses.keypoints[p].copy(), self.frame
                track.hits += 1
                ids[p] = track.track_id
        for p in range(len(poses)):
            if ids[p] == -1 and poses.scores[p] >= self.min_score:
                self.tracks.append(Track(self.next_id, poses.keypoints[p].copy(), self.frame))
                ids[p] = self.next_id
                self.next_id += 1
        return ids

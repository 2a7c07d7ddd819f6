"""Per-stream tracking: two-stage greedy OKS matching with constant-velocity prediction and track confirmation.

Each stream has its own ``Tracker``, so track ids are scoped per stream (1, 2, 3, ... in order of confirmation).
Per frame (in the manner of ByteTrack, with OKS in place of box IoU):

1. Every track predicts its keypoints: last matched keypoints + velocity x time since then (velocity: an
   exponential average of the keypoints' mean motion, weighted by their scores in both frames). Time is the
   frame's clock in seconds when ``update`` gets one (pts, or receive time for live sources, so frames a live
   source dropped do not bend the prediction), else a count of updates.
2. Poses with score >= ``high_score`` are matched to all tracks, then the remaining poses (lower scores) to the
   remaining confirmed tracks. In each stage every (track, pose) pair with OKS >= ``min_oks`` is a candidate, and
   pairs are accepted greedily by OKS descending (ties: older track first), each track and pose at most once.
3. Unmatched poses with score >= ``high_score`` start tentative tracks. A tentative track is confirmed (and takes
   the next id) on its ``min_hits``-th consecutive match and is dropped on its first miss; on a stream's first
   frame new tracks are confirmed at once. Poses of tentative tracks and unmatched low-score poses get id -1.
4. A confirmed track unseen for more than ``max_age`` frames (updates) is dropped.

Pose scores are predicted OKS here, so ``high_score`` is the OKS a pose is expected to reach before it may start a
track. The defaults (``TrackerSettings``) were tuned on six synthetic clips (seeds 11-16) and checked on the bundled
one (seed 5); the table is in BENCHMARKS.md. OKS uses COCO's sigmas, the track's predicted keypoints and the area of
their bounding box, and weighs the pose's keypoints by their scores.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field, replace

import numpy as np

from models.keypoints import SIGMAS
from models.poses import Poses
from models.argtypes import int_at_least, unit_float


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
    keypoints: np.ndarray  # [K, 2] last matched keypoints (image pixels)
    keypoint_scores: np.ndarray  # [K] their scores
    last_seen: int         # update count at the last match
    last_time: float       # clock at the last match
    track_id: int = -1     # -1 while tentative
    hits: int = 1          # consecutive matches while tentative, all matches once confirmed
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))  # image px per clock unit

    def predicted(self, now: float) -> np.ndarray:
        return self.keypoints + self.velocity * (now - self.last_time)


@dataclass(frozen=True)
class TrackerSettings:
    """``high_score``: poses scoring at least this are matched first and may start tracks; ``min_oks``: the lowest
    OKS between a track's predicted keypoints and a pose that can match them; ``max_age``: frames (updates) a
    confirmed track survives unseen; ``min_hits``: consecutive matches that confirm a tentative track;
    ``velocity_smoothing``: weight of the old velocity in its exponential average."""

    high_score: float = 0.65
    min_oks: float = 0.3
    max_age: int = 30
    min_hits: int = 3
    velocity_smoothing: float = 0.5

    def __post_init__(self) -> None:
        for name in ("high_score", "min_oks", "velocity_smoothing"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"tracker {name} must lie in [0, 1], got {getattr(self, name)}")
        for name in ("max_age", "min_hits"):
            if getattr(self, name) < 0:
                raise ValueError(f"tracker {name} must be >= 0, got {getattr(self, name)}")


TRACKER_FLAGS = {"high_score": "--track-score", "min_oks": "--track-min-oks", "max_age": "--track-max-age"}


def add_tracker_arguments(p: argparse.ArgumentParser) -> None:
    """The tracker's command-line options (``realtime`` and ``realtime.bench.track_eval --retrack`` share them)."""
    d = TrackerSettings()
    p.add_argument("--track-score", type=unit_float, default=d.high_score,
                   help=f"poses scoring at least this start tracks and are matched first (default {d.high_score})")
    p.add_argument("--track-min-oks", type=unit_float, default=d.min_oks,
                   help=f"lowest OKS between a track and a pose that continues it (default {d.min_oks})")
    p.add_argument("--track-max-age", type=int_at_least(0), default=d.max_age,
                   help=f"frames a track survives unseen (default {d.max_age})")


def tracker_settings(args: argparse.Namespace) -> TrackerSettings:
    """``TrackerSettings`` from the options of ``add_tracker_arguments``; ``ValueError`` naming the bad flag."""
    values = {name: getattr(args, flag[2:].replace("-", "_")) for name, flag in TRACKER_FLAGS.items()}
    try:
        return TrackerSettings(**values)
    except ValueError as exc:
        message = str(exc)
        for name, flag in TRACKER_FLAGS.items():
            message = message.replace(f"tracker {name} ", f"{flag} ")
        raise ValueError(message) from None


class Tracker:
    """``Tracker()``, ``Tracker(settings)`` or ``Tracker(min_hits=1, ...)`` (keyword overrides of the settings)."""

    def __init__(self, settings: TrackerSettings | None = None, **overrides):
        s = replace(settings or TrackerSettings(), **overrides)
        self.settings = s
        self.min_oks, self.max_age, self.high_score = s.min_oks, s.max_age, s.high_score
        self.min_hits, self.velocity_smoothing = s.min_hits, s.velocity_smoothing
        self.tracks: list[Track] = []  # oldest first
        self.next_id = 1
        self.frame = 0
        self.now = 0.0

    def update(self, poses: Poses, t: float | None = None) -> np.ndarray:
        """Assign ids to ``poses`` of the frame at time ``t`` (seconds; give it for every frame of a stream or for
        none); returns ``[P]`` int64 (-1: tentative or unmatched low-score pose)."""
        self.frame += 1
        self.now = float(self.frame if t is None else t)
        self.tracks = [track for track in self.tracks  # misses: frames since the last match, this one not counted
                       if self.frame - track.last_seen - 1 <= (self.max_age if track.track_id > 0 else 0)]
        matched: dict[int, int] = {}  # pose -> track index
        high = poses.scores >= self.high_score
        oks = oks_matrix(np.stack([track.predicted(self.now) for track in self.tracks]) if self.tracks else
                         np.zeros((0, *poses.keypoints.shape[1:]), np.float32),
                         poses.keypoints, poses.keypoint_scores)  # [tracks, poses], shared by both stages
        self._match(oks, np.flatnonzero(high), matched, confirmed_only=False)
        self._match(oks, np.flatnonzero(~high), matched, confirmed_only=True)
        ids = np.full(len(poses), -1, np.int64)
        for p, t in matched.items():
            ids[p] = self._extend(self.tracks[t], poses.keypoints[p], poses.keypoint_scores[p])
        for p in np.flatnonzero(high).tolist():
            if p not in matched:
                track = Track(poses.keypoints[p].copy(), poses.keypoint_scores[p].copy(), self.frame, self.now)
                self.tracks.append(track)
                if self.frame == 1 or self.min_hits <= 1:
                    ids[p] = self._confirm(track)
        return ids

    def _match(self, oks_all: np.ndarray, candidates: np.ndarray, matched: dict[int, int],
               confirmed_only: bool) -> None:
        taken = set(matched.values())
        free = [t for t, track in enumerate(self.tracks)
                if t not in taken and (track.track_id > 0 or not confirmed_only)]
        if not free or not len(candidates):
            return
        oks = oks_all[np.ix_(free, candidates)]
        rows, cols = np.nonzero(oks >= self.min_oks)
        used_t, used_p = set(), set()
        for i in np.lexsort((rows, -oks[rows, cols])):
            t, p = free[int(rows[i])], int(candidates[cols[i]])
            if t in used_t or p in used_p:
                continue
            used_t.add(t)
            used_p.add(p)
            matched[p] = t

    def _extend(self, track: Track, keypoints: np.ndarray, keypoint_scores: np.ndarray) -> int:
        w = track.keypoint_scores * keypoint_scores  # keypoints seen well in both frames carry the motion
        w = w / w.sum() if w.sum() > 0 else np.full_like(w, 1.0 / len(w))
        elapsed = self.now - track.last_time
        if elapsed > 0:  # a clock that did not advance leaves the velocity as it was
            motion = (w[:, None] * (keypoints - track.keypoints)).sum(0) / elapsed
            a = self.velocity_smoothing if track.hits > 1 else 0.0
            track.velocity = (a * track.velocity + (1.0 - a) * motion).astype(np.float32)
        track.keypoints, track.keypoint_scores = keypoints.copy(), keypoint_scores.copy()
        track.last_seen, track.last_time = self.frame, self.now
        track.hits += 1
        if track.track_id < 0 and track.hits >= self.min_hits:
            self._confirm(track)
        return track.track_id

    def _confirm(self, track: Track) -> int:
        track.track_id = self.next_id
        self.next_id += 1
        return track.track_id

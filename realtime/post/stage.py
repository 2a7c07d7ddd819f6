"""Per-stream post-processing after the network: pose NMS, tracking, One-Euro smoothing.

The letterbox undo and the pose NMS configured in the checkpoint run in ``Predictor.postprocess`` (engine
thread). A second NMS (``nms_oks`` < 1: OKS method of ``models.inference.nms``, in image pixels) can be asked for
here, for models whose own NMS is off; by default it is off.
Tracking and smoothing use the frame's ``pts`` (files) or receive time (live sources) as the clock.
"""
from __future__ import annotations

import time

import numpy as np

from models.inference.nms import pose_nms_np
from models.poses import Poses
from realtime.frames import Result
from realtime.post.smoothing import PoseSmoother
from realtime.post.tracking import Tracker, TrackerSettings


def pose_nms(poses: Poses, method: str = "oks", oks_thresh: float = 0.8) -> Poses:
    """The models' pose NMS (``models.inference.nms``) on poses in image pixels; keeps score order."""
    if len(poses) < 2 or method == "none":
        return poses
    return poses.select(pose_nms_np(poses.keypoints, poses.scores, method, oks_thresh=oks_thresh))


class StreamPost:
    """NMS -> tracker -> smoother for one stream (each stream has its own, so ids are per stream)."""

    def __init__(self, live: bool, nms_oks: float = 1.0, track: bool = True, smooth: bool | None = None,
                 min_score: float = 0.0, tracker: TrackerSettings | None = None,
                 smoother: PoseSmoother | None = None):
        self.live, self.nms_oks, self.min_score = live, nms_oks, min_score
        self.tracker = Tracker(tracker) if track else None
        smooth = live if smooth is None else smooth
        self.smoother = (smoother or PoseSmoother()) if smooth and track else None

    def __call__(self, result: Result) -> Result:
        t0 = time.perf_counter()
        poses = result.poses
        if self.min_score > 0:
            poses = poses.select(poses.scores >= self.min_score)
        if self.nms_oks < 1.0:
            poses = pose_nms(poses, "oks", self.nms_oks)
        f = result.frame
        clock = f.pts if (f.pts is not None and not self.live) else f.recv_time
        ids = self.tracker.update(poses, clock) if self.tracker else np.full(len(poses), -1, np.int64)
        if self.smoother is not None and len(poses):
            poses = Poses(self.smoother(poses.keypoints, ids, clock), poses.keypoint_scores, poses.scores)
        result.poses, result.track_ids = poses, ids
        result.stage_ms["post"] = (time.perf_counter() - t0) * 1e3
        return result

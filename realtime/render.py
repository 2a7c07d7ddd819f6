"""Drawing poses on a frame: limbs, keypoints, and the track id above each person; colours follow the track id."""
from __future__ import annotations

import cv2
import numpy as np

from models.keypoints import SKELETON
from realtime.frames import Result

_PALETTE = np.array([(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
                     (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)], np.uint8)


def track_colour(track_id: int) -> tuple[int, int, int]:
    return tuple(int(c) for c in _PALETTE[track_id % len(_PALETTE)]) if track_id >= 0 else (200, 200, 200)


def draw(result: Result, min_keypoint_score: float = 0.2) -> np.ndarray:
    """An annotated RGB copy of the result's frame."""
    image = result.frame.image.copy()
    h, w = image.shape[:2]
    thick = max(1, round(min(h, w) / 240))
    for p in range(len(result.poses)):
        kpts = result.poses.keypoints[p]
        vis = result.poses.keypoint_scores[p] >= min_keypoint_score
        tid = int(result.track_ids[p]) if p < len(result.track_ids) else -1
        colour = track_colour(tid)
        pts = np.round(kpts).astype(np.int64).clip(-10 * max(h, w), 10 * max(h, w))
        for a, b in SKELETON:
            if vis[a] and vis[b]:
                cv2.line(image, tuple(pts[a].tolist()), tuple(pts[b].tolist()), colour, thick, cv2.LINE_AA)
        for k in np.flatnonzero(vis):
            cv2.circle(image, tuple(pts[k].tolist()), thick + 1, colour, -1, cv2.LINE_AA)
        if vis.any():
            top = pts[vis][np.argmin(pts[vis][:, 1])]
            label = f"#{tid} {result.poses.scores[p]:.2f}" if tid >= 0 else f"{result.poses.scores[p]:.2f}"
            cv2.putText(image, label, (int(top[0]), int(top[1]) - 6), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4 * thick, colour, thick, cv2.LINE_AA)
    return image


def draw_banner(image: np.ndarray | None, text: str, colour: tuple[int, int, int],
                blank_size: tuple[int, int] = (640, 360)) -> np.ndarray:
    """A dimmed RGB copy of ``image`` (a dark ``blank_size`` (w, h) frame when None) with ``text`` on a band of
    ``colour`` across its middle: how a stream that is not running shows its state over its last frame."""
    if image is None:
        w, h = blank_size
        out = np.full((h, w, 3), 24, np.uint8)
    else:
        out = (image.astype(np.uint16) * 2 // 5).astype(np.uint8)
        h, w = out.shape[:2]
    scale = max(0.35, min(w, h) / 480)
    thick = max(1, round(scale * 1.5))
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    if tw > w - 8:  # long text (an error): shrink to fit the width
        scale *= (w - 8) / tw
        (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    band = th + base + 2 * max(4, th // 2)
    top = (h - band) // 2
    out[top:top + band] = colour
    cv2.putText(out, text, ((w - tw) // 2, top + (band + th) // 2), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def draw_caption(image: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` in place on a dark band along the bottom-left of an RGB frame (cut to the frame's width)."""
    h, w = image.shape[:2]
    scale = max(0.35, min(h, w) / 900)
    thick = max(1, round(scale * 2))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = max(2, th // 3)
    top = max(0, h - th - base - 2 * pad)
    band = image[top:h, :min(w, tw + 2 * pad)]
    band[:] = (band.astype(np.uint16) * 3 // 10).astype(np.uint8)
    cv2.putText(image, text, (pad, h - base - pad), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick,
                cv2.LINE_AA)
    return image

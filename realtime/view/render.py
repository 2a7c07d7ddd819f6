"""Drawing poses on a frame: limbs, keypoints, and the track id above each person; colours follow the track id."""
from __future__ import annotations

import cv2
import numpy as np

from models.keypoints import keypoint_convention
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
    skeleton = keypoint_convention(result.poses.keypoints.shape[1]).skeleton if len(result.poses) else ()
    for p in range(len(result.poses)):
        kpts = result.poses.keypoints[p]
        vis = result.poses.keypoint_scores[p] >= min_keypoint_score
        tid = int(result.track_ids[p]) if p < len(result.track_ids) else -1
        colour = track_colour(tid)
        pts = np.round(kpts).astype(np.int64).clip(-10 * max(h, w), 10 * max(h, w))
        for a, b in skeleton:
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


def caption_layout(text: str, w: int, h: int) -> tuple[list[str], float, int, int]:
    """How ``draw_caption`` fits ``text`` into a w x h frame: (lines, font scale, thickness, padding).

    The scale follows the frame's short side; a text wider than the frame is shrunk, down to a readable 0.3, then
    broken into lines at spaces (a single word still too wide is shrunk further). Every line fits the width."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = max(0.35, min(h, w) / 900)
    thick = max(1, round(scale * 2))
    pad = max(2, round(8 * scale))
    room = max(1, w - 2 * pad)
    width = cv2.getTextSize(text, font, scale, thick)[0][0]
    if width > room:
        scale = max(0.3, scale * room / width)
        thick = max(1, round(scale * 2))
    lines: list[str] = []
    for word in text.split():
        joined = f"{lines[-1]} {word}" if lines else word
        if lines and cv2.getTextSize(joined, font, scale, thick)[0][0] <= room:
            lines[-1] = joined
        else:
            lines.append(word)
    widest = max(cv2.getTextSize(line, font, scale, thick)[0][0] for line in lines)
    while widest > room and scale > 0.05:  # text width is not quite linear in the scale: step down until it fits
        scale *= min(0.95, room / widest)
        widest = max(cv2.getTextSize(line, font, scale, thick)[0][0] for line in lines)
    return lines, scale, thick, pad


def draw_caption(image: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` in place on a dark band along the bottom-left of an RGB frame, fitted to the frame's width
    (``caption_layout``)."""
    h, w = image.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    lines, scale, thick, pad = caption_layout(text, w, h)
    (_, th), base = cv2.getTextSize(text, font, scale, thick)
    step = th + base + pad
    widest = max(cv2.getTextSize(line, font, scale, thick)[0][0] for line in lines)
    top = max(0, h - len(lines) * step - pad)
    band = image[top:h, :min(w, widest + 2 * pad)]
    band[:] = (band.astype(np.uint16) * 3 // 10).astype(np.uint8)
    for n, line in enumerate(lines):
        y = h - pad - base - (len(lines) - 1 - n) * step
        cv2.putText(image, line, (pad, y), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return image

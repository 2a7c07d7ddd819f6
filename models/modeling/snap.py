"""Keypoint snapping: each regressed keypoint moves towards the strongest peak of its own heatmap close to it.

Regression from the person's centre places most keypoints within a pixel or two; the heatmaps
(``cfg.keypoint_heatmaps``) see each joint locally and fix the ones it placed a few pixels off. Conventions:

- ``keypoints [B,N,K,2]`` (x, y) and ``heatmaps [B,K,h,w]`` logits share the feature-map frame: pixel (y, x) has its
  centre at integer (x, y) (``models.config``).
- The window of keypoint k is the ``(2r+1) x (2r+1)`` pixels centred on its nearest pixel (coordinates rounded half
  to even); pixels of the window outside the map are left out. A keypoint whose nearest pixel lies outside the map
  (a person cut by the border) stays where it was.
- The peak is the window's highest logit (ties: the first in row-major order). If ``sigmoid(peak) > threshold``
  and the peak is a local maximum of the map (no lower than its 4 neighbours inside the map; a window's edge on a
  slope is not a peak), the keypoint moves to the peak, refined per axis to the vertex of the parabola through the
  log-probabilities of the peak and its two neighbours (exact for a gaussian), at most 0.5 px; an axis whose
  neighbour lies outside the map, or whose three values are not concave, gets no refinement. Otherwise the
  keypoint stays where it was.
- ``weight`` < 1 moves a keypoint only that fraction of the way to its peak: the regressed and the heatmap
  positions are two estimates with errors of their own, and their blend can beat either.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _vertex(left: torch.Tensor, centre: torch.Tensor, right: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    curvature = left - 2 * centre + right
    shift = 0.5 * (left - right) / torch.where(curvature < 0, curvature, -1.0)
    return torch.where(inside & (curvature < 0), shift.clamp(-0.5, 0.5), 0.0)


def snap_keypoints(keypoints: torch.Tensor, heatmaps: torch.Tensor, radius: int, threshold: float,
                   weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Snapped keypoints ``[B,N,K,2]`` (fp32) and which of them moved ``[B,N,K]`` (bool); see the module doc."""
    b, n, k, _ = keypoints.shape
    if heatmaps.shape[:2] != (b, k):
        raise ValueError(f"heatmaps {tuple(heatmaps.shape)} do not match keypoints {tuple(keypoints.shape)}")
    h, w = heatmaps.shape[-2:]
    kp = keypoints.float()
    logp = F.logsigmoid(heatmaps.float()).flatten(2)  # [B,K,hw]
    rx, ry = kp[..., 0].round(), kp[..., 1].round()
    cx, cy = rx.clamp(0, w - 1).long(), ry.clamp(0, h - 1).long()
    steps = torch.arange(-radius, radius + 1, device=kp.device)
    wx = cx.unsqueeze(-1).unsqueeze(-1) + steps.view(1, -1)          # [B,N,K,1,S]
    wy = cy.unsqueeze(-1).unsqueeze(-1) + steps.view(-1, 1)          # [B,N,K,S,1]
    inside = (wx >= 0) & (wx < w) & (wy >= 0) & (wy < h)             # [B,N,K,S,S]
    flat = (wy.clamp(0, h - 1) * w + wx.clamp(0, w - 1)).flatten(-2)  # [B,N,K,S*S]

    def gather(index: torch.Tensor) -> torch.Tensor:  # [B,N,K,M] flat pixels -> log-probabilities
        m = index.shape[-1]
        g = torch.gather(logp, 2, index.permute(0, 2, 1, 3).reshape(b, k, n * m))
        return g.view(b, k, n, m).permute(0, 2, 1, 3)

    values = torch.where(inside.flatten(-2), gather(flat), -torch.inf)
    best, arg = values.max(dim=-1)
    peak = torch.gather(flat, -1, arg.unsqueeze(-1)).squeeze(-1)
    px, py = peak % w, peak // w
    neighbours = torch.stack([py * w + (px - 1).clamp(min=0), py * w + (px + 1).clamp(max=w - 1),
                              (py - 1).clamp(min=0) * w + px, (py + 1).clamp(max=h - 1) * w + px], dim=-1)
    left, right, up, down = gather(neighbours).unbind(-1)
    sx = _vertex(left, best, right, (px > 0) & (px < w - 1))
    sy = _vertex(up, best, down, (py > 0) & (py < h - 1))
    is_max = (best >= left) & (best >= right) & (best >= up) & (best >= down)  # clamped border neighbours: itself
    on_map = (rx >= 0) & (rx < w) & (ry >= 0) & (ry < h)
    moved = on_map & is_max & (best > torch.log(torch.tensor(threshold, device=kp.device)))
    snapped = torch.stack([px.float() + sx, py.float() + sy], dim=-1)
    return torch.where(moved.unsqueeze(-1), kp + weight * (snapped - kp), kp), moved

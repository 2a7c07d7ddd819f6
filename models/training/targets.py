"""Dense training targets from ``Persons`` (input pixels) on the stride-4 map (feature pixels).

Conventions (our reconstruction of DEKR's assignment):

- Keypoints move to feature px with ``models.config.to_feature``; areas are divided by stride^2.
- A keypoint counts ("labelled") when ``v > 0`` and it lies inside the input image, ``0 <= x < W``,
  ``0 <= y < H`` in input px. Other keypoints get ``v = 0`` here and contribute to no loss and no OKS.
- A person with no labelled keypoint is ignored (no positive pixels; its pixels are background).
- The person's centre is the mean of its labelled keypoints. Its positive window is every pixel (y, x) with
  ``|x - cx| <= radius`` and ``|y - cy| <= radius`` (square, feature px; DEKR uses 4 at 512 input).
- Overlapping windows: the pixel goes to the person with the smaller area; equal areas: the lower index.
- ``heatmap``: the ``center_gaussian`` baseline target, ``max_p exp(-|pixel - centre_p|^2 / (2 sigma^2))``.
- ``keypoint_heatmaps``: the same gaussian around every labelled keypoint, one map per keypoint type.
- ``ignore``: a map pixel is ignored when at least half of the stride x stride input pixels it covers lie in the
  image's ignore mask (``Persons.ignore``: crowds and unlabelled people, ``models.data.regions``). DEKR warps its
  mask straight to the map with bilinear sampling and thresholds it at 0.5; this is the same majority rule on the
  mask carried at input resolution. The losses drop background there (``models.training.losses``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from models.config import STRIDE, to_feature
from models.data.persons import Persons


@dataclass
class DenseTargets:
    """Padded to P = the most people in any image of the batch (at least 1).

    ``owner [B,h,w]`` int64 person index or -1 (background); ``keypoints [B,P,K,3]`` (x, y, v) feature px with
    v = 0 for keypoints that do not count; ``areas [B,P]`` feature px^2; ``valid [B,P]`` person is used;
    ``centres [B,P,2]`` (x, y) feature px; ``heatmap [B,h,w]`` centre gaussians; ``ignore [B,h,w]`` bool, map
    pixels in an ignore region (positive pixels may be among them: the losses keep those)."""

    owner: torch.Tensor
    keypoints: torch.Tensor
    areas: torch.Tensor
    valid: torch.Tensor
    centres: torch.Tensor
    heatmap: torch.Tensor
    ignore: torch.Tensor | None = None

    @property
    def positive(self) -> torch.Tensor:
        return self.owner >= 0


def pad_persons(persons: list[Persons], num_keypoints: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B,P,K,3]`` keypoints and ``[B,P]`` areas, padded with unlabelled people (v = 0, area 0)."""
    p = max([len(x) for x in persons] + [1])
    kps = torch.zeros(len(persons), p, num_keypoints, 3, device=device)
    areas = torch.zeros(len(persons), p, device=device)
    for b, people in enumerate(persons):
        if len(people):
            if people.keypoints.shape[1] != num_keypoints:
                raise ValueError(f"Persons has {people.keypoints.shape[1]} keypoints, the model {num_keypoints}")
            kps[b, : len(people)] = people.keypoints.to(device).float()
            areas[b, : len(people)] = people.areas.to(device).float()
    return kps, areas


def ignored_cells(mask: torch.Tensor, stride: int = STRIDE) -> torch.Tensor:
    """``mask [H,W]`` bool input px -> ``[H/stride, W/stride]`` bool: at least half of each cell's pixels set."""
    if mask.shape[-2] % stride or mask.shape[-1] % stride:
        raise ValueError(f"ignore mask {tuple(mask.shape)} is not a multiple of the stride {stride}")
    return F.avg_pool2d(mask.float()[None, None], stride)[0, 0] >= 0.5


def build_targets(persons: list[Persons], map_size: tuple[int, int], input_size: tuple[int, int],
                  num_keypoints: int, radius: float, sigma: float, device=None, stride: int = STRIDE) -> DenseTargets:
    """Targets for a batch; ``map_size`` = (h, w), ``input_size`` = (H, W) in input px."""
    h, w = map_size
    in_h, in_w = input_size
    kps, areas = pad_persons(persons, num_keypoints, device)
    x, y, v = kps.unbind(-1)
    labelled = (v > 0) & (x >= 0) & (x < in_w) & (y >= 0) & (y < in_h)
    feat_xy = to_feature(kps[..., :2], stride)
    keypoints = torch.cat([feat_xy * labelled.unsqueeze(-1), (v * labelled).unsqueeze(-1)], dim=-1)
    count = labelled.sum(-1)
    valid = count > 0
    centres = (feat_xy * labelled.unsqueeze(-1)).sum(2) / count.clamp(min=1).unsqueeze(-1)
    areas = areas / stride ** 2

    ys = torch.arange(h, device=device, dtype=torch.float32).view(1, 1, h, 1)
    xs = torch.arange(w, device=device, dtype=torch.float32).view(1, 1, 1, w)
    cx, cy = centres[..., 0, None, None], centres[..., 1, None, None]
    inside = ((xs - cx).abs() <= radius) & ((ys - cy).abs() <= radius) & valid[..., None, None]  # [B,P,h,w]
    cost = torch.where(inside, areas[..., None, None], torch.full_like(inside, math.inf, dtype=torch.float32))
    best, owner = cost.min(dim=1)
    owner = torch.where(torch.isfinite(best), owner, torch.full_like(owner, -1))
    d2 = (xs - cx) ** 2 + (ys - cy) ** 2
    gauss = torch.where(valid[..., None, None], torch.exp(-d2 / (2 * sigma ** 2)), torch.zeros_like(d2))
    ignore = torch.zeros(len(persons), h, w, dtype=torch.bool, device=device)
    for b, people in enumerate(persons):
        if people.ignore is not None:
            if tuple(people.ignore.shape) != (in_h, in_w):
                raise ValueError(f"ignore mask {tuple(people.ignore.shape)} is not the input size {(in_h, in_w)}")
            ignore[b] = ignored_cells(people.ignore.to(device), stride)
    return DenseTargets(owner=owner, keypoints=keypoints, areas=areas, valid=valid, centres=centres,
                        heatmap=gauss.amax(dim=1), ignore=ignore)


def keypoint_heatmaps(keypoints: torch.Tensor, map_size: tuple[int, int], sigma: float) -> torch.Tensor:
    """``keypoints [B,P,K,3]`` (x, y, v) feature px (v = 0: not labelled) -> ``[B,K,h,w]`` heatmap targets,
    ``max_p exp(-|pixel - keypoint_pk|^2 / (2 sigma^2))`` over the people whose keypoint k is labelled (0 if none);
    P >= 1 (``pad_persons``)."""
    h, w = map_size
    x, y, v = (c[..., None, None] for c in keypoints.unbind(-1))
    xs = torch.arange(w, device=keypoints.device, dtype=torch.float32)
    ys = torch.arange(h, device=keypoints.device, dtype=torch.float32).view(h, 1)
    gauss = torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma ** 2)) * (v > 0)
    return gauss.amax(dim=1)

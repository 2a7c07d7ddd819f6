"""``Persons``: the ground-truth people of one training image, in network-input pixels (after letterbox/augment)."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Persons:
    """P annotated people. ``keypoints [P,K,3]`` float32 (x, y, v) in input pixels, COCO visibility v:
    0 not labelled (x = y = 0), 1 labelled but occluded, 2 visible. ``areas [P]`` float32 segment area in input
    pixels squared (the OKS scale s^2). ``ignore [H,W]`` bool, optional: input pixels of people the data shows but
    does not label (``models.data.regions``), where training calls nothing background."""

    keypoints: torch.Tensor
    areas: torch.Tensor
    ignore: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.keypoints.dim() != 3 or self.keypoints.shape[-1] != 3:
            raise ValueError(f"keypoints must be [P,K,3], got {tuple(self.keypoints.shape)}")
        if self.areas.shape != self.keypoints.shape[:1]:
            raise ValueError(f"areas must be [P]={self.keypoints.shape[0]}, got {tuple(self.areas.shape)}")
        if self.ignore is not None and (self.ignore.dim() != 2 or self.ignore.dtype != torch.bool):
            raise ValueError(f"ignore must be a [H,W] bool mask, got {self.ignore.dtype} {tuple(self.ignore.shape)}")

    def __len__(self) -> int:
        return self.keypoints.shape[0]

    def to(self, device) -> "Persons":
        return Persons(self.keypoints.to(device), self.areas.to(device),
                       None if self.ignore is None else self.ignore.to(device))

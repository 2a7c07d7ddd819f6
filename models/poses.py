"""``Poses``: the people found in one image, in that image's pixels; what the Predictor returns per image."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.keypoints import NUM_KEYPOINTS


@dataclass(repr=False)
class Poses:
    """P people: ``keypoints [P,K,2]`` (x, y) float32 image pixels (pixel centres at integers),
    ``keypoint_scores [P,K]`` float32 in [0, 1], ``scores [P]`` float32 pose quality in [0, 1] (predicted OKS),
    sorted by score descending."""

    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        p = len(self.scores)
        if self.keypoints.shape[0] != p or self.keypoints.shape[-1] != 2 or self.keypoints.ndim != 3:
            raise ValueError(f"keypoints must be [P,K,2] with P={p}, got {self.keypoints.shape}")
        if self.keypoint_scores.shape != self.keypoints.shape[:2]:
            raise ValueError(f"keypoint_scores must be {self.keypoints.shape[:2]}, got {self.keypoint_scores.shape}")

    @classmethod
    def empty(cls, num_keypoints: int = NUM_KEYPOINTS) -> "Poses":
        return cls(np.zeros((0, num_keypoints, 2), np.float32), np.zeros((0, num_keypoints), np.float32),
                   np.zeros((0,), np.float32))

    def __repr__(self) -> str:
        """Counts and shapes, not the arrays: ``Poses(2 people, 17 keypoints, scores [0.91, 0.42])`` (the first
        five scores)."""
        shown = ", ".join(f"{s:.2f}" for s in self.scores[:5]) + (", ..." if len(self) > 5 else "")
        return f"Poses({len(self)} people, {self.keypoints.shape[1]} keypoints, scores [{shown}])"

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, keep) -> "Poses":
        return Poses(self.keypoints[keep], self.keypoint_scores[keep], self.scores[keep])

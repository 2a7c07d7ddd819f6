"""``Candidates``: what the decode hands from the dense stage to the sparse stage (see ``kernels/__init__.py``)."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Candidates:
    """Fixed-shape decode output for a batch of B images, N = ``max_people`` slots each.

    ======================  =====================  =============================================================
    field                   shape / dtype          meaning
    ======================  =====================  =============================================================
    ``scores``              [B, N] float32         sigmoid of the peak logit; 0 in unused slots
    ``indices``             [B, N] int64           flat index ``y * w + x`` of the peak; -1 in unused slots
    ``valid``               [B, N] bool            slot holds a peak
    ``keypoints``           [B, N, K, 2] float32   (x, y) of each keypoint in feature-map pixels, not clamped
    ``kpt_queries``         [B, N, K, Ck] feat     kfeat of keypoint k sampled bilinearly at its keypoint
    ``inst_queries``        [B, N, Ci] feat        ifeat at the peak pixel
    ======================  =====================  =============================================================

    ``feat`` is the dtype of the feature inputs (fp16 in, fp16 out). Slots are ordered by score descending,
    then flat index ascending; every field of an unused slot is 0 (``indices``: -1, ``valid``: False).
    """

    scores: torch.Tensor
    indices: torch.Tensor
    valid: torch.Tensor
    keypoints: torch.Tensor
    kpt_queries: torch.Tensor
    inst_queries: torch.Tensor

    def __post_init__(self) -> None:
        b, n = self.scores.shape
        k = self.keypoints.shape[2]
        expected = {
            "indices": (b, n), "valid": (b, n), "keypoints": (b, n, k, 2),
            "kpt_queries": (b, n, k), "inst_queries": (b, n),
        }
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape[: len(shape)])
            if got != shape:
                raise ValueError(f"Candidates.{name} has leading shape {got}, expected {shape}")

    @property
    def batch_size(self) -> int:
        return self.scores.shape[0]

    @property
    def max_people(self) -> int:
        return self.scores.shape[1]

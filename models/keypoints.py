"""The COCO person keypoint convention shared by every part of the project.

Keypoint order is COCO's (17 points). Left/right are the person's own sides. ``FLIP_INDEX[k]`` is the keypoint
that k becomes when an image is mirrored horizontally. ``SIGMAS`` are COCO's per-keypoint OKS constants
(the values pycocotools uses).
"""
from __future__ import annotations

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)

FLIP_INDEX: tuple[int, ...] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
# CrowdPose's 14 points (left/right shoulder, elbow, wrist, hip, knee, ankle, head, neck): networks imported with them
CROWDPOSE_FLIP_INDEX: tuple[int, ...] = (1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13)


def flip_index(num_keypoints: int) -> tuple[int, ...]:
    """``FLIP_INDEX`` of the convention with ``num_keypoints`` points: COCO's 17 or CrowdPose's 14."""
    if num_keypoints == len(FLIP_INDEX):
        return FLIP_INDEX
    if num_keypoints == len(CROWDPOSE_FLIP_INDEX):
        return CROWDPOSE_FLIP_INDEX
    raise ValueError(f"no mirror convention for {num_keypoints} keypoints (17: COCO, 14: CrowdPose)")

SIGMAS: tuple[float, ...] = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)

# Limbs as pairs of keypoint indices (COCO's skeleton, 0-based), for drawing.
SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)

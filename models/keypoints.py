"""The person keypoint conventions shared by every part of the project.

COCO's 17 points are the project's own convention; CrowdPose's 14 (12 limb points, then the top of the head and the
neck) are that of networks trained on CrowdPose (DEKR's CrowdPose weights, and a model fine-tuned from them).
Left/right are the person's own sides. ``FLIP_INDEX[k]`` is the keypoint that k becomes when an image is mirrored
horizontally. ``SIGMAS`` are the per-keypoint OKS constants (pycocotools' for COCO, the CrowdPose toolkit's for
CrowdPose); ``SKELETON`` the limbs drawn. ``keypoint_convention(K)`` picks the convention of a network with K points.
"""
from __future__ import annotations

from dataclasses import dataclass

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)

FLIP_INDEX: tuple[int, ...] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
SIGMAS: tuple[float, ...] = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)

# Limbs as pairs of keypoint indices (COCO's skeleton, 0-based), for drawing.
SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)

CROWDPOSE_NAMES: tuple[str, ...] = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head", "neck",
)
CROWDPOSE_FLIP_INDEX: tuple[int, ...] = (1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13)
CROWDPOSE_SIGMAS: tuple[float, ...] = (.079, .079, .072, .072, .062, .062, .107, .107, .087, .087, .089, .089,
                                       .079, .079)
# CrowdPose's skeleton (its data set's limbs, 0-based, in its order)
CROWDPOSE_SKELETON: tuple[tuple[int, int], ...] = (
    (10, 8), (8, 6), (11, 9), (9, 7), (6, 7), (0, 6), (1, 7), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5),
    (12, 13), (1, 13), (0, 13),
)


@dataclass(frozen=True)
class KeypointConvention:
    """A keypoint order: its names, its mirror permutation, its OKS sigmas and its limbs."""
    name: str
    names: tuple[str, ...]
    flip_index: tuple[int, ...]
    sigmas: tuple[float, ...]
    skeleton: tuple[tuple[int, int], ...]


COCO_CONVENTION = KeypointConvention("coco", KEYPOINT_NAMES, FLIP_INDEX, SIGMAS, SKELETON)
CROWDPOSE_CONVENTION = KeypointConvention("crowdpose", CROWDPOSE_NAMES, CROWDPOSE_FLIP_INDEX, CROWDPOSE_SIGMAS,
                                          CROWDPOSE_SKELETON)


def keypoint_convention(num_keypoints: int) -> KeypointConvention:
    """The convention of a network with ``num_keypoints`` points: COCO's 17 or CrowdPose's 14."""
    for convention in (COCO_CONVENTION, CROWDPOSE_CONVENTION):
        if num_keypoints == len(convention.names):
            return convention
    raise ValueError(f"no keypoint convention has {num_keypoints} points (17: COCO, 14: CrowdPose)")


def flip_index(num_keypoints: int) -> tuple[int, ...]:
    """``FLIP_INDEX`` of the convention with ``num_keypoints`` points: COCO's 17 or CrowdPose's 14."""
    return keypoint_convention(num_keypoints).flip_index



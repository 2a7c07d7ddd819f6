"""Drawing follows the model's keypoint convention: COCO's limbs for 17 points, CrowdPose's for 14 (a model imported
from DEKR's CrowdPose weights), each limb a line between its two points."""
import numpy as np
import pytest

from models.keypoints import keypoint_convention
from models.poses import Poses
from realtime.frames import Frame, Result
from realtime.view.render import draw


def one_person(k: int) -> Result:
    """One person whose keypoints sit on a circle, so every limb is a distinct chord."""
    angles = np.linspace(0, 2 * np.pi, k, endpoint=False)
    kpts = np.stack([160 + 90 * np.cos(angles), 120 + 90 * np.sin(angles)], 1).astype(np.float32)[None]
    poses = Poses(kpts, np.ones((1, k), np.float32), np.array([0.9], np.float32))
    frame = Frame(source=0, seq=0, pts=0.0, wall_time=0.0, recv_time=0.0, image=np.zeros((240, 320, 3), np.uint8))
    return Result(frame, poses, np.array([3]))


@pytest.mark.parametrize("k", [17, 14])
def test_every_limb_of_the_convention_is_drawn(k):
    result = one_person(k)
    image = draw(result)
    kpts = result.poses.keypoints[0]
    for a, b in keypoint_convention(k).skeleton:
        mid = np.round((kpts[a] + kpts[b]) / 2).astype(int)
        patch = image[mid[1] - 1:mid[1] + 2, mid[0] - 1:mid[0] + 2]
        assert patch.max() > 100, (a, b)

"""The keypoint conventions: COCO's 17 and CrowdPose's 14 points, each with a mirror that is its own inverse and
swaps left with right by name."""
import pytest

from models.keypoints import COCO_CONVENTION, CROWDPOSE_CONVENTION, keypoint_convention


@pytest.mark.parametrize("convention", [COCO_CONVENTION, CROWDPOSE_CONVENTION])
def test_mirror_swaps_left_and_right_by_name_and_is_its_own_inverse(convention):
    names, flip = convention.names, convention.flip_index
    assert len(flip) == len(names) == len(convention.sigmas)
    for k, j in enumerate(flip):
        assert flip[j] == k
        swapped = names[k].replace("left", "#").replace("right", "left").replace("#", "right")
        assert names[j] == swapped


def test_convention_by_keypoint_count():
    assert keypoint_convention(17) is COCO_CONVENTION and keypoint_convention(14) is CROWDPOSE_CONVENTION
    with pytest.raises(ValueError, match="17: COCO, 14: CrowdPose"):
        keypoint_convention(16)

"""The figure model: joint limits, limb lengths, facing direction, hidden face points and rendering."""
import numpy as np
import pytest

from models.data import figures
from models.keypoints import KEYPOINT_NAMES

K = {n: i for i, n in enumerate(KEYPOINT_NAMES)}
RED = (200, 0, 0)


def _figure(pose, height=120.0, anchor=(80.0, 70.0), colour=RED):
    app = figures.Appearance(skin=colour, hair=(20, 20, 20), shirt=colour, trousers=colour, shoes=colour)
    return figures.Figure(pose, app, height, anchor)


def test_sampled_poses_respect_joint_limits():
    rng = np.random.default_rng(0)
    for i in range(300):
        pose = figures.sample_pose(rng, figures.POSE_FAMILIES[i % len(figures.POSE_FAMILIES)])
        for name, (lo, hi) in figures.LIMITS.items():
            values = np.atleast_1d(getattr(pose, name))
            assert ((values >= lo) & (values <= hi)).all(), (name, values)


def test_limb_lengths_do_not_depend_on_the_pose():
    rng = np.random.default_rng(1)
    for _ in range(50):
        pts = figures.skeleton_3d(figures.sample_pose(rng, "free"))
        for side in ("left", "right"):
            seg = lambda a, b: np.linalg.norm(pts[f"{side}_{a}"] - pts[f"{side}_{b}"])
            assert seg("shoulder", "elbow") == pytest.approx(figures.UPPER_ARM)
            assert seg("elbow", "wrist") == pytest.approx(figures.FOREARM)
            assert seg("hip", "knee") == pytest.approx(figures.THIGH)
            assert seg("knee", "ankle") == pytest.approx(figures.SHIN)


def test_standing_figure_is_about_one_height_tall():
    pts = figures.skeleton_3d(figures.Pose(shoulder_abd=(0, 0), hip_abd=(0, 0), knee=(0, 0), elbow=(0, 0)))
    top = pts["head"][1] + figures.HEAD_RADIUS
    assert top - pts["left_ankle"][1] == pytest.approx(1.0, abs=0.05)
    assert pts["left_shoulder"][1] > pts["left_hip"][1] > pts["left_knee"][1] > pts["left_ankle"][1]


def test_elbow_bends_forward_and_knee_backward():
    straight = figures.skeleton_3d(figures.Pose(elbow=(0, 0), knee=(0, 0)))
    bent = figures.skeleton_3d(figures.Pose(elbow=(1.5, 0), knee=(1.5, 0)))
    assert bent["left_wrist"][2] > straight["left_wrist"][2] + 0.1
    assert bent["left_ankle"][2] < straight["left_ankle"][2] - 0.1


def test_facing_camera_puts_the_left_side_on_the_image_right():
    front = figures.project(_figure(figures.Pose(yaw=0.0)))
    back = figures.project(_figure(figures.Pose(yaw=np.pi)))
    assert front.keypoints[K["left_shoulder"], 0] > front.keypoints[K["right_shoulder"], 0]
    assert back.keypoints[K["left_shoulder"], 0] < back.keypoints[K["right_shoulder"], 0]
    assert not front.hidden.any()
    assert back.hidden[[K["nose"], K["left_eye"], K["right_eye"]]].all()
    assert not back.hidden[[K["left_ear"], K["right_ear"]]].any()


def test_profile_hides_the_far_ear_and_eye():
    proj = figures.project(_figure(figures.Pose(yaw=np.pi / 2)))  # faces image right: the left side is far
    assert proj.hidden[K["left_ear"]] and proj.hidden[K["left_eye"]]
    assert not proj.hidden[K["right_ear"]] and not proj.hidden[K["nose"]]
    assert proj.keypoints[K["nose"], 0] > proj.keypoints[K["right_ear"], 0]


@pytest.mark.parametrize("height", [12.0, 40.0, 140.0])
def test_render_covers_every_labelled_keypoint_and_shades_sides(height):
    rng = np.random.default_rng(int(height))
    for _ in range(10):
        pose = figures.sample_pose(rng)
        proj = figures.project(_figure(pose, height=height, anchor=(80.0, 80.0)))
        image = np.zeros((160, 160, 3), np.uint8)
        owner = np.zeros((160, 160), np.int32)
        mask = np.zeros((160, 160), np.uint8)
        figures.render(image, owner, mask, proj, 3)
        assert ((owner == 3) == (mask == 1)).all() and mask.any()
        for k, (x, y) in enumerate(proj.keypoints):
            if not proj.hidden[k]:
                assert mask[int(round(y)), int(round(x))] == 1, KEYPOINT_NAMES[k]
    colours = {tuple(c) for c in image[mask == 1]}
    assert figures._shade(RED, "left") in colours and figures._shade(RED, "right") in colours
    assert sum(figures._shade(RED, "left")) < sum(RED) < sum(figures._shade(RED, "right"))

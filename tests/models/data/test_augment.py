"""Augmentation: keypoints move with the pixels, mirrors swap sides, points leaving the input are dropped."""
import numpy as np
import pytest

from models.data import augment, figures
from models.data.augment import AugmentConfig, build_affine, transform_keypoints, warp_image
from models.keypoints import CROWDPOSE_FLIP_INDEX, FLIP_INDEX, KEYPOINT_NAMES
from models.preprocess import Letterbox

K = {n: i for i, n in enumerate(KEYPOINT_NAMES)}


def _dot(height, width, x, y, radius):
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.zeros((height, width, 3), np.uint8)
    image[(xx - x) ** 2 + (yy - y) ** 2 <= radius ** 2] = 255
    return image


@pytest.mark.parametrize("case", [
    dict(h=120, w=160, size=128, scale=1.0, rotation=0.0, flip=False),
    dict(h=120, w=160, size=128, scale=1.3, rotation=25.0, flip=True),
    dict(h=90, w=70, size=96, scale=0.8, rotation=-30.0, flip=False, shift=(6.0, -4.0)),
    dict(h=600, w=800, size=128, scale=1.0, rotation=10.0, flip=True),  # strong shrink: area pre-resize path
])
def test_keypoints_land_where_their_pixels_went(case):
    """Each keypoint is a disc drawn alone; after the warp, the disc's centroid is where the keypoint went."""
    h, w = case["h"], case["w"]
    rng = np.random.default_rng(0)
    kps = np.concatenate([rng.uniform([0.15 * w, 0.15 * h], [0.85 * w, 0.85 * h], (17, 2)), np.full((17, 1), 2.0)],
                         1)[None].astype(np.float32)
    aff = build_affine(h, w, case["size"], case["scale"], case["rotation"], case["flip"], case.get("shift", (0, 0)))
    moved = transform_keypoints(kps, aff)[0]
    source = np.array(FLIP_INDEX) if case["flip"] else np.arange(17)  # output keypoint k came from source[k]
    blank = warp_image(np.zeros((h, w, 3), np.uint8), aff)[..., 0].astype(float)  # the gray padding
    checked = 0
    for k in range(17):
        reach = max(h, w) / 25 * aff.scale + 2
        if moved[k, 2] == 0 or not (reach < moved[k, :2]).all() or not (moved[k, :2] < case["size"] - reach).all():
            continue  # a disc cut by the border has a shifted centroid
        x, y = kps[0, source[k], :2]
        out = warp_image(_dot(h, w, x, y, max(h, w) / 25), aff)[..., 0].astype(float) - blank
        yy, xx = np.mgrid[0:out.shape[0], 0:out.shape[1]]
        centroid = ((out * xx).sum() / out.sum(), (out * yy).sum() / out.sum())
        assert centroid == pytest.approx(tuple(moved[k, :2]), abs=0.35)
        checked += 1
    assert checked >= 8


def test_plain_chain_is_the_letterbox():
    aff = build_affine(120, 200, 256)
    box = Letterbox.fit(120, 200, 256)
    assert aff.scale == pytest.approx(box.scale)
    pts = np.array([[[0.0, 0.0, 2], [199.0, 119.0, 2], [57.0, 33.0, 1]]], np.float32)
    assert transform_keypoints(pts, aff)[0, :, :2] == pytest.approx(box.to_input(pts[0])[:, :2], abs=0.5)


def _figure_image(side_colours=True):
    """A frontal figure whose left limbs are drawn darker than its right limbs (the generator's side marking)."""
    red = (200, 0, 0)
    app = figures.Appearance(skin=red, hair=(20, 20, 20), shirt=red, trousers=red, shoes=red)
    pose = figures.Pose(shoulder_abd=(0.9, 0.9), elbow=(0.3, 0.3), hip_abd=(0.3, 0.3))
    proj = figures.project(figures.Figure(pose, app, 100.0, (64.0, 60.0)))
    image = np.full((128, 128, 3), 255, np.uint8)
    figures.render(image, np.zeros((128, 128), np.int32), np.zeros((128, 128), np.uint8), proj, 1)
    kps = np.concatenate([proj.keypoints, np.full((17, 1), 2.0)], 1)[None].astype(np.float32)
    return image, kps, np.array(figures._shade(red, "left")), np.array(figures._shade(red, "right"))


LIMB_POINTS = ("wrist", "elbow", "knee", "ankle")


def _colour_at(image, kps, name):
    x, y = (int(round(c)) for c in kps[0, K[name], :2])
    return image[y, x].astype(int)


def test_without_mirror_left_keypoints_sit_on_left_limbs():
    image, kps, left, right = _figure_image()
    aff = build_affine(128, 128, 128, scale=1.1, rotation=12.0)
    out, moved = warp_image(image, aff), transform_keypoints(kps, aff)
    for part in LIMB_POINTS:
        assert np.abs(_colour_at(out, moved, f"left_{part}") - left).sum() < 30
        assert np.abs(_colour_at(out, moved, f"right_{part}") - right).sum() < 30


def test_mirror_swaps_sides_so_left_keypoints_sit_on_the_mirrored_left_limbs():
    """In a mirror image the person's left limbs are the images of the original right limbs (drawn light)."""
    image, kps, left, right = _figure_image()
    aff = build_affine(128, 128, 128, scale=1.1, rotation=12.0, flip=True)
    out, moved = warp_image(image, aff), transform_keypoints(kps, aff)
    for part in LIMB_POINTS:
        assert np.abs(_colour_at(out, moved, f"left_{part}") - right).sum() < 30
        assert np.abs(_colour_at(out, moved, f"right_{part}") - left).sum() < 30
    # The same matrix without the swap puts the left labels on the wrong limbs: the check above would fail.
    unswapped = transform_keypoints(kps, augment.Affine(aff.matrix, flip=False, size=128))
    assert np.abs(_colour_at(out, unswapped, "left_wrist") - right).sum() > 100


def test_keypoints_leaving_the_input_are_dropped():
    kps = np.array([[[10.0, 10.0, 2], [90.0, 50.0, 1], [50.0, 50.0, 0]]], np.float32)
    aff = build_affine(100, 100, 100, shift=(-30.0, 0.0))
    out = transform_keypoints(kps, aff)[0]
    assert out[0].tolist() == [0, 0, 0] and out[2].tolist() == [0, 0, 0]
    assert out[1, :2] == pytest.approx([60.0, 50.0]) and out[1, 2] == 1


def test_random_affine_stays_within_the_configured_ranges():
    rng = np.random.default_rng(0)
    cfg = AugmentConfig()
    flips, scales = [], []
    for _ in range(400):
        aff = augment.random_affine(100, 200, 128, cfg, rng)
        flips.append(aff.flip)
        scales.append(aff.scale / (128 / 200))
        det = np.linalg.det(aff.matrix[:, :2])
        assert (det < 0) == aff.flip
    assert 0.4 < np.mean(flips) < 0.6
    assert 0.75 - 1e-6 <= min(scales) < 0.8 and 1.4 < max(scales) <= 1.5 + 1e-6
    assert augment.random_affine(100, 200, 128, AugmentConfig.off(), rng).matrix == pytest.approx(
        build_affine(100, 200, 128).matrix)


def test_color_jitter_changes_colours_not_shape():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    out = augment.color_jitter(image, AugmentConfig(), rng)
    assert out.shape == image.shape and out.dtype == np.uint8 and (out != image).any()
    assert augment.color_jitter(image, AugmentConfig.off(), rng) is image


def test_mirror_of_crowdpose_points_swaps_limbs_and_keeps_head_and_neck():
    """CrowdPose's 14 points (a network fine-tuned from DEKR's CrowdPose weights): left and right limb points swap,
    the head top and the neck (the last two) stay; each lands at the mirrored x of the point it came from."""
    kps = np.zeros((1, 14, 3), np.float32)
    kps[0, :, 0], kps[0, :, 1], kps[0, :, 2] = np.arange(14) * 5 + 10, 40.0, 2
    out = transform_keypoints(kps, build_affine(100, 100, 100, flip=True))[0]
    for k, source in enumerate(CROWDPOSE_FLIP_INDEX):
        assert out[k, 0] == pytest.approx(99 - kps[0, source, 0])
    assert out[0, 0] == pytest.approx(99 - 15) and out[1, 0] == pytest.approx(99 - 10)  # shoulders swapped
    assert out[12, 0] == pytest.approx(99 - 70) and out[13, 0] == pytest.approx(99 - 75)  # head, neck kept
    with pytest.raises(ValueError, match="15 points"):
        transform_keypoints(np.zeros((1, 15, 3), np.float32), build_affine(100, 100, 100, flip=True))

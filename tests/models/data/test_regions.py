"""Ignore regions on a hand-made COCO file: a crowd RLE, a polygon person without keypoints and a labelled person.

The image is 8x8, so every expected mask below is written out by hand. The chain's matrices (``build_affine``,
pixel centres at integers): mirror x -> 7 - x; a 90 degree turn (counter-clockwise on screen) (x, y) -> (y, 7 - x);
letterboxing 8 px into 16 px x -> 2x + 0.5, so nearest-neighbour gives source column c to columns 2c and 2c + 1.
"""
import json
import warnings

import cv2
import numpy as np
import pytest
import torch

from models.data.augment import AugmentConfig, build_affine
from models.data.dataset import KeypointDataset
from models.data.regions import DataWarning, IgnoreShape, region_mask, rle_counts
from models.keypoints import KEYPOINT_NAMES
from models.training.targets import ignored_cells

CROWD = (slice(1, 3), slice(1, 4))      # rows 1-2, columns 1-3: the crowd RLE
UNLABELLED = (slice(4, 7), slice(1, 4))  # rows 4-6, columns 1-3: the polygon [1,4, 4,4, 4,7, 1,7]
CROWD_RLE = "926000o0"                   # pycocotools' compressed string of CROWD
CROWD_COUNTS = [9, 2, 6, 2, 6, 2, 37]    # the same, uncompressed (column-major runs from 0)
FLIP_ONLY = AugmentConfig(flip_prob=1.0, max_rotation=0.0, scale_range=(1.0, 1.0), max_translate=0.0,
                          brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)


def person(x: float, y: float) -> list[float]:
    kps = [0.0] * 51
    kps[KEYPOINT_NAMES.index("left_hip") * 3:KEYPOINT_NAMES.index("left_hip") * 3 + 3] = [x, y, 2]
    return kps


def write_coco(tmp_path, extra=()):
    """Image 1: crowd (compressed RLE), unlabelled polygon person, labelled person. Image 2: crowd (uncompressed
    RLE) and a labelled person, plus ``extra`` annotations."""
    (tmp_path / "img").mkdir()
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / "img" / name), np.zeros((8, 8, 3), np.uint8))
    anns = [
        {"id": 1, "image_id": 1, "iscrowd": 1, "num_keypoints": 0, "keypoints": [0.0] * 51, "area": 6.0,
         "bbox": [1, 1, 3, 2], "segmentation": {"size": [8, 8], "counts": CROWD_RLE}},
        {"id": 2, "image_id": 1, "iscrowd": 0, "num_keypoints": 0, "keypoints": [0.0] * 51, "area": 9.0,
         "bbox": [1, 4, 3, 3], "segmentation": [[1, 4, 4, 4, 4, 7, 1, 7]]},
        {"id": 3, "image_id": 1, "iscrowd": 0, "num_keypoints": 1, "keypoints": person(6, 1), "area": 4.0,
         "bbox": [5, 0, 2, 3], "segmentation": [[5, 0, 7, 0, 7, 3, 5, 3]]},
        {"id": 4, "image_id": 2, "iscrowd": 1, "num_keypoints": 0, "keypoints": [0.0] * 51, "area": 6.0,
         "bbox": [1, 1, 3, 2], "segmentation": {"size": [8, 8], "counts": CROWD_COUNTS}},
        {"id": 5, "image_id": 2, "iscrowd": 0, "num_keypoints": 1, "keypoints": person(6, 6), "area": 4.0,
         "bbox": [5, 5, 2, 2], "segmentation": []},
        *extra]
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8},
                      {"id": 2, "file_name": "b.png", "width": 8, "height": 8}],
           "annotations": [{"category_id": 1, **a} for a in anns],
           "categories": [{"id": 1, "name": "person", "keypoints": list(KEYPOINT_NAMES), "skeleton": []}]}
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    return tmp_path / "ann.json", tmp_path / "img"


def expected(*regions, size=8) -> np.ndarray:
    out = np.zeros((size, size), bool)
    for rows, cols in regions:
        out[rows, cols] = True
    return out


def test_rle_strings_decode_to_their_run_lengths():
    assert rle_counts(CROWD_RLE) == CROWD_COUNTS
    assert rle_counts("92") == [9, 2] and rle_counts("9") == [9]
    assert rle_counts("o") is None  # a continuation byte with nothing after it


def test_crowd_rle_and_unlabelled_polygon_are_the_source_mask_and_the_person_is_not(tmp_path):
    ds = KeypointDataset(*write_coco(tmp_path), 8, train=True)
    assert [s.ann_id for s in ds.ignore_shapes[1]] == [1, 2] and [s.ann_id for s in ds.ignore_shapes[2]] == [4]
    assert (region_mask(ds.ignore_shapes[1], 8, 8) == expected(CROWD, UNLABELLED)).all()
    assert (region_mask(ds.ignore_shapes[2], 8, 8) == expected(CROWD)).all()  # uncompressed RLE, same pixels
    assert len(ds.targets(1)[0]) == 1  # the labelled person is a target, not ignored


@pytest.mark.parametrize("name, affine, want", [
    ("identity", build_affine(8, 8, 8), expected(CROWD, UNLABELLED)),
    ("mirror", build_affine(8, 8, 8, flip=True), expected((slice(1, 3), slice(4, 7)), (slice(4, 7), slice(4, 7)))),
    ("turn 90", build_affine(8, 8, 8, rotation=90.0),
     expected((slice(4, 7), slice(1, 3)), (slice(4, 7), slice(4, 7)))),
    ("scale 2", build_affine(8, 8, 16), expected((slice(2, 6), slice(2, 8)), (slice(8, 14), slice(2, 8)), size=16)),
    # mirror then turn is a transpose, (x, y) -> (y, x); then scale 2
    ("mirror, turn 90, scale 2", build_affine(8, 8, 16, rotation=90.0, flip=True),
     expected((slice(2, 8), slice(2, 6)), (slice(2, 8), slice(8, 14)), size=16)),
])
def test_mask_lands_on_the_hand_computed_pixels(tmp_path, name, affine, want):
    ds = KeypointDataset(*write_coco(tmp_path), 8, train=True)
    got = ds.ignore_mask(1, affine, (8, 8))
    assert got.dtype == bool and got.shape == want.shape
    assert (got == want).all(), f"{name}:\n{got.astype(int)}"


def test_map_pixel_is_ignored_when_half_its_input_pixels_are():
    """The "scale 2" mask at stride 4: each map pixel covers 4x4 input pixels; 8 of 16 or more ignores it."""
    mask = expected((slice(2, 6), slice(2, 8)), (slice(8, 14), slice(2, 8)), size=16)
    want = torch.tensor([[0, 1, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0], [0, 1, 0, 0]], dtype=torch.bool)
    assert torch.equal(ignored_cells(torch.from_numpy(mask), 4), want)


def test_training_sample_carries_the_mask_through_the_same_affine_as_the_image(tmp_path):
    """Mirror-only augmentation into 16 px: mask, image and keypoints all mirrored, then scaled by 2."""
    ann, images = write_coco(tmp_path)
    picture = np.zeros((8, 8, 3), np.uint8)
    picture[CROWD] = 255
    cv2.imwrite(str(images / "a.png"), picture)
    ds = KeypointDataset(ann, images, 16, train=True, augment=FLIP_ONLY)
    sample = ds[ds.image_ids.index(1)]
    want = expected((slice(2, 6), slice(8, 14)), (slice(8, 14), slice(8, 14)), size=16)
    assert sample.persons.ignore.dtype == torch.bool and (sample.persons.ignore.numpy() == want).all()
    bright = (sample.image[0] > 0).numpy()  # the crowd was painted white: its pixels are where the crowd mask is
    assert (bright[2:6, 8:14]).all() and not bright[:, :7].any()
    assert sample.persons.keypoints[0, KEYPOINT_NAMES.index("right_hip")].tolist() == pytest.approx([2.5, 2.5, 2])
    off = KeypointDataset(ann, images, 16, train=True, augment=FLIP_ONLY, ignore_regions=False)
    assert off[0].persons.ignore is None and off.ignore_shapes == {}
    assert KeypointDataset(ann, images, 16, train=False)[0].persons.ignore is None  # evaluation has no mask


@pytest.mark.parametrize("bad, problem", [
    ({"iscrowd": 0, "segmentation": [[5, 5, 7]]}, "polygon needs at least three"),
    ({"iscrowd": 1, "segmentation": {"size": [8, 8], "counts": [9, 2, 6]}}, "cover 17 pixels"),
    ({"iscrowd": 1, "segmentation": {"size": [8, 8], "counts": "92o"}}, "cut short"),
    ({"iscrowd": 1, "segmentation": {"size": [4, 16], "counts": [64]}}, "not the image's [8, 8]"),
    ({"iscrowd": 0, "segmentation": "people"}, "polygons or an RLE"),
])
def test_malformed_segmentation_becomes_its_box_with_one_warning_naming_it(tmp_path, bad, problem):
    ann = {"id": 77, "image_id": 2, "num_keypoints": 0, "keypoints": [0.0] * 51, "area": 4.0, "bbox": [5, 5, 2, 2],
           **bad}
    path, images = write_coco(tmp_path, extra=[ann])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = KeypointDataset(path, images, 8, train=True)
    ours = [w for w in caught if issubclass(w.category, DataWarning)]
    assert len(ours) == 1 and "annotation 77" in str(ours[0].message) and problem in str(ours[0].message)
    assert "bbox" in str(ours[0].message) and str(path) in ours[0].filename
    assert ds.ignore_shapes[2][-1] == IgnoreShape(77, None, (5.0, 5.0, 2.0, 2.0))
    box = (slice(5, 7), slice(5, 7))  # bbox [5, 5, 2, 2]: columns 5-6, rows 5-6
    assert (ds.ignore_mask(2, build_affine(8, 8, 8), (8, 8)) == expected(CROWD, box)).all()


def test_person_without_segmentation_is_ignored_by_its_box(tmp_path):
    ann = {"id": 78, "image_id": 2, "iscrowd": 0, "num_keypoints": 0, "keypoints": [0.0] * 51, "area": 4.0,
           "bbox": [0, 5, 2, 3]}
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        ds = KeypointDataset(*write_coco(tmp_path, extra=[ann]), 8, train=True)
    mask = ds.ignore_mask(2, build_affine(8, 8, 8), (8, 8))
    assert (mask == expected(CROWD, (slice(5, 8), slice(0, 2)))).all()


def test_crowdpose_person_with_only_head_and_neck_labelled_is_ignored_not_a_target(tmp_path):
    from models.keypoints import CROWDPOSE_NAMES

    (tmp_path / "img").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "c.png"), np.zeros((8, 8, 3), np.uint8))
    head_only = [0.0] * 36 + [3.0, 1.0, 2, 3.0, 2.0, 1]
    limbs = [2.0, 5.0, 2] + [0.0] * 39
    doc = {"images": [{"id": 1, "file_name": "c.png", "width": 8, "height": 8, "crowdIndex": 0.3}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "num_keypoints": 2,
                            "keypoints": head_only, "bbox": [2, 0, 3, 3]},
                           {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 0, "num_keypoints": 1,
                            "keypoints": limbs, "bbox": [0, 4, 4, 4]}],
           "categories": [{"id": 1, "name": "person", "keypoints": list(CROWDPOSE_NAMES)}]}
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    ds = KeypointDataset(tmp_path / "ann.json", tmp_path / "img", 8, train=True)
    assert [s.ann_id for s in ds.ignore_shapes[1]] == [1] and len(ds.targets(1)[0]) == 1
    assert (ds.ignore_mask(1, build_affine(8, 8, 8), (8, 8)) == expected((slice(0, 3), slice(2, 5)))).all()

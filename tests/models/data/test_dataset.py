"""The COCO-format loader: shapes, letterbox, areas, skipped people, CrowdPose files, training samples, batching."""
import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from models.data import synth
from models.data.augment import AugmentConfig
from models.data.dataset import KeypointDataset, collate_samples
from models.keypoints import CROWDPOSE_NAMES, KEYPOINT_NAMES
from models.data.persons import Persons
from models.preprocess import letterbox, normalize

K = {n: i for i, n in enumerate(KEYPOINT_NAMES)}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    cfg = replace(synth.PRESETS["easy"], width=120, height=80, min_people=2, max_people=4)
    ann = synth.write_split(root, "val", 4, 2, cfg, progress=False)
    return ann, root / "val", json.loads(ann.read_text())


def test_eval_sample_is_the_letterboxed_image_with_matching_targets(synthetic):
    ann, images, doc = synthetic
    ds = KeypointDataset(ann, images, 96, train=False)
    assert len(ds) == 4
    sample = ds[1]
    assert sample.image.shape == (3, 96, 96) and sample.image.dtype == torch.float32
    rgb = cv2.cvtColor(cv2.imread(str(images / doc["images"][1]["file_name"])), cv2.COLOR_BGR2RGB)
    expected, box = letterbox(rgb, 96)
    assert sample.letterbox == box and box.scale == pytest.approx(0.8)
    assert torch.allclose(sample.image, normalize(torch.from_numpy(expected))[0])
    anns = [a for a in doc["annotations"] if a["image_id"] == sample.image_id and a["num_keypoints"] > 0]
    assert isinstance(sample.persons, Persons) and len(sample.persons) == len(anns)
    for person, a in zip(sample.persons.keypoints.numpy(), anns):
        kps = np.array(a["keypoints"], np.float32).reshape(17, 3)
        assert (person[:, 2] == kps[:, 2]).all()
        seen = kps[:, 2] > 0
        assert box.to_image(person[seen])[:, :2] == pytest.approx(kps[seen, :2], abs=1e-3)
    assert sample.persons.areas.numpy() == pytest.approx([a["area"] * 0.64 for a in anns])


def _write_coco(tmp_path, categories, annotations, size=(60, 40)):
    (tmp_path / "img").mkdir(exist_ok=True)
    cv2.imwrite(str(tmp_path / "img" / "a.png"), np.full((size[1], size[0], 3), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "img" / "b.png"), np.full((size[1], size[0], 3), 30, np.uint8))
    doc = {"images": [{"id": 7, "file_name": "a.png", "width": size[0], "height": size[1]},
                      {"id": 9, "file_name": "b.png", "width": size[0], "height": size[1]}],
           "annotations": [{"id": i + 1, "image_id": 7, "category_id": 1, **a} for i, a in enumerate(annotations)],
           "categories": categories}
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(doc))
    return path, tmp_path / "img"


def test_crowd_and_unlabelled_people_are_not_targets(tmp_path):
    good = [0.0] * 51
    good[K["left_hip"] * 3:K["left_hip"] * 3 + 3] = [10.0, 20.0, 2]
    cat = [{"id": 1, "name": "person", "keypoints": list(KEYPOINT_NAMES), "skeleton": []}]
    path, images = _write_coco(tmp_path, cat, [
        {"keypoints": good, "num_keypoints": 1, "iscrowd": 0, "area": 100.0, "bbox": [0, 0, 20, 30]},
        {"keypoints": good, "num_keypoints": 1, "iscrowd": 1, "area": 100.0, "bbox": [0, 0, 20, 30]},
        {"keypoints": [0.0] * 51, "num_keypoints": 0, "iscrowd": 0, "area": 80.0, "bbox": [0, 0, 9, 9]}])
    sample = KeypointDataset(path, images, 60, train=False)[0]
    assert len(sample.persons) == 1 and sample.image_id == 7
    assert sample.persons.keypoints[0, K["left_hip"]].tolist() == pytest.approx([10.0, 30.0, 2])  # pad_y 10
    assert len(KeypointDataset(path, images, 60, train=False)) == 2  # evaluation keeps every image
    assert len(KeypointDataset(path, images, 60, train=True)) == 1  # training skips images without people


def test_crowdpose_file_maps_its_14_points_by_name(tmp_path):
    raw = np.zeros((14, 3))
    for i, name in enumerate(CROWDPOSE_NAMES):
        raw[i] = (2 + 3 * i, 1 + 2 * i, 1 + i % 2)
    cat = [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(CROWDPOSE_NAMES),
            "skeleton": [[1, 2]]}]
    path, images = _write_coco(tmp_path, cat, [  # CrowdPose has no "area": 0.53 x the bbox area stands in
        {"keypoints": raw.ravel().tolist(), "num_keypoints": 14, "iscrowd": 0, "bbox": [1, 1, 40, 30]}])
    sample = KeypointDataset(path, images, 60, train=False)[0]
    kps = sample.persons.keypoints[0].numpy()
    for i, name in enumerate(CROWDPOSE_NAMES[:12]):
        assert kps[K[name]].tolist() == pytest.approx([raw[i, 0], raw[i, 1] + 10, raw[i, 2]])
    assert (kps[:5] == 0).all()  # face points: not in CrowdPose; head and neck are dropped
    assert sample.persons.areas.tolist() == pytest.approx([0.53 * 1200.0])  # CrowdPose's evaluation scale
    train = KeypointDataset(path, images, 60, train=True)
    assert train.targets(train.image_ids[0])[1].tolist() == pytest.approx([0.53 * 1200.0])  # what training's OKS uses


def test_file_without_keypoint_names_is_read_by_count(tmp_path):
    raw = np.tile([5.0, 6.0, 2.0], 14)
    path, images = _write_coco(tmp_path, [{"id": 1, "name": "person"}], [
        {"keypoints": raw.tolist(), "num_keypoints": 14, "iscrowd": 0, "area": 50.0, "bbox": [0, 0, 5, 5]}])
    kps = KeypointDataset(path, images, 60, train=False)[0].persons.keypoints[0]
    assert (kps[:5] == 0).all() and (kps[5:, 2] == 2).all()


def test_training_samples_are_augmented_and_collate(synthetic):
    ann, images, _ = synthetic
    torch.manual_seed(0)
    ds = KeypointDataset(ann, images, 64, train=True)
    plain = KeypointDataset(ann, images, 64, train=True, augment=AugmentConfig.off())
    assert ds.augment == AugmentConfig()
    loader = torch.utils.data.DataLoader(ds, batch_size=3, shuffle=False, collate_fn=collate_samples)
    images_b, persons, ids, boxes = next(iter(loader))
    assert images_b.shape == (3, 3, 64, 64) and len(persons) == len(ids) == len(boxes) == 3
    assert not torch.equal(images_b[0], plain[0].image)
    for p in persons:
        vis = p.keypoints[..., 2] > 0
        xy = p.keypoints[..., :2][vis]
        assert len(p) > 0 and (xy >= -0.5).all() and (xy < 63.5).all()
        assert (p.keypoints[..., :2][~vis] == 0).all() and (p.areas > 0).all()
    sample = plain[0]
    assert sample.persons.areas.numpy() == pytest.approx(ds.targets(sample.image_id)[1] * (64 / 120) ** 2, rel=1e-5)


def test_missing_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="annotation file not found"):
        KeypointDataset(tmp_path / "none.json", tmp_path, 64, train=False)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a COCO annotation file"):
        KeypointDataset(bad, tmp_path, 64, train=False)


def _jpeg_with_orientation(path, image: np.ndarray, orientation: int) -> None:
    """A JPEG whose EXIF (an APP1 segment written by hand after the JFIF one) asks viewers to rotate it."""
    import struct

    data = cv2.imencode(".jpg", image)[1].tobytes()
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + b"MM\x00\x2a" + struct.pack(">I", 8) + ifd
    jfif_end = 4 + struct.unpack(">H", data[4:6])[0]
    path.write_bytes(data[:jfif_end] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[jfif_end:])


def test_exif_rotated_jpeg_is_read_as_stored_and_keeps_its_person(tmp_path):
    """A 100x40 JPEG tagged orientation 6 ("rotate 90 clockwise") has its person at stored pixel (90, 20)."""
    (tmp_path / "img").mkdir()
    picture = np.zeros((40, 100, 3), np.uint8)
    picture[:, 80:] = 255
    _jpeg_with_orientation(tmp_path / "img" / "r.jpg", picture, 6)
    assert cv2.imread(str(tmp_path / "img" / "r.jpg"), cv2.IMREAD_COLOR).shape == (100, 40, 3)  # what it did
    kps = [0.0] * 51
    kps[K["left_hip"] * 3:K["left_hip"] * 3 + 3] = [90.0, 20.0, 2]
    doc = {"images": [{"id": 3, "file_name": "r.jpg", "width": 100, "height": 40}],
           "annotations": [{"id": 1, "image_id": 3, "category_id": 1, "keypoints": kps, "num_keypoints": 1,
                            "iscrowd": 0, "area": 100.0, "bbox": [80, 0, 20, 40]}],
           "categories": [{"id": 1, "name": "person", "keypoints": list(KEYPOINT_NAMES)}]}
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no size warning: the stored pixels are what the file describes
        ds = KeypointDataset(tmp_path / "ann.json", tmp_path / "img", 100, train=False)
        assert ds.read_image(3).shape == (40, 100, 3)
        sample = ds[0]
    assert len(sample.persons) == 1  # pad_y = 30: (90, 20) -> (90, 50)
    assert sample.persons.keypoints[0, K["left_hip"]].tolist() == pytest.approx([90.0, 50.0, 2])
    assert (sample.image[0, 30:70, 85:] > 0).all() and (sample.image[0, 30:70, :75] < 0).all()


def test_image_of_another_size_than_its_annotation_warns_once_naming_it(tmp_path):
    from models.data.paths import read_rgb
    from models.data.regions import DataWarning

    cat = [{"id": 1, "name": "person", "keypoints": list(KEYPOINT_NAMES), "skeleton": []}]
    path, images = _write_coco(tmp_path, cat, [], size=(60, 40))
    doc = json.loads(path.read_text())
    doc["images"][1]["width"] = 61  # b.png is 60x40
    path.write_text(json.dumps(doc))
    ds = KeypointDataset(path, images, 64, train=False)
    with pytest.warns(DataWarning, match=r"image 9 \(b.png\) is 60x40 pixels, the annotation file says 61x40"):
        ds[1]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds[1]  # once per image
        ds[0]
        read_rgb(images / "a.png", doc["images"][0])
    with pytest.warns(DataWarning, match="image 9"):
        read_rgb(images / "b.png", doc["images"][1])  # the evaluation reader checks too


def test_a_crowdpose_network_reads_a_crowdpose_file_as_it_is(tmp_path):
    """num_keypoints=14: the file's 14 points in its own order, head and neck included (training targets)."""
    raw = np.zeros((14, 3))
    for i in range(14):
        raw[i] = (2 + 3 * i, 1 + 2 * i, 1 + i % 2)
    cat = [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(CROWDPOSE_NAMES),
            "skeleton": [[1, 2]]}]
    path, images = _write_coco(tmp_path, cat, [
        {"keypoints": raw.ravel().tolist(), "num_keypoints": 14, "iscrowd": 0, "bbox": [1, 1, 40, 30]}])
    kps = KeypointDataset(path, images, 60, train=False, num_keypoints=14)[0].persons.keypoints[0].numpy()
    assert kps.shape == (14, 3)
    np.testing.assert_allclose(kps, raw + [0, 10, 0])  # pad_y 10
    train = KeypointDataset(path, images, 60, train=True, num_keypoints=14)
    assert train.targets(train.image_ids[0])[0].shape == (1, 14, 3)


def test_a_coco_file_for_a_crowdpose_network_is_one_line(tmp_path):
    cat = [{"id": 1, "name": "person", "keypoints": list(KEYPOINT_NAMES), "skeleton": []}]
    path, images = _write_coco(tmp_path, cat, [
        {"keypoints": [1.0, 1.0, 2] * 17, "num_keypoints": 17, "iscrowd": 0, "area": 10.0, "bbox": [0, 0, 5, 5]}])
    with pytest.raises(ValueError, match=r"have no head, neck, which the network's 14-point convention needs"):
        KeypointDataset(path, images, 60, train=True, num_keypoints=14)

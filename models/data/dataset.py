"""COCO-format keypoint datasets (COCO person_keypoints, CrowdPose, our synthetic data) as training samples.

Annotation files are read unchanged through pycocotools' COCO API. Keypoints are mapped by name
(``categories[*].keypoints``) into the convention of the network (``num_keypoints``, ``models.keypoints``):
- COCO's 17 points (the default): CrowdPose's 14 points give the 12 limb points, its ``head`` and ``neck`` have no
  COCO counterpart and are dropped, and the 5 face points are v=0;
- CrowdPose's 14 (a network fine-tuned from DEKR's CrowdPose weights): a CrowdPose file is read as it is; a file
  without ``head`` and ``neck`` (COCO) cannot teach them and is refused.
A file without keypoint names is read as COCO order (17 points) or CrowdPose order (14). People with ``iscrowd`` or without a
labelled (mapped) keypoint are not targets: in training mode (unless ``ignore_regions=False``) their pixels form
the sample's ignore mask (``models.data.regions``), carried through the same affine as the image. ``area`` (the OKS
scale of the CIR targets) falls back to ``BOX_AREA_FACTOR`` x the bbox area when a file has none (CrowdPose), the
scale CrowdPose's own evaluation and ours (``models.evaluation.crowdpose``) use. In training mode only images with
at least one person annotation are used; evaluation keeps every image of the file.

Images are read as stored, EXIF orientation ignored (annotations refer to the stored pixels, as in HRNet and DEKR);
an image whose size differs from the file's width and height gets one ``DataWarning`` naming its id.

A ``Sample`` holds the input image ``[3,S,S]`` (RGB, ``models.preprocess.normalize``), the ``Persons`` in input
pixels (areas in input px^2 = annotation area * scale^2; ``ignore [S,S]`` bool, or None without ignored people),
the COCO image id and the ``Letterbox`` that maps input pixels back to the original image (exact in evaluation
mode; in training mode it is the un-augmented placement).
"""
from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from pycocotools.coco import COCO

from models.data.augment import (Affine, AugmentConfig, color_jitter, random_affine, transform_keypoints, warp_image,
                                 warp_mask)
from models.data.paths import check_image_size, imread_flags
from models.data.regions import IgnoreShape, ignore_shape, region_mask
from models.keypoints import CROWDPOSE_NAMES, KEYPOINT_NAMES, NUM_KEYPOINTS, keypoint_convention
from models.data.persons import Persons
from models.preprocess import Letterbox, letterbox, normalize

BOX_AREA_FACTOR = 0.53  # OKS scale without an annotated area: bbox width * height * 0.53 (CrowdPose's toolkit)


@dataclass
class Sample:
    image: torch.Tensor
    persons: Persons
    image_id: int
    letterbox: Letterbox


def keypoint_map(category: dict, ours: tuple[str, ...] = KEYPOINT_NAMES) -> np.ndarray:
    """For each keypoint of a file's person category, its index in the convention named ``ours`` or -1 (dropped)."""
    names = category["keypoints"]
    index = {n: i for i, n in enumerate(ours)}
    mapping = np.array([index.get(n, -1) for n in names], dtype=np.int64)
    if (mapping < 0).all():
        raise ValueError(f"none of the keypoint names {names[:4]}... are {len(ours)}-point keypoint names")
    return mapping


def _default_names(num: int) -> list[str]:
    if num == NUM_KEYPOINTS:
        return list(KEYPOINT_NAMES)
    if num == len(CROWDPOSE_NAMES):
        return list(CROWDPOSE_NAMES)
    raise ValueError(f"a person category without keypoint names must have 17 (COCO) or 14 (CrowdPose) points, "
                     f"got {num}")


class KeypointDataset(torch.utils.data.Dataset):
    """``KeypointDataset(ann_file, image_dir, input_size, train, augment=None, ignore_regions=True,
    num_keypoints=17)``; in training mode ``augment`` None means the DEKR defaults (``AugmentConfig()``),
    ``AugmentConfig.off()`` none; evaluation never augments and has no ignore masks. ``num_keypoints``: the
    network's convention (17 COCO, 14 CrowdPose)."""

    def __init__(self, ann_file, image_dir, input_size: int, train: bool, augment: AugmentConfig | None = None,
                 ignore_regions: bool = True, num_keypoints: int = NUM_KEYPOINTS):
        ann_file, self.image_dir = Path(ann_file), Path(image_dir)
        if not ann_file.is_file():
            raise FileNotFoundError(f"annotation file not found: {ann_file}")
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"image directory not found: {self.image_dir}")
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
                self.coco = COCO(str(ann_file))
        except (json.JSONDecodeError, KeyError, TypeError, AssertionError) as exc:
            raise ValueError(f"{ann_file} is not a COCO annotation file: {exc}") from exc
        cats = [c for c in self.coco.loadCats(self.coco.getCatIds()) if c.get("keypoints") or c.get("name") == "person"]
        if not cats:
            raise ValueError(f"{ann_file} has no person category with keypoints")
        self.cat_ids = [c["id"] for c in cats]
        self.names = keypoint_convention(num_keypoints).names
        self.maps = {}
        for c in cats:
            if not c.get("keypoints"):
                first = self.coco.loadAnns(self.coco.getAnnIds(catIds=[c["id"]]))[:1]
                c = {**c, "keypoints": _default_names(len(first[0]["keypoints"]) // 3 if first else NUM_KEYPOINTS)}
            self.maps[c["id"]] = keypoint_map(c, self.names)
            missing = [n for n in self.names if n not in c["keypoints"]]
            if self.names != KEYPOINT_NAMES and missing:
                raise ValueError(f"{ann_file}: its people have no {', '.join(missing)}, which the network's "
                                 f"{len(self.names)}-point convention needs; train it on a file of that convention "
                                 f"(CrowdPose's)")
        self._mapped = {cid: [3 * i + 2 for i in np.flatnonzero(m >= 0)] for cid, m in self.maps.items()}
        self.input_size, self.train = int(input_size), bool(train)
        self.augment = (augment or AugmentConfig()) if train else None
        ids = sorted(self.coco.getImgIds())
        if train:
            ids = [i for i in ids if self.coco.getAnnIds(imgIds=[i], catIds=self.cat_ids)]
        self.image_ids = ids
        self.ann_file = ann_file
        self.ignore_regions = bool(ignore_regions) and self.train
        self.ignore_shapes = self._collect_ignore(ids) if self.ignore_regions else {}
        self._size_warned: set[int] = set()

    def __len__(self) -> int:
        return len(self.image_ids)

    def is_target(self, ann: dict) -> bool:
        """Whether ``person_keypoints`` gives keypoints for ``ann`` (cheap: no arrays)."""
        if ann.get("iscrowd", 0) or ann.get("num_keypoints", 1) == 0:
            return False
        raw, slots = ann["keypoints"], self._mapped[ann["category_id"]]
        return len(raw) != len(self.maps[ann["category_id"]]) * 3 or any(raw[i] > 0 for i in slots)

    def person_keypoints(self, ann: dict) -> np.ndarray | None:
        """One annotation's keypoints ``[K,3]`` in the network's convention, None when it is not a training target
        (``iscrowd``, ``num_keypoints == 0`` or no labelled keypoint after the mapping)."""
        if not self.is_target(ann):
            return None
        mapping = self.maps[ann["category_id"]]
        raw = np.asarray(ann["keypoints"], dtype=np.float32).reshape(-1, 3)
        if len(raw) != len(mapping):
            raise ValueError(f"annotation {ann.get('id')} has {len(raw)} keypoints, its category {len(mapping)}")
        ours = np.zeros((len(self.names), 3), dtype=np.float32)
        keep = mapping >= 0
        ours[mapping[keep]] = raw[keep]
        ours[ours[:, 2] <= 0] = 0.0
        return ours

    def targets(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Training people of one image in its own pixels: keypoints ``[P,K,3]`` float32, areas ``[P]``."""
        kps, areas = [], []
        for ann in self.coco.loadAnns(self.coco.getAnnIds(imgIds=[image_id], catIds=self.cat_ids)):
            ours = self.person_keypoints(ann)
            if ours is None:
                continue
            area = float(ann.get("area") or 0.0)
            if area <= 0 and ann.get("bbox"):
                area = float(ann["bbox"][2] * ann["bbox"][3]) * BOX_AREA_FACTOR
            kps.append(ours)
            areas.append(area)
        return (np.stack(kps) if kps else np.zeros((0, len(self.names), 3), np.float32)), np.asarray(areas, np.float32)

    def _collect_ignore(self, image_ids: list[int]) -> dict[int, list[IgnoreShape]]:
        """The ignored people of each image, segmentations checked once here (a malformed one warns now)."""
        out: dict[int, list[IgnoreShape]] = {}
        cats = set(self.cat_ids)
        for image_id in image_ids:
            info = self.coco.imgs[image_id]
            for ann in self.coco.imgToAnns.get(image_id, []):
                if ann["category_id"] in cats and not self.is_target(ann):
                    shape = ignore_shape(ann, info.get("height"), info.get("width"), self.ann_file)
                    out.setdefault(image_id, []).append(shape)
        return out

    def ignore_mask(self, image_id: int, affine: Affine, image_size: tuple[int, int]) -> np.ndarray | None:
        """The image's ignore regions carried by ``affine`` -> ``[S,S]`` bool, None when it has none.
        ``image_size`` (h, w) of the loaded image stands in when the file gives no size."""
        shapes = self.ignore_shapes.get(image_id)
        if not shapes:
            return None
        info = self.coco.imgs[image_id]
        h, w = int(info.get("height") or image_size[0]), int(info.get("width") or image_size[1])
        return warp_mask(region_mask(shapes, h, w), affine)

    def read_image(self, image_id: int) -> np.ndarray:
        """The image as RGB uint8."""
        info = self.coco.imgs[image_id]
        path = self.image_dir / info["file_name"]
        bgr = cv2.imread(str(path), imread_flags())
        if bgr is None:
            raise FileNotFoundError(f"cannot read image {path}")
        if image_id not in self._size_warned and not check_image_size(bgr, info, path):
            self._size_warned.add(image_id)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def __getitem__(self, index: int) -> Sample:
        image_id = self.image_ids[index]
        image = self.read_image(image_id)
        kps, areas = self.targets(image_id)
        h, w = image.shape[:2]
        box = Letterbox.fit(h, w, self.input_size)
        ignore = None
        if self.train:
            rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))  # per-worker torch seeding
            affine = random_affine(h, w, self.input_size, self.augment, rng)
            ignore = self.ignore_mask(image_id, affine, (h, w))
            image = color_jitter(warp_image(image, affine), self.augment, rng)
            kps = transform_keypoints(kps, affine)
            areas = areas * affine.scale ** 2
        else:
            image, box = letterbox(image, self.input_size)
            kps = transform_keypoints(kps, _letterbox_affine(box))
            areas = areas * box.scale ** 2
        keep = (kps[:, :, 2] > 0).any(axis=1)
        persons = Persons(torch.from_numpy(np.ascontiguousarray(kps[keep])), torch.from_numpy(areas[keep]),
                          None if ignore is None else torch.from_numpy(ignore))
        return Sample(normalize(torch.from_numpy(image))[0], persons, int(image_id), box)


def _letterbox_affine(box: Letterbox) -> Affine:
    """The Letterbox's mapping as an affine."""
    return Affine(box.matrix(), flip=False, size=box.size)


def collate_samples(samples: list[Sample]):
    """-> (images ``[B,3,S,S]``, list of ``Persons``, list of image ids, list of ``Letterbox``)."""
    return (torch.stack([s.image for s in samples]), [s.persons for s in samples], [s.image_id for s in samples],
            [s.letterbox for s in samples])

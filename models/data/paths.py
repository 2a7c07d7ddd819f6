"""Where a data set lives: a ``models.data.synth`` folder (``--data``) or an annotation file plus an image folder
(``--ann``/``--images``), resolved to paths with one clear ``DataPathError`` when something is missing."""
from __future__ import annotations

from pathlib import Path

import numpy as np


class DataPathError(Exception):
    """A data path (annotations or images) that is missing or unreadable."""


def resolve_data(data: str | None, ann: str | None, images: str | None, split: str | None = None,
                 prefer: tuple[str, ...] = ("val", "test")) -> tuple[Path, Path]:
    """(annotation file, image folder) from a synth folder (``--data``) or explicit ``--ann``/``--images``."""
    if data is None and (ann is None or images is None):
        raise DataPathError("give --data DIR (a synth folder) or both --ann FILE and --images DIR")
    if data is not None:
        root = Path(data)
        if not root.is_dir():
            raise DataPathError(f"data folder {root} does not exist; make one with "
                                f"`qem synth --out {root} --num-images 500 --seed 7`")
        ann_path, image_dir = synth_split(root, split, prefer)
    else:
        ann_path, image_dir = Path(ann), Path(images)
    if not ann_path.is_file():
        raise DataPathError(f"annotation file {ann_path} does not exist; check --ann / --data")
    if not image_dir.is_dir():
        raise DataPathError(f"image folder {image_dir} does not exist; check --images / --data")
    return ann_path, image_dir


def synth_splits(root: Path) -> list[str]:
    """Split names of a ``models.data.synth`` folder (``annotations/person_keypoints_<split>.json``)."""
    return sorted(p.name[len("person_keypoints_"):-len(".json")]
                  for p in (root / "annotations").glob("person_keypoints_*.json"))


def synth_split(root: Path, split: str | None, prefer: tuple[str, ...]) -> tuple[Path, Path]:
    """Annotation file and image folder of one split of a synth folder: ``split`` if given, else the first of
    ``prefer`` that exists, else the only split there is."""
    splits = synth_splits(root)
    if split is None:
        split = next((s for s in prefer if s in splits), splits[0] if len(splits) == 1 else None)
    if split is None or split not in splits:
        found = ", ".join(splits) or "none"
        raise DataPathError(f"{root} is not a synth folder with split {split or '/'.join(prefer)} (splits found: "
                            f"{found}); expected {root}/annotations/person_keypoints_<split>.json and {root}/<split>/")
    return root / "annotations" / f"person_keypoints_{split}.json", root / split


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataPathError(f"cannot read image {path}; check --images / --data")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

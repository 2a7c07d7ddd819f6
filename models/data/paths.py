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


def imread_flags() -> int:
    """``cv2.imread`` flags for data-set images: colour, EXIF orientation ignored. COCO-format annotations refer to
    the stored pixels (as HRNet and DEKR read them); a JPEG tagged "rotate 90" would otherwise load turned."""
    import cv2

    return cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


def check_image_size(image: np.ndarray, info: dict, path) -> bool:
    """Whether ``image`` (HxW...) has the ``width`` and ``height`` its annotation file gives (True when the file
    gives none); otherwise one ``DataWarning`` naming the image id."""
    from models.data.regions import data_warning

    want = (info.get("height"), info.get("width"))
    if None in want or tuple(image.shape[:2]) == tuple(int(v) for v in want):
        return True
    data_warning(f"image {info.get('id')} ({info.get('file_name')}) is {image.shape[1]}x{image.shape[0]} pixels, "
                 f"the annotation file says {want[1]}x{want[0]}; its keypoints will not line up", path)
    return False


def read_rgb(path: Path, info: dict | None = None) -> np.ndarray:
    """An image as RGB uint8 as stored (``imread_flags``); with its annotation ``info``, its size is checked."""
    import cv2

    bgr = cv2.imread(str(path), imread_flags())
    if bgr is None:
        raise DataPathError(f"cannot read image {path}; check --images / --data")
    if info is not None:
        check_image_size(bgr, info, path)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

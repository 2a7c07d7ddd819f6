"""Ignore regions: the pixels of people a COCO-format file shows but does not label, so that training calls them
neither a person nor background.

A person annotation becomes an ignore region when it is not a training target: ``iscrowd`` (a crowd region, an RLE
in COCO), ``num_keypoints == 0`` (a person too small or too hidden to label, a polygon in COCO), or, after the
mapping onto our 17 points, no labelled keypoint (a CrowdPose person with only head and neck). Its pixels come from
its segmentation through pycocotools (polygons, compressed and uncompressed RLE), or from its bbox when it has no
segmentation. A segmentation that cannot be read (polygons of fewer than three points, an RLE whose size is not the
image's or whose counts do not cover it) is replaced by the bbox with one ``DataWarning`` naming the annotation id:
pycocotools' C decoder does not check RLE counts, so they are checked here before anything is decoded.

Masks are in the image's stored pixels (row y, column x); ``models.data.augment.warp_mask`` carries them through the
training affine, and ``models.training.targets`` brings them to the score map.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils


class DataWarning(UserWarning):
    """Something in a data set that training works around (a malformed segmentation, a mis-sized image)."""


def data_warning(message: str, source) -> None:
    """One warning line, located at ``source`` (the annotation file or the image), not at this code."""
    warnings.warn_explicit(message, DataWarning, str(source), 0)


@dataclass(frozen=True)
class IgnoreShape:
    """One ignored person: ``segmentation`` as the file has it (None: use ``bbox``), ``bbox`` (x, y, w, h)."""

    ann_id: int
    segmentation: list | dict | None
    bbox: tuple[float, float, float, float] | None


def _finite_numbers(values) -> bool:
    """A flat list or tuple of finite ints and floats (numpy's parser: fast on COCO's long polygons)."""
    if not isinstance(values, (list, tuple)):
        return False
    try:
        array = np.asarray(values)
    except (TypeError, ValueError):
        return False
    return array.ndim == 1 and (array.dtype.kind in "iuf" or not len(array)) and bool(np.isfinite(array).all())


def rle_counts(counts: str | bytes) -> list[int] | None:
    """Run lengths of a compressed COCO RLE string (pycocotools' ``rleFrString``), None when the string is cut."""
    data = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    out: list[int] = []
    p = 0
    while p < len(data):
        x, k, more = 0, 0, True
        while more:
            if p >= len(data):
                return None
            c = data[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def segmentation_problem(seg, height: int | None, width: int | None) -> str | None:
    """Why pycocotools cannot safely rasterise ``seg`` for an image of ``height x width`` (None: it can)."""
    if isinstance(seg, list):
        for poly in seg:
            if not _finite_numbers(poly) or len(poly) < 6 or len(poly) % 2:
                return "a polygon needs at least three (x, y) points of finite numbers"
        return None
    if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
        return f"a segmentation must be polygons or an RLE with size and counts, got {type(seg).__name__}"
    size = seg["size"]
    if not (_finite_numbers(size) and len(size) == 2 and all(int(v) == v and v >= 0 for v in size)):
        return f"RLE size {size!r} is not [height, width]"
    if height is not None and width is not None and list(size) != [height, width]:
        return f"RLE size {list(size)} is not the image's [{height}, {width}]"
    counts = seg["counts"]
    if isinstance(counts, (str, bytes)):
        try:
            counts = rle_counts(counts)
        except (UnicodeEncodeError, TypeError):
            counts = None
        if counts is None:
            return "RLE counts string is cut short or not ASCII"
    if not (_finite_numbers(counts) and all(int(c) == c and c >= 0 for c in counts)):
        return "RLE counts must be non-negative integers"
    if sum(counts) != size[0] * size[1]:
        return f"RLE counts cover {sum(counts)} pixels, the size {size[0]}x{size[1]} = {size[0] * size[1]}"
    return None


def ignore_shape(ann: dict, height: int | None, width: int | None, source) -> IgnoreShape:
    """The ``IgnoreShape`` of one ignored annotation; a malformed segmentation falls back to the bbox, warned once."""
    seg = ann.get("segmentation")
    bbox = ann.get("bbox")
    bbox = tuple(float(v) for v in bbox) if _finite_numbers(bbox) and len(bbox) == 4 else None
    if seg is None or (isinstance(seg, list) and not seg):
        return IgnoreShape(int(ann.get("id", -1)), None, bbox)
    problem = segmentation_problem(seg, height, width)
    if problem is None:
        return IgnoreShape(int(ann.get("id", -1)), seg, bbox)
    fallback = "its bbox is the ignore region instead" if bbox else "it has no usable bbox either: not masked"
    data_warning(f"annotation {ann.get('id')} (image {ann.get('image_id')}): malformed segmentation ({problem}); "
                 f"{fallback}", source)
    return IgnoreShape(int(ann.get("id", -1)), None, bbox)


def box_polygon(bbox) -> list[float]:
    """The bbox (x, y, w, h) as a polygon, which pycocotools fills over columns x .. x+w-1 and rows y .. y+h-1."""
    x, y, w, h = bbox
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def region_mask(shapes: list[IgnoreShape], height: int, width: int) -> np.ndarray:
    """The union of the shapes as a ``[height, width]`` bool mask in image pixels (an RLE of another size, possible
    only when the file gives no image size, is cropped or padded at the bottom and right)."""
    out = np.zeros((height, width), bool)
    for shape in shapes:
        seg = shape.segmentation
        if seg is None:
            if shape.bbox is None or shape.bbox[2] <= 0 or shape.bbox[3] <= 0:
                continue
            seg = [box_polygon(shape.bbox)]
        if isinstance(seg, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
        elif isinstance(seg["counts"], list):
            rle = mask_utils.frPyObjects(seg, *seg["size"])
        else:
            rle = {"size": list(seg["size"]), "counts": seg["counts"]}
        m = mask_utils.decode(rle).astype(bool)
        h, w = min(height, m.shape[0]), min(width, m.shape[1])
        out[:h, :w] |= m[:h, :w]
    return out

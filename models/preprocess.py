"""Letterboxing and normalisation shared by training, the Predictor and the real-time engine.

Letterbox: the image is scaled by ``scale`` (aspect kept) so that its long side is ``size`` and padded with the content
centred into a canvas of ``width x height``: ``size x size`` (square), or with ``rect`` the smallest multiples of 32
that hold the content (640x360 at 320 -> 320x192; as Ultralytics' ``rect`` inference). A batch of images of other
shapes shares one canvas (``batch_canvas``: the largest of their rectangular canvases), each centred in it.
Pixel (y, x) has its centre at integer (x, y); resizing aligns pixel centres (as ``cv2.resize`` and
``F.interpolate(align_corners=False)`` do), so a point maps per axis as ``input = (image + 0.5) * s - 0.5 + pad`` and
back as ``image = (input - pad + 0.5) / s - 0.5``, where ``s`` is the exact axis scale ``new_size / old_size`` (the
content size is rounded to whole pixels, so it differs slightly from the nominal ``scale``, which areas use).
Images are RGB uint8 HxWx3; the network takes RGB float normalised with ImageNet's mean and std.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

MEAN_RGB = (0.485, 0.456, 0.406)
STD_RGB = (0.229, 0.224, 0.225)
PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """How an image of ``(height, width)`` was placed into a ``width x height`` network input whose long side
    is ``size``."""

    scale: float
    pad_x: float
    pad_y: float
    size: int
    scale_x: float
    scale_y: float
    width: int
    height: int

    @classmethod
    def fit(cls, height: int, width: int, size: int, canvas: tuple[int, int] | None = None) -> "Letterbox":
        """The image scaled to long side ``size``, centred in ``canvas`` = (width, height) (default: square)."""
        scale = min(size / height, size / width)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        canvas_w, canvas_h = canvas or (size, size)
        if canvas_w < new_w or canvas_h < new_h:
            raise ValueError(f"canvas {canvas_w}x{canvas_h} cannot hold a {width}x{height} image at {size} px")
        return cls(scale=scale, pad_x=(canvas_w - new_w) // 2, pad_y=(canvas_h - new_h) // 2, size=size,
                   scale_x=new_w / width, scale_y=new_h / height, width=canvas_w, height=canvas_h)

    def matrix(self) -> np.ndarray:
        """The 2x3 affine from image pixels to input pixels (padding plus the half-pixel term in the shift)."""
        return np.array([[self.scale_x, 0.0, self.pad_x + (self.scale_x - 1.0) / 2.0],
                         [0.0, self.scale_y, self.pad_y + (self.scale_y - 1.0) / 2.0]])

    def to_input(self, points: np.ndarray) -> np.ndarray:
        """Image pixels -> input pixels, on the last axis of length >= 2 (x, y, ...); other columns untouched."""
        m = self.matrix()
        out = np.array(points, dtype=np.float32, copy=True)
        out[..., 0] = out[..., 0] * m[0, 0] + m[0, 2]
        out[..., 1] = out[..., 1] * m[1, 1] + m[1, 2]
        return out

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Input pixels -> image pixels, the inverse of ``to_input``."""
        m = self.matrix()
        out = np.array(points, dtype=np.float32, copy=True)
        out[..., 0] = (out[..., 0] - m[0, 2]) / m[0, 0]
        out[..., 1] = (out[..., 1] - m[1, 2]) / m[1, 1]
        return out

    def content_size(self, height: int, width: int) -> tuple[int, int]:
        """(new_w, new_h) of an image of ``(height, width)`` inside the canvas (at least 1 pixel each)."""
        return max(1, round(width * self.scale)), max(1, round(height * self.scale))


def rect_canvas(height: int, width: int, size: int, multiple: int = 32) -> tuple[int, int]:
    """(width, height) of the smallest canvas of multiples of ``multiple`` that holds an image of ``(height,
    width)`` scaled to long side ``size``."""
    scale = min(size / height, size / width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    return -(-new_w // multiple) * multiple, -(-new_h // multiple) * multiple


def long_side(shapes, size: int, resize: str = "long") -> int:
    """The long side that images of ``shapes`` ((h, w, ...) each) are scaled to for a model whose ``input_size`` is
    ``size``: ``size`` itself (``resize="long"``), or with ``"short"`` (DEKR's convention: the short side becomes
    ``size``) the largest long side that gives any of them."""
    if resize == "long":
        return size
    return max(max(1, round(size * max(s[0], s[1]) / max(1, min(s[0], s[1])))) for s in shapes)


def batch_canvas(shapes, size: int, rect: bool) -> tuple[int, int]:
    """The one (width, height) canvas for images of ``shapes`` ((h, w, ...) each): square ``size x size`` (rounded up
    to a multiple of 32), or with ``rect`` the largest of their rectangular canvases on each axis."""
    if not rect:
        side = -(-size // 32) * 32
        return side, side
    canvases = [rect_canvas(s[0], s[1], size) for s in shapes]
    return max(c[0] for c in canvases), max(c[1] for c in canvases)


def check_fixed_canvas(shapes, size: int, canvas: tuple[int, int], source: str) -> None:
    """Images of ``shapes`` (H, W, ...) fit the one input shape ``canvas`` = (W, H) a model was exported for at
    long side ``size``; otherwise a one-line ValueError that says what to do (a dynamic export, or the canvas's
    short side as the input size, which fits any orientation at a smaller scale)."""
    w, h = canvas
    for shape in shapes:
        ih, iw = shape[:2]
        scale = min(size / ih, size / iw)
        if max(1, round(iw * scale)) > w or max(1, round(ih * scale)) > h:
            raise ValueError(f"{source} was exported for one input shape, {h}x{w} (H x W), which cannot hold a "
                             f"{ih}x{iw} (H x W) image at {size} px; export it again with --dynamic (qem export --dynamic), "
                             f"or pass --imgsz {min(w, h)} (input_size={min(w, h)}) to fit it in smaller")


def letterbox(image: np.ndarray, size: int, canvas: tuple[int, int] | None = None) -> tuple[np.ndarray, Letterbox]:
    """Resize ``image`` (HxWx3 uint8) to long side ``size``, aspect kept, centred in ``canvas`` = (width, height)
    (default ``size x size``), padded with gray."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    h, w = image.shape[:2]
    box = Letterbox.fit(h, w, size, canvas)
    new_w, new_h = box.content_size(h, w)
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR if box.scale > 1 else cv2.INTER_AREA)
    canvas = np.full((box.height, box.width, 3), PAD_VALUE, dtype=np.uint8)
    canvas[int(box.pad_y):int(box.pad_y) + new_h, int(box.pad_x):int(box.pad_x) + new_w] = resized
    return canvas, box


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B,H,W,3]`` (or ``[H,W,3]``) RGB -> float ``[B,3,H,W]`` normalised, on the tensor's device."""
    if images.dim() == 3:
        images = images.unsqueeze(0)
    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(MEAN_RGB, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD_RGB, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std

"""Letterboxing and normalisation shared by training, the Predictor and the real-time engine.

Letterbox: the image is scaled by ``scale`` (aspect kept) and padded to ``size x size`` with the content centred;
a point maps as ``input = image * scale + (pad_x, pad_y)`` and back as ``image = (input - pad) / scale``.
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
    """How an image of ``(height, width)`` was placed into a ``size x size`` network input."""

    scale: float
    pad_x: float
    pad_y: float
    size: int

    @classmethod
    def fit(cls, height: int, width: int, size: int) -> "Letterbox":
        scale = min(size / height, size / width)
        new_w, new_h = round(width * scale), round(height * scale)
        return cls(scale=scale, pad_x=(size - new_w) // 2, pad_y=(size - new_h) // 2, size=size)

    def to_input(self, points: np.ndarray) -> np.ndarray:
        """Image pixels -> input pixels, on the last axis of length >= 2 (x, y, ...); other columns untouched."""
        out = np.array(points, dtype=np.float32, copy=True)
        out[..., 0] = out[..., 0] * self.scale + self.pad_x
        out[..., 1] = out[..., 1] * self.scale + self.pad_y
        return out

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Input pixels -> image pixels, the inverse of ``to_input``."""
        out = np.array(points, dtype=np.float32, copy=True)
        out[..., 0] = (out[..., 0] - self.pad_x) / self.scale
        out[..., 1] = (out[..., 1] - self.pad_y) / self.scale
        return out


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Resize ``image`` (HxWx3 uint8) into a ``size x size`` canvas, aspect kept, padded with gray."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    h, w = image.shape[:2]
    box = Letterbox.fit(h, w, size)
    new_w, new_h = round(w * box.scale), round(h * box.scale)
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR if box.scale > 1 else cv2.INTER_AREA)
    canvas = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
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

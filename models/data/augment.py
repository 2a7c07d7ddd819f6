"""Training augmentation: one affine matrix for the whole geometric chain, plus colour jitter.

Coordinates put pixel centres at integers (the convention of cv2.warpAffine and of the project's keypoints), so
the same 2x3 matrix moves pixels (``cv2.warpAffine``) and keypoints (``x' = M @ (x, y, 1)``). The chain, applied
right to left: optional horizontal mirror (x -> w-1-x), move the image centre to the origin, rotate and scale by
``letterbox scale * random scale``, move to the input centre plus a random shift. Without augmentation this is the
letterbox (``models.preprocess.Letterbox``: scale to fit, centred). A mirror also swaps left and right keypoints
(``models.keypoints.flip_index``, by the keypoint count). Keypoints that land outside the input (nearest pixel outside) get v=0, x=y=0.
Defaults follow DEKR: rotation +-30 degrees, scale 0.75-1.5, flip probability 0.5.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.keypoints import flip_index
from models.preprocess import PAD_VALUE


@dataclass(frozen=True)
class AugmentConfig:
    flip_prob: float = 0.5
    max_rotation: float = 30.0  # degrees, uniform in [-max, max]
    scale_range: tuple[float, float] = (0.75, 1.5)  # on top of the letterbox scale
    max_translate: float = 0.1  # fraction of the input size, uniform in [-max, max] per axis
    brightness: float = 0.25  # multiplicative, uniform in [1-b, 1+b]
    contrast: float = 0.25
    saturation: float = 0.25
    hue: float = 4.0  # OpenCV hue units (degrees / 2)

    @classmethod
    def off(cls) -> "AugmentConfig":
        """No augmentation: the training sample is the letterboxed image."""
        return cls(flip_prob=0.0, max_rotation=0.0, scale_range=(1.0, 1.0), max_translate=0.0, brightness=0.0,
                   contrast=0.0, saturation=0.0, hue=0.0)


@dataclass(frozen=True)
class Affine:
    """``matrix`` 2x3 (source pixels -> input pixels), ``flip`` whether the chain mirrors, ``size`` the input side."""

    matrix: np.ndarray
    flip: bool
    size: int

    @property
    def scale(self) -> float:
        """Linear scale factor of the chain (areas scale by its square)."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))


def _h(m: np.ndarray) -> np.ndarray:
    return np.vstack([m, [0.0, 0.0, 1.0]])


def build_affine(height: int, width: int, size: int, scale: float = 1.0, rotation: float = 0.0, flip: bool = False,
                 shift: tuple[float, float] = (0.0, 0.0)) -> Affine:
    """The chain for an image of ``height x width`` into ``size x size``; ``rotation`` in degrees (counter-clockwise
    on screen), ``scale`` on top of the letterbox scale, ``shift`` in input pixels."""
    fit = min(size / height, size / width) * scale
    mirror = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) if flip else np.eye(3)
    centre = np.array([[1.0, 0.0, -(width - 1) / 2], [0.0, 1.0, -(height - 1) / 2], [0.0, 0.0, 1.0]])
    rot = _h(cv2.getRotationMatrix2D((0.0, 0.0), rotation, fit))
    out = np.array([[1.0, 0.0, (size - 1) / 2 + shift[0]], [0.0, 1.0, (size - 1) / 2 + shift[1]], [0.0, 0.0, 1.0]])
    return Affine(matrix=(out @ rot @ centre @ mirror)[:2], flip=flip, size=size)


def random_affine(height: int, width: int, size: int, cfg: AugmentConfig, rng: np.random.Generator) -> Affine:
    lo, hi = cfg.scale_range
    return build_affine(height, width, size, scale=float(np.exp(rng.uniform(np.log(lo), np.log(hi)))),
                        rotation=float(rng.uniform(-cfg.max_rotation, cfg.max_rotation)),
                        flip=bool(rng.random() < cfg.flip_prob),
                        shift=tuple(float(v) for v in rng.uniform(-cfg.max_translate, cfg.max_translate, 2) * size))


def warp_image(image: np.ndarray, affine: Affine) -> np.ndarray:
    """Apply the chain to an HxWx3 uint8 image (padding gray). Strong shrinking first resizes with area averaging,
    folded into the matrix, so small inputs do not alias."""
    matrix, src = affine.matrix, image
    r = min(1.0, 2.0 * affine.scale)
    if r < 0.75:
        src = cv2.resize(image, (max(1, round(image.shape[1] * r)), max(1, round(image.shape[0] * r))),
                         interpolation=cv2.INTER_AREA)
        rx, ry = src.shape[1] / image.shape[1], src.shape[0] / image.shape[0]
        to_original = np.array([[1 / rx, 0.0, 0.5 / rx - 0.5], [0.0, 1 / ry, 0.5 / ry - 0.5], [0.0, 0.0, 1.0]])
        matrix = (_h(matrix) @ to_original)[:2]
    return cv2.warpAffine(src, matrix, (affine.size, affine.size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(PAD_VALUE,) * 3)


def warp_mask(mask: np.ndarray, affine: Affine) -> np.ndarray:
    """Apply the chain to an HxW mask with nearest-neighbour sampling (each input pixel takes the value of the
    source pixel nearest to where it came from; outside the source: False) -> ``[size, size]`` bool."""
    out = cv2.warpAffine(np.ascontiguousarray(mask, dtype=np.uint8), affine.matrix, (affine.size, affine.size),
                         flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out > 0


def transform_keypoints(keypoints: np.ndarray, affine: Affine) -> np.ndarray:
    """``[P,K,3]`` (x, y, v) source pixels -> input pixels by the same matrix; mirrors swap left/right; points
    outside the input or unlabelled become (0, 0, 0)."""
    kps = np.asarray(keypoints, dtype=np.float32)
    xy = kps[..., :2] @ affine.matrix[:, :2].T.astype(np.float32) + affine.matrix[:, 2].astype(np.float32)
    v = kps[..., 2].copy()
    inside = (xy >= -0.5).all(-1) & (xy < affine.size - 0.5).all(-1)
    v[~inside] = 0
    out = np.concatenate([np.where((v > 0)[..., None], xy, 0.0), v[..., None]], axis=-1).astype(np.float32)
    if affine.flip:
        out = out[:, list(flip_index(out.shape[1]))]
    return out


def color_jitter(image: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast, saturation and hue jitter of an RGB uint8 image."""
    if not (cfg.brightness or cfg.contrast or cfg.saturation or cfg.hue):
        return image
    img = image.astype(np.float32) * rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
    mean = img.mean()
    img = (img - mean) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) + mean
    grey = img @ np.float32([0.299, 0.587, 0.114])
    img = grey[..., None] + (img - grey[..., None]) * rng.uniform(1 - cfg.saturation, 1 + cfg.saturation)
    img = img.clip(0, 255).astype(np.uint8)
    if cfg.hue:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + int(round(rng.uniform(-cfg.hue, cfg.hue)))) % 180)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return img

"""int8 post-training quantization of an exported OpenVINO model with NNCF, calibrated on images.

Choices (docs/realtime.md lists what else was tried): the sparse stage (QEM's MatMuls) stays in float, since it runs on N
candidates only and gains nothing from int8; the ``MIXED`` preset (symmetric weights, asymmetric activations,
which suits the ReLU-free head outputs); fast bias correction. Calibration images are letterboxed to the export
size exactly as the pipeline does and normalised with the ImageNet mean/std.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from models.export.formats import EXTRA, ExportError
from models.preprocess import MEAN_RGB, PAD_VALUE, STD_RGB

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# Layers kept in float (regular expressions on OpenVINO node names): everything outside the dense stage (the
# decode's comparisons, gathers and bilinear arithmetic and the sparse stage: quantized, the peak order's
# comparisons disagree with themselves and keypoints move), and the score output, whose int8 rounding reorders
# peaks. (The offset output is a MatMul, ``models.modeling.heads.full_precision``, so it stays float too.)
FLOAT_LAYERS = (r"^(?!/backbone/|/heads/).*", r".*/heads/score/out/.*")


def calibration_files(folder: str | Path, limit: int) -> list[Path]:
    """Up to ``limit`` images under ``folder`` (a `qem synth` folder or any folder of images), sorted by path."""
    root = Path(folder)
    if not root.is_dir():
        raise ExportError(f"--calib {root}: not a folder of images")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ExportError(f"--calib {root}: no images ({', '.join(IMAGE_SUFFIXES)}) under it")
    return files[:limit]


def letterboxed(path: Path, size: tuple[int, int]) -> np.ndarray:
    """The image at ``path`` as a normalised ``[1,3,H,W]`` float32 network input (aspect kept, gray padding)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ExportError(f"--calib: cannot read image {path}")
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    h, w = size
    scale = min(h / image.shape[0], w / image.shape[1])
    nw, nh = max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))
    canvas = np.full((h, w, 3), PAD_VALUE, np.uint8)
    y0, x0 = (h - nh) // 2, (w - nw) // 2
    canvas[y0:y0 + nh, x0:x0 + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1
                                                else cv2.INTER_LINEAR)
    x = (canvas.astype(np.float32) / 255.0 - np.array(MEAN_RGB, np.float32)) / np.array(STD_RGB, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def quantize_openvino(model, calib: str | Path, size: tuple[int, int], limit: int = 300):
    """``model`` (an ``openvino.Model``) quantized to int8 with NNCF on up to ``limit`` images from ``calib``."""
    try:
        import nncf
    except ImportError:
        raise ExportError(f"--int8 needs the 'nncf' package, which is not installed: pip install -e .[{EXTRA}]") \
            from None
    files = calibration_files(calib, limit)
    dataset = nncf.Dataset(files, lambda p: letterboxed(p, size))
    ignored = nncf.IgnoredScope(types=["MatMul"], patterns=list(FLOAT_LAYERS), validate=False)
    return nncf.quantize(model, dataset, preset=nncf.QuantizationPreset.MIXED, subset_size=len(files),
                         fast_bias_correction=True, ignored_scope=ignored)

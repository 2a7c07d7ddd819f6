"""The QEM network and its training targets, losses, checkpoints and Predictor.

Entry points: ``build_model(name)``, ``Predictor``, ``save_checkpoint`` / ``load_checkpoint``,
``DEFAULT_CHECKPOINT`` (the bundled tiny model trained on synthetic data). They are imported on first use, so
``import models.keypoints`` (or a data tool) does not pay for torch and OpenCV.
"""
from __future__ import annotations

import importlib
from pathlib import Path

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "tiny_synth.pt"

_LAZY = {
    "CheckpointError": "models.checkpoint", "load_checkpoint": "models.checkpoint",
    "save_checkpoint": "models.checkpoint", "ModelConfig": "models.config", "DenseOutput": "models.modeling.network",
    "PoseNet": "models.modeling.network", "build_model": "models.modeling.network",
    "Predictor": "models.inference.predictor",
    "SparseOutput": "models.modeling.qem",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'models' has no attribute {name!r}")


__all__ = ["DEFAULT_CHECKPOINT", *_LAZY]

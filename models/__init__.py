"""The QEM network and its training targets, losses, checkpoints and Predictor.

Entry points: ``build_model(name)``, ``Predictor``, ``save_checkpoint`` / ``load_checkpoint``,
``DEFAULT_CHECKPOINT`` (the bundled tiny model trained on synthetic data).
"""
from __future__ import annotations

from pathlib import Path

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "tiny_synth.pt"

from models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint  # noqa: E402
from models.config import ModelConfig  # noqa: E402
from models.network import DenseOutput, PoseNet, build_model  # noqa: E402
from models.predictor import Predictor  # noqa: E402
from models.qem import SparseOutput  # noqa: E402

__all__ = ["DEFAULT_CHECKPOINT", "CheckpointError", "DenseOutput", "ModelConfig", "PoseNet", "Predictor",
           "SparseOutput", "build_model", "load_checkpoint", "save_checkpoint"]

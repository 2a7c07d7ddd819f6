"""Where a checkpoint came from, as the plain strings of its ``meta`` slot (``models.checkpoint``):

- ``data``: what it was trained on. ``"synthetic"`` for ``qem synth`` folders (``--synth``), ``"coco-format: FILE"``
  for an annotation file (``--train-ann``), and for a chain of runs (``--init``, ``qem average``, ``qem grow``) the
  labels of every run in order, joined by ``" + "``. Only ``"synthetic"`` alone means "never saw a real person".
- ``commit``: the git commit of the code that wrote it (``+dirty`` when tracked files differed from it;
  ``unknown`` outside a git checkout).
- ``recipe``: the ``qem train --recipe`` name that produced it (recipes only).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

SYNTHETIC = "synthetic"
REPO_ROOT = Path(__file__).resolve().parent.parent


def git_commit(root: str | Path = REPO_ROOT) -> str:
    """The checkout's HEAD commit, ``+dirty`` when tracked files differ from it, ``unknown`` without git."""
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha or "unknown"


def data_label(args) -> str:
    """The ``data`` label of one training run's arguments (``--synth`` or ``--train-ann``)."""
    if getattr(args, "synth", None):
        return SYNTHETIC
    return f"coco-format: {Path(args.train_ann).name}"


def combine(*labels: str | None) -> str:
    """Data labels of a chain of runs, in order, each once; empty labels (files without meta) are left out."""
    parts: list[str] = []
    for label in labels:
        for part in (label or "").split(" + "):
            if part and part not in parts:
                parts.append(part)
    return " + ".join(parts)


def inherited_data(*paths: str | Path | None) -> str:
    """The combined ``data`` labels of the checkpoints at ``paths`` (missing or meta-less files add nothing)."""
    from models.checkpoint import CheckpointError, checkpoint_meta

    labels = []
    for path in paths:
        if path is None:
            continue
        try:
            labels.append(checkpoint_meta(path).get("data"))
        except CheckpointError:
            continue
    return combine(*labels)


def training_meta(args) -> dict:
    """``meta`` for the checkpoints of one ``qem train`` run: this code's commit and the data of the run, after the
    data of the checkpoint it starts from (``--init``)."""
    return {"commit": git_commit(), "data": combine(inherited_data(getattr(args, "init", None)), data_label(args))}


SYNTHETIC_NOTICE = ("this checkpoint was trained on synthetic figures only (its meta says data: synthetic) and will "
                    "not find real people; to train one on COCO, see docs/training.md")


class SyntheticOnlyWarning(UserWarning):
    """``Predictor.predict`` with weights that saw synthetic people only (once per Predictor); evaluation on the
    synthetic benchmark filters it out."""


def weights_data(weights: str | Path | None) -> str | None:
    """The ``data`` label of the checkpoint at ``weights`` (``None``: the bundled one); None when unknown (an
    exported model, a file without meta)."""
    import models
    from models.checkpoint import CheckpointError, checkpoint_meta

    path = Path(weights) if weights is not None else Path(models.DEFAULT_CHECKPOINT)
    try:
        return checkpoint_meta(path).get("data")
    except CheckpointError:
        return None


def synthetic_only(meta: dict) -> bool:
    """True when ``meta`` says the weights saw synthetic people only."""
    return meta.get("data") == SYNTHETIC

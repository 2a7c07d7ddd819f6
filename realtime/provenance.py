"""Honest live use: a checkpoint trained on synthetic figures only says so when it runs on anything but the bundled
clip (a camera, a stream, a user's file or folder): one line at start, and a caption on those streams' frames (so
the window, the browser view and the annotated MP4 show it too). What a checkpoint was trained on is its meta
``data`` label (``models.provenance``); the bundled file's is ``synthetic``.
"""
from __future__ import annotations

from pathlib import Path

from models.provenance import SYNTHETIC_NOTICE, weights_data

NOTICE = f"note: {SYNTHETIC_NOTICE}"
CAPTION = "trained on synthetic figures only (docs/training.md)"


def checkpoint_data(weights: str | None) -> str | None:
    """The ``data`` label of the checkpoint the pipeline loads (``None``: the bundled one); None when unknown."""
    return weights_data(weights)


def model_line(weights: str | None) -> str | None:
    """One line naming an imported model and where its weights came from (``qem import``); None for our own."""
    import models
    from models.checkpoint import CheckpointError, checkpoint_meta

    try:
        meta = checkpoint_meta(Path(weights) if weights is not None else Path(models.DEFAULT_CHECKPOINT))
    except CheckpointError:
        return None
    if "model" not in meta:
        return None
    return (f"model: {meta['model']}, weights {meta.get('source', '?')} ({meta.get('layout', '?')} layout, licence "
            f"{meta.get('licence', '?')}), run by this pipeline with DEKR's inference rules")


def is_bundled_clip(spec) -> bool:
    from realtime import BUNDLED_CLIP

    return spec.kind == "file" and Path(spec.uri).resolve() == BUNDLED_CLIP.resolve()


def synthetic_captions(weights: str | None, specs) -> dict[int, str]:
    """Stream index -> caption for every source other than the bundled clip, when the checkpoint saw only
    synthetic people; {} otherwise."""
    from models.provenance import synthetic_only

    if not synthetic_only({"data": checkpoint_data(weights)}):
        return {}
    return {i: CAPTION for i, spec in enumerate(specs) if not is_bundled_clip(spec)}

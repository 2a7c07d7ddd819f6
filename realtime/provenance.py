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


def is_bundled_clip(spec) -> bool:
    from realtime.cli import BUNDLED_CLIP

    return spec.kind == "file" and Path(spec.uri).resolve() == BUNDLED_CLIP.resolve()


def synthetic_captions(weights: str | None, specs) -> dict[int, str]:
    """Stream index -> caption for every source other than the bundled clip, when the checkpoint saw only
    synthetic people; {} otherwise."""
    from models.provenance import synthetic_only

    if not synthetic_only({"data": checkpoint_data(weights)}):
        return {}
    return {i: CAPTION for i, spec in enumerate(specs) if not is_bundled_clip(spec)}

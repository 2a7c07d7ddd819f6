"""Checkpoints: one file holding the format tag and version, the ``ModelConfig`` (plain dict), the weights,
optional ``extra`` (plain values: epoch, metrics, ...) and optional ``meta``, where the file came from: plain strings
such as ``{"recipe": "tiny_synth", "commit": "<git sha>", "data": "synthetic"}`` (``models.provenance``). Files
without ``meta`` read as before, and readers that predate it ignore it. Loaded with ``torch.load(weights_only=True)``.

Any file that cannot give back a working network (missing, truncated, foreign, a bare state dict, a config that
disagrees with the weights) raises ``CheckpointError`` with the file and the problem in one line.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from models.config import ModelConfig
from models.modeling.network import PoseNet

FORMAT = "qem-pose-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that cannot be loaded; the message names the file and the problem."""


def save_checkpoint(path: str | Path, net: PoseNet, extra: dict | None = None, meta: dict | None = None) -> Path:
    """Write ``net`` (config + weights) to ``path`` atomically (a temporary file renamed into place)."""
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}  # row-major even if trained NHWC
    payload = {"format": FORMAT, "version": VERSION, "config": asdict(net.cfg), "state_dict": state,
               "extra": dict(extra or {})}
    if meta:
        payload["meta"] = _plain_meta(meta)
    return _write(path, payload)


def _write(path: str | Path, payload: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def _plain_meta(meta: dict) -> dict:
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise ValueError(f"checkpoint meta holds strings only, got {meta!r}")
    return {k: v for k, v in meta.items() if v}


def checkpoint_meta(path: str | Path) -> dict:
    """Where the checkpoint at ``path`` came from (``recipe``, ``commit``, ``data``, ...); {} for files without it."""
    meta = read_checkpoint(path).get("meta")
    return dict(meta) if isinstance(meta, dict) else {}


def rewrite_meta(path: str | Path, meta: dict, out: str | Path | None = None) -> Path:
    """Write the checkpoint at ``path`` to ``out`` (default: in place) with ``meta`` merged into its own; the
    config, weights and ``extra`` are written back as read, tensor for tensor."""
    payload = read_checkpoint(path)
    payload["meta"] = {**(payload.get("meta") or {}), **_plain_meta(meta)}
    return _write(path if out is None else out, payload)


def read_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """The checked payload of a checkpoint file (``format``, ``version``, ``config``, ``state_dict``, ``extra`` and,
    when written, ``meta``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        with warnings.catch_warnings():  # foreign pickles make torch warn before it refuses them
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location=map_location, weights_only=True,
                                 mmap=str(map_location) == "cpu")  # mmap: a meta read leaves the tensors on disk
    except Exception as exc:  # noqa: BLE001 - truncated, foreign or unsafe files all end here
        from models.weights_file import why_unreadable

        raise CheckpointError(f"{path}: not a readable checkpoint: {why_unreadable(path, exc)}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
            raise CheckpointError(f"{path}: a bare state_dict, not a {FORMAT} file (save it with save_checkpoint)")
        raise CheckpointError(f"{path}: not a {FORMAT} file")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {payload.get('version')!r}, "
                              f"this code reads version {VERSION}")
    if not isinstance(payload.get("config"), dict) or not isinstance(payload.get("state_dict"), dict):
        raise CheckpointError(f"{path}: checkpoint lacks its config or weights")
    return payload


def load_checkpoint(path: str | Path, map_location="cpu") -> PoseNet:
    """Rebuild the network saved at ``path`` (in eval mode). Raises ``CheckpointError`` on any bad file."""
    payload = read_checkpoint(path, map_location)
    try:
        cfg = ModelConfig.from_dict(payload["config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: bad model config ({exc})") from None
    net = PoseNet(cfg)
    own, saved = net.state_dict(), payload["state_dict"]
    missing, unexpected = sorted(set(own) - set(saved)), sorted(set(saved) - set(own))
    wrong = [k for k in own if k in saved and tuple(saved[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            parts.append(f"{len(wrong)} with wrong shape (e.g. {wrong[0]})")
        raise CheckpointError(f"{path}: config and weights disagree: {'; '.join(parts)} tensors")
    net.load_state_dict(saved, strict=True)
    return net.eval()

"""What a training run saves and restores: the resumable state in last.pt (optimizer, scheduler, scaler, epoch,
best), weights copied from a checkpoint (``--init``, ``--resume``), and the error every bad training input raises.
Everything saved is plain tensors, dicts, lists and numbers, so checkpoints load with ``weights_only=True``."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict

from models.config import ADDED_MODULES, ModelConfig
from models.training.distributed import DistInfo


class TrainError(Exception):
    """A bad argument or path, reported as one line."""


def scheduler_state(scheduler) -> dict:
    """MultiStepLR's state with its Counter turned into a plain dict (weights_only-loadable)."""
    state = scheduler.state_dict()
    state["milestones"] = {int(k): int(v) for k, v in state["milestones"].items()}
    return state


def load_scheduler_state(scheduler, state: dict) -> None:
    state = dict(state)
    state["milestones"] = Counter({int(k): int(v) for k, v in state["milestones"].items()})
    scheduler.load_state_dict(state)


def _plain(value) -> bool:
    """A number, string or bool, or a list of them (e.g. --lr-drops)."""
    scalar = (int, float, str, bool)
    return isinstance(value, scalar) or (isinstance(value, list) and all(isinstance(v, scalar) for v in value))


def training_state(args, optimizer, scheduler, scaler, epoch: int, best: dict) -> dict:
    """Everything --resume needs, as plain tensors/dicts/numbers/strings (weights_only-loadable)."""
    state = {"epoch": epoch, "best": {k: v for k, v in best.items()}, "optimizer": optimizer.state_dict(),
             "scheduler": scheduler_state(scheduler), "train_args": {k: v for k, v in vars(args).items()
                                                                     if _plain(v)}}
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    return state


def load_weights(path: str, net, may_differ: tuple[str, ...] = (), may_add: bool = False) -> dict:
    """Copy the weights of a checkpoint with the same model config into ``net``; returns its ``extra``.
    Fields in ``may_differ`` are not compared (``--init`` passes ``models.config.INFERENCE_FIELDS``: input size,
    decode and scoring settings; the network is fully convolutional, so none of them changes a parameter, and
    ``LOSS_FIELDS``). ``may_add``: a switch of ``ADDED_MODULES`` on in ``net`` and off in the checkpoint is no
    difference; that module keeps its fresh initial weights."""
    from models.checkpoint import CheckpointError, read_checkpoint

    try:
        payload = read_checkpoint(path, map_location="cpu")
        saved = asdict(ModelConfig.from_dict(payload["config"]))
        wanted = asdict(net.cfg)
        added = {field for field in ADDED_MODULES if may_add and wanted[field] and not saved[field]}
        fresh = tuple(ADDED_MODULES[field] for field in added)
        diff = sorted(k for k, v in saved.items() if wanted.get(k) != v and k not in may_differ and k not in added)
        if diff:
            raise CheckpointError(f"{path}: saved with a different model config ({', '.join(diff)})")
        state = {k: v for k, v in net.state_dict().items() if fresh and k.startswith(fresh)}
        state.update(payload["state_dict"])
        net.load_state_dict(state, strict=True)
    except (CheckpointError, RuntimeError, ValueError) as exc:
        raise TrainError(str(exc)) from None
    return payload.get("extra") or {}


def resume(path: str, net, optimizer, scheduler, scaler, info: DistInfo) -> tuple[int, dict]:
    extra = load_weights(path, net)
    if "optimizer" not in extra:
        raise TrainError(f"{path} holds no training state (optimizer/scheduler/epoch); resume from a last.pt")
    optimizer.load_state_dict(extra["optimizer"])
    load_scheduler_state(scheduler, extra["scheduler"])
    if scaler is not None and "scaler" in extra:
        scaler.load_state_dict(extra["scaler"])
    if info.is_main:
        print(f"resumed from {path} at epoch {extra['epoch']}", flush=True)
    return int(extra["epoch"]), dict(extra.get("best", {"metric": -math.inf}))

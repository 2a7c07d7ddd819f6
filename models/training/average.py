"""Average the weights of several checkpoints of one network into one checkpoint (a "model soup").

    qem average runs/a/best.pt runs/b/best.pt --out soup.pt
    qem average runs/a/best.pt runs/b/best.pt --weights 2 1 --out soup.pt

Averaging works for fine-tunes of one starting checkpoint (different input sizes, seeds or schedules): their
weights lie in one basin, and their mean is often better than each. Networks trained from scratch apart do
not average into a working network; evaluate the result (``qem val``) before using it.

Conventions:
- The checkpoints must agree on every ``ModelConfig`` field that shapes the network or its loss (all but
  ``INFERENCE_FIELDS`` and ``LOSS_FIELDS``); the result keeps the first checkpoint's config, decode settings
  included.
- Floating-point tensors (weights and BatchNorm running statistics) are averaged with ``weights`` (normalised to
  sum 1; default equal). Integer tensors (BatchNorm's batch counters) are taken from the first checkpoint.
- The result's ``extra`` records the file names averaged and their normalised weights (names only, no folders).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from models.argtypes import OneLineParser
from models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from models.config import INFERENCE_FIELDS, LOSS_FIELDS
from models.modeling.network import PoseNet


def _shape_fields(net: PoseNet) -> dict:
    return {k: v for k, v in asdict(net.cfg).items() if k not in INFERENCE_FIELDS and k not in LOSS_FIELDS}


def normalised_weights(count: int, weights: Sequence[float] | None = None) -> list[float]:
    """``weights`` (default equal) scaled to sum 1; ``ValueError`` unless there is one >= 0 weight per checkpoint
    and their sum is positive."""
    if count < 1:
        raise ValueError("no checkpoints to average")
    weights = [1.0] * count if weights is None else [float(w) for w in weights]
    if len(weights) != count:
        raise ValueError(f"{len(weights)} weights for {count} checkpoints; give one weight per checkpoint")
    if min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"weights must be >= 0 with a positive sum, got {weights}")
    return [w / sum(weights) for w in weights]


def average_checkpoints(paths: Sequence[str | Path], weights: Sequence[float] | None = None) -> PoseNet:
    """The network whose floating-point tensors are the ``weights``-weighted mean of the checkpoints' (in eval
    mode, with the first checkpoint's config). Raises ``CheckpointError`` for files that cannot be averaged and
    ``ValueError`` for bad weights."""
    weights = normalised_weights(len(paths), weights)
    nets = [load_checkpoint(p) for p in paths]
    first = _shape_fields(nets[0])
    for path, net in zip(paths[1:], nets[1:]):
        other = _shape_fields(net)
        differ = sorted(k for k, v in other.items() if first[k] != v)
        if differ:
            k = differ[0]
            raise CheckpointError(f"{path}: a different network from {paths[0]} ({k}={other[k]!r} "
                                  f"against {first[k]!r}); average checkpoints of one config only")
    states = [net.state_dict() for net in nets]
    averaged = {}
    for key, tensor in states[0].items():
        if tensor.is_floating_point():
            averaged[key] = sum(w * s[key].double() for w, s in zip(weights, states)).to(tensor.dtype)
        else:
            averaged[key] = tensor
    out = nets[0]
    out.load_state_dict(averaged)
    return out.eval()


def write_average(paths: Sequence[str | Path], out: str | Path, weights: Sequence[float] | None = None) -> Path:
    """Average ``paths`` (``average_checkpoints``) into ``out``; its ``meta`` keeps the data of every input."""
    from models.provenance import git_commit, inherited_data

    net = average_checkpoints(paths, weights)
    extra = {"averaged": [Path(c).name for c in paths], "weights": normalised_weights(len(paths), weights)}
    return save_checkpoint(out, net, extra=extra, meta={"commit": git_commit(), "data": inherited_data(*paths)})


def main(argv=None) -> None:
    p = OneLineParser(prog="qem average", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", help="checkpoint files of one config")
    p.add_argument("--weights", type=float, nargs="+", help="one weight per checkpoint (default: equal)")
    p.add_argument("--out", required=True, help="where to write the averaged checkpoint")
    args = p.parse_args(argv)
    try:
        write_average(args.checkpoints, args.out, args.weights)
    except (CheckpointError, ValueError) as exc:
        sys.exit(f"error: {exc}")
    except OSError as exc:
        sys.exit(f"error: cannot write {args.out} ({exc.strerror or exc}); pass a writable --out path")
    print(f"averaged {len(args.checkpoints)} checkpoints -> {args.out}")


if __name__ == "__main__":
    main()

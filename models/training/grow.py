"""Deepen a trained network without changing what it computes, to fine-tune it with more capacity.

    qem grow runs/s/best.pt --encoder-blocks 2 --kpt-blocks 4 --out runs/grown.pt
    qem train ... --encoder-blocks 2 --kpt-blocks 4 --init runs/grown.pt --out runs/t

Adds BasicBlocks to the tiny backbone's stride-8/16/32 levels (``encoder_blocks``) and to every keypoint branch
(``kpt_blocks``; added branch blocks keep the alternation of dilation 1 and 2). Each added block starts with the
scale and shift of its last BatchNorm at zero, so it adds nothing to its residual and returns its input (every
such block follows a ReLU, so its input is already >= 0): the grown network gives the same outputs as the file it
was grown from, and training then moves the new blocks away from identity ("zero-init residual" growth).

The output keeps the input checkpoint's config with the new block counts and records the file it grew from
(name only). Blocks can only be added.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch

from models.argtypes import OneLineParser
from models.modeling.backbones.common import BasicBlock
from models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from models.modeling.network import PoseNet

CHECK_SIZE = 64  # side of the random image on which the grown network is compared with the original


def grow(net: PoseNet, encoder_blocks: int | None = None, kpt_blocks: int | None = None) -> PoseNet:
    """A deeper copy of ``net`` (eval mode) computing the same function. ``None`` keeps a count; raises
    ``ValueError`` for counts below the current ones or a deeper encoder on a backbone other than tiny."""
    old = net.cfg
    cfg = replace(old, encoder_blocks=old.encoder_blocks if encoder_blocks is None else encoder_blocks,
                  kpt_blocks=old.kpt_blocks if kpt_blocks is None else kpt_blocks)
    if cfg.encoder_blocks < old.encoder_blocks or cfg.kpt_blocks < old.kpt_blocks:
        raise ValueError(f"blocks can only be added: the checkpoint has encoder_blocks={old.encoder_blocks}, "
                         f"kpt_blocks={old.kpt_blocks}")
    grown = PoseNet(cfg)
    saved, own = net.state_dict(), grown.state_dict()
    new_keys = {k for k in own if k not in saved}
    new_blocks = [(name, m) for name, m in grown.named_modules()
                  if isinstance(m, BasicBlock) and f"{name}.bn2.weight" in new_keys]
    outside = sorted(k for k in new_keys if not any(k.startswith(f"{name}.") for name, _ in new_blocks))
    unexpected = [k for k in saved if k not in own]
    if outside or unexpected:
        raise ValueError(f"cannot grow this network: weights do not line up ({(outside or unexpected)[0]})")
    for _, block in new_blocks:
        torch.nn.init.zeros_(block.bn2.weight)
        torch.nn.init.zeros_(block.bn2.bias)
    grown.load_state_dict(saved, strict=False)
    grown.eval()
    _check_same_function(net, grown)
    return grown


@torch.no_grad()
def _check_same_function(net: PoseNet, grown: PoseNet) -> None:
    """Both networks' eval-mode maps on one random image; ``net``'s train/eval mode is left as it was."""
    was_training = net.training
    x = torch.randn(1, 3, CHECK_SIZE, CHECK_SIZE, generator=torch.Generator().manual_seed(0))
    a, b = net.eval().dense(x), grown.dense(x)
    net.train(was_training)
    for field in ("score", "offsets", "kfeat", "ifeat"):
        diff = (getattr(a, field) - getattr(b, field)).abs().max().item()
        if diff > 1e-5:
            raise ValueError(f"the grown network's {field} differs from the original's by {diff:.3g}")


def write_grown(path: str | Path, out: str | Path, encoder_blocks: int | None = None,
                kpt_blocks: int | None = None) -> tuple[PoseNet, PoseNet]:
    """Grow the checkpoint at ``path`` into ``out`` (its ``meta`` keeps the input's data); returns (before, after)."""
    from models.provenance import git_commit, inherited_data

    net = load_checkpoint(path)
    grown = grow(net, encoder_blocks, kpt_blocks)
    save_checkpoint(out, grown, extra={"grown_from": Path(path).name},
                    meta={"commit": git_commit(), "data": inherited_data(path)})
    return net, grown


def main(argv=None) -> None:
    p = OneLineParser(prog="qem grow", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="the trained checkpoint to deepen")
    p.add_argument("--encoder-blocks", type=int, help="BasicBlocks per stride-8/16/32 level (tiny backbone)")
    p.add_argument("--kpt-blocks", type=int, help="blocks per keypoint branch")
    p.add_argument("--out", required=True, help="where to write the grown checkpoint")
    args = p.parse_args(argv)
    try:
        net, grown = write_grown(args.checkpoint, args.out, args.encoder_blocks, args.kpt_blocks)
    except (CheckpointError, ValueError) as exc:
        sys.exit(f"error: {exc}")
    except OSError as exc:
        sys.exit(f"error: cannot write {args.out} ({exc.strerror or exc}); pass a writable --out path")
    before = sum(t.numel() for t in net.parameters())
    after = sum(t.numel() for t in grown.parameters())
    print(f"grew {args.checkpoint} (encoder_blocks {net.cfg.encoder_blocks} -> {grown.cfg.encoder_blocks}, "
          f"kpt_blocks {net.cfg.kpt_blocks} -> {grown.cfg.kpt_blocks}; {before} -> {after} parameters) -> {args.out}")


if __name__ == "__main__":
    main()

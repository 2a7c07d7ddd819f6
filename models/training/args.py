"""Train a pose network (CIR score map + QEM) on COCO-format keypoints: one CPU/GPU, or many with torchrun.

    qem train --config tiny --synth /work/data/synth_train --val-synth /work/data/synth_val \\
        --input-size 256 --epochs 30 --batch-size 16 --out runs/tiny
    qem train --nproc-per-node 8 --config hrnet_w32 \\
        --train-ann coco/annotations/person_keypoints_train2017.json --train-images coco/train2017 \\
        --val-ann coco/annotations/person_keypoints_val2017.json --val-images coco/val2017 \\
        --batch-size 10 --out runs/hrnet_w32
    torchrun --nnodes 2 --node_rank 0 ... -m models.training.train ...   several machines: the same on each
    qem train --recipe tiny_synth       every stage of a recipe, resumable (models.training.recipe; --plan lists them)

Schedule (DEKR's by default): Adam, lr 1e-3, multiplied by 0.1 at 90/140 and 120/140 of the epochs (so the
drops scale with --epochs). --batch-size is per process; under torchrun each process reads its own shard
(DistributedSampler), gradients are averaged with DDP (nccl on CUDA, gloo on CPU), and rank 0 evaluates and
writes checkpoints. Mixed precision (``--amp``): fp16 autocast + GradScaler on CUDA by default; ``--amp bf16``
autocasts to bfloat16 (no loss scaling), 1.7x faster than fp32 on a CPU with AVX512-BF16 (docs/training.md,
"Precision"). ``--channels-last`` (NHWC) makes fp32 on the CPU 1.2x faster.

In --out: last.pt (after every epoch, with optimizer, scheduler and epoch for --resume), best.pt (highest
validation AP, or lowest loss without a validation set) and train_log.jsonl (one line per epoch).
Ablation switches become model overrides: --score-mode, --no-kqe, --no-pqe, --cir-loss, --pose-score.
"""
from __future__ import annotations

import argparse

from models.argtypes import OneLineParser
from models.config import POSE_SCORES
from models.training.state import TrainError

AMP_CHOICES = ("auto", "fp16", "bf16", "off")
DEKR_EPOCHS, DEKR_DROPS = 140, (90, 120)


def build_args(argv=None) -> argparse.Namespace:
    p = OneLineParser(prog="qem train", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="tiny", help="model config name (tiny, realtime, hrnet_w32, hrnet_w48)")
    p.add_argument("--synth", help="training synth folder (annotations JSON + images)")
    p.add_argument("--train-ann", help="COCO keypoint annotation JSON for training")
    p.add_argument("--train-images", help="training image folder")
    p.add_argument("--val-synth", help="validation synth folder")
    p.add_argument("--val-ann", help="COCO keypoint annotation JSON for validation")
    p.add_argument("--val-images", help="validation image folder")
    p.add_argument("--val-images-max", type=int, default=None, help="evaluate on at most this many val images")
    p.add_argument("--out", default="runs/train", help="output folder for checkpoints and the log")
    p.add_argument("--input-size", type=int, default=None,
                   help="square network input, a multiple of 32 (default: the config's)")
    p.add_argument("--epochs", type=int, default=DEKR_EPOCHS)
    p.add_argument("--batch-size", type=int, default=16, help="images per process per step")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (DEKR: 1e-3)")
    p.add_argument("--lr-drops", type=int, nargs="*", default=None,
                   help="epochs at which the lr drops x0.1 (default: DEKR's 90 and 120 of 140, scaled)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--eval-every", type=int, default=1, help="validate every N epochs (and after the last)")
    p.add_argument("--save-every", type=int, default=1, help="write last.pt every N epochs (and after the last)")
    p.add_argument("--time-limit", type=float, metavar="MINUTES",
                   help="stop (saving last.pt) when one more epoch, as long as the longest so far, would end more "
                        "than this many minutes after the first began; --resume continues the same schedule")
    p.add_argument("--max-steps", type=int, default=None, help="stop each epoch after N steps (smoke runs)")
    p.add_argument("--augment", choices=("dekr", "light", "off"), default="dekr",
                   help="dekr: flip, rotation +-30, scale 0.75-1.5, colour (default); light: +-10, 0.85-1.2; off")
    p.add_argument("--no-ignore-regions", action="store_true",
                   help="train crowd regions and unlabelled people as background (ablation; by default their "
                        "segmentation is an ignore region of the score map and heatmaps)")
    p.add_argument("--workers", type=int, default=2, help="data-loader processes per training process")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--nproc-per-node", type=int, default=1, metavar="N",
                   help="N training processes on this machine (DDP: one per GPU, or CPU workers), started through "
                        "torchrun's launcher; a failure ends in one error line (models.training.launch)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", help="continue from a last.pt (model, optimizer, scheduler, epoch)")
    p.add_argument("--init", help="start from this checkpoint's weights (same config; its --encoder-blocks and "
                   "--kpt-blocks unless given), with a fresh optimizer")
    p.add_argument("--train-only", nargs="+", metavar="PREFIX",
                   help="train only the parameters whose names start with these prefixes (e.g. heads.heatmaps. "
                        "with --keypoint-heatmaps --init: a heatmap head on frozen weights); the rest stays frozen")
    p.add_argument("--pretrained", help="HRNet ImageNet backbone weights (a local file), loaded by parameter name")
    p.add_argument("--amp", choices=AMP_CHOICES, default="auto",
                   help="mixed precision: auto (fp16 on CUDA, off on the CPU), fp16 (CUDA), bf16, off")
    p.add_argument("--no-amp", action="store_true", help="the same as --amp off")
    p.add_argument("--channels-last", action="store_true",
                   help="NHWC memory format for the network and its input (1.2x faster fp32 training on a CPU; "
                        "refused with --amp bf16 there)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.add_argument("--benchmark", type=int, default=0, metavar="STEPS",
                   help="only time STEPS training steps and print images/s (no checkpoints)")
    p.add_argument("--checksum-file", help="each rank writes its final weights' SHA-256 here ({rank} is replaced)")
    g = p.add_argument_group("ablation switches (model overrides)")
    g.add_argument("--score-mode", choices=("cir", "center_gaussian"), default=None)
    g.add_argument("--no-kqe", action="store_true", help="no keypoint query encoding")
    g.add_argument("--no-pqe", action="store_true", help="no pose query encoding")
    g.add_argument("--cir-loss", choices=("qfl", "varifocal", "mse"), default=None, help="score-map loss")
    g.add_argument("--keypoint-heatmaps", action="store_true",
                   help="add the keypoint heatmap head (keypoint snapping); --init may start from weights without it")
    g.add_argument("--heatmap-weight", type=float, default=None,
                   help="weight of the keypoint heatmap loss (default 1; with --keypoint-heatmaps)")
    g.add_argument("--labelled-head", action="store_true",
                   help="add the labelled head (pose score labelled_mean); --init may start from weights without it")
    g.add_argument("--pose-score", choices=POSE_SCORES, default=None,
                   help="final pose score used by validation and saved in checkpoints (default: pqe)")
    g.add_argument("--encoder-blocks", type=int, default=None,
                   help="BasicBlocks per stride-8/16/32 level of the tiny backbone (default 1; models.training.grow)")
    g.add_argument("--kpt-blocks", type=int, default=None,
                   help="blocks in each keypoint branch (default: the config's; models.training.grow)")
    args = p.parse_args(argv)
    if args.no_amp:
        args.amp = "off"
    if args.synth is None and (args.train_ann is None or args.train_images is None):
        p.error("give --synth DIR or both --train-ann FILE and --train-images DIR")
    return args


def lr_milestones(epochs: int, drops=DEKR_DROPS, of: int = DEKR_EPOCHS) -> list[int]:
    """DEKR's drop epochs scaled to ``epochs`` (90/140 and 120/140 of the run), strictly increasing, >= 1."""
    out: list[int] = []
    for d in drops:
        m = max(1, round(epochs * d / of))
        if out and m <= out[-1]:
            m = out[-1] + 1
        out.append(m)
    return [m for m in out if m < epochs] if epochs > 1 else []


def model_overrides(args) -> dict:
    """Ablation switches as ``build_model`` overrides (only the ones given)."""
    over: dict = {}
    if args.score_mode is not None:
        over["score_mode"] = args.score_mode
    if args.no_kqe:
        over["use_kqe"] = False
    if args.no_pqe:
        over["use_pqe"] = False
    if args.cir_loss is not None:
        over["cir_loss"] = args.cir_loss
    if args.pose_score is not None:
        over["pose_score"] = args.pose_score
    if args.input_size is not None:
        over["input_size"] = args.input_size
    if args.keypoint_heatmaps:
        over["keypoint_heatmaps"] = True
    if args.heatmap_weight is not None:
        over["w_heatmap"] = args.heatmap_weight
    if args.labelled_head:
        over["labelled_head"] = True
    if args.encoder_blocks is not None:
        over["encoder_blocks"] = args.encoder_blocks
    if args.kpt_blocks is not None:
        over["kpt_blocks"] = args.kpt_blocks
    return over


def inherit_shape(args, checkpoint: str) -> None:
    """``--init`` from a checkpoint of the same ``--config`` builds its shape: ``--encoder-blocks`` and
    ``--kpt-blocks`` not given are read from its config (a grown network, ``models.training.grow``), and its labelled
    head is kept. A checkpoint of another config is left to ``load_weights``, which names the difference."""
    from models.checkpoint import CheckpointError, read_checkpoint

    try:
        saved = read_checkpoint(checkpoint, map_location="cpu")["config"]
    except CheckpointError as exc:
        raise TrainError(str(exc)) from None
    if saved.get("name") != args.config:
        return
    for field in ("encoder_blocks", "kpt_blocks"):
        if getattr(args, field) is None and field in saved:
            setattr(args, field, int(saved[field]))
    args.labelled_head = args.labelled_head or bool(saved.get("labelled_head", False))


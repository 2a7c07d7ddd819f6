"""Train a pose network (CIR score map + QEM) on COCO-format keypoints: one CPU/GPU, or many with torchrun.

    python -m models.train --config tiny --synth /work/data/synth_train --val-synth /work/data/synth_val \\
        --input-size 256 --epochs 30 --batch-size 16 --out runs/tiny
    torchrun --nproc_per_node 8 -m models.train --config hrnet_w32 \\
        --train-ann coco/annotations/person_keypoints_train2017.json --train-images coco/train2017 \\
        --val-ann coco/annotations/person_keypoints_val2017.json --val-images coco/val2017 \\
        --batch-size 10 --out runs/hrnet_w32

Schedule (DEKR's by default): Adam, lr 1e-3, multiplied by 0.1 at 90/140 and 120/140 of the epochs (so the
drops scale with --epochs). --batch-size is per process; under torchrun each process reads its own shard
(DistributedSampler), gradients are averaged with DDP (nccl on CUDA, gloo on CPU), and rank 0 evaluates and
writes checkpoints. Mixed precision (``--amp``): fp16 autocast + GradScaler on CUDA by default; ``--amp bf16``
autocasts to bfloat16 (no loss scaling), 1.7x faster than fp32 on a CPU with AVX512-BF16 (README: training on the
CPU). ``--channels-last`` (NHWC) makes fp32 on the CPU 1.2x faster.

In --out: last.pt (after every epoch, with optimizer, scheduler and epoch for --resume), best.pt (highest
validation AP, or lowest loss without a validation set) and train_log.jsonl (one line per epoch).
Ablation switches become model overrides: --score-mode, --no-kqe, --no-pqe, --cir-loss, --pose-score.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from models.augment import AugmentConfig
from models.checkpoint import save_checkpoint
from models.config import INFERENCE_FIELDS, LOSS_FIELDS, POSE_SCORES
from models.data_paths import DataPathError, resolve_data, synth_splits
from models.dataset import KeypointDataset, collate_samples
from models.distributed import (DistInfo, all_gather_objects, average_buffers, barrier, cleanup, init_distributed,
                                state_checksum)
from models.evaluate import evaluate_model, format_rho
from models.losses import training_losses
from models.network import build_model
from models.train_state import TrainError, load_weights, resume, training_state

AMP_CHOICES = ("auto", "fp16", "bf16", "off")
DEKR_EPOCHS, DEKR_DROPS = 140, (90, 120)


def _light_augment():
    return AugmentConfig(max_rotation=10.0, scale_range=(0.85, 1.2), max_translate=0.05, brightness=0.15,
                         contrast=0.15, saturation=0.15, hue=2.0)


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
    ``--kpt-blocks`` not given are read from its config (a grown network, ``models.grow``), and its labelled head
    is kept. A checkpoint of another config is left to ``load_weights``, which names the difference."""
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


def data_paths(args) -> tuple[tuple[Path, Path], tuple[Path, Path] | None]:
    """((train ann, train images), (val ann, val images) or None). A --synth folder gives its "train" split (or
    its only one) for training and, unless other validation data is named, its "val" split when it has one."""
    try:
        if args.synth is not None:
            train = resolve_data(args.synth, None, None, prefer=("train",))
        else:
            train = resolve_data(None, args.train_ann, args.train_images)
        val = None
        if args.val_synth is not None:
            val = resolve_data(args.val_synth, None, None)
        elif args.val_ann is not None or args.val_images is not None:
            val = resolve_data(None, args.val_ann, args.val_images)
        elif args.synth is not None and "val" in synth_splits(Path(args.synth)):
            val = resolve_data(args.synth, None, None, split="val")
    except DataPathError as exc:
        raise TrainError(str(exc)) from None
    return train, val


def make_loader(ann: Path, images: Path, args, info: DistInfo, seed: int):
    augment = {"dekr": AugmentConfig(), "off": AugmentConfig.off(), "light": _light_augment()}[args.augment]
    dataset = KeypointDataset(str(ann), str(images), args.input_size, train=True, augment=augment)
    if len(dataset) == 0:
        raise TrainError(f"no training images in {ann}")
    sampler = (DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed,
                                  drop_last=False) if info.distributed else None)
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=sampler is None, sampler=sampler,
                        num_workers=args.workers, collate_fn=collate_samples, drop_last=len(dataset) > args.batch_size,
                        generator=gen, pin_memory=info.device.type == "cuda",
                        persistent_workers=args.workers > 0, worker_init_fn=_seed_worker)
    return loader, sampler


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


class LossModule(torch.nn.Module):
    """The network plus its training losses in one forward, so that DDP sees every parameter the loss uses.
    ``train_only``: parameter-name prefixes; every other parameter is frozen (no gradient) and every module outside
    them stays in eval mode, so frozen BatchNorm layers keep normalising with, and keeping, their running statistics."""

    def __init__(self, net: torch.nn.Module, train_only: tuple[str, ...] = ()):
        super().__init__()
        self.net = net
        self.train_only = tuple(train_only)
        if self.train_only:
            names = [name for name, _ in net.named_parameters()]
            unmatched = [p for p in self.train_only if not any(n.startswith(p) for n in names)]
            if unmatched:
                raise TrainError(f"--train-only {unmatched[0]}: no parameter of the network starts with it")
            for name, param in net.named_parameters():
                param.requires_grad_(name.startswith(self.train_only))

    def train(self, mode: bool = True):
        super().train(mode)
        if self.train_only and mode:
            for name, module in self.net.named_modules():
                module.training = (name + ".").startswith(self.train_only)
        return self

    def forward(self, images, persons):
        return training_losses(self.net, images, persons)


def amp_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """The autocast dtype for ``--amp`` on ``device`` (None: fp32). "auto" is fp16 on CUDA and fp32 on the CPU."""
    if amp == "auto":
        amp = "fp16" if device.type == "cuda" else "off"
    if amp == "fp16" and device.type != "cuda":
        raise TrainError("--amp fp16 needs a CUDA device; on the CPU use --amp bf16 or --amp off")
    return {"fp16": torch.float16, "bf16": torch.bfloat16, "off": None}[amp]


def train_step(loss_module, images, persons, optimizer, scaler, amp: torch.dtype | None = None) -> dict:
    """One optimiser step (autocast to ``amp`` if given; loss scaling when ``scaler`` is given); returns the loss
    terms. A non-finite loss takes no step (the caller decides what to do)."""
    autocast = (torch.autocast(device_type=images.device.type, dtype=amp) if amp is not None
                else contextlib.nullcontext())
    with autocast:
        losses = loss_module(images, persons)
    if not torch.isfinite(losses["loss"]):
        return losses
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(losses["loss"]).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        losses["loss"].backward()
        optimizer.step()
    return losses


def place_network(net: torch.nn.Module, device: torch.device, args) -> torch.dtype | None:
    """Move ``net`` to ``device`` in ``--channels-last``'s layout; returns the ``--amp`` autocast dtype."""
    amp = amp_dtype(device, args.amp)
    if args.channels_last and amp == torch.bfloat16 and device.type == "cpu":
        raise TrainError("--channels-last with --amp bf16 on the CPU: oneDNN computes wrong weight gradients (inf, "
                         "nan) for dilated convolutions in that layout; drop --channels-last")
    net.to(device, memory_format=torch.channels_last if args.channels_last else torch.preserve_format)
    return amp


def to_device(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    images = images.to(device, non_blocking=True)
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def train_one_epoch(loss_module, loader, optimizer, scaler, info: DistInfo, epoch: int, max_steps: int | None,
                    progress: bool, amp: torch.dtype | None = None, channels_last: bool = False) -> dict:
    """One pass over ``loader``; returns mean losses, step count and images/s (this process's images)."""
    loss_module.train()
    sums: dict[str, float] = {}
    steps, images_seen = 0, 0
    start = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=not (progress and info.is_main),
               dynamic_ncols=True)
    for images, persons, _ids, _boxes in bar:
        images = to_device(images, info.device, channels_last)
        losses = train_step(loss_module, images, [p.to(info.device) for p in persons], optimizer, scaler, amp)
        loss = losses["loss"]
        if not torch.isfinite(loss):
            raise TrainError(f"loss became {loss.item()} at epoch {epoch} step {steps}; lower --lr or check the data")
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        steps += 1
        images_seen += images.shape[0]
        bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        if max_steps is not None and steps >= max_steps:
            break
    seconds = time.perf_counter() - start
    out = {k: v / max(steps, 1) for k, v in sums.items()}
    out.update(steps=steps, images=images_seen, seconds=seconds, images_per_s=images_seen / max(seconds, 1e-9))
    return out


def validate(net, val, args, info: DistInfo) -> dict:
    """COCO AP and score/OKS Spearman of ``net`` on the validation set (rank 0 only; no flip, for speed)."""
    report, _ = evaluate_model(net, val[0], val[1], input_size=args.input_size, flip=False, device=info.device,
                               max_images=args.val_images_max, progress=False)
    return {"AP": report.ap, "AP50": report.ap50, "AR": report.ar, "spearman": report.spearman,
            "spearman_matched": report.spearman_matched}


def build_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m models.train", description=__doc__,
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
    p.add_argument("--workers", type=int, default=2, help="data-loader processes per training process")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
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
                   help="BasicBlocks per stride-8/16/32 level of the tiny backbone (default 1; models.grow)")
    g.add_argument("--kpt-blocks", type=int, default=None,
                   help="blocks in each keypoint branch (default: the config's; models.grow)")
    args = p.parse_args(argv)
    if args.no_amp:
        args.amp = "off"
    if args.synth is None and (args.train_ann is None or args.train_images is None):
        p.error("give --synth DIR or both --train-ann FILE and --train-images DIR")
    return args


def run(args) -> dict:
    """Train as ``args`` says; returns the final summary (rank 0's view)."""
    if args.resume and not Path(args.resume).is_file():
        raise TrainError(f"{args.resume}: checkpoint to resume from not found; pass a last.pt written by training")
    if args.init and not Path(args.init).is_file():
        raise TrainError(f"{args.init}: checkpoint to start from not found")
    try:
        info = init_distributed(args.device)
    except RuntimeError as exc:
        raise TrainError(str(exc)) from None
    threads_before = torch.get_num_threads()
    try:
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        elif info.distributed and info.device.type == "cpu":
            local = int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size))
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
        torch.manual_seed(args.seed)
        random.seed(args.seed)
        np.random.seed(args.seed + info.rank)
        train_paths, val_paths = data_paths(args)
        if args.init:
            inherit_shape(args, args.init)
        try:
            net = build_model(args.config, pretrained=args.pretrained, **model_overrides(args))
        except ValueError as exc:
            raise TrainError(str(exc)) from None
        args.input_size = int(net.cfg.input_size)
        amp = place_network(net, info.device, args)
        loss_module = LossModule(net, tuple(args.train_only or ()))
        optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=args.lr,
                                     weight_decay=args.weight_decay)
        drops = (list(args.lr_drops) if args.lr_drops is not None else lr_milestones(args.epochs))
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=drops, gamma=0.1)
        scaler = make_scaler(amp)
        start_epoch, best = 0, {"metric": -math.inf}
        if args.init:
            load_weights(args.init, net, may_differ=INFERENCE_FIELDS + LOSS_FIELDS, may_add=True)
        if args.resume:
            start_epoch, best = resume(args.resume, net, optimizer, scheduler, scaler, info)
        if info.distributed:
            loss_module = torch.nn.parallel.DistributedDataParallel(
                loss_module, device_ids=[info.local_rank] if info.device.type == "cuda" else None,
                find_unused_parameters=False)
        loader, sampler = make_loader(train_paths[0], train_paths[1], args, info, args.seed)
        out = Path(args.out)
        if info.is_main:
            out.mkdir(parents=True, exist_ok=True)
            print(f"training {args.config} at {args.input_size}px on {len(loader.dataset)} images, "
                  f"{info.world_size} process(es) on {info.device.type}, epochs {start_epoch}->{args.epochs}, "
                  f"lr {args.lr} drops at {drops}", flush=True)
        summary: dict = {}
        started, longest_epoch = time.monotonic(), 0.0
        for epoch in range(start_epoch, args.epochs):
            epoch_start = time.monotonic()
            if sampler is not None:
                sampler.set_epoch(epoch)
            lr = optimizer.param_groups[0]["lr"]
            stats = train_one_epoch(loss_module, loader, optimizer, scaler, info, epoch, args.max_steps,
                                    not args.no_progress, amp, args.channels_last)
            scheduler.step()
            average_buffers(info, net)
            rates = all_gather_objects(info, stats["images_per_s"])
            stats["images_per_s"] = float(sum(rates))
            last_epoch = epoch + 1 == args.epochs
            if val_paths is not None and info.is_main and ((epoch + 1) % args.eval_every == 0 or last_epoch):
                stats.update(validate(net, val_paths, args, info))
            longest_epoch = max(longest_epoch, time.monotonic() - epoch_start)
            out_of_time = not last_epoch and args.time_limit is not None and any(all_gather_objects(
                info, time.monotonic() - started + longest_epoch > 60.0 * args.time_limit))
            if info.is_main:
                metric = stats["AP"] if "AP" in stats else (-stats["loss"] if val_paths is None else None)
                improved = metric is not None and metric > best["metric"]
                if improved:
                    best = {"metric": float(metric), "epoch": epoch + 1}
                save_last = last_epoch or out_of_time or (epoch + 1) % args.save_every == 0
                if improved or save_last:
                    state = training_state(args, optimizer, scheduler, scaler, epoch + 1, best)
                    if save_last:
                        save_checkpoint(out / "last.pt", net, extra=state)
                    if improved:
                        save_checkpoint(out / "best.pt", net, extra=state)
                stats.update(epoch=epoch + 1, lr=lr, best_epoch=best.get("epoch"))
                with open(out / "train_log.jsonl", "a") as f:
                    f.write(json.dumps(stats) + "\n")
                print(format_epoch(stats), flush=True)
                summary = stats
            barrier(info)
            if out_of_time:
                if info.is_main:
                    print(f"stopped after epoch {epoch + 1} of {args.epochs}: another epoch would pass "
                          f"--time-limit {args.time_limit:g} min; continue with --resume {out / 'last.pt'}",
                          flush=True)
                break
        checksum = state_checksum(net)
        if args.checksum_file:
            Path(args.checksum_file.replace("{rank}", str(info.rank))).write_text(checksum + "\n")
        agree = len(set(all_gather_objects(info, checksum))) == 1
        if info.is_main and info.distributed:
            print(f"weights on {info.world_size} ranks {'agree' if agree else 'DIFFER'}: {checksum[:16]}", flush=True)
        if not agree:
            raise TrainError("ranks ended with different weights; DDP synchronisation failed")
        barrier(info)  # tear down together: a gloo rank can abort when its peer closes the connections first
        return summary
    finally:
        torch.set_num_threads(threads_before)
        # Free the DDP wrapper, which holds the process group, before the teardown: left to interpreter exit,
        # gloo's threads could end the process with "terminate called without an active exception".
        loss_module = None
        gc.collect()
        cleanup(info)


def format_epoch(s: dict) -> str:
    parts = [f"epoch {s['epoch']}", f"loss {s.get('loss', float('nan')):.4f}", f"lr {s['lr']:.2e}",
             f"{s['images_per_s']:.1f} img/s"]
    if "AP" in s:
        rho, matched = format_rho(s.get("spearman")), format_rho(s.get("spearman_matched"))
        parts += [f"val AP {s['AP']:.4f}", f"AP50 {s['AP50']:.4f}", f"Spearman {rho} (matched {matched})"]
    return " | ".join(parts)


def make_scaler(amp: torch.dtype | None):
    """A GradScaler for fp16 autocast; None otherwise (bf16 has fp32's range and needs no loss scaling)."""
    return torch.amp.GradScaler("cuda") if amp == torch.float16 else None


def benchmark(args) -> None:
    """Print the median time of ``--benchmark`` optimiser steps (forward, losses, backward, Adam; ``--amp`` and
    ``--channels-last`` as in training; batches read beforehand, so data loading is not counted) after two warm-up
    steps, and the images/s it gives."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    info = init_distributed(args.device)
    (ann, images), _ = data_paths(args)
    net = build_model(args.config, **model_overrides(args)).train()
    amp = place_network(net, info.device, args)
    args.input_size = int(net.cfg.input_size)
    loader, _ = make_loader(ann, images, args, info, args.seed)
    batches, it = [], iter(loader)
    while len(batches) < args.benchmark + 2:
        try:
            batches.append(next(it))
        except StopIteration:
            it = iter(loader)
    loss_module, optimizer = LossModule(net), torch.optim.Adam(net.parameters(), lr=args.lr)
    scaler = make_scaler(amp)
    times = []
    for images_, persons, _ids, _boxes in batches:
        start = time.perf_counter()
        train_step(loss_module, to_device(images_, info.device, args.channels_last),
                   [p.to(info.device) for p in persons], optimizer, scaler, amp)
        if info.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    step = float(np.median(times[2:]))
    machine = (torch.cuda.get_device_name(info.device) if info.device.type == "cuda" else
               f"{platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads")
    precision = {torch.float16: "fp16 autocast", torch.bfloat16: "bf16 autocast", None: "fp32"}[amp]
    precision += ", channels-last" if args.channels_last else ""
    print(f"{args.config} at {args.input_size}px, batch {args.batch_size}, {precision}, {machine}: "
          f"median step {step * 1000:.0f} ms over {len(times) - 2} steps = {args.batch_size / step:.1f} "
          f"training images/s")


def main(argv=None) -> None:
    args = build_args(argv)
    try:
        benchmark(args) if args.benchmark else run(args)
    except TrainError as exc:
        sys.exit(f"error: {exc}")
    except KeyboardInterrupt:
        sys.exit("interrupted; the last finished epoch is in last.pt (continue with --resume)")


if __name__ == "__main__":
    main()

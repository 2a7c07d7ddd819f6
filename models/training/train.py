"""Train a pose network (CIR score map + QEM) on COCO-format keypoints: one CPU/GPU, or many with torchrun.
The command line and its schedule are described in ``models.training.args``; this module runs it."""
from __future__ import annotations

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

from models.checkpoint import save_checkpoint
from models.config import INFERENCE_FIELDS, LOSS_FIELDS
from models.evaluation.evaluate import evaluate_model, format_rho
from models.modeling.network import build_model
from models.provenance import training_meta
from models.training.args import AMP_CHOICES, build_args, inherit_shape, lr_milestones, model_overrides
from models.training.distributed import (DistInfo, all_gather_objects, average_buffers, barrier, cleanup,
                                         init_distributed, state_checksum)
from models.training.loaders import data_paths, make_loader
from models.training.loop import LossModule, amp_dtype, make_scaler, place_network, to_device, train_one_epoch, \
    train_step
from models.training.state import TrainError, load_weights, resume, training_state

__all__ = ["AMP_CHOICES", "TrainError", "amp_dtype", "build_args", "lr_milestones", "main", "model_overrides", "run"]


def validate(net, val, args, info: DistInfo) -> dict:
    """COCO AP and score/OKS Spearman of ``net`` on the validation set (rank 0 only; no flip, for speed)."""
    report, _ = evaluate_model(net, val[0], val[1], input_size=args.input_size, flip=False, device=info.device,
                               max_images=args.val_images_max, progress=False)
    return {"AP": report.ap, "AP50": report.ap50, "AR": report.ar, "spearman": report.spearman,
            "spearman_matched": report.spearman_matched}


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
        meta = training_meta(args) if info.is_main else {}
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
        loader, sampler = make_loader(train_paths[0], train_paths[1], args, info, args.seed,
                                      net.cfg.num_keypoints)
        out = Path(args.out)
        if info.is_main:
            out.mkdir(parents=True, exist_ok=True)
            print(f"training {args.config} at {args.input_size}px on {len(loader.dataset)} images, "
                  f"{info.world_size} process(es) on {info.device.type}, "
                  f"{format_epoch_range(start_epoch, args.epochs)}, "
                  f"{format_schedule(scheduler.base_lrs[0], sorted(scheduler.milestones.elements()), args.epochs)}",
                  flush=True)
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
                        save_checkpoint(out / "last.pt", net, extra=state, meta=meta)
                    if improved:
                        save_checkpoint(out / "best.pt", net, extra=state, meta=meta)
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
        if info.is_main and summary:
            print(format_saved(out, best, summary["epoch"], validated=val_paths is not None), flush=True)
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


def format_epoch_range(start: int, epochs: int) -> str:
    """The epochs this run trains, counted from 1 as the log counts them; ``start`` is the number already done."""
    if start >= epochs:
        return f"no epoch left ({start} of {epochs} done)"
    return f"epoch {epochs}" if start + 1 == epochs else f"epochs {start + 1}-{epochs}"


def format_schedule(lr: float, drops: list[int], epochs: int) -> str:
    """The learning-rate schedule in words. MultiStepLR multiplies the lr by 0.1 once epoch ``d`` of ``drops`` has
    ended (counted from 1), so epoch ``d + 1`` is the first at the lower lr; a drop at or past the last epoch changes
    nothing and is left out."""
    within = [d for d in drops if d < epochs]
    if not within:
        return f"lr {lr:g} (constant)"
    return f"lr {lr:g}, x0.1 after epoch{'s' if len(within) > 1 else ''} {', '.join(map(str, within))}"


def format_saved(out: Path, best: dict, last: int, validated: bool) -> str:
    """Where the checkpoints are: best.pt's epoch and metric (validation AP, or the lowest training loss without a
    validation set; ``best["metric"]`` holds minus the loss then) and last.pt's epoch."""
    if "epoch" not in best:
        return f"saved {out / 'last.pt'} (epoch {last})"
    metric = f"val AP {best['metric']:.4f}" if validated else f"loss {-best['metric']:.4f}"
    return f"saved {out / 'best.pt'} (epoch {best['epoch']}, {metric}) and last.pt (epoch {last})"


def format_epoch(s: dict) -> str:
    parts = [f"epoch {s['epoch']}", f"loss {s.get('loss', float('nan')):.4f}", f"lr {s['lr']:.2e}",
             f"{s['images_per_s']:.1f} img/s"]
    if "AP" in s:
        rho, matched = format_rho(s.get("spearman")), format_rho(s.get("spearman_matched"))
        parts += [f"val AP {s['AP']:.4f}", f"AP50 {s['AP50']:.4f}", f"Spearman {rho} (matched {matched})"]
    return " | ".join(parts)


def benchmark(args) -> None:
    """Print the median time of ``--benchmark`` optimiser steps (forward, losses, backward, Adam; ``--amp`` and
    ``--channels-last`` as in training; batches read beforehand, so data loading is not counted) after two warm-up
    steps, and the images/s it gives."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        info = init_distributed(args.device)
    except RuntimeError as exc:
        raise TrainError(str(exc)) from None
    (ann, images), _ = data_paths(args)
    net = build_model(args.config, **model_overrides(args)).train()
    amp = place_network(net, info.device, args)
    args.input_size = int(net.cfg.input_size)
    loader, _ = make_loader(ann, images, args, info, args.seed, net.cfg.num_keypoints)
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
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a == "--recipe" or a.startswith("--recipe=") for a in argv):  # a whole recipe: models.training.recipe
        from models.training.recipe import main as recipe_main

        return recipe_main(argv)
    args = build_args(argv)
    if args.nproc_per_node > 1 and "WORLD_SIZE" not in os.environ:  # not under torchrun yet: start the ranks
        from models.training.launch import launch, strip_nproc

        sys.exit(launch(strip_nproc(argv), args.nproc_per_node))
    from models.training.launch import report_error

    try:
        benchmark(args) if args.benchmark else run(args)
    except TrainError as exc:
        report_error(f"error: {exc}")
    except KeyboardInterrupt:
        if int(os.environ.get("RANK", "0")) == 0:
            sys.exit("interrupted; the last finished epoch is in last.pt (continue with --resume)")
        sys.exit(1)


if __name__ == "__main__":
    main()

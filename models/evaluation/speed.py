"""Size and CPU speed of the network configurations: parameters, FLOPs and forward time.

    qem speed [--configs tiny realtime] [--threads 2] [--repeats 20] [--size N] [--keypoint-heatmaps]
    qem speed --configs tiny --size 320 --encoder-blocks 2 --kpt-blocks 4    # a grown tiny (models.training.grow)
    qem speed --configs tiny --size 320 --amp bf16     # under bf16 autocast (offsets stay fp32)

FLOPs come from ``torch.utils.flop_counter`` (a multiply-add counts 2) for the dense stage at the config's
input size. Times are the median over ``--repeats`` runs after warm-up, batch 1, ``torch.inference_mode``:
``dense`` (backbone + heads) and ``infer`` (dense + ``kernels.decode`` on the torch backend + the sparse stage).
The machine's CPU model and thread count are printed with the figures.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from models.argtypes import OneLineParser
from models import build_model
from models.export.auto import cpu_model


def median_ms(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def measure(name: str, size: int | None, repeats: int, bf16: bool = False, **overrides) -> dict:
    net = build_model(name, **overrides).eval()
    size = size or net.cfg.input_size
    x = torch.randn(1, 3, size, size)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        with FlopCounterMode(display=False) as counter:
            net.dense(x)
        dense_ms = median_ms(lambda: net.dense(x), repeats)
        infer_ms = median_ms(lambda: net.infer(x, "torch"), repeats)
    return {"config": name, "input": size, "params_M": sum(p.numel() for p in net.parameters()) / 1e6,
            "gflops": counter.get_total_flops() / 1e9, "dense_ms": dense_ms, "infer_ms": infer_ms}


def main(argv=None) -> None:
    parser = OneLineParser(prog="qem speed", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["tiny", "realtime"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--size", type=int, default=None, help="input size (default: each config's own)")
    parser.add_argument("--keypoint-heatmaps", action="store_true",
                        help="with the keypoint heatmap head, and snapping (radius 2) in infer")
    parser.add_argument("--encoder-blocks", type=int, help="BasicBlocks per stride-8/16/32 level (tiny only)")
    parser.add_argument("--kpt-blocks", type=int, help="blocks per keypoint branch")
    parser.add_argument("--amp", choices=("off", "bf16"), default="off", help="bf16: time under bf16 autocast")
    args = parser.parse_args(argv)
    if args.encoder_blocks is not None and args.configs != ["tiny"]:
        parser.error("--encoder-blocks applies to the tiny backbone only; pass --configs tiny")
    torch.set_num_threads(args.threads)
    precision = "bf16 autocast" if args.amp == "bf16" else "fp32"
    print(f"machine: {cpu_model()}, torch {torch.__version__}, {args.threads} threads, {precision}, batch 1, "
          f"median of {args.repeats}")
    print(f"{'config':<10} {'input':>5} {'params(M)':>10} {'GFLOPs':>8} {'dense ms':>9} {'infer ms':>9}")
    overrides = {"keypoint_heatmaps": True, "snap_radius": 2} if args.keypoint_heatmaps else {}
    overrides.update({k: v for k, v in (("encoder_blocks", args.encoder_blocks), ("kpt_blocks", args.kpt_blocks))
                      if v is not None})
    for name in args.configs:
        r = measure(name, args.size, args.repeats, args.amp == "bf16", **overrides)
        print(f"{r['config']:<10} {r['input']:>5} {r['params_M']:>10.2f} {r['gflops']:>8.2f} {r['dense_ms']:>9.1f} "
              f"{r['infer_ms']:>9.1f}")


if __name__ == "__main__":
    main()

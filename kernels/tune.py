"""Launch-parameter sweep of the Triton decode on a GPU: pixel block size x warps, per map size.

    python -m kernels.tune [--sizes 64 128 256] [--blocks 512 1024 2048 4096] [--warps 4 8] [--repeats 200]
                           [--json out.json]

Each variant is first checked against the reference (same peaks and flat indices, scores within a few ulp;
keypoints and queries within fp16 rounding), then timed with CUDA events from an idle GPU, median of ``--repeats``
calls: replayed from a CUDA graph (the kernel's own time plus a graph launch) and launched from Python (plus the
wrapper's host time).
The shipped defaults are ``kernels.decode_triton.launch_config`` and ``LAUNCH_OPTIONS``; the table marks them.
Needs CUDA (the interpreter would time Python, not the kernel).
"""
from __future__ import annotations

import argparse
import json
import sys

import torch
import triton

from kernels.backend_checks import allocate_candidates, prepare_fused_inputs
from kernels.bench import BASE, captured, device_name, make_inputs, summary, time_cuda
from kernels.decode_ref import decode_ref


# Scores are sigmoid(logit) in fp32 and Triton's exp is ex2.approx: a few ulp from torch's (tests/kernels/helpers.py)
SCORE_RTOL = 2.0**-18


def matches_reference(got, want) -> bool:
    exact = all(torch.equal(getattr(got, f), getattr(want, f)) for f in ("valid", "indices"))
    exact = exact and torch.allclose(got.scores, want.scores, rtol=SCORE_RTOL, atol=0)
    close = all(torch.allclose(getattr(got, f).float(), getattr(want, f).float(), atol=2e-2, rtol=1e-2, equal_nan=True)
                for f in ("keypoints", "kpt_queries", "inst_queries"))
    return exact and close


def sweep(sizes, blocks, warps, repeats: int) -> list[dict]:
    from kernels.decode_triton import LAUNCH_OPTIONS, launch, launch_config

    rows = []
    for size in sizes:
        cfg = {**BASE, "size": size}
        raw = make_inputs(cfg, "cuda", torch.float16)
        num_kpts, ck, inputs = prepare_fused_inputs(*raw, "triton", cfg["people"], 3)
        want = decode_ref(*inputs, max_people=cfg["people"], threshold=0.1)
        default = launch_config(size, size, cfg["people"], cfg["channels"])
        for block in (b for b in blocks if b <= triton.next_power_of_2(size * size)):
            for num_warps in warps:
                meta = {**default, "BLOCK": block}
                options = {**LAUNCH_OPTIONS, "num_warps": num_warps}

                def call():
                    out = allocate_candidates(inputs[0], inputs[2], inputs[3], cfg["people"], num_kpts)
                    launch(inputs, out, num_kpts, ck, 0.1, 3, meta, options)
                    return out

                ok = matches_reference(call(), want)
                graph_us = summary(time_cuda(captured(call), repeats))[0] if ok else float("nan")
                python_us = summary(time_cuda(call, repeats))[0] if ok else float("nan")
                is_default = block == default["BLOCK"] and num_warps == LAUNCH_OPTIONS["num_warps"]
                rows.append({"size": size, "block": block, "num_warps": num_warps, "correct": ok,
                             "graph_us": graph_us, "python_us": python_us, "default": is_default})
                print(f"| {size}x{size} | {block} | {num_warps} | {'yes' if ok else 'NO'} | {graph_us:.1f} | "
                      f"{python_us:.1f} |{' default' if is_default else ''}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kernels.tune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--blocks", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--warps", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", metavar="PATH", help="write the rows as JSON")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("error: kernels.tune times the Triton kernel on a GPU and needs CUDA; on the CPU use "
                 "qem bench-decode")
    bad = [b for b in args.blocks + args.warps if b < 1 or b & (b - 1)]
    if bad:
        sys.exit(f"error: --blocks and --warps take powers of two, got {bad[0]}")
    name = device_name()
    print(f"# Triton decode launch sweep on {name}, torch {torch.__version__}, triton {triton.__version__}: "
          f"batch 1, {BASE['people']} people, {BASE['channels']} channels, fp16, median us of {args.repeats}")
    print("| map | BLOCK | warps | correct | in CUDA graph | from Python |\n|---|---|---|---|---|---|")
    rows = sweep(args.sizes, args.blocks, args.warps, args.repeats)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"device": name, "torch": torch.__version__, "triton": triton.__version__, "rows": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()

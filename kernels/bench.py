"""Micro-benchmarks of the decode backends: median microseconds per call, the device named in every table.

    qem bench-decode [--quick] [--json out.json] [--plot out.png] [--repeats 200] [--threads 2]

On a CUDA device: the eager torch reference, triton, cupy (when installed), each fused backend captured in a
CUDA graph, and two baselines, an empty Triton kernel launched from Python and an empty kernel replayed in a CUDA
graph; each call is timed with CUDA events from an idle GPU (launch cost included), after warm-up. Without a GPU:
the torch backend on the CPU (``--threads`` torch threads, wall clock); the GPU rows need a GPU.
Sweeps, one factor at a time around 128x128, 30 people, 32 channels (Ck = Ci), batch 1, K = 17: map size
64..256, max_people 20..100, channels 16..256, batch 1..16; plus the CPU target point 80x80, 30 people.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass

import torch
import triton

import kernels
from models.argtypes import OneLineParser

NUM_KPTS = 17
BASE = {"size": 128, "people": 30, "channels": 32, "batch": 1}
SWEEPS = {"size": (64, 128, 256), "people": (20, 50, 100), "channels": (16, 64, 256), "batch": (1, 4, 16)}
QUICK_SWEEPS = {"size": (64, 96), "people": (20, 50), "channels": (16, 32), "batch": (1, 2)}
CPU_TARGET = {"size": 80, "people": 30, "channels": 32, "batch": 1}


@dataclass
class Row:
    device: str
    backend: str
    sweep: str
    dtype: str
    batch: int
    size: int
    people: int
    channels: int
    median_us: float
    min_us: float
    repeats: int


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    from models.export.auto import cpu_model

    threads = torch.get_num_threads()
    return (f"{os.cpu_count()}-core {platform.machine()} CPU ({cpu_model()}), no GPU, "
            f"{threads} torch thread{'s' * (threads != 1)}")


def make_inputs(cfg: dict, device: str, dtype: torch.dtype, seed: int = 0):
    """A CIR-like score map: -6 logits with one Gaussian blob (peak logit 0..4, sigma 2 px) per person, plus noise."""
    g = torch.Generator().manual_seed(seed)
    b, s, c, n = cfg["batch"], cfg["size"], cfg["channels"], cfg["people"]
    ys, xs = torch.arange(s).view(1, 1, s, 1), torch.arange(s).view(1, 1, 1, s)
    cy, cx = (torch.rand(2, b, n, 1, 1, generator=g) * s).unbind(0)
    heights = torch.rand(b, n, 1, 1, generator=g) * 4 + 6
    blobs = heights * torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / 8.0)
    score = (blobs.amax(1, keepdim=True) - 6.0 + 0.05 * torch.randn(b, 1, s, s, generator=g))
    tensors = (score, torch.randn(b, 2 * NUM_KPTS, s, s, generator=g) * 4,
               torch.randn(b, NUM_KPTS * c, s, s, generator=g), torch.randn(b, c, s, s, generator=g))
    return tuple(t.to(device=device, dtype=dtype) for t in tensors)


def time_cpu(fn, repeats: int) -> list[float]:
    for _ in range(max(3, repeats // 10)):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


def time_cuda(fn, repeats: int) -> list[float]:
    for _ in range(max(5, repeats // 10)):
        fn()
    pairs = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        pairs.append((start, end))
    torch.cuda.synchronize()
    return [s.elapsed_time(e) * 1e3 for s, e in pairs]


def summary(samples_us: list[float]) -> tuple[float, float]:
    """(median, minimum) in microseconds, rounded to 0.01."""
    return round(statistics.median(samples_us), 2), round(min(samples_us), 2)


def captured(fn):
    """``fn`` captured in a CUDA graph (warmed up on a side stream first); returns the replay."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


@triton.jit
def _empty_kernel(x_ptr):
    pass


def empty_launch():
    """A Triton kernel that does nothing, launched from Python: the floor of any Python-launched kernel."""
    marker = torch.empty(1, device="cuda")
    return lambda: _empty_kernel[(1,)](marker)


def gpu_backends(inputs, args) -> dict:
    calls = {name: (lambda name=name: kernels.decode(*inputs, backend=name, **args))
             for name in ("torch", "triton", "cupy")}
    try:
        calls["cupy"]()
    except RuntimeError as exc:  # cupy not installed: say so once in the table
        print(f"note: {exc}", file=sys.stderr)
        del calls["cupy"]
    for name in [n for n in ("triton", "cupy") if n in calls]:
        try:
            calls[f"{name} in CUDA graph"] = captured(calls[name])
        except RuntimeError as exc:  # a failed capture leaves the row out and says why, the other rows still run
            print(f"note: {name} could not be captured in a CUDA graph: {exc}", file=sys.stderr)
    return calls


def run(sweeps: dict, repeats: int, threads: int, rows: list[Row]) -> str:
    """Append one Row per (config, backend) to ``rows`` as they are measured; returns the device name."""
    cuda = torch.cuda.is_available()
    if not cuda:
        torch.set_num_threads(threads)
    device, dtype = ("cuda", torch.float16) if cuda else ("cpu", torch.float32)
    name = device_name()
    configs = [("cpu target", CPU_TARGET)] + [(key, {**BASE, key: value}) for key, values in sweeps.items()
                                              for value in values]
    if cuda:
        empty = empty_launch()
        baselines = {"empty triton launch": empty, "empty kernel in CUDA graph": captured(empty)}
        for backend, fn in baselines.items():
            rows.append(Row(name, backend, "baseline", "-", 0, 0, 0, 0, *summary(time_cuda(fn, repeats)), repeats))
    for sweep, cfg in configs:
        inputs = make_inputs(cfg, device, dtype)
        args = {"max_people": cfg["people"], "threshold": 0.1}
        calls = gpu_backends(inputs, args) if cuda else {"torch": lambda: kernels.decode(*inputs, backend="torch",
                                                                                        **args)}
        for backend, fn in calls.items():
            samples = time_cuda(fn, repeats) if cuda else time_cpu(fn, repeats)
            rows.append(Row(name, backend, sweep, str(dtype).replace("torch.", ""), cfg["batch"], cfg["size"],
                            cfg["people"], cfg["channels"], *summary(samples), repeats))
    return name


def print_tables(name: str, rows: list[Row]) -> None:
    print(f"# decode micro-benchmarks on {name} (1-min load average {os.getloadavg()[0]:.2f})")
    for sweep in dict.fromkeys(r.sweep for r in rows):
        print(f"\n## {sweep} -- {name}, torch {torch.__version__}, K={NUM_KPTS}, median us per call")
        print("| backend | dtype | batch | map | people | channels | median us | min us |\n" + "|---" * 8 + "|")
        for r in (r for r in rows if r.sweep == sweep):
            print(f"| {r.backend} | {r.dtype} | {r.batch} | {r.size}x{r.size} | {r.people} | {r.channels} | "
                  f"{r.median_us:.1f} | {r.min_us:.1f} |")
    if not torch.cuda.is_available():
        print("\nGPU rows (triton, cupy, CUDA graph, empty launch) need a CUDA device: run qem bench-decode "
              "on a GPU machine.")
        return
    # The base configuration (batch 1 of the batch sweep) against the baselines.
    at_base = {r.backend: r.median_us for r in rows if (r.sweep == "batch" and r.batch == 1) or r.sweep == "baseline"}
    needed = ("torch", "triton", "triton in CUDA graph", "empty triton launch", "empty kernel in CUDA graph")
    if not all(b in at_base for b in needed):
        return
    eager, fused, graph, empty, empty_graph = (at_base[b] for b in needed)
    print(f"\nbatch 1, {BASE['size']}x{BASE['size']} on {name}: eager/triton = {eager / fused:.1f}x, eager/graph = "
          f"{eager / graph:.1f}x (target >= 20x); triton/empty launch = {fused / empty:.2f}x, graph/empty graph = "
          f"{graph / empty_graph:.2f}x (target <= 2x)")


def plot(rows: list[Row], name: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweeps = [s for s in SWEEPS if any(r.sweep == s for r in rows)]
    fig, axes = plt.subplots(1, len(sweeps), figsize=(4 * len(sweeps), 3.5), squeeze=False)
    for ax, sweep in zip(axes[0], sweeps):
        for backend in dict.fromkeys(r.backend for r in rows if r.sweep == sweep):
            pts = [(getattr(r, sweep), r.median_us) for r in rows if r.sweep == sweep and r.backend == backend]
            ax.plot(*zip(*pts), marker="o", label=backend)
        for r in (r for r in rows if r.sweep == "baseline"):
            ax.axhline(r.median_us, linestyle="--", linewidth=0.8, color="gray")
        ax.set(xlabel=sweep, ylabel="median us per call", yscale="log", title=f"{sweep} sweep")
        ax.legend(fontsize=7)
    fig.suptitle(f"decode on {name}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="qem bench-decode", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small grid (seconds)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per row (default 200, quick 20)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on the CPU (default 2)")
    parser.add_argument("--json", metavar="PATH", help="write the rows as JSON")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG plot (matplotlib)")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        sys.exit("error: --repeats must be >= 1")
    if args.threads < 1:
        sys.exit("error: --threads must be >= 1")
    repeats = args.repeats or (20 if args.quick else 200)
    rows: list[Row] = []
    try:
        name = run(QUICK_SWEEPS if args.quick else SWEEPS, repeats, args.threads, rows)
    except KeyboardInterrupt:
        if not rows:
            sys.exit("error: interrupted before the first row")
        name = rows[0].device
        print(f"interrupted: writing the {len(rows)} rows measured so far", file=sys.stderr)
    print_tables(name, rows)
    if args.json:
        meta = {"device": name, "torch": torch.__version__, "python": platform.python_version(),
                "cuda": torch.cuda.is_available(), "threads": torch.get_num_threads(), "num_kpts": NUM_KPTS,
                "load_average_1min": os.getloadavg()[0]}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({**meta, "rows": [asdict(r) for r in rows]}, f, indent=1)
    if args.plot:
        plot(rows, name, args.plot)


if __name__ == "__main__":
    main()

"""Forward time of each backend x precision on one CPU, alternating in one run (``python -m models.export.speed``).

    python -m models.export.speed --threads 2 --shapes 192x320 320x320 --rounds 15

Each round runs every runtime in turn on the same random batch (after warm-up): one untimed call, so that the
previous runtime's worker threads have gone idle, then one timed call; a busy machine slows them alike. The table
gives the median ms and the ratio to torch fp32. "torch dense" is the dense stage alone (backbone + heads),
"openvino dense" the same exported alone (as ``qem export`` traces it); every other row is the whole graph (dense,
decode, sparse stage), one inference at a time. Exported twins come from the cache of ``models.export.auto``;
``--int8 DIR`` adds an int8 OpenVINO export.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from models.argtypes import OneLineParser
from models.export.formats import installed
from models.export.rewrite import pair_keypoint_groups
from models.export.runtime import cpu_has_bf16, load_runtime


class DenseOnly(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        d = self.net.dense(x)
        return d.score, d.offsets, d.kfeat, d.ifeat


def openvino_dense(net, threads: int) -> dict:
    """The dense stage alone in OpenVINO (f32 and default precision), one compiled model per input shape."""
    import tempfile
    import warnings

    import openvino as ov

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        path = f"{tmp}/dense.onnx"
        torch.onnx.export(DenseOnly(pair_keypoint_groups(net)), (torch.randn(1, 3, 64, 64),), path,
                          input_names=["x"], dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}}, opset_version=17,
                          dynamo=False)
        model = ov.convert_model(path)
    core = ov.Core()
    calls = {}
    for precision, extra in (("fp32", {"INFERENCE_PRECISION_HINT": "f32"}), ("bf16", {})):
        compiled: dict = {}

        def call(x, extra=extra, compiled=compiled):
            req = compiled.get(tuple(x.shape))
            if req is None:
                m = model.clone()
                m.reshape({0: list(x.shape)})
                config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, **extra}
                req = compiled[tuple(x.shape)] = core.compile_model(m, "CPU", config).create_infer_request()
            req.infer({0: x.numpy()})
        calls[f"openvino dense {precision}"] = call
    return calls


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m models.export.speed", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", help="checkpoint (default: the bundled one)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--shapes", nargs="+", default=["192x320", "320x320"], help="HxW input shapes")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--int8", help="an int8 OpenVINO export (folder) to time too")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rts = {"torch fp32": load_runtime(args.weights, "torch", "fp32")}
    if cpu_has_bf16():
        rts["torch bf16"] = load_runtime(args.weights, "torch", "bf16")
    if installed("onnxruntime"):
        rts["onnxruntime fp32"] = load_runtime(args.weights, "onnxruntime", threads=args.threads)
    if installed("openvino"):
        rts["openvino fp32"] = load_runtime(args.weights, "openvino", "fp32", threads=args.threads)
        rts["openvino bf16"] = load_runtime(args.weights, "openvino", "bf16", threads=args.threads)
        if args.int8:
            rts["openvino int8"] = load_runtime(args.int8, "openvino", "bf16", threads=args.threads)
    net = rts["torch fp32"].net
    calls = {"torch dense fp32": lambda x: net.dense(x)}
    if installed("openvino"):
        calls.update(openvino_dense(net, args.threads))
    if "torch bf16" in rts:
        def dense_bf16(x):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return net.dense(x)
        calls["torch dense bf16"] = dense_bf16
    calls.update(rts)
    for shape in args.shapes:
        h, w = map(int, shape.split("x"))
        x = torch.randn(1, 3, h, w)
        times: dict[str, list[float]] = {name: [] for name in calls}
        with torch.inference_mode():
            for _ in range(3):
                for fn in calls.values():
                    fn(x)
            for _ in range(args.rounds):
                for name, fn in calls.items():
                    fn(x)  # untimed: lets the previous runtime's worker threads go idle first
                    t0 = time.perf_counter()
                    fn(x)
                    times[name].append((time.perf_counter() - t0) * 1e3)
        base = statistics.median(times["torch fp32"])
        print(f"1x3x{h}x{w}, {args.threads} threads, median of {args.rounds} alternating rounds")
        for name, values in times.items():
            ms = statistics.median(values)
            print(f"  {name:<18} {ms:8.1f} ms   x{base / ms:4.1f} vs torch fp32 forward")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``qem export``: a checkpoint -> one self-contained ONNX file or OpenVINO folder running the whole inference graph
(dense stage, top-k decode, sparse stage; ``models.export.graph``). Nothing stays in PyTorch but preprocessing
(letterbox, normalise) and postprocessing (to image pixels, pose NMS), which ``Predictor`` runs for every backend.

    qem export --format onnx                                the bundled checkpoint, 320x320 -> ./tiny_synth.onnx
    qem export --weights best.pt --format openvino --dynamic    any multiples of 32 -> best_openvino/
    qem export --format openvino --imgsz 192 320 --int8 --calib data/synth   NNCF int8 (calibration images)
    qem export --weights best.pt --format openvino --int8 --calib data/synth --ap-data data/synth_val --twin
        best.pt's int8 twin for --backend auto: dynamic, its AP and fp32's on --ap-data recorded, in the cache

Batch is always dynamic; ``--dynamic`` makes height and width dynamic too (OpenVINO then compiles one model per
input shape at first use). Opset 17, TorchScript exporter (``dynamo=False``). The graph is traced after
``models.export.rewrite.pair_keypoint_groups`` (same outputs, about a quarter less time on a CPU). Files are
written atomically.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from models.argtypes import OneLineParser
from models.export.formats import (EXPORT_FORMATS, EXTRA, FORMATS, META_KEY, ExportError, ExportUsageError,
                                   Metadata, require)
from models.export.graph import InferenceGraph, output_names
from models.export.rewrite import pair_keypoint_groups

OPSET = 17
REVISION = 6  # bump when the exported graph changes: cached twins are then exported again


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("qem-pose")
    except PackageNotFoundError:
        return "checkout"


def parse_imgsz(values, default: int) -> tuple[int, int]:
    """``None`` -> (default, default); ``[S]`` -> (S, S); ``[H, W]`` -> (H, W); each a positive multiple of 32."""
    vals = [default] if not values else [int(v) for v in values]
    if len(vals) not in (1, 2):
        raise ExportUsageError(f"--imgsz takes one size or H W, got {len(vals)} values")
    h, w = (vals[0], vals[0]) if len(vals) == 1 else vals
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise ExportUsageError(f"--imgsz must be positive multiples of 32, got {h}x{w} (H x W)")
    return h, w


def default_out(weights: Path, fmt: str, bundled: bool) -> Path:
    """``NAME.onnx`` / ``NAME_openvino`` beside the weights; for the bundled checkpoint, in the current folder."""
    name = weights.stem + EXPORT_FORMATS[fmt].suffix
    return Path(name) if bundled else weights.with_name(name)


def _log_sigmoid(g, x):
    """``log sigmoid(x) = min(x, 0) - log1p(exp(-|x|))`` with an accurate log1p (``u log(w) / (w - 1)``, w = 1 + u).
    The default export, ``Log(Sigmoid(x))``, loses the low digits near p = 1, which keypoint snapping's parabola
    through three log-probabilities amplifies (tests/models/export/test_runtime.py)."""
    u = g.op("Exp", g.op("Neg", g.op("Abs", x)))
    w = g.op("Add", u, g.op("Constant", value_t=torch.tensor(1.0)))
    wm1 = g.op("Sub", w, g.op("Constant", value_t=torch.tensor(1.0)))
    one = g.op("Equal", wm1, g.op("Constant", value_t=torch.tensor(0.0)))
    safe = g.op("Where", one, g.op("Constant", value_t=torch.tensor(1.0)), wm1)
    log1p = g.op("Where", one, u, g.op("Div", g.op("Mul", u, g.op("Log", w)), safe))
    return g.op("Sub", g.op("Min", x, g.op("Constant", value_t=torch.tensor(0.0))), log1p)


def _trace_onnx(graph: InferenceGraph, path: Path, imgsz: tuple[int, int], dynamic: bool) -> None:
    names = graph.names
    axes = {"x": {0: "batch", 2: "height", 3: "width"} if dynamic else {0: "batch"}}
    axes.update({n: {0: "batch"} for n in names})
    example = torch.randn(1, 3, *imgsz)
    torch.onnx.register_custom_op_symbolic("aten::log_sigmoid", _log_sigmoid, OPSET)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic, checked by the tests instead
            torch.onnx.export(graph, (example,), str(path), input_names=["x"], output_names=names,
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::log_sigmoid", OPSET)


def export(weights: str | Path | None = None, format: str = "onnx", imgsz=None, dynamic: bool = False,
           int8: bool = False, calib: str | Path | None = None, out: str | Path | None = None,
           calib_images: int = 300, quiet: bool = False) -> Path:
    """Export the checkpoint ``weights`` (None: the bundled one); returns the written file or folder."""
    from models import DEFAULT_CHECKPOINT
    from models.checkpoint import load_checkpoint

    if format not in EXPORT_FORMATS:
        raise ExportUsageError(f"unknown format {format!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    fmt = EXPORT_FORMATS[format]
    asked = {"int8": int8, "calib": calib is not None}
    refused = [a for a, on in asked.items() if on and a not in fmt.args]
    if refused:
        raise ExportUsageError(f"format {format!r} does not take --{refused[0]} (it takes: "
                          f"{', '.join('--' + a for a in fmt.args)})")
    if int8 and calib is None:
        raise ExportUsageError("--int8 needs --calib DIR (images, e.g. a `qem synth` folder) to calibrate on")
    require("onnxruntime" if format == "onnx" else "openvino")  # what runs it; exporting needs onnx too
    if importlib.util.find_spec("onnx") is None:
        raise ExportError(f"exporting needs the 'onnx' package, which is not installed: pip install -e .[{EXTRA}]")
    bundled = weights is None
    weights = Path(weights) if weights is not None else Path(DEFAULT_CHECKPOINT)
    net = load_checkpoint(weights)
    size = parse_imgsz(imgsz, net.cfg.input_size)
    out = Path(out) if out is not None else default_out(weights, format, bundled)
    meta = Metadata(config=asdict(net.cfg), imgsz=size, dynamic=dynamic, precision="int8" if int8 else "fp32",
                    outputs=output_names(net.cfg.labelled_head), checkpoint_sha256=sha256(weights),
                    args={"format": format, "imgsz": list(size), "dynamic": dynamic, "int8": int8,
                          "calib": None if calib is None else str(calib), "opset": OPSET,
                          "revision": REVISION},
                    kpt_shape=(net.cfg.num_keypoints, 2), pose_score=net.cfg.pose_score,
                    package_version=package_version(),
                    date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    try:
        onnx_path = work / "model.onnx"
        _trace_onnx(InferenceGraph(pair_keypoint_groups(net)), onnx_path, size, dynamic)
        if format == "onnx":
            import onnx
            model = onnx.load(str(onnx_path))
            entry = model.metadata_props.add()
            entry.key, entry.value = META_KEY, meta.to_json()
            onnx.save(model, str(onnx_path))
            os.replace(onnx_path, out)
        else:
            import openvino as ov
            model = ov.convert_model(str(onnx_path))
            if int8:
                from models.export.quantize import quantize_openvino
                model = quantize_openvino(model, calib, size, calib_images)
            model.set_rt_info(meta.to_json(), META_KEY)
            folder = work / "folder"
            ov.save_model(model, str(folder / "model.xml"), compress_to_fp16=False)
            if out.exists():
                shutil.rmtree(out) if out.is_dir() else out.unlink()
            os.replace(folder, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not quiet:
        shape = "dynamic H, W" if dynamic else f"{size[0]}x{size[1]} (H x W)"
        print(f"exported {weights.name} -> {out} ({format}, {shape}, {meta.precision})", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="qem export", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", help="checkpoint file (default: the bundled one)")
    p.add_argument("--format", default="onnx", choices=list(EXPORT_FORMATS))
    p.add_argument("--imgsz", type=int, nargs="+", metavar="PX",
                   help="input size: S (square) or H W (default: the checkpoint's input size)")
    p.add_argument("--dynamic", action="store_true", help="any input height and width (multiples of 32)")
    p.add_argument("--int8", action="store_true", help="int8 post-training quantization (openvino, NNCF)")
    p.add_argument("--calib", help="calibration images for --int8: a folder of images or a `qem synth` folder")
    p.add_argument("--calib-images", type=int, default=300, help="how many calibration images (default: 300)")
    p.add_argument("--twin", action="store_true",
                   help="with --int8: write the checkpoint's int8 twin into the cache, where --backend auto "
                        "considers it (dynamic; needs --ap-data: auto runs int8 only within 0.02 AP of fp32)")
    p.add_argument("--ap-data", metavar="DIR", help="--twin: an annotated `qem synth`-style folder to measure AP on")
    p.add_argument("--ap-images", type=int, default=500, help="--twin: images of --ap-data (default: 500)")
    p.add_argument("--out", help="output file / folder (default: beside the weights, the bundled one's in the "
                                 "current folder; "
                                 + ", ".join(f"{f.name}: NAME{f.suffix}" for f in FORMATS.values() if f.name) + ")")
    args = p.parse_args(argv)
    from models.checkpoint import CheckpointError
    from models.data.paths import DataPathError
    try:
        if args.twin or args.ap_data:
            twin(args)
        else:
            export(args.weights, args.format, args.imgsz, args.dynamic, args.int8, args.calib, args.out,
                   args.calib_images)
    except (ExportError, CheckpointError, DataPathError, OSError, ValueError) as exc:
        print(f"error: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}",
              file=sys.stderr)
        return 2 if isinstance(exc, ExportUsageError) else 1  # options that do not go together / what fails
    return 0


def twin(args) -> Path:
    """``--twin``: the checkpoint's int8 twin with its AP recorded, in the cache (``models.export.int8``)."""
    from models import DEFAULT_CHECKPOINT
    from models.data.paths import resolve_data
    from models.export.int8 import ap_drops, build_twin, read_metadata
    from models.export.quantize import calibration_files

    if not (args.twin and args.int8 and args.calib and args.ap_data):
        raise ExportUsageError("--twin needs --int8, --calib DIR and --ap-data DIR (--ap-data only goes with --twin)")
    if args.format != "openvino" or args.imgsz or args.out:
        raise ExportUsageError("--twin writes a dynamic OpenVINO model into the cache: drop --format other than "
                          "openvino, --imgsz and --out")
    resolve_data(args.ap_data, None, None)  # a missing or foreign folder fails here, before the export
    weights = Path(args.weights or DEFAULT_CHECKPOINT)
    calibration = Path(args.calib)
    calibration_files(calibration, 1)
    path = build_twin(weights, calibration, Path(args.ap_data), args.calib_images, args.ap_images)
    drops = ap_drops(read_metadata(path).accuracy)
    print(f"int8 twin of {weights.name} -> {path} (AP against fp32 on {args.ap_data}: "
          + ", ".join(f"{p} {-d:+.4f}" for p, d in drops.items() if p != "fp32") + ")", file=sys.stderr)
    return path


if __name__ == "__main__":
    sys.exit(main())

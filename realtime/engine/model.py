"""Loading the network for the pipeline: the checkpoint given, else the bundled one, else (with one warning line)
an untrained model of the requested config. Returns a ready ``Engine``."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from realtime.engine.stage import Engine


def cpu_threads(requested: int | None, exported: bool = False) -> int:
    """Intra-op threads for CPU inference: the request; else, for an exported runtime (``exported``), every usable
    core (OpenVINO and ONNX Runtime wait without spinning: on a 2-core machine two OpenVINO threads gave 95-102 fps
    end to end on the bundled clip against 69-77 with one); else, for eager PyTorch, all cores but one (left to
    capture, encoding and the other stages; there one thread was 1.6x faster end to end than two, and it removed
    second-long stalls of the forward when the cores were contended)."""
    if requested:
        return max(1, requested)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores if exported else cores - 1)


def is_exported(weights: str | None) -> bool:
    """Whether ``--weights`` names an exported model (an ``.onnx`` file, an OpenVINO ``.xml`` or folder)."""
    return weights is not None and (Path(weights).is_dir() or Path(weights).suffix in (".onnx", ".xml"))


def exported_runtime_possible(backend: str, weights: str | None) -> bool:
    """Whether the pipeline may run an exported runtime: asked for, an exported model given, or ``auto`` with one
    installed."""
    import importlib.util

    if backend in ("onnxruntime", "openvino") or is_exported(weights):
        return True
    return backend == "auto" and any(importlib.util.find_spec(m) for m in ("openvino", "onnxruntime"))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available here; use --device cpu")
    return device


def load_network(weights: str | None, fallback: str = "tiny"):
    """A PoseNet from ``weights``; ``None`` means the bundled checkpoint, replaced by an untrained ``fallback``
    (with a warning) only when that file is missing. Raises ``models.CheckpointError`` for a bad file."""
    import models

    if weights is not None:
        return models.load_checkpoint(weights)
    path = Path(models.DEFAULT_CHECKPOINT)
    if path.is_file():
        return models.load_checkpoint(path)
    print(f"warning: bundled checkpoint {path} is missing; using an UNTRAINED {fallback!r} model "
          f"(poses will be meaningless; pass --weights FILE)", file=sys.stderr)
    torch.manual_seed(0)
    return models.build_model(fallback)


def infer_streams(requested: int | None, threads: int, at_full_speed: bool) -> int:
    """OpenVINO inference streams: the request; else 2 for files read at full speed (``at_full_speed``; throughput:
    two one-thread inferences at once beat one two-thread inference, whose threads wait on each other at every
    layer) when there are 2+ threads, and 1 for live sources and paced files (the lowest latency of each frame)."""
    if requested is not None:
        return requested
    return 2 if at_full_speed and threads >= 2 else 1


def load_engine(args, num_streams: int = 1, at_full_speed: bool = False,
                first_frame: tuple[int, int] | None = None) -> Engine:
    """Engine from parsed CLI arguments (``weights``, ``model``, ``imgsz``, ``device``, ``half``, ``compile``,
    ``cuda_graphs``, ``threads``, ``infer_streams``); ``at_full_speed``: every source a file read at full speed,
    nothing live or paced (throughput matters, not latency); ``first_frame``: (H, W) of the run's first frame, where
    known (``realtime.sources.first_frame``): ``--backend auto`` measures at its canvas."""
    import models

    device = pick_device(args.device)
    if device.type == "cpu":
        exported = exported_runtime_possible(getattr(args, "backend", "torch"), args.weights)
        torch.set_num_threads(cpu_threads(getattr(args, "threads", None), exported))
    streams = infer_streams(getattr(args, "infer_streams", None), torch.get_num_threads(), at_full_speed)
    half = args.half
    if half and device.type != "cuda":
        print("warning: --half needs a CUDA device; running in fp32 on the CPU", file=sys.stderr)
        half = False
    backend, precision = getattr(args, "backend", "torch"), getattr(args, "precision", None)
    if device.type != "cpu" and backend == "auto":
        backend = "torch"  # the exported runtimes run on the CPU here
    if backend == "torch" and device.type == "cpu" and precision is None and hasattr(args, "backend"):
        from models.export.runtime import default_precision
        precision = default_precision("torch")  # bf16 autocast on CPUs with bf16 instructions
    bundled_missing = args.weights is None and not Path(models.DEFAULT_CHECKPOINT).is_file()
    exported = is_exported(args.weights)
    if not exported and (bundled_missing or (backend == "torch" and precision in (None, "fp32"))):
        try:
            net = load_network(args.weights, args.model)
        except models.CheckpointError as exc:
            raise ValueError(str(exc)) from None
        predictor = models.Predictor(net, device=str(device), input_size=args.imgsz, half=half,
                                     rect=getattr(args, "rect", True))
    else:  # models.export.runtime: an exported model, or the checkpoint in the backend auto measured fastest
        try:
            predictor = models.Predictor(args.weights, device=str(device), input_size=args.imgsz, half=half,
                                         backend=backend, precision=precision, rect=getattr(args, "rect", True),
                                         streams=streams, first_frame=first_frame)
        except models.CheckpointError as exc:
            raise ValueError(str(exc)) from None
        if backend != "auto" or exported:  # auto on a checkpoint says its own line (models.export.auto)
            print(f"backend: {predictor.runtime.backend} {predictor.runtime.precision}"
                  + (f" ({args.weights})" if exported else ""), file=sys.stderr)
    if predictor.streams > 1:
        print(f"inference: {predictor.streams} OpenVINO streams sharing {torch.get_num_threads()} threads, "
              f"{predictor.in_flight} frames in flight", file=sys.stderr)
    elif (getattr(args, "infer_streams", None) or 1) > 1:
        print("warning: --infer-streams applies to the OpenVINO backend; this one runs one forward at a time",
              file=sys.stderr)
    return Engine(predictor, predictor.input_size, device, half=half, compile=args.compile,
                  cuda_graphs=args.cuda_graphs, static_batch=num_streams)

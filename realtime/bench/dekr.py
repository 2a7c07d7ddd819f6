"""DEKR's weights in this pipeline against DEKR's own inference code, side by side on this CPU.

    qem bench --sections dekr --dekr-weights pose_dekr_hrnetw32_coco.pth --dekr-root <DEKR> --dekr-python <PY>

Both sides run the same weights (the authors' file; ours imported with ``qem import dekr``) on the bundled clip's first
frame, single scale, no flip, at each ``--dekr-sizes`` short side:

- DEKR: its ``lib/`` code in another interpreter ``--dekr-python`` (torch + torchvision, which has no build for this
  project's CPU torch): ``resize_align_multi_scale``, ImageNet normalisation, the network, ``get_multi_stage_outputs``,
  ``aggregate_results`` and ``pose_nms`` (``realtime/bench/dekr_reference.py``; nothing of DEKR's is in this project);
- ours: the Predictor as ``qem predict`` builds it (``--backend auto``: the fastest runtime measured here), one frame
  at a time, and the pipeline's frames a second on the whole clip (several frames in flight, no files written).

Rounds alternate the two sides (``--rounds``); each figure is the median of its rounds' medians. Speed does not depend
on the weights' values, so a file of random weights in the authors' layout measures the same
(``tests/models/imports/dekr_parity.py reference`` writes one).
"""
from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REFERENCE = Path(__file__).with_name("dekr_reference.py")


def dekr_side(python: str, root: str, weights: Path, frame_path: Path, size: int, repeats: int, threads: int,
              data: str) -> list[float]:
    """Per-frame milliseconds of DEKR's own code (a subprocess; its start-up is not timed)."""
    proc = subprocess.run([python, str(REFERENCE), "--dekr-root", root, "--weights", str(weights), "--frame",
                           str(frame_path), "--size", str(size), "--repeats", str(repeats), "--threads", str(threads),
                           "--data", data], capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"DEKR's code failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr else '?'}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["ms"]


def pipeline_fps(engine, frames: int) -> float:
    """Frames a second of the pipeline on the first ``frames`` frames of the bundled clip (read at full speed,
    several in flight, nothing written), from the first result to the last."""
    from realtime.bench.measure import run_pipeline
    from realtime import BUNDLED_CLIP
    from realtime.sources.readers import parse_source

    pipeline, wall = run_pipeline(engine, [parse_source(str(BUNDLED_CLIP))], max_frames=frames, save_mp4=False,
                                  save_jsonl=False)
    return pipeline.metrics.as_dict()["frames_out"] / wall


def run_dekr_section(weights: str, root: str, python: str, sizes: list[int], rounds: int, repeats: int,
                     threads: int) -> dict:
    import numpy as np

    from models.imports.dekr import import_dekr
    from realtime.bench.measure import first_frame

    if not (Path(root) / "lib" / "models" / "hrnet_dekr.py").is_file():
        raise RuntimeError(f"{root}: not a checkout of DEKR's repository (no lib/models/hrnet_dekr.py)")
    frame = first_frame()
    with tempfile.TemporaryDirectory(prefix="bench-dekr-") as tmp:
        work = Path(tmp)
        np.save(work / "frame.npy", frame)
        return _compare(import_dekr(weights, work / "dekr.pt"), work / "frame.npy", frame, weights, root, python,
                        sizes, rounds, repeats, threads)


def _compare(checkpoint: Path, frame_path: Path, frame, weights: str, root: str, python: str, sizes: list[int],
             rounds: int, repeats: int, threads: int) -> dict:
    from realtime.bench.deploy import build_engine

    data = "crowdpose" if "crowd" in Path(weights).name else "coco"
    results = {}
    for size in sizes:
        engine = build_engine(["--weights", str(checkpoint), "--threads", str(threads), "--imgsz", str(size)])
        for _ in range(2):  # an exported model compiles for each new input shape on its first frame
            engine.predictor.predict([frame])
        samples: dict[str, list[float]] = {"dekr_ms": [], "ours_ms": [], "ours_fps": []}
        for _ in range(rounds):
            samples["dekr_ms"].append(statistics.median(
                dekr_side(python, root, Path(weights), frame_path, size, repeats, threads, data)))
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                engine.predictor.predict([frame])
                times.append((time.perf_counter() - t0) * 1e3)
            samples["ours_ms"].append(statistics.median(times))
            samples["ours_fps"].append(pipeline_fps(engine, frames=8 * repeats))
        s = {k: statistics.median(v) for k, v in samples.items()}
        s["dekr_fps"] = 1e3 / s["dekr_ms"]
        s["speedup_one_frame"] = s["dekr_ms"] / s["ours_ms"]
        s["speedup_pipeline"] = s["ours_fps"] / s["dekr_fps"]
        s["backend"] = f"{engine.predictor.runtime.backend} {engine.predictor.runtime.precision}"
        results[size] = s
    print(f"{'short side':>10} {'DEKR ms':>8} {'ours ms':>8} {'x':>5} {'ours FPS (pipeline)':>20} {'x':>5}  backend")
    for size, s in results.items():
        print(f"{size:>10} {s['dekr_ms']:8.0f} {s['ours_ms']:8.0f} {s['speedup_one_frame']:5.2f} "
              f"{s['ours_fps']:20.2f} {s['speedup_pipeline']:5.2f}  {s['backend']}")
    print(f"(frame {frame.shape[1]}x{frame.shape[0]} of the bundled clip, {threads} threads, single scale, no flip, "
          f"median of {rounds} alternating rounds of {repeats} frames)\n")
    return {"sizes": results, "threads": threads, "rounds": rounds, "repeats": repeats}

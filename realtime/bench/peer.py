"""Side by side with the pose pipeline a CPU user would otherwise pick: Ultralytics YOLOv8n-pose / YOLO11n-pose.

Each round runs every system once over the bundled clip (640x360, every frame, nothing written, same input size,
same threads), so the machine's load drifts over all of them alike; the table gives each system's median FPS over
the rounds and its ratio to ours. The peers are built offline from their YAML (random weights: their speed does
not depend on them) and exported once into the project's cache folder (``QEM_CACHE_DIR``, default ``~/.cache/qem-pose``).

Ultralytics is never a dependency of this project. Install it in a separate venv beside ours (it pins its own
torch):

    python3 -m venv .venv-peer && .venv-peer/bin/pip install torch==2.14.1 torchvision==0.29.1 ultralytics \
        openvino onnx onnxslim onnxruntime av pycocotools tqdm
    YOLO_OFFLINE=1 PYTHONPATH=. .venv-peer/bin/python -m realtime.bench --sections peer --threads 2
"""
from __future__ import annotations

import contextlib
import io
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from realtime import BUNDLED_CLIP

PEERS = {  # name -> (model YAML, export format or None for PyTorch)
    "YOLOv8n-pose PyTorch": ("yolov8n-pose.yaml", None),
    "YOLOv8n-pose OpenVINO": ("yolov8n-pose.yaml", "openvino"),
    "YOLO11n-pose OpenVINO": ("yolo11n-pose.yaml", "openvino"),
}


def peers_available() -> bool:
    try:
        import ultralytics  # noqa: F401
    except ImportError:
        return False
    return True


def cache_dir() -> Path:
    from models.export.auto import cache_dir as project_cache

    return project_cache()


@dataclass
class System:
    """One contender: ``run()`` processes the whole clip and returns the number of frames it produced poses for."""

    name: str
    run: Callable[[], int]


def peer_system(name: str, imgsz: int) -> System:
    """An Ultralytics model over the clip with ``predict(stream=True)``, as its docs show for video."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    yaml, fmt = PEERS[name]
    model = YOLO(yaml)
    if fmt is not None:
        folder = cache_dir() / "peers"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{Path(yaml).stem}_{imgsz}_{fmt}_model"
        if not target.exists():
            with contextlib.redirect_stdout(io.StringIO()):
                exported = Path(model.export(format=fmt, imgsz=imgsz, verbose=False))
            exported.rename(target)
        model = YOLO(str(target), task="pose")

    def run() -> int:
        return sum(1 for _ in model.predict(source=str(BUNDLED_CLIP), stream=True, imgsz=imgsz, verbose=False,
                                            device="cpu"))
    return System(name, run)


def our_system(cli_args: list[str]) -> System:
    """Our pipeline exactly as ``python -m realtime --source synth --no-show --no-save --no-jsonl`` runs it, plus
    ``cli_args`` (e.g. ``--threads 2``)."""
    from realtime.bench.measure import run_pipeline
    from realtime.bench.deploy import build_engine
    from realtime.sources.readers import parse_source

    engine = build_engine(["--no-save", "--no-jsonl", *cli_args])

    def run() -> int:
        pipeline, _ = run_pipeline(engine, [parse_source(str(BUNDLED_CLIP))], save_mp4=False, save_jsonl=False)
        return pipeline.metrics.frames_out
    return System("qem-pose (default path)", run)


def bench_side_by_side(systems: list[System], rounds: int, log: Callable[[str], None] = print) -> dict:
    """Alternates the systems ``rounds`` times after one warm-up pass each; median FPS per system."""
    for s in systems:
        s.run()
    fps: dict[str, list[float]] = {s.name: [] for s in systems}
    for r in range(rounds):
        for s in systems:
            t0 = time.perf_counter()
            frames = s.run()
            fps[s.name].append(frames / (time.perf_counter() - t0))
        log(f"  round {r + 1}/{rounds}: " + ", ".join(f"{n} {v[-1]:.1f}" for n, v in fps.items()))
    return {n: {"fps_median": statistics.median(v), "fps_all": v} for n, v in fps.items()}


def run_peer_section(imgsz: int, threads: int, rounds: int, our_args: list[str]) -> dict | None:
    """The table, or None (with a line saying how to get it) when Ultralytics is not importable."""
    if not peers_available():
        print("peer: skipped (ultralytics is not importable here; see `python -m realtime.bench.peer --help` for "
              "the separate venv it needs)\n")
        return None
    import torch

    torch.set_num_threads(threads)
    systems = [our_system(["--imgsz", str(imgsz), *our_args])]  # our default threads: every core here
    systems += [peer_system(name, imgsz) for name in PEERS]
    print(f"peer: the bundled clip, input {imgsz}, {threads} threads, {rounds} alternating rounds")
    out = bench_side_by_side(systems, rounds, log=lambda line: print(line, flush=True))
    ours = out[systems[0].name]["fps_median"]
    fastest_ov = max(out[n]["fps_median"] for n in PEERS if PEERS[n][1] == "openvino")
    print(f"{'system':<28} {'FPS p50':>8} {'ours / it':>10}")
    for name, r in out.items():
        print(f"{name:<28} {r['fps_median']:8.1f} {ours / r['fps_median']:10.2f}")
    print(f"ours / the faster OpenVINO peer: {ours / fastest_ov:.2f} (target >= 1.5)\n")
    return {"imgsz": imgsz, "threads": threads, "rounds": rounds, "systems": out,
            "ratio_vs_fastest_openvino_peer": ours / fastest_ov}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m realtime.bench.peer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    a, rest = parser.parse_known_args()
    run_peer_section(a.imgsz, a.threads, a.rounds, rest)

"""Side by side with the pose pipeline a CPU user would otherwise pick: Ultralytics YOLOv8n-pose / YOLO11n-pose.

Two clips, one table each: the bundled clip (640x360, 8 s) and a camera-sized one (1280x720, 30 s, 30 FPS: a
synthetic scene the project draws, ``camera_clip``, written once into the cache folder). For each clip every system
first runs the whole clip once (warm-up: compiled shapes, caches, the decoder), then each round runs every system
once over it (every frame, nothing written, same input size, same threads), so the machine's load drifts over all
of them alike; the table gives each system's median FPS over the rounds and its ratio to ours. The peers are built
offline from their YAML (random weights: their speed does not depend on them) and exported once into the project's
cache folder (``QEM_CACHE_DIR``, default ``~/.cache/qem-pose``). The CPU (model, the flags that decide the
runtimes' kernels) is printed and written with the figures: ratios are only comparable on one CPU kind.

Ultralytics is never a dependency of this project. Install it in a separate venv beside ours (it pins its own
torch):

    python3 -m venv .venv-peer && .venv-peer/bin/pip install torch==2.14.1 torchvision==0.29.1 ultralytics \
        openvino nncf onnx onnxslim onnxruntime av pycocotools tqdm aiohttp
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

CAMERA_CLIP = {"width": 1280, "height": 720, "fps": 30, "seconds": 30, "seed": 720}
# the CPU flags that change what OpenVINO / ONNX Runtime / PyTorch run: the vector widths, bf16, int8, AMX
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")

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


def camera_clip() -> Path:
    """The 1280x720 synthetic clip (``CAMERA_CLIP``), drawn and encoded (H.264) once into the cache folder."""
    from dataclasses import replace

    from models.data import synth, synth_video

    c = CAMERA_CLIP
    name = f"synth_{c['height']}p_{c['seconds']}s_seed{c['seed']}"
    folder = cache_dir() / "clips"
    path = folder / f"{name}.mp4"
    if path.is_file():
        return path
    print(f"peer: drawing the {c['width']}x{c['height']} clip once ({c['seconds']} s; cached in {folder})", flush=True)
    cfg = replace(synth.PRESETS["easy"], width=c["width"], height=c["height"], min_people=2, max_people=6)
    work = folder / f".{name}-drawing"
    mp4, _ = synth_video.write_clip(work, name, c["fps"] * c["seconds"], c["fps"], c["seed"], cfg)
    os.replace(mp4, path)
    for leftover in work.iterdir():
        leftover.unlink()
    work.rmdir()
    return path


def cpu_record() -> dict:
    """The CPU: model name, cores, which of ``CPU_FLAGS`` it has, and a short kind (what BENCHMARKS.md's tables are
    per) such as ``AMD EPYC (avx512_bf16, no AMX)``."""
    from models.export.auto import cpu_model

    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    has = [f for f in CPU_FLAGS if f in flags]
    amx = "AMX" if "amx_tile" in flags else "no AMX"
    bf16 = "avx512_bf16, " if "avx512_bf16" in flags else ""
    return {"model": cpu_model(), "cores": os.cpu_count(), "flags": has, "kind": f"{cpu_model()} ({bf16}{amx})"}


@dataclass
class System:
    """One contender: ``run(clip)`` processes the whole clip and returns the number of frames it produced poses
    for."""

    name: str
    run: Callable[[Path], int]


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

    def run(clip: Path) -> int:
        return sum(1 for _ in model.predict(source=str(clip), stream=True, imgsz=imgsz, verbose=False,
                                            device="cpu"))
    return System(name, run)


def our_system(cli_args: list[str]) -> System:
    """Our pipeline exactly as ``python -m realtime --source synth --no-show --no-save --no-jsonl`` runs it, plus
    ``cli_args`` (e.g. ``--threads 2``)."""
    from realtime.bench.measure import run_pipeline
    from realtime.bench.deploy import build_engine
    from realtime.sources.readers import parse_source

    engine = build_engine(["--no-save", "--no-jsonl", *cli_args])

    def run(clip: Path) -> int:
        pipeline, _ = run_pipeline(engine, [parse_source(str(clip))], save_mp4=False, save_jsonl=False)
        return pipeline.metrics.frames_out
    return System("qem-pose (default path)", run)


def bench_side_by_side(systems: list[System], rounds: int, log: Callable[[str], None] = print,
                       clip: Path = BUNDLED_CLIP) -> dict:
    """Alternates the systems over ``clip`` ``rounds`` times after one warm-up pass each; median FPS per system."""
    for s in systems:
        s.run(clip)
    fps: dict[str, list[float]] = {s.name: [] for s in systems}
    for r in range(rounds):
        for s in systems:
            t0 = time.perf_counter()
            frames = s.run(clip)
            fps[s.name].append(frames / (time.perf_counter() - t0))
        log(f"  round {r + 1}/{rounds}: " + ", ".join(f"{n} {v[-1]:.1f}" for n, v in fps.items()))
    return {n: {"fps_median": statistics.median(v), "fps_all": v} for n, v in fps.items()}


def run_peer_section(imgsz: int, threads: int, rounds: int, our_args: list[str],
                     clips: list[Path] | None = None) -> dict | None:
    """The tables (one per clip: the bundled one and ``camera_clip``'s 720p), or None (with a line saying how to get
    them) when Ultralytics is not importable."""
    if not peers_available():
        print("peer: skipped (ultralytics is not importable here; see `python -m realtime.bench.peer --help` for "
              "the separate venv it needs)\n")
        return None
    import torch

    torch.set_num_threads(threads)
    cpu = cpu_record()
    print(f"peer: CPU {cpu['kind']}, {cpu['cores']} cores, flags {' '.join(cpu['flags']) or '(none of interest)'}; "
          f"load average at start {os.getloadavg()[0]:.1f}")
    clips = clips if clips is not None else [BUNDLED_CLIP, camera_clip()]
    systems = [our_system(["--imgsz", str(imgsz), *our_args])]  # our default threads: every core here
    systems += [peer_system(name, imgsz) for name in PEERS]
    tables = {}
    for clip in clips:
        size = clip_size(clip)
        print(f"peer: {clip.name} ({size}), input {imgsz}, {threads} threads, warm-up then {rounds} alternating "
              f"rounds")
        out = bench_side_by_side(systems, rounds, log=lambda line: print(line, flush=True), clip=clip)
        ours = out[systems[0].name]["fps_median"]
        fastest_ov = max(out[n]["fps_median"] for n in PEERS if PEERS[n][1] == "openvino")
        print(f"{'system':<28} {'FPS p50':>8} {'ours / it':>10}")
        for name, r in out.items():
            print(f"{name:<28} {r['fps_median']:8.1f} {ours / r['fps_median']:10.2f}")
        print(f"ours / the faster OpenVINO peer at {size}: {ours / fastest_ov:.2f} (target >= 1.5; CPU {cpu['kind']})"
              "\n")
        tables[size] = {"clip": clip.name, "systems": out, "ratio_vs_fastest_openvino_peer": ours / fastest_ov}
    return {"cpu": cpu, "date": time.strftime("%Y-%m-%d", time.gmtime()), "imgsz": imgsz, "threads": threads,
            "rounds": rounds, "clips": tables}


def clip_size(clip: Path) -> str:
    """``WxH`` of a video file's first stream."""
    import av

    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        return f"{stream.codec_context.width}x{stream.codec_context.height}"


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m realtime.bench.peer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    a, rest = parser.parse_known_args()
    run_peer_section(a.imgsz, a.threads, a.rounds, rest)

"""CPU deployment: backend x precision x input shape, each built exactly as the command line builds it.

For every variant: the forward alone (preprocessed frame of the bundled clip, whole graph: dense stage, decode,
sparse stage; median of ``repeats``; ms between results with the engine's frames in flight, as the pipeline keeps
them for a file: three over two OpenVINO streams by default), the pipeline's FPS on the whole clip without files
and with MP4 + JSONL, and
the share of the forward-alone rate the file-less pipeline reaches. The variants are measured round by round
(every variant once per round), so a change in the machine's load affects them alike; figures are medians over
the rounds. With ``--ap-data DIR`` each variant is also evaluated (COCO keypoint AP, no flip: the exported graph has
none) on the first ``--ap-images`` images of a ``qem synth`` folder.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from realtime import BUNDLED_CLIP
from realtime.cli import build_parser

VARIANTS = (  # (backend, precision); None: the backend's default
    ("torch", "fp32"), ("torch", "bf16"), ("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "bf16"),
)
SHAPES = {"rect": ["--rect"], "square": ["--no-rect"]}


@dataclass
class Variant:
    backend: str
    precision: str | None
    shape: str
    streams: int | None = None  # --infer-streams; None: the CLI's default for a file

    @property
    def name(self) -> str:
        streams = "" if self.streams is None else f", {self.streams} stream{'s' * (self.streams > 1)}"
        return f"{self.backend} {self.precision or 'default'} {self.shape}{streams}"

    def cli_args(self, threads: int, imgsz: int) -> list[str]:
        out = ["--backend", self.backend, "--threads", str(threads), "--imgsz", str(imgsz), *SHAPES[self.shape]]
        out += ["--infer-streams", str(self.streams)] if self.streams is not None else []
        return out + (["--precision", self.precision] if self.precision else [])


def build_engine(cli_args: list[str]):
    """The engine ``python -m realtime --source synth --no-show CLI_ARGS`` would run."""
    from realtime.cli import resolve_sources
    from realtime.engine.model import load_engine
    from realtime.sources.first_frame import first_frame_size

    return load_engine(build_parser().parse_args(["--source", "synth", "--no-show", *cli_args]), num_streams=1,
                       at_full_speed=True, first_frame=first_frame_size(resolve_sources(["synth"])[0]))


def input_shape(engine) -> tuple[int, int]:
    """(H, W) of the network input for the clip's frames (normalised [B,3,H,W], or OpenVINO's uint8 [B,H,W,3])."""
    from realtime.bench.measure import first_frame

    batch = engine.preprocess([first_frame()])[0]
    return tuple(batch.shape[1:3]) if engine.preprocess.uint8 else tuple(batch.shape[2:4])


def measure_ap(engine, data: Path, images: int) -> float:
    from models.data.paths import resolve_data
    from models.evaluation.evaluate import evaluate_predictor

    ann, image_dir = resolve_data(str(data), None, None)
    report, _ = evaluate_predictor(engine.predictor, ann, image_dir, max_images=images, progress=False)
    return report.ap


def run_deploy_section(variants: list[Variant], threads: int, imgsz: int, rounds: int, repeats: int,
                       ap_data: str | None = None, ap_images: int = 500) -> dict:
    from realtime.bench.measure import bench_model, bench_pipeline

    engines, skipped = {}, {}
    for v in variants:
        try:
            engines[v.name] = build_engine(v.cli_args(threads, imgsz))
        except (ValueError, RuntimeError, ImportError) as exc:  # a runtime not installed: one line, the rest runs
            skipped[v.name] = str(exc).splitlines()[0]
    samples: dict[str, dict[str, list[float]]] = {n: {"forward": [], "fps": [], "fps_files": []} for n in engines}
    for r in range(rounds):
        for name, engine in engines.items():
            model = bench_model(engine, repeats)
            samples[name]["forward"].append(model["forward_ms_median"])
            samples[name]["fps"].append(bench_pipeline(engine, model, save=False)["fps"])
            samples[name]["fps_files"].append(bench_pipeline(engine, model, save=True)["fps"])
        print(f"  round {r + 1}/{rounds} done", flush=True)
    out = {}
    for name, engine in engines.items():
        s = {k: statistics.median(v) for k, v in samples[name].items()}
        s["shape"] = input_shape(engine)
        s["share_of_forward_rate"] = s["fps"] * s["forward"] / 1e3
        if ap_data:
            s["ap_no_flip"] = measure_ap(engine, Path(ap_data), ap_images)
        out[name] = s
    print(f"{'variant':<36} {'input':>9} {'forward ms':>10} {'FPS':>6} {'FPS files':>9} {'of fwd rate':>11}"
          + ("  AP (no flip)" if ap_data else ""))
    for name, s in out.items():
        hw = f"{s['shape'][0]}x{s['shape'][1]}"
        print(f"{name:<36} {hw:>9} {s['forward']:10.1f} {s['fps']:6.1f} {s['fps_files']:9.1f} "
              f"{100 * s['share_of_forward_rate']:10.0f}%" + (f"  {s['ap_no_flip']:.4f}" if ap_data else ""))
    for name, why in skipped.items():
        print(f"{name:<36} skipped: {why}")
    print(f"(clip {BUNDLED_CLIP.name}, {threads} threads, median of {rounds} alternating rounds; "
          f"'of fwd rate' = pipeline FPS without files / (1000 / forward ms))\n")
    return {"variants": out, "skipped": skipped, "threads": threads, "imgsz": imgsz, "rounds": rounds}


def all_variants(shapes=("rect", "square")) -> list[Variant]:
    """Every backend x precision x shape, the fastest one again with one inference stream (LATENCY mode, as a live
    source gets it), and the default: ``auto`` (which runs the int8 twin where that is faster and within its AP
    limit, so its row is the only one with int8 in it)."""
    return ([Variant(b, p, s) for s in shapes for b, p in VARIANTS] + [Variant("openvino", "bf16", shapes[0], 1)]
            + [Variant("auto", None, shapes[0])])

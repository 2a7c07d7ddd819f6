"""Benchmarks of the real-time pipeline on the bundled clip, printed as tables with the machine named.

Sections:
  model     the network alone (preprocessed batch of 1, forward = dense stage + decode + sparse stage)
  pipeline  the clip as a file, every frame, MP4 + JSONL written: end-to-end FPS, per-stage latency, and the
            pipeline overhead = 1 - (model-alone forward time x frames) / pipeline wall time
  live      the clip looped and played like a camera (paced, newest frame only) through a model slower than
            the source: the age of results (end-to-end latency) at the start and at the end of --duration
  streams   1, 2, 4, 8 such live streams batched together: FPS in/out, drops, latency
  soak      (only when asked) 4 such live streams for --minutes, MP4 + JSONL recorded in segments: RSS, open
            file descriptors and threads sampled every 10 s, RSS growth over the last 80% (realtime.bench.soak)
  deploy    (only when asked) backend x precision x input shape (and OpenVINO inference streams), built as the
            command line builds them: forward ms, pipeline FPS without and with files, share of the forward
            rate, AP with --ap-data (realtime.bench.deploy)
  sinks     (only when asked) each message sink (stdout, MQTT, Redis, the view's WebSocket) at 4 streams x 30 FPS:
            CPU ms a message (thread CPU time), p95 added latency, messages a second; then the pipeline's FPS
            on the bundled clip without and with the MQTT and Redis sinks, --rounds alternating rounds
            (realtime.bench.sinks)
  peer      (only when asked; needs ultralytics, in a separate venv) our default path side by side with
            YOLOv8n-pose / YOLO11n-pose in PyTorch and OpenVINO, alternating rounds (realtime.bench.peer)
  frontend  (only when asked) the front end: decode, convert and letterbox in ms of CPU a frame at 640x360, 1280x720
            and 1920x1080, today's path against frames shrunk while decoding, alternating; decoder threads; a 720p
            RTSP stream from the test publisher: frame received -> outputs written p50/p95 (realtime.bench.frontend)
  dekr      (only when asked; needs DEKR's repository and an interpreter with torchvision) DEKR's weights in this
            pipeline side by side with DEKR's own inference code, alternating rounds (realtime.bench.dekr)
  cluster   (only when asked; needs .[cluster]) the camera fleet on a local Ray: cameras served and FPS with 1 and 2
            engines, Ray's overhead against the same cameras in one plain process, failover time
            (realtime.fleet.bench)

Examples:
  qem bench                                  (all sections, short durations)
  qem bench --sections live --duration 300   (five minutes of live mode)
  qem bench --json bench.json
  qem bench --sections soak --minutes 30 --soak-plot soak.png
  qem bench --sections deploy --threads 2 --rounds 3 --ap-data data/synth_val
  qem bench --sections sinks --sink-seconds 20 --rounds 15
  qem bench --sections frontend --rounds 5
  YOLO_OFFLINE=1 .venv-peer/bin/python -m realtime.bench --sections peer --threads 2
  qem bench --sections cluster --rounds 2 --cluster-seconds 15
  qem bench --sections dekr --dekr-weights <weights.pth> --dekr-root <DEKR> --dekr-python <venv>/bin/python
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from realtime import BUNDLED_CLIP
from models.argtypes import OneLineParser, float_above, int_at_least
from realtime.bench.measure import bench_live, bench_model, bench_pipeline, machine, make_engine
from realtime.engine.stage import Engine
from realtime.metrics import STAGES


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="qem bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", nargs="+", default=["model", "pipeline", "live", "streams"],
                   choices=["model", "pipeline", "live", "streams", "soak", "deploy", "peer", "sinks", "dekr",
                            "frontend", "cluster"])
    p.add_argument("--configs", nargs="+", default=["tiny", "realtime"])
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="CPU inference threads (default: cores minus one)")
    p.add_argument("--half", action="store_true", help="fp16 inference (CUDA only)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (CUDA only)")
    p.add_argument("--cuda-graphs", action="store_true", help="replay the network from CUDA graphs (CUDA only)")
    p.add_argument("--repeats", type=int, default=30, help="forward passes timed in the model section")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of the live section")
    p.add_argument("--live-config", default="realtime", help="model of the live section (slower than the clip)")
    p.add_argument("--stream-counts", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--stream-seconds", type=float, default=15.0, help="seconds per stream count")
    p.add_argument("--stream-config", default="tiny", help="model of the streams and soak sections")
    p.add_argument("--minutes", type=float_above(0), default=30.0, help="minutes of the soak section")
    p.add_argument("--soak-streams", type=int_at_least(1), default=4, help="live streams of the soak section")
    p.add_argument("--soak-every", type=float_above(0), default=10.0, help="seconds between soak samples")
    p.add_argument("--soak-plot", default=None, metavar="PNG", help="draw the soak curves (needs matplotlib)")
    p.add_argument("--rounds", type=int_at_least(1), default=3, help="alternating rounds of deploy and peer")
    p.add_argument("--ap-data", default=None, metavar="DIR", help="deploy: also AP on this qem synth folder")
    p.add_argument("--ap-images", type=int_at_least(1), default=500, help="deploy: images of --ap-data")
    p.add_argument("--sink-seconds", type=float_above(0), default=10.0, help="seconds per sink of the sinks section")
    p.add_argument("--dekr-weights", metavar="PTH", help="dekr: DEKR's weights in the authors' layout")
    p.add_argument("--dekr-root", metavar="DIR", help="dekr: a checkout of DEKR's repository")
    p.add_argument("--dekr-python", metavar="PY", help="dekr: an interpreter with torch, torchvision, yacs, OpenCV")
    p.add_argument("--dekr-sizes", type=int, nargs="+", default=[512, 320], help="dekr: short sides to compare")
    p.add_argument("--frontend-frames", type=int_at_least(10), default=150, help="frames of each frontend clip")
    p.add_argument("--frontend-live-seconds", type=float_above(0), default=20.0,
                   help="seconds of each live run of the frontend section")
    p.add_argument("--cluster-cameras", type=int_at_least(1), default=6, help="cluster: cameras offered")
    p.add_argument("--cluster-fps", type=float_above(0), default=5.0, help="cluster: frame-rate cap of each camera")
    p.add_argument("--cluster-seconds", type=float_above(0), default=20.0, help="cluster: seconds per row")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime", "openvino"],
                   help="cluster: runtime of the engines (default auto, as qem serve)")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    args = p.parse_args(argv)
    if not BUNDLED_CLIP.is_file():
        sys.exit(f"error: the bundled clip {BUNDLED_CLIP} is missing")
    import cv2

    cv2.setNumThreads(1)  # as the CLI does
    needed = set(args.configs) if {"model", "pipeline"} & set(args.sections) else set()
    needed |= {args.live_config} if "live" in args.sections else set()
    needed |= {args.stream_config} if {"streams", "soak"} & set(args.sections) else set()
    cuda_only = [flag for flag in ("half", "compile", "cuda_graphs") if getattr(args, flag)]
    if cuda_only and not args.device.startswith("cuda"):
        sys.exit(f"error: --{cuda_only[0].replace('_', '-')} needs --device cuda")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("error: --device cuda asked for, but CUDA is not available; use --device cpu")
    engines = {c: make_engine(c, args.imgsz, args.device, args.threads, args.half, args.compile, args.cuda_graphs)
               for c in sorted(needed)}
    variant = "+".join(["fp16" if args.half else "fp32", *(["compile"] if args.compile else []),
                        *(["cuda graphs"] if args.cuda_graphs else [])])
    out = {"machine": machine(), "clip": BUNDLED_CLIP.name, "imgsz": args.imgsz, "device": args.device,
           "variant": variant, "load_average_at_start": os.getloadavg()}
    print(f"machine: {out['machine']}\nclip: {BUNDLED_CLIP.name}, input {args.imgsz}, device {args.device} "
          f"({variant}), load average at start {out['load_average_at_start'][0]:.1f}\n")
    if "model" in args.sections or "pipeline" in args.sections:
        out["model"], out["pipeline"] = {}, {}
        for c in args.configs:
            out["model"][c] = bench_model(engines[c], args.repeats)
        print(f"{'config':<10} {'forward p50 ms':>15} {'forward p95 ms':>15}")
        for c, r in out["model"].items():
            print(f"{c:<10} {r['forward_ms_median']:15.1f} {r['forward_ms_p95']:15.1f}")
        print()
    if "pipeline" in args.sections:
        stages = STAGES
        print("overhead = share of wall time not spent in the forward (in this run / vs the model alone)")
        print(f"{'config':<10} {'files':<5} {'frames':>6} {'FPS':>6} {'overhead':>13}  "
              + " ".join(f"{s[:11]:>11}" for s in stages) + "   (p50/p95 ms)")
        for c in args.configs:
            out["pipeline"][c] = []
            for save in (True, False):
                r = bench_pipeline(engines[c], out["model"][c], save)
                out["pipeline"][c].append(r)
                cells = [f"{r['stages'][s]['p50_ms']:.1f}/{r['stages'][s]['p95_ms']:.1f}" if s in r["stages"]
                         else "-" for s in stages]
                print(f"{c:<10} {'yes' if save else 'no':<5} {r['frames']:6d} {r['fps']:6.1f} "
                      f"{100 * r['overhead_in_run']:5.1f}%/{100 * r['overhead_vs_alone']:5.1f}%  "
                      + " ".join(f"{x:>11}" for x in cells))
        print()
    if "live" in args.sections:
        r = out["live"] = {"config": args.live_config, **bench_live(engines[args.live_config], args.duration)}
        print(f"live: {args.live_config} model, clip looped as a camera for {r['seconds']:.0f} s: "
              f"{r['fps_in']:.1f} fps in, {r['fps_out']:.1f} fps out, {r['drops']} drops")
        print(f"  age of results p95: first {r['window_s']:.0f} s {r['p95_start_ms']:.0f} ms, "
              f"last {r['window_s']:.0f} s {r['p95_end_ms']:.0f} ms (overall p50 {r['e2e_p50_ms']:.0f} ms)")
        print(f"  p95 per {r['window_s']:.0f} s window (ms): {' '.join(f'{v:.0f}' for v in r['p95_by_window_ms'])}\n")
    if "streams" in args.sections:
        out["streams"] = []
        print(f"streams ({args.stream_config} model, live clip each, {args.stream_seconds:.0f} s per row)")
        print(f"{'streams':>7} {'fps in':>7} {'fps out':>8} {'per stream':>10} {'drops':>6} {'batch':>6} "
              f"{'e2e p50':>8} {'e2e p95':>8}")
        for n in args.stream_counts:
            r = bench_live(engines[args.stream_config], args.stream_seconds, streams=n)
            out["streams"].append(r)
            print(f"{n:7d} {r['fps_in']:7.1f} {r['fps_out']:8.1f} {r['fps_out'] / n:10.1f} {r['drops']:6d} "
                  f"{r['mean_batch']:6.2f} {r['e2e_p50_ms']:8.1f} {r['e2e_p95_ms']:8.1f}")
    if "soak" in args.sections:
        report_soak(out, engines[args.stream_config], args)
    from realtime.engine.model import cpu_threads

    threads = args.threads or cpu_threads(None, exported=True)  # every core, as the CLI gives a runtime
    if "deploy" in args.sections:
        from realtime.bench.deploy import all_variants, run_deploy_section

        print(f"deploy: the bundled checkpoint, input {args.imgsz}, {threads} threads")
        out["deploy"] = run_deploy_section(all_variants(), threads, args.imgsz, args.rounds, args.repeats,
                                           args.ap_data, args.ap_images)
    if "sinks" in args.sections:
        from realtime.bench.sinks import run_sinks_section

        out["sinks"] = run_sinks_section(seconds=args.sink_seconds, rounds=args.rounds,
                                         engine_args=["--imgsz", str(args.imgsz), "--threads", str(threads)])
    if "frontend" in args.sections:
        from realtime.bench.frontend import run_frontend_section

        out["frontend"] = run_frontend_section(threads, args.imgsz, args.rounds, args.frontend_frames,
                                               args.frontend_live_seconds)
    if "peer" in args.sections:
        from realtime.bench.peer import run_peer_section

        out["peer"] = run_peer_section(args.imgsz, threads, args.rounds, [])
    if "dekr" in args.sections:
        if not (args.dekr_weights and args.dekr_root and args.dekr_python):
            sys.exit("error: --sections dekr needs --dekr-weights, --dekr-root and --dekr-python")
        from realtime.bench.dekr import run_dekr_section

        print(f"dekr: {Path(args.dekr_weights).name} here and in DEKR's own code, {threads} threads")
        from models.imports.dekr import DekrImportError

        try:
            out["dekr"] = run_dekr_section(args.dekr_weights, args.dekr_root, args.dekr_python, args.dekr_sizes,
                                           args.rounds, min(args.repeats, 5), threads)
        except (DekrImportError, RuntimeError, OSError) as exc:  # a bad weights file, DEKR's side failing
            sys.exit(f"error: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}")
    if "cluster" in args.sections:
        from realtime.fleet.bench import run_cluster_section
        from realtime.fleet.cluster import FleetError

        try:
            out["cluster"] = run_cluster_section(str(BUNDLED_CLIP), args.cluster_cameras, args.cluster_fps,
                                                 args.cluster_seconds, args.rounds, args.backend, args.imgsz)
        except FleetError as exc:
            sys.exit(f"error: {exc}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
        print(f"\nfigures written to {args.json}")
    return 0


def report_soak(out: dict, engine: Engine, args) -> None:
    from realtime.bench.soak import bench_soak, plot

    print(f"soak: {args.soak_streams} live streams ({args.stream_config} model), MP4 + JSONL in 60 s segments, "
          f"{args.minutes:g} min, sampled every {args.soak_every:g} s")
    r = out["soak"] = bench_soak(engine, args.minutes, streams=args.soak_streams, every=args.soak_every)
    print(f"{'s':>7} {'RSS MB':>8} {'fds':>5} {'threads':>7}")
    for t, rss, fds, threads in r["rows"]:
        print(f"{t:7.0f} {rss:8.1f} {fds:5d} {threads:7d}")
    print(f"over the last 80% ({r['seconds'] * 0.8 / 60:.1f} min): RSS {r['rss_mb_start']:.1f} -> "
          f"{r['rss_mb_end']:.1f} MB (max {r['rss_mb_max']:.1f}; fitted trend {r['rss_growth_pct']:+.2f}%), "
          f"fds {r['fds_start']} -> {r['fds_end']}, "
          f"threads {r['threads_start']} -> {r['threads_end']} (after the stop: {r['fds_after']} fds, "
          f"{r['threads_after']} threads); {r['fps_out']:.1f} fps out, {r['drops']} drops, "
          f"{r['files_left']} files left, errors: {len(r['errors'])}")
    if args.soak_plot:
        print(f"curves: {plot(r['rows'], args.soak_plot) or 'not drawn (matplotlib is not installed)'}")


if __name__ == "__main__":
    sys.exit(main())

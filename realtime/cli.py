"""Run the real-time pose pipeline on cameras, streams, video files or images (a file, a folder, a glob).

Examples (python -m realtime is the same as qem predict):
  python demos/webcam.py                              camera 0 (or the bundled clip when there is no camera)
  python demos/rtsp.py rtsp://cam1/live rtsp://cam2/live
  qem predict --source video.mp4 --no-show --max-frames 100
  qem predict --source photos/ --no-show              one annotated image per photo in runs/exp/
  qem predict --source synth --as-live --loop --http-port 8080   the bundled clip as a camera, view at :8080
  qem predict --source synth --sink stdout --no-save --no-jsonl | jq -c 'select(.type == "frame") | .people'
  qem predict --cameras cameras.yaml --sink mqtt://127.0.0.1:1883/qem   cameras of a file, poses to MQTT
  qem predict --rtsp-listen --source rtsp://127.0.0.1:8554/live   wait for an encoder to push a stream

Outputs go to runs/<name>/ (images: one annotated image per input image under its name, and poses.jsonl; video:
annotated.mp4, poses.jsonl; with several sources annotated_<i>.mp4, poses_<i>.jsonl;
with --segment S, annotated_000000.mp4 + poses_000000.jsonl, ... every S seconds). The MP4 is fragmented: a crash
or a kill loses about the last second, not the file. A full disk stops the recording with one line; the live view
keeps running. A run that writes nothing leaves no folder behind. A window opens only when a display exists.
Ctrl-C stops cleanly (exit status 0); the files stay playable and whole.
Messages (schema 1, realtime/publish/message.schema.json) go to every --sink: stdout, mqtt://host:port/prefix,
redis://host:port/db?stream=NAME, ws (the live view's /ws); see docs/realtime.md. Log lines go to standard error.
"""
from __future__ import annotations

import argparse
import shutil
import signal
import sys
from pathlib import Path

from realtime import BUNDLED_CLIP
from models.argtypes import OneLineParser, float_above, imgsz, int_at_least, port, unit_float
from realtime.cameras import CameraFile, load_cameras
from realtime.post.tracking import add_tracker_arguments, tracker_settings
from realtime.publish.uri import SinkSpec, merge_sinks, parse_sink
from realtime.sources.readers import SourceError, SourceSpec, parse_source


def build_parser(prog: str | None = None, positional_sources: bool = False,
                 name: str = "exp") -> argparse.ArgumentParser:
    p = OneLineParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    if positional_sources:
        p.add_argument("urls", nargs="*", metavar="URL", help="stream URLs (or files, camera indices)")
    p.add_argument("--source", action="append", default=None,
                   help="camera index, URL, video file, image file, image folder, quoted glob ('photos/*.jpg') or "
                        "'synth' (the bundled clip); repeatable")
    p.add_argument("--cameras", default=None, metavar="FILE",
                   help="a camera file (YAML): per camera a name, url (${ENV_VAR} filled in) and settings "
                        "(record, segment, keep, sinks, as_live, loop, fps); see docs/realtime.md")
    p.add_argument("--sink", action="append", default=None, metavar="URI",
                   help="send every message there too: stdout, mqtt://host[:port][/prefix], "
                        "redis://host[:port][/db][?stream=KEY], ws (needs --http-port); options ?every=N, ?fps=R, "
                        "?events=only, ?queue=N; repeatable")
    p.add_argument("--rtsp-listen", action="store_true",
                   help="rtsp:// sources are addresses to listen on: publishers push to them (RTSP over TCP)")
    p.add_argument("--weights", default=None,
                   help="checkpoint *.pt, ONNX *.onnx or OpenVINO folder (default: the bundled checkpoint)")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime", "openvino"],
                   help="runtime (default auto: on a CPU the fastest installed one, measured once and cached; "
                        "an exported --weights picks its own)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default=None,
                   help="compute precision (default: the backend's; see models.export.runtime)")
    p.add_argument("--model", default="tiny", help="config of the untrained fallback model (default: tiny)")
    p.add_argument("--imgsz", type=imgsz, default=None,
                   help="network input size, the long side: a multiple of 32 in [32, 4096] (default: the "
                        "checkpoint's)")
    p.add_argument("--rect", action=argparse.BooleanOptionalAction, default=True,
                   help="letterbox to the smallest multiples of 32 that hold the frame (640x360 at 320 -> 320x192; "
                        "default), or to a square with --no-rect")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    p.add_argument("--threads", type=int_at_least(1), default=None,
                   help="CPU inference threads (default: every usable core for OpenVINO or ONNX Runtime, one fewer "
                        "for eager torch)")
    p.add_argument("--infer-streams", type=int_at_least(1), default=None,
                   help="OpenVINO inferences run at once, the threads shared among them (default: 2 when every "
                        "source is a file read at full speed and there are 2+ threads, else 1; see docs/realtime.md)")
    p.add_argument("--half", action="store_true", help="fp16 inference (CUDA only)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (CUDA only)")
    p.add_argument("--cuda-graphs", action="store_true", help="capture the network in a CUDA graph (CUDA only)")
    p.add_argument("--save", action=argparse.BooleanOptionalAction, default=True, help="write annotated MP4")
    p.add_argument("--jsonl", action=argparse.BooleanOptionalAction, default=True, help="write poses JSONL")
    p.add_argument("--show", action=argparse.BooleanOptionalAction, default=None,
                   help="open a window (default: when a display exists)")
    p.add_argument("--project", default="runs", help="parent folder of the run folders (default: runs)")
    p.add_argument("--name", default=name, help=f"run folder name (default: {name}; suffixed 2, 3, ... if taken)")
    p.add_argument("--exist-ok", action="store_true", help="write into an existing run folder")
    p.add_argument("--max-frames", type=int_at_least(1), default=None,
                   help="stop after this many frames (all streams)")
    p.add_argument("--http-port", type=port, default=None,
                   help="serve a live view in the browser on this port (0: any free port)")
    p.add_argument("--http-host", default="127.0.0.1", help="address of the live view (default: 127.0.0.1)")
    p.add_argument("--pace", action=argparse.BooleanOptionalAction, default=None,
                   help="play files at their own frame rate (default: when showing a window or live view)")
    p.add_argument("--loop", action="store_true", help="restart files at their end")
    p.add_argument("--as-live", action="store_true",
                   help="play files like cameras: paced, newest frame only, drops counted")
    p.add_argument("--smooth", action=argparse.BooleanOptionalAction, default=None,
                   help="One-Euro smoothing of keypoints (default: on for live sources, off for files)")
    p.add_argument("--min-score", type=unit_float, default=0.0, help="drop poses scoring below this")
    p.add_argument("--open-timeout", type=float_above(0), default=5.0, help="seconds to connect to a stream")
    p.add_argument("--read-timeout", type=float_above(0), default=5.0, help="seconds a stream read may block")
    p.add_argument("--stall-timeout", type=float_above(0), default=2.0,
                   help="seconds without frames before 'stalled'")
    p.add_argument("--max-attempts", type=int_at_least(0), default=None,
                   help="failed connection attempts before giving up on a source never reached (default 6; 0, the "
                        "default with --rtsp-listen: never); a live source that delivered frames once is retried "
                        "until the run stops")
    p.add_argument("--retry-max", type=float_above(0), default=10.0,
                   help="longest wait between reconnection attempts in seconds (default 10; waits double from 0.5)")
    p.add_argument("--batch-window-ms", type=float_above(0, inclusive=True), default=4.0,
                   help="how long a batch waits for other streams (0: never waits)")
    p.add_argument("--report-every", type=float_above(0), default=5.0,
                   help="seconds between metric lines (live sources)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar for files")
    add_recording_arguments(p)
    add_tracker_arguments(p)
    return p


def add_recording_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--segment", type=float_above(0), default=None, metavar="SECONDS",
                   help="start new files (MP4 + JSONL together) every SECONDS of video: annotated_000000.mp4, ...")
    p.add_argument("--keep", type=int_at_least(1), default=None, metavar="N",
                   help="with --segment: keep the newest N segments per stream, delete older ones")
    p.add_argument("--keep-gb", type=float_above(0), default=None, metavar="GB",
                   help="with --segment: delete the oldest segments beyond GB gigabytes (1e9 bytes) in all")
    p.add_argument("--keyframe-every", type=float_above(0), default=1.0, metavar="SECONDS",
                   help="a keyframe (and an MP4 fragment) at least every SECONDS of video: about what a crash can "
                        "lose; larger gives smaller files (default: 1)")
    p.add_argument("--mp4-faststart", action="store_true",
                   help="classic MP4 instead of fragmented: the index is written at the end and moved up front "
                        "(streams from the first byte), but a crash leaves an unplayable file")


WS_NEEDS_VIEW = "--sink ws: needs the live view (--http-port): it serves /ws"


def check_combinations(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Options that need another one: the same one-line usage error (exit status 2)."""
    for flag in ("keep", "keep_gb"):
        if getattr(args, flag) is not None and args.segment is None:
            p.error(f"argument --{flag.replace('_', '-')}: needs --segment (retention deletes whole segments)")


def max_attempts(args: argparse.Namespace) -> int:
    """A listener waits for its publisher as long as the run lasts; a source to pull gives up after 6 attempts."""
    if args.max_attempts is not None:
        return args.max_attempts
    return 0 if args.rtsp_listen else 6


def discard_if_empty(out_dir: Path | None, existed: bool) -> None:
    """A run folder this run made and left with nothing in it but empty files (every source failed, or the run
    could not start) goes, so that the next run does not get a higher number for nothing."""
    if out_dir is None or existed or not out_dir.is_dir():
        return
    if all(p.is_file() and p.stat().st_size == 0 for p in out_dir.iterdir()):
        shutil.rmtree(out_dir)


def run_dir(project: str, name: str, exist_ok: bool) -> Path:
    base = Path(project) / name
    if exist_ok or not base.exists():
        return base
    n = 2
    while (Path(project) / f"{name}{n}").exists():
        n += 1
    return Path(project) / f"{name}{n}"


def resolve_sources(texts: list[str], listen: bool = False) -> list[SourceSpec]:
    return [parse_source(str(BUNDLED_CLIP) if t == "synth" else t, listen=listen) for t in texts]


def streams_of(cameras: CameraFile | None, n: int, sinks: list[SinkSpec]):
    """Names, per-stream settings and every sink: the camera file's cameras first (their names and settings), then
    the ``--source`` ones (``stream<i>``)."""
    from realtime.cameras import StreamOptions  # not realtime.pipeline: it loads PyAV, which must come after OpenCV

    cams = cameras.cameras if cameras else []
    names = [c.name for c in cams] + [f"stream{i}" for i in range(len(cams), n)]
    if len(set(names)) < len(names):
        raise ValueError(f"{cameras.path}: a camera is named like a --source stream (stream<i>); rename it")
    per = [c.options() for c in cams]
    per += [StreamOptions()] * (n - len(cams))
    in_file = list(cameras.sinks) + [s for c in cams for s in c.sinks] if cameras else []
    all_sinks = merge_sinks(list(sinks) + in_file, warn=lambda line: print(line, file=sys.stderr))
    return names, per if cams else [], all_sinks


def camera_available(index: int) -> bool:
    if Path("/dev").is_dir() and sys.platform.startswith("linux"):
        return Path(f"/dev/video{index}").exists()
    import cv2

    cap = cv2.VideoCapture(index)
    ok = cap.isOpened()
    cap.release()
    return ok


def main(argv: list[str] | None = None, *, prog: str | None = None, positional_sources: bool = False,
         name: str = "exp", webcam_fallback: bool = False) -> int:
    parser = build_parser(prog, positional_sources, name)
    args = parser.parse_args(argv)
    check_combinations(parser, args)
    try:
        sinks = [parse_sink(t) for t in args.sink or []]
    except ValueError as exc:  # SinkUriError: a usage error (exit status 2), the URI named and masked
        parser.error(_one_line(exc))
    if any(s.scheme == "ws" for s in sinks) and args.http_port is None:
        parser.error(WS_NEEDS_VIEW)
    try:
        cameras = load_cameras(args.cameras) if args.cameras else None
    except ValueError as exc:  # CameraFileError: one line naming the file and the camera
        sys.exit(f"error: {_one_line(exc)}")
    texts = [c.url for c in cameras.cameras] if cameras else []
    texts += list(getattr(args, "urls", None) or []) + list(args.source or [])
    if not texts:
        if positional_sources:
            sys.exit("error: give at least one stream URL (e.g. rtsp://127.0.0.1:8554/live)")
        texts = ["0"]
        if webcam_fallback and not camera_available(0):
            print(f"no camera at index 0; playing the bundled clip {BUNDLED_CLIP.name} instead", file=sys.stderr)
            texts = ["synth"]
    try:
        specs = resolve_sources(texts, args.rtsp_listen)
        tracker = tracker_settings(args)
        names, per_stream, sinks = streams_of(cameras, len(specs), sinks)
        if any(s.scheme == "ws" for s in sinks) and args.http_port is None:  # a camera file's sink
            raise ValueError(f"{args.cameras}: {WS_NEEDS_VIEW}")
    except (SourceError, ValueError) as exc:  # before the heavy imports: bad input is reported at once
        sys.exit(f"error: {_one_line(exc)}")
    # OpenCV before PyAV (realtime.pipeline loads it): with OpenCV's GUI build, FFmpeg's libraries loaded by PyAV
    # first make Qt hang on its first window, waiting for the display (tests/realtime/test_cli.py)
    import cv2

    cv2.setNumThreads(1)  # the pipeline has its own threads; OpenCV's pool would only fight them for the cores
    from realtime.view.display import has_display
    from realtime.engine.model import load_engine
    from realtime.pipeline import Pipeline, PipelineConfig
    from realtime.provenance import NOTICE, model_line, synthetic_captions
    from realtime.outputs.files import SinkError

    out_dir, existed = None, True
    try:
        show = has_display() if args.show is None else args.show
        if show and not has_display():
            print("warning: no display (DISPLAY/WAYLAND_DISPLAY unset or OpenCV without GUI); running headless",
                  file=sys.stderr)
            show = False
        pace = (show or args.http_port is not None) if args.pace is None else args.pace
        # files read at full speed want throughput; live sources and paced files want each frame soon
        at_full_speed = not (pace or args.as_live or any(spec.live for spec in specs))
        from realtime.sources.first_frame import first_frame_size

        engine = load_engine(args, num_streams=len(specs), at_full_speed=at_full_speed,
                             first_frame=first_frame_size(specs[0], args.open_timeout))
        captions = synthetic_captions(args.weights, specs)
        if captions:
            print(NOTICE, file=sys.stderr)
        imported = model_line(args.weights)
        if imported:
            print(imported, file=sys.stderr)
        out_dir = run_dir(args.project, args.name, args.exist_ok) if (args.save or args.jsonl) else None
        existed = out_dir is None or out_dir.exists()
        config = PipelineConfig(
            specs=specs, out_dir=out_dir, save_mp4=args.save, save_jsonl=args.jsonl, show=show,
            http_host=args.http_host, http_port=args.http_port, max_frames=args.max_frames,
            pace=pace, smooth=args.smooth,
            min_score=args.min_score, batch_window=args.batch_window_ms / 1000.0, open_timeout=args.open_timeout,
            read_timeout=args.read_timeout, stall_timeout=args.stall_timeout, max_attempts=max_attempts(args),
            backoff_max=args.retry_max,
            report_every=args.report_every, progress=not args.no_progress, loop=args.loop,
            as_live=args.as_live, tracker=tracker, captions=captions, segment=args.segment, keep=args.keep,
            keep_gb=args.keep_gb, mp4_faststart=args.mp4_faststart, keyframe_every=args.keyframe_every,
            stream_names=names, sinks=sinks, per_stream=per_stream, file_tags=cameras is not None)
        pipeline = Pipeline(config, engine)
        with _GracefulStop(pipeline) as stopper:
            try:
                metrics = pipeline.run()
            except KeyboardInterrupt:  # a second Ctrl-C: the files are still closed by run()'s cleanup
                metrics = pipeline.metrics
        interrupted = stopper.signals > 0
    except (SourceError, SinkError, ValueError, OSError, RuntimeError) as exc:
        discard_if_empty(out_dir, existed)
        sys.exit(f"error: {_one_line(exc)}")
    except KeyboardInterrupt:  # before the pipeline ran (e.g. while loading the model)
        discard_if_empty(out_dir, existed)
        sys.exit("interrupted")
    if interrupted:
        print("interrupted: stopped cleanly", file=sys.stderr)
    failed = [c for c in pipeline.captures if c.state == "failed"]
    if metrics.frames_out == 0 and failed:
        discard_if_empty(out_dir, existed)
        sys.exit(f"error: {failures(failed)}")
    print(metrics.summary(), file=sys.stderr)
    if out_dir is not None:
        print(f"results saved to {out_dir}", file=sys.stderr)
    if len(failed) == len(pipeline.captures):  # every source failed: a supervisor must see it (exit status 1)
        sys.exit(f"error: every source failed: {failures(failed)}")
    return 1 if pipeline.recording_error else 0  # the line saying why was printed when it happened


def failures(failed) -> str:
    """One line naming every failed source with its reason (each reason names its source already)."""
    if len(failed) == 1:
        return failed[0].error or f"{failed[0].spec.name}: no frames"
    return f"{len(failed)} sources failed: " + "; ".join(
        f"source {c.index}: {c.error or c.spec.name + ': no frames'}" for c in failed)


class _GracefulStop:
    """First Ctrl-C (or SIGTERM): ask the pipeline to stop after the result it is writing, so every file ends on
    a whole frame. A second one raises KeyboardInterrupt at once (the files are still closed on the way out)."""

    def __init__(self, pipeline):
        self.pipeline, self.signals, self.previous = pipeline, 0, {}

    def __enter__(self) -> "_GracefulStop":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def __call__(self, signum, frame) -> None:
        self.signals += 1
        if self.signals > 1:
            raise KeyboardInterrupt
        print("stopping (Ctrl-C again to force)", file=sys.stderr, flush=True)
        self.pipeline.stop_event.set()


def _one_line(exc: BaseException) -> str:
    from realtime.sources.redact import redact

    text = str(exc).strip().splitlines()
    return redact(text[0] if text else type(exc).__name__)

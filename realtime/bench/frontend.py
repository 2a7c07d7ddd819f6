"""The front end, measured (``qem bench --sections frontend``): what a frame costs before the network, and how old a
live 720p stream's results are when written.

Stages, in ms of CPU a frame, on synthetic-scene clips made by the project (``models.data.synth_video.write_clip``,
H.264, 30 fps) at 640x360, 1280x720 and 1920x1080; ``total`` is the process's CPU time over the pass (the decoder's
own threads, which decode ahead while the caller converts, and any helper threads of libswscale count), convert and
letterbox the calling thread's CPU time, decode the rest:
  decode     packet -> decoded YUV frame
  convert    today: YUV -> full-resolution RGB (``to_ndarray("rgb24")``); fast: YUV -> RGB at the canvas's content
             size in one libswscale pass (``realtime.sources.frontend.shrink``)
  letterbox  today: OpenCV shrink + pad into the canvas (``models.preprocess.letterbox``); fast: pad only
             (``realtime.sources.frontend.place``)
"today" decodes with FFmpeg's automatic thread count (what the code did before the front end), "fast" with
``decoder_threads`` and ``decoder_options`` (deblocking skipped when shrinking 3x or more), "deblocked" is "fast"
with the deblocking filter kept (what that choice saves). The paths alternate clip by clip, round by round (the
order reversed every other round); figures are medians over the rounds.
Decoder threads: 1, 2 and automatic, decode only, CPU and wall ms a frame, alternated the same way.

Live: the test publisher (``tests/realtime/gst_rtsp_server.py``, Debian's GStreamer RTSP server, 1280x720 at 25 FPS,
x264 ultrafast zerolatency, on this machine) pulled over RTSP/TCP by the pipeline the command line builds, JSONL
written: latency from the frame received to every output written (``written``) and to the result (``end_to_end``),
p50/p95, next to the forward's p95, and the pipeline process's CPU time a frame out, with the fast path and with
today's path, each warmed up once, then alternating; medians over the rounds.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

SIZES = ((640, 360), (1280, 720), (1920, 1080))
STAGES = ("decode", "convert", "letterbox")
PATHS = ("today", "deblocked", "fast")
GST_SERVER = Path(__file__).resolve().parents[2] / "tests" / "realtime" / "gst_rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"


def make_clips(folder: Path, frames: int, sizes=SIZES) -> dict[tuple[int, int], Path]:
    """One synthetic-scene clip per size (walking people on a textured background, seed 0)."""
    from models.data import synth
    from models.data.synth_video import write_clip

    return {(w, h): write_clip(folder, f"scene_{w}x{h}", frames, 30, 0, synth.SceneConfig(width=w, height=h))[0]
            for w, h in sizes}


def _open(path: Path, threads: int | None):
    import av

    container = av.open(str(path))
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    if threads is not None:
        stream.codec_context.thread_count = threads
    return container, stream


def run_path(path: Path, name: str, size: int = 320) -> dict[str, float]:
    """One pass over a clip along path ``name`` (``PATHS``): CPU ms a frame per stage, and wall ms a frame of the
    three together."""
    from models.preprocess import letterbox, rect_canvas
    from realtime.sources.frontend import ShrinkTarget, decoder_options, decoder_threads, place, shrink
    from realtime.sources.frontend import orient

    container, stream = _open(path, None)
    target = ShrinkTarget(size)
    fast = name != "today"
    if fast:
        w, h = stream.codec_context.width, stream.codec_context.height
        stream.codec_context.thread_count = decoder_threads(w, h)
        options = decoder_options(w, h, target) if name == "fast" else {}
        if options:
            stream.codec_context.options = options
    cpu = dict.fromkeys(STAGES, 0.0)
    frames = 0
    decoder = container.decode(stream)
    wall0, process0 = time.perf_counter(), time.process_time()
    for frame in decoder:
        full = (frame.height, frame.width)
        canvas = rect_canvas(*full, size)
        t1 = time.thread_time()
        if fast:
            content, full = shrink(frame, target)
            t2 = time.thread_time()
            place(content, full, size, canvas)
        else:
            image = orient(frame.to_ndarray(format="rgb24"), frame.rotation)
            t2 = time.thread_time()
            letterbox(image, size, canvas)
        t3 = time.thread_time()
        cpu["convert"] += t2 - t1
        cpu["letterbox"] += t3 - t2
        frames += 1
    process = time.process_time() - process0
    wall = time.perf_counter() - wall0
    container.close()
    cpu["decode"] = process - cpu["convert"] - cpu["letterbox"]
    out = {s: 1e3 * v / frames for s, v in cpu.items()}
    out["total"] = 1e3 * process / frames
    out["wall"] = 1e3 * wall / frames
    return out


def run_decode(path: Path, threads: int | None) -> tuple[float, float]:
    """(CPU ms, wall ms) a frame of decoding alone with ``threads`` (None: FFmpeg's automatic count)."""
    container, stream = _open(path, threads)
    frames = 0
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in container.decode(stream):
        frames += 1
    c1, w1 = time.process_time(), time.perf_counter()
    container.close()
    return 1e3 * (c1 - c0) / frames, 1e3 * (w1 - w0) / frames


def bench_stages(clips: dict, rounds: int) -> dict:
    """Every path on every clip, alternating; medians over ``rounds`` of each stage's CPU ms a frame."""
    samples = {(wh, path): [] for wh in clips for path in PATHS}
    threads = {(wh, t): [] for wh in clips for t in (1, 2, None)}
    for r in range(rounds):
        for wh, clip in clips.items():
            for name in (PATHS if r % 2 == 0 else PATHS[::-1]):
                samples[(wh, name)].append(run_path(clip, name))
            for t in ((1, 2, None) if r % 2 == 0 else (None, 2, 1)):
                threads[(wh, t)].append(run_decode(clip, t))
    out = {}
    for wh in clips:
        key = f"{wh[0]}x{wh[1]}"
        out[key] = {name: {s: round(statistics.median(x[s] for x in samples[(wh, name)]), 3)
                           for s in (*STAGES, "total", "wall")} for name in PATHS}
        out[key]["decoder_threads"] = {("auto" if t is None else str(t)): {
            "cpu_ms": round(statistics.median(c for c, _ in threads[(wh, t)]), 3),
            "wall_ms": round(statistics.median(w for _, w in threads[(wh, t)]), 3)} for t in (1, 2, None)}
    return out


class GstPublisher:
    """The test publisher as a subprocess (Debian's interpreter has ``gi``); ``url`` once it listens on loopback."""

    def __init__(self, size: str, fps: int):
        if not GST_SERVER.is_file():
            raise RuntimeError(f"the live part needs a checkout ({GST_SERVER} is missing)")
        if not Path(SYSTEM_PYTHON).is_file():
            raise RuntimeError(f"the live part needs {SYSTEM_PYTHON} with gi and gst-rtsp-server")
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(GST_SERVER), "--port", "0", "--size", size, "--fps",
                                      str(fps)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            err = self.proc.stderr.read().strip().splitlines() if self.proc.poll() is not None else []
            self.stop()
            raise RuntimeError(f"the GStreamer RTSP server did not start ({(err or ['no output'])[-1]}); "
                               f"install python3-gi gir1.2-gst-rtsp-server-1.0 and the gstreamer1.0 plugins")
        self.url = f"rtsp://127.0.0.1:{int(line.split()[1])}/live"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_live(engine, url: str, fast: bool, seconds: float, out_dir: Path, warmup: float = 2.0) -> dict:
    """The pipeline on the stream for ``seconds`` after ``warmup``, JSONL written; today's path forced when not
    ``fast``."""
    from realtime.pipeline import Pipeline, PipelineConfig
    from realtime.sources.readers import parse_source

    config = PipelineConfig(specs=[parse_source(url)], out_dir=out_dir, save_mp4=False, progress=False,
                            report_every=1e9, max_attempts=3)
    pipeline = Pipeline(config, engine, log=lambda line: None)
    if not fast:
        pipeline.captures[0].shrink = None
    runner = threading.Thread(target=pipeline.run, daemon=True)
    runner.start()
    time.sleep(warmup)
    for samples in pipeline.metrics.samples.values():
        samples.clear()  # the connection and the first frames are not part of the figures
    frames0, t0, cpu0 = pipeline.metrics.frames_out, time.perf_counter(), time.process_time()
    time.sleep(seconds)
    frames, elapsed = pipeline.metrics.frames_out - frames0, time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    stats = {s: pipeline.metrics.stats(s) for s in ("written", "end_to_end", "forward", "preprocess")}
    drops = pipeline.captures[0].drops
    pipeline.stop_event.set()
    runner.join(timeout=10)
    if not frames:
        raise RuntimeError(f"no result from {url} in {seconds:g} s ({pipeline.captures[0].error or 'no frames'})")
    return {"fps_out": round(frames / elapsed, 2), "drops": drops, "cpu_ms_a_frame": round(1e3 * cpu / frames, 2),
            **{f"{s}_p50_ms": round(v[0], 2) for s, v in stats.items()},
            **{f"{s}_p95_ms": round(v[1], 2) for s, v in stats.items()}}


def bench_live(threads: int, imgsz: int, seconds: float, rounds: int, size: str = "1280x720", fps: int = 25) -> dict:
    from realtime.cli import build_parser
    from realtime.engine.model import load_engine

    publisher = GstPublisher(size, fps)
    try:
        args = build_parser().parse_args(["--source", publisher.url, "--no-show", "--threads", str(threads),
                                          "--imgsz", str(imgsz)])
        engine = load_engine(args, num_streams=1, at_full_speed=False)
        runs: dict[str, list[dict]] = {"fast": [], "today": []}
        with tempfile.TemporaryDirectory() as tmp:
            for name in runs:  # warm-up, not counted: the runtime's first inferences are slower
                run_live(engine, publisher.url, name == "fast", min(seconds, 3.0), Path(tmp) / f"warm_{name}")
            for r in range(rounds):
                for name in (("fast", "today") if r % 2 == 0 else ("today", "fast")):
                    runs[name].append(run_live(engine, publisher.url, name == "fast", seconds,
                                               Path(tmp) / f"{name}{r}"))
    finally:
        publisher.stop()
    return {"source": f"{size} at {fps} FPS, RTSP over TCP from the GStreamer test server on this machine",
            "backend": f"{engine.predictor.runtime.backend} {engine.predictor.runtime.precision}"
            if getattr(engine.predictor, "runtime", None) is not None else "torch",
            **{name: {k: round(statistics.median(x[k] for x in rs), 2) for k in rs[0]} for name, rs in runs.items()}}


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        flags = fields.get("Flags", "").split()
        extra = [f for f in ("avx512_bf16", "avx512_vnni", "amx_tile") if f in flags]
        return f"{fields.get('Model name', '?').strip()}, {os.cpu_count()} cores ({', '.join(extra) or 'no avx512'})"
    except (OSError, subprocess.SubprocessError):
        return "unknown CPU"


def run_frontend_section(threads: int, imgsz: int, rounds: int, frames: int = 150, live_seconds: float = 20.0,
                         live: bool = True) -> dict:
    print(f"front end: {cpu_model()}, load average {os.getloadavg()[0]:.1f}, input {imgsz}, {rounds} rounds, "
          f"{frames}-frame synthetic-scene clips (H.264, crf 23)")
    with tempfile.TemporaryDirectory() as tmp:
        clips = make_clips(Path(tmp), frames)
        rates = {f"{w}x{h}": round(p.stat().st_size * 8 * 30 / frames / 1e6, 2) for (w, h), p in clips.items()}
        out = {"cpu": cpu_model(), "stages": bench_stages(clips, rounds), "clip_mbit_s": rates}
    print(f"{'clip':<10} {'path':<9} " + " ".join(f"{s:>10}" for s in (*STAGES, "total")) + f" {'wall':>7}"
          "   (CPU ms a frame; wall ms a frame)")
    for key, r in out["stages"].items():
        for name in PATHS:
            print(f"{key:<10} {name:<9} " + " ".join(f"{r[name][s]:10.2f}" for s in (*STAGES, "total"))
                  + f" {r[name]['wall']:7.2f}")
        print(f"{'':<10} fast/today total CPU {r['fast']['total'] / r['today']['total']:.2f}x; "
              f"clip {rates[key]} Mbit/s; decoder threads (CPU/wall ms): "
              + ", ".join(f"{t} {v['cpu_ms']:.2f}/{v['wall_ms']:.2f}" for t, v in r["decoder_threads"].items()))
    if live:
        try:
            out["live"] = bench_live(threads, imgsz, live_seconds, rounds)
        except RuntimeError as exc:
            print(f"live: skipped ({exc})")
            return out
        r = out["live"]
        print(f"live: {r['source']}, {r['backend']}, JSONL written, {live_seconds:g} s a run (ms)")
        print(f"{'path':<6} {'fps out':>8} {'drops':>6} {'CPU ms/frame':>13} {'written p50':>12} {'written p95':>12} "
              f"{'e2e p95':>8} {'forward p95':>12} {'target':>7}")
        for name in ("fast", "today"):
            x = r[name]
            ok = "met" if x["written_p95_ms"] <= x["forward_p95_ms"] + 10 else "missed"
            print(f"{name:<6} {x['fps_out']:8.1f} {x['drops']:6.0f} {x['cpu_ms_a_frame']:13.2f} "
                  f"{x['written_p50_ms']:12.1f} {x['written_p95_ms']:12.1f} {x['end_to_end_p95_ms']:8.1f} "
                  f"{x['forward_p95_ms']:12.1f} {ok:>7}")
    return out


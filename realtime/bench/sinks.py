"""The ``sinks`` section of ``qem bench``: what each message sink costs at ``streams`` x ``fps`` frame messages.

Each sink gets the same frame messages (3 people of 17 keypoints, about 2.4 kB of JSON each), offered by this thread
at the pace of 4 cameras at 30 FPS for ``seconds``, as the output stage offers them. Figures per sink:
- CPU ms a message: the CPU time (not wall time: the machine may be shared) of the offering thread's ``offer``
  calls plus every thread the sink started (its worker; paho's network thread; for ``ws`` the view's server thread),
  read with ``pthread_getcpuclockid``, divided by the messages delivered;
- p95 added latency: a subscriber on the same machine (MQTT subscriber, Redis ``XREAD``, a WebSocket client, the
  reader of a pipe for stdout) receives it, minus the moment it was offered;
- messages a second delivered, and drops.
Then the pipeline itself (``pipeline_with_and_without_sinks``): its FPS on the bundled clip (a file, every frame,
nothing written, the engine the command line builds: one message a result, so the messages come at the pipeline's
rate), alternately without message sinks and with the MQTT and Redis sinks (the brokers on this machine, no subscriber
in this process: a reader here would take the pipeline's cores), in ``rounds`` rounds after a warm-up run of each,
the order of the two swapped every round; the medians, their ratio and the median of the rounds' ratios. The view's WebSocket is left
out there: it needs the view, which draws every frame.
The brokers are Debian's ``mosquitto`` and ``redis-server``, started here on free loopback ports (a sink whose
broker is not installed is left out, with a note).
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from realtime.publish import parse_sink
from realtime.publish.base import Message, QueuedSink


def frame_payload(stream: str, seq: int, rng: np.random.Generator) -> str:
    people = [{"track_id": t, "score": 0.9, "box": [10.0, 20.0, 110.0, 320.0],
               "keypoints": np.round(rng.uniform(0, 640, (17, 2)), 2).tolist(),
               "keypoint_scores": np.round(rng.uniform(0, 1, 17), 4).tolist()} for t in (1, 2, 3)]
    return json.dumps({"schema": 1, "type": "frame", "stream": stream, "index": 0, "source": "rtsp://***@cam/live",
                       "seq": seq, "pts": seq / 30, "wall_time": 0.0, "latency_ms": 40.0, "width": 640,
                       "height": 480, "people": people}, separators=(",", ":"))


def _stamp(payload: str) -> str:
    """The payload with the moment it is offered as its wall_time (what the subscriber subtracts)."""
    return payload.replace('"wall_time":0.0', f'"wall_time":{time.time():.6f}', 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(cmd: list[str], port: int, cwd: str) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{cmd[0]} did not listen on 127.0.0.1:{port}")


def _thread_cpu(threads) -> float:
    total = 0.0
    for t in threads:
        try:
            total += time.clock_gettime(time.pthread_getcpuclockid(t.ident))
        except (OSError, TypeError, ProcessLookupError):
            pass  # the thread ended
    return total


class _Received:
    def __init__(self):
        self.latencies: list[float] = []
        self.lock = threading.Lock()

    def add(self, payload) -> None:
        now = time.time()
        sent = json.loads(payload)["wall_time"]
        with self.lock:
            self.latencies.append((now - sent) * 1e3)


def _subscriber(scheme: str, port: int, received: _Received, view=None):
    """Starts a subscriber; returns (the sink's URI, a stop function, for stdout the pipe the sink writes to)."""
    if scheme == "mqtt":
        import paho.mqtt.client as mqtt

        ready = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        c.on_connect = lambda cl, u, f, rc, p: cl.subscribe("bench/+/poses", qos=1)
        c.on_subscribe = lambda *a: ready.set()
        c.on_message = lambda cl, u, m: received.add(m.payload)
        c.connect("127.0.0.1", port)
        c.loop_start()
        ready.wait(10)
        return f"mqtt://127.0.0.1:{port}/bench", lambda: (c.loop_stop(), c.disconnect()), None
    if scheme == "redis":
        import redis

        r, stop = redis.Redis(port=port), threading.Event()
        keys = {f"bench:cam{i}": "0-0" for i in range(4)}  # a fresh server: every entry is new

        def read():
            while not stop.is_set():
                for key, entries in r.xread(keys, block=200) or []:
                    for entry_id, fields in entries:
                        received.add(fields[b"message"])
                        keys[key.decode()] = entry_id
        t = threading.Thread(target=read, daemon=True)
        t.start()
        return f"redis://127.0.0.1:{port}/0?stream=bench:{{stream}}", lambda: (stop.set(), t.join(2)), None
    if scheme == "ws":
        import aiohttp

        stop = threading.Event()
        connected = threading.Event()

        async def listen():
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(view.url + "ws") as ws:
                    connected.set()
                    while not stop.is_set():
                        try:
                            msg = await ws.receive(timeout=0.2)
                        except asyncio.TimeoutError:
                            continue
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            break
                        if '"type":"frame"' in msg.data[:40]:
                            received.add(msg.data)
        t = threading.Thread(target=lambda: asyncio.run(listen()), daemon=True)
        t.start()
        connected.wait(10)
        return "ws", lambda: (stop.set(), t.join(2)), None
    read_fd, write_fd = os.pipe()  # stdout: the sink writes into a pipe that a reader empties
    reader, writer = os.fdopen(read_fd, "r"), os.fdopen(write_fd, "w")
    t = threading.Thread(target=lambda: [received.add(line) for line in reader], daemon=True)
    t.start()
    return "stdout", lambda: (writer.close(), t.join(2), reader.close()), writer


def bench_sink(scheme: str, port: int, streams: int, fps: float, seconds: float) -> dict:
    from realtime.publish import open_sink

    received, view = _Received(), None
    if scheme == "ws":
        from realtime.view.server import FrameBoard, HttpView

        view = HttpView(FrameBoard([f"cam{i}" for i in range(streams)]), [], port=0).start()
    before = set(threading.enumerate())
    uri, stop_subscriber, pipe = _subscriber(scheme, port, received, view)
    subscriber_threads = set(threading.enumerate()) - before
    spec = parse_sink(uri)
    if pipe is not None:
        from realtime.publish.stdout import StdoutTransport

        transport = StdoutTransport(pipe)
        transport.name = "stdout"
        sink = QueuedSink(transport, spec.options, log=lambda line: None).start()
    else:
        sink = open_sink(spec, log=lambda line: None, hub=view.hub if view else None)
    deadline = time.monotonic() + 10
    while sink.state != "connected" and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    own = set(threading.enumerate()) - before - subscriber_threads
    if view is not None:
        own.add(view.thread)
    rng = np.random.default_rng(0)
    payloads = [frame_payload(f"cam{s}", 0, rng) for s in range(streams)]
    cpu0, offer_cpu = _thread_cpu(own), 0.0
    t0, n = time.monotonic(), 0
    period = 1.0 / fps
    while time.monotonic() - t0 < seconds:
        tick = t0 + n * period
        if tick > time.monotonic():
            time.sleep(tick - time.monotonic())
        for s in range(streams):
            text = _stamp(payloads[s])
            c = time.thread_time()
            sink.offer(Message("frame", f"cam{s}", text))
            offer_cpu += time.thread_time() - c
        n += 1
    elapsed = time.monotonic() - t0
    time.sleep(0.5)  # the last ones arrive
    own |= set(threading.enumerate()) - before - subscriber_threads
    cpu = _thread_cpu(own) - cpu0 + offer_cpu
    stats = sink.stats()
    sink.close(2.0)
    stop_subscriber()
    if view is not None:
        view.close()
    lat = np.asarray(received.latencies)
    delivered = stats["delivered"]
    return {"sink": scheme, "messages": stats["sent"], "delivered": delivered, "dropped": stats["dropped"],
            "received": int(lat.size), "cpu_ms_per_message": cpu * 1e3 / max(delivered, 1),
            "offer_cpu_ms_per_message": offer_cpu * 1e3 / max(stats["sent"], 1),
            "latency_p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
            "latency_p95_ms": float(np.percentile(lat, 95)) if lat.size else None,
            "messages_per_s": delivered / elapsed}


def pipeline_with_and_without_sinks(procs: dict, rounds: int, engine_args: list[str], streams: int = 1,
                                    max_frames: int | None = None, pace: bool = False) -> dict:
    """Pipeline FPS without sinks and with every broker sink of ``procs`` ({scheme: (process, port)}), alternating;
    ``engine_args``: command-line options of the engine (``--threads 2``); ``max_frames``: results a run (default
    all; only with an engine of one inference stream: a run cut short leaves the others' requests in flight).
    ``pace``: each of the ``streams`` copies of the clip at its own rate (30 FPS), as cameras deliver, with the
    engine a live source gets (one inference stream), and the end-to-end latency p95 beside the FPS."""
    from realtime import BUNDLED_CLIP
    from realtime.bench.measure import run_pipeline
    from realtime.cli import build_parser
    from realtime.engine.model import load_engine
    from realtime.sources.readers import parse_source

    args = build_parser().parse_args(["--source", "synth", "--no-show", "--no-save", "--no-jsonl", *engine_args])
    engine = load_engine(args, num_streams=streams, at_full_speed=not pace)
    specs = [parse_source(str(BUNDLED_CLIP)) for _ in range(streams)]
    arms = {"no sinks": [], " + ".join(procs): sorted(procs)}

    uris = {"mqtt": "mqtt://127.0.0.1:{port}/bench", "redis": "redis://127.0.0.1:{port}/0?stream=bench:{{stream}}"}

    latency: dict[str, list[float]] = {name: [] for name in arms}

    def run(schemes: list[str], name: str | None = None) -> float:
        sinks = [parse_sink(uris[s].format(port=procs[s][1])) for s in schemes]
        pipeline, wall = run_pipeline(engine, specs, save_mp4=False, save_jsonl=False, sinks=sinks,
                                      stream_names=[f"cam{i}" for i in range(streams)], max_frames=max_frames,
                                      pace=pace)
        stats = pipeline.metrics.sink_stats()
        if any(s["dropped"] for s in stats):
            print(f"  note: sinks dropped {[s['dropped'] for s in stats]} messages")
        if name is not None:
            latency[name].append(pipeline.metrics.stats("end_to_end")[1])
        return pipeline.metrics.frames_out / wall

    for schemes in arms.values():  # warm-up: the runtime's first inferences, the brokers' first clients
        run(schemes)
    fps: dict[str, list[float]] = {name: [] for name in arms}
    for r in range(rounds):
        for name in list(arms)[::-1 if r % 2 else 1]:  # A B, B A, ...: neither arm always runs first
            fps[name].append(run(arms[name], name))
        print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{n} {v[-1]:.1f} FPS (e2e p95 {latency[n][-1]:.1f} ms)"
                                                        for n, v in fps.items()), flush=True)
    medians = {name: statistics.median(v) for name, v in fps.items()}
    without, with_sinks = medians.values()
    paired = statistics.median(b / a for a, b in zip(*fps.values()))
    return {"streams": streams, "rounds": rounds, "max_frames": max_frames, "pace": pace, "fps": fps,
            "fps_median": medians, "ratio": with_sinks / without, "ratio_paired_median": paired,
            "e2e_p95_ms": latency, "e2e_p95_ms_median": {n: statistics.median(v) for n, v in latency.items()}}


def run_sinks_section(streams: int = 4, fps: float = 30.0, seconds: float = 10.0, rounds: int = 0,
                      engine_args: list[str] | None = None, max_frames: int | None = None) -> dict:
    """Every sink in turn, with its broker started here; prints the table. With ``rounds``, then the pipeline's FPS
    with and without the broker sinks (``pipeline_with_and_without_sinks``)."""
    rows, notes, pipeline = [], [], None
    with tempfile.TemporaryDirectory(prefix="qem-bench-brokers-") as folder:
        procs = {}
        mosquitto = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists()
                                                   else None)
        if mosquitto:
            port = _free_port()
            conf = Path(folder) / "mosquitto.conf"
            conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nlog_dest none\nset_tcp_nodelay true\n")
            procs["mqtt"] = (_start([mosquitto, "-c", str(conf)], port, folder), port)
        else:
            notes.append("mqtt left out: mosquitto is not installed")
        if shutil.which("redis-server"):
            port = _free_port()
            procs["redis"] = (_start(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                      "--appendonly", "no"], port, folder), port)
        else:
            notes.append("redis left out: redis-server is not installed")
        try:
            print(f"sinks: {streams} streams x {fps:g} FPS of frame messages for {seconds:g} s each "
                  f"(CPU = thread CPU time of the sink's threads and its offer calls)")
            print(f"{'sink':<7} {'msgs/s':>7} {'CPU ms/msg':>11} {'offer ms':>9} {'p50 ms':>7} {'p95 ms':>7} "
                  f"{'dropped':>8}")
            for scheme in ("stdout", "mqtt", "redis", "ws"):
                if scheme in ("mqtt", "redis") and scheme not in procs:
                    continue
                r = bench_sink(scheme, procs.get(scheme, (None, 0))[1], streams, fps, seconds)
                rows.append(r)
                p50 = "-" if r["latency_p50_ms"] is None else f"{r['latency_p50_ms']:.2f}"
                p95 = "-" if r["latency_p95_ms"] is None else f"{r['latency_p95_ms']:.2f}"
                print(f"{scheme:<7} {r['messages_per_s']:7.1f} {r['cpu_ms_per_message']:11.3f} "
                      f"{r['offer_cpu_ms_per_message']:9.4f} {p50:>7} {p95:>7} {r['dropped']:8d}")
            if rounds and procs:
                print(f"\npipeline FPS, the bundled clip (a file, nothing written"
                      f"{f', {max_frames} results a run' if max_frames else ''}), without sinks "
                      f"and with {' + '.join(sorted(procs))}, {rounds} alternating rounds")
                pipeline = pipeline_with_and_without_sinks(procs, rounds, engine_args or [], max_frames=max_frames)
                (a, fa), (b, fb) = pipeline["fps_median"].items()
                print(f"median: {a} {fa:.1f} FPS, {b} {fb:.1f} FPS, ratio {pipeline['ratio']:.3f} (median of the "
                      f"rounds' ratios {pipeline['ratio_paired_median']:.3f})")
                print(f"\npipeline at {streams} streams x the clip's 30 FPS (paced like cameras, one inference stream), "
                      f"without sinks and with {' + '.join(sorted(procs))}, {rounds} alternating rounds")
                paced = pipeline_with_and_without_sinks(procs, rounds, engine_args or [], streams=streams,
                                                        max_frames=max_frames, pace=True)
                (a, fa), (b, fb) = paced["fps_median"].items()
                (_, la), (_, lb) = paced["e2e_p95_ms_median"].items()
                print(f"median: {a} {fa:.1f} FPS, e2e p95 {la:.1f} ms; {b} {fb:.1f} FPS, e2e p95 {lb:.1f} ms; "
                      f"ratio {paced['ratio']:.3f}")
                pipeline = {"full_speed": pipeline, "paced": paced}
        finally:
            for proc, _ in procs.values():
                proc.terminate()
                proc.wait(10)
    for note in notes:
        print(f"  {note}")
    return {"sinks": rows, "pipeline": pipeline}

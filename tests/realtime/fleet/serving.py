"""What the fleet's tests share: ``qem serve`` started as a user starts it (a subprocess, its error lines kept), its
``/status.json`` polled, the messages at a Redis subscriber, the listening sockets of a process tree."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager

import pytest

from tests.realtime.brokers import RedisServer, missing
from tests.realtime.helpers import ROOT, GstServer, free_port, gst_available


class Fleet:
    def __init__(self, proc: subprocess.Popen, port: int, redis: RedisServer, log: list[str], folder,
                 cameras: list[str]):
        self.proc, self.port, self.redis, self.log, self.folder = proc, port, redis, log, folder
        self.cameras = cameras

    def status(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/status.json", timeout=5) as r:
            return json.load(r)

    def wait(self, condition, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"qem serve ended: {''.join(self.log[-20:])}"
            try:
                last = self.status()
                if condition(last):
                    return last
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}; last status: {json.dumps(last)[:3000]}")

    def frames(self) -> dict[str, list[dict]]:
        """Every distinct message at the Redis subscriber, by camera (frames and track events)."""
        import redis

        client = redis.Redis(port=self.redis.port)
        out = {}
        for cam in self.cameras:
            entries = client.xrange(f"qem:{cam}")
            out[cam] = list({e[b"message"]: json.loads(e[b"message"]) for _, e in entries}.values())
        client.close()
        return out

    def delivering(self, cameras, since: float, within: float) -> dict[str, float]:
        """Camera -> wall time of its first frame at the subscriber after ``since``; waits up to ``within`` s for all."""
        first: dict[str, float] = {}
        deadline = time.time() + within
        while len(first) < len(cameras) and time.time() < deadline:
            time.sleep(0.5)
            for cam, messages in self.frames().items():
                times = [m["wall_time"] for m in messages if m["type"] == "frame" and m["wall_time"] > since]
                if cam in cameras and cam not in first and times:
                    first[cam] = min(times)
        return first

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def serve(folder, redis: RedisServer, cameras: list[str], *args: str) -> Fleet:
    """``qem serve`` with the camera file of ``folder`` and ``args``, its view on a free port."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "models", "serve", "--cameras", str(folder / "cameras.yaml"),
                             "--http-port", str(port), "--report-every", "5", *args],
                            cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True).start()
    return Fleet(proc, port, redis, log, folder, cameras)


@contextmanager
def cameras_and_redis(folder, cameras: dict[str, tuple[str, int]], unrecorded=()):
    """RTSP cameras from the test server (name -> (size, fps)), a Redis, and ``folder/cameras.yaml`` naming them,
    every camera's messages to that Redis; yields the Redis. Skips without GStreamer's RTSP server or redis-server."""
    reason = gst_available() or missing("redis-server")
    if reason:
        pytest.skip(reason)
    servers = {name: GstServer(size=size, fps=fps).start() for name, (size, fps) in cameras.items()}
    redis = RedisServer(folder / "redis").start()
    text = "sinks: [redis://127.0.0.1:%d/0]\ncameras:\n" % redis.port
    text += "".join(f"  {n}: {{url: '{s.url()}'{', record: false' if n in unrecorded else ''}}}\n"
                    for n, s in servers.items())
    (folder / "cameras.yaml").write_text(text)
    try:
        yield redis
    finally:
        redis.stop()
        for s in servers.values():
            s.stop()


def descendants(pid: int) -> set[int]:
    import psutil

    return {p.pid for p in psutil.Process(pid).children(recursive=True)} | {pid}


def listening(pids: set[int]) -> list[str]:
    """The listening TCP sockets (``ss`` rows) of ``pids``."""
    rows = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout.splitlines()
    return [r for r in rows if any(f"pid={p}," in r for p in pids)]


LOOPBACK = {"127.0.0.1", "[::ffff:127.0.0.1]", "[::1]"}


def addresses(rows: list[str]) -> set[str]:
    return {r.split()[3].rpartition(":")[0] for r in rows}


def gaps(messages: list[dict], since: float) -> float:
    """The longest time between two frames at the subscriber after ``since``."""
    times = sorted(m["wall_time"] for m in messages if m["type"] == "frame" and m["wall_time"] >= since)
    return max((b - a for a, b in zip(times, times[1:])), default=float("inf"))


def settled(s: dict) -> bool:
    """Every engine runs exactly the cameras placed on it."""
    return all(sorted(e["running"]) == sorted(e["cameras"]) for e in s["engines"] if e["state"] == "up")


def summary_counts(text: str) -> dict[str, dict]:
    """Per camera, the figures of ``qem serve``'s closing summary (one Redis sink)."""
    rows = re.findall(r"^  (\w+): (\d+) frames; redis://127\.0\.0\.1:\d+/0 sent (\d+) delivered (\d+) dropped (\d+) "
                      r"lost (\d+) unconfirmed (\d+)", text, re.MULTILINE)
    keys = ("frames", "sent", "delivered", "dropped", "lost", "unconfirmed")
    return {cam: dict(zip(keys, map(int, values))) for cam, *values in rows}

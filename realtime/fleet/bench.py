"""``qem bench --sections cluster``: the fleet on this machine's local Ray (loopback, 2 CPUs).

Cameras: the bundled clip played like a camera (paced, looped, newest frame only), ``--cluster-cameras`` of them,
each capped at ``--cluster-fps``. Rows, alternated over ``--rounds`` so that the machine's drift hits each alike:

- ``plain``: one ``EngineHost`` in this process (no Ray), every core its threads, the cameras one Ray engine
  carried in the round before: the same code and cameras without the cluster;
- ``ray 1 engine``: ``qem serve``'s coordinator and one engine actor of 2 CPUs;
- ``ray 2 engines``: two engine actors of 1 CPU each;
- ``plain, saturated`` and ``ray 1 engine, saturated``: 2 cameras that read the clip as a file, looped, as fast as
  the engine takes frames (nothing paced, nothing dropped), placed whatever their rate: FPS out is the engine's
  throughput;

each ``--cluster-seconds`` after the cameras run: cameras placed (the capacity of an engine of 2 threads and of 1
thread is measured first in this process, alone, as ``EngineHost`` does at start, and given to the engines: on a
shared 2-core machine engines that measure themselves while the other starts read far too low; a camera is served
when placed), results a second in all (frames counted by the engines), and the overhead of Ray =
1 - (ray 1 engine FPS / plain FPS), at the cameras' rate and saturated. Then the failover time: SIGKILL of one of
the two engines' processes until each of its cameras has new results (the coordinator polls twice a second: the
figure is good to about 0.5 s).
"""
from __future__ import annotations

import os
import signal
import statistics
import time

from realtime.cameras import Camera
from realtime.fleet.engine_host import EngineHost, EngineOptions


def cameras(n: int, fps: float, clip: str) -> tuple[Camera, ...]:
    return tuple(Camera(f"cam{i}", clip, record=False, as_live=True, fps=fps) for i in range(n))


def frames_of(snapshot: dict) -> dict[str, int]:
    return {c["name"]: c["frames"] for c in snapshot["cameras"]}


def run_fleet(ray, cams, options: EngineOptions, engines: int, cpus: float, seconds: float,
              failover: bool = False) -> dict:
    from realtime.fleet.coordinator import COORDINATOR, NAMESPACE, Coordinator, FleetSpec

    spec = FleetSpec(cameras=cams, engine=options, engines=engines, cpus_per_engine=cpus)
    coordinator = ray.remote(Coordinator).options(name=COORDINATOR, namespace=NAMESPACE, lifetime="detached",
                                                  max_restarts=-1, num_cpus=0, max_concurrency=8).remote(spec)
    snap = lambda: ray.get(coordinator.snapshot.remote(), timeout=30)  # noqa: E731
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            s = snap()
            placed = [c for c in s["cameras"] if c["engine"]]
            if (all(e["state"] == "up" for e in s["engines"])
                    and all(c["state"] == "running" and c["fps"] > 0 for c in placed)
                    and len(placed) + len(s["unplaced"]) == len(cams)):
                break
            time.sleep(0.5)
        time.sleep(3.0)  # past the first results of every camera
        s0, t0 = snap(), time.monotonic()
        time.sleep(seconds)
        s1, t1 = snap(), time.monotonic()
        before, after = frames_of(s0), frames_of(s1)
        served = sorted(c["name"] for c in s1["cameras"] if c["engine"])
        out = {"engines": engines, "cpus_per_engine": cpus, "served": served, "unplaced": s1["unplaced"],
               "capacity_mpx_s": [e["capacity_mpx_s"] for e in s1["engines"]],
               "fps": sum(after[c] - before[c] for c in after) / (t1 - t0),
               "fps_per_camera": {c: round((after[c] - before[c]) / (t1 - t0), 2) for c in served}}
        if failover and served:
            out["failover_s"] = measure_failover(snap, s1)
        return out
    finally:
        ray.get(coordinator.stop.remote(), timeout=120)
        ray.kill(coordinator, no_restart=True)


def measure_failover(snap, s: dict) -> float | None:
    """SIGKILL of the first engine with cameras; seconds until every one of its cameras has new results."""
    victim = next(e for e in s["engines"] if e["cameras"])
    frames = frames_of(s)
    killed = time.monotonic()
    os.kill(victim["pid"], signal.SIGKILL)
    while time.monotonic() - killed < 60:
        time.sleep(0.1)
        now = snap()
        engine = next(e for e in now["engines"] if e["name"] == victim["name"])
        fresh = frames_of(now)
        if engine["pid"] != victim["pid"] and engine["state"] == "up" and all(
                fresh[c] > frames[c] and next(x for x in now["cameras"] if x["name"] == c)["state"] == "running"
                for c in victim["cameras"]):
            return time.monotonic() - killed
    return None


def run_plain(cams, options: EngineOptions, seconds: float) -> dict:
    host = EngineHost("plain", options)
    try:
        host.assign(list(cams))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(c["fps"] > 0 for c in host.status()["cameras"]):
            time.sleep(0.2)
        time.sleep(3.0)
        f0, t0 = {c: v["frames"] for c, v in host.counters().items()}, time.monotonic()
        time.sleep(seconds)
        f1, t1 = {c: v["frames"] for c, v in host.counters().items()}, time.monotonic()
        return {"served": sorted(c.name for c in cams), "fps": sum(f1[c] - f0[c] for c in f1) / (t1 - t0)}
    finally:
        host.stop()


def run_cluster_section(clip: str, n: int = 6, fps: float = 5.0, seconds: float = 20.0, rounds: int = 2,
                        backend: str = "auto", imgsz: int | None = None) -> dict:
    from realtime.fleet.cluster import connect

    cams = cameras(n, fps, clip)
    base = dict(backend=backend, imgsz=imgsz, device="cpu", extra={"loop": True})
    capacity = {t: EngineHost("probe", EngineOptions(threads=t, **base)).capacity for t in (2, 1)}
    print(f"capacity measured in this process, nothing else of ours running: "
          f"{capacity[2] / 1e6:.2f} Mpx/s with 2 threads, {capacity[1] / 1e6:.2f} with 1", flush=True)
    ray = connect(None, 2)
    rows: dict[str, list[dict]] = {"plain": [], "ray 1 engine": [], "ray 2 engines": [], "plain, saturated": [],
                                   "ray 1 engine, saturated": []}
    busy = tuple(Camera(f"busy{i}", clip, record=False) for i in range(2))  # files at full speed: FPS out is the
    # engine's throughput, not the cameras' rate
    try:
        for r in range(rounds):
            one = run_fleet(ray, cams, EngineOptions(threads=2, capacity=capacity[2], **base), 1, 2.0, seconds)
            rows["ray 1 engine"].append(one)
            served = tuple(c for c in cams if c.name in one["served"])
            rows["plain"].append(run_plain(served, EngineOptions(threads=2, **base), seconds))
            rows["ray 2 engines"].append(run_fleet(ray, cams, EngineOptions(threads=1, capacity=capacity[1], **base),
                                                   2, 1.0, seconds, failover=True))
            unlimited = EngineOptions(threads=2, capacity=1e12, **base)
            rows["ray 1 engine, saturated"].append(run_fleet(ray, busy, unlimited, 1, 2.0, seconds))
            rows["plain, saturated"].append(run_plain(busy, unlimited, seconds))
            print(f"round {r + 1}: plain {rows['plain'][-1]['fps']:.1f} FPS, ray 1 engine {one['fps']:.1f} "
                  f"({len(one['served'])} cameras), ray 2 engines {rows['ray 2 engines'][-1]['fps']:.1f} "
                  f"({len(rows['ray 2 engines'][-1]['served'])} cameras), failover "
                  f"{rows['ray 2 engines'][-1].get('failover_s')}", flush=True)
    finally:
        ray.shutdown()
    med = {k: statistics.median(x["fps"] for x in v) for k, v in rows.items()}
    ratios = [o["fps"] / p["fps"] for o, p in zip(rows["ray 1 engine"], rows["plain"])]
    saturated = [o["fps"] / p["fps"] for o, p in zip(rows["ray 1 engine, saturated"], rows["plain, saturated"])]
    failovers = [x["failover_s"] for x in rows["ray 2 engines"] if x.get("failover_s") is not None]
    out = {"cameras": n, "camera_fps": fps, "capacity_mpx_s": {t: c / 1e6 for t, c in capacity.items()},
           "seconds": seconds, "rounds": rows, "median_fps": med,
           "ray_vs_plain": statistics.median(ratios), "overhead": 1 - statistics.median(ratios),
           "ray_vs_plain_saturated": statistics.median(saturated),
           "overhead_saturated": 1 - statistics.median(saturated),
           "failover_s": statistics.median(failovers) if failovers else None,
           "served": {k: statistics.median(len(x["served"]) for x in v) for k, v in rows.items()}}
    print(f"\ncluster: {n} cameras offered (the bundled clip as a live camera, {fps:g} FPS each), "
          f"{seconds:g} s per row, {rounds} rounds")
    print(f"{'row':<24} {'cameras served':>14} {'FPS in all':>10}")
    for k in rows:
        print(f"{k:<24} {out['served'][k]:14.0f} {med[k]:10.1f}")
    print(f"Ray 1 engine / plain: {out['ray_vs_plain']:.3f} at the cameras' rate, "
          f"{out['ray_vs_plain_saturated']:.3f} saturated (2 files at full speed; overhead "
          f"{100 * out['overhead_saturated']:.1f}%, target < 10%); "
          f"failover {out['failover_s'] if out['failover_s'] is None else round(out['failover_s'], 1)} s "
          f"(target < 10 s)")
    return out

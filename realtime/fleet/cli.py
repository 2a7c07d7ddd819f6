"""``qem serve``: a camera fleet on a Ray cluster. One engine actor per GPU (``--gpus-per-engine``, default 1 on a
cluster with GPUs) or per ``--cpus-per-engine`` cores, each running the project's own pipeline for the cameras the
coordinator gives it; an engine whose process dies is restarted by Ray and gets its cameras back; one that is gone
for good, or whose node left, has its cameras moved to the others, within their capacity; an engine on a node that
joins takes cameras from the busiest. Results leave through the sinks.

Examples:
  qem serve --cameras cameras.yaml --sink mqtt://127.0.0.1:1883/qem           a local cluster of this machine
  qem serve --cameras cameras.yaml --ray 10.0.0.5:6379 --http-port 8090      an existing cluster; status view
  qem serve --source rtsp://cam1/live --source rtsp://cam2/live --engines 2 --cpus-per-engine 1 --capacity 5
  qem serve --cameras cameras.yaml --detach       leaves the fleet running;   qem serve --stop   stops it

The view (--http-port): http://127.0.0.1:PORT/ and /status.json list every camera with its engine, node, state, FPS,
p95 latency and people. See docs/cluster.md (KubeRay, sizing, failures, network).
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

from models.argtypes import OneLineParser, float_above, imgsz, int_at_least, port

STATE_FILE = "serve.json"


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="qem serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cameras", metavar="FILE", help="a camera file (YAML, as qem predict --cameras)")
    p.add_argument("--source", action="append", default=None, metavar="URL",
                   help="a camera URL (named stream<i>); repeatable")
    p.add_argument("--sink", action="append", default=None, metavar="URI",
                   help="every camera's messages go there too (mqtt://..., redis://...); repeatable")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="HOST:PORT of a Ray cluster's head, its GCS (or ray://HOST:PORT); default: start a local "
                        "cluster on 127.0.0.1")
    p.add_argument("--cpus", type=int_at_least(1), default=2, help="CPUs of the local cluster (default 2)")
    p.add_argument("--engines", type=int_at_least(1), default=None,
                   help="engine actors (default: one per GPU, or the cluster's CPUs / --cpus-per-engine); with --ray, "
                        "more than the cluster holds now wait for nodes to join")
    p.add_argument("--cpus-per-engine", type=float_above(0), default=1.0, help="CPU cores per CPU engine (default 1)")
    p.add_argument("--gpus-per-engine", type=float_above(0), default=1.0, help="GPUs per GPU engine (default 1)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="engines on GPUs or CPUs (default auto: GPUs when the cluster has any)")
    p.add_argument("--capacity", type=float_above(0), default=None, metavar="MPX",
                   help="megapixels a second one engine carries (640x480 at 30 FPS = 9.2); default: measured by "
                        "each engine at start on its node")
    p.add_argument("--weights", default=None,
                   help="checkpoint, ONNX file or OpenVINO folder (default: the bundled one)")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime", "openvino"],
                   help="runtime of each engine (default auto: on a CPU the fastest installed one, as qem predict)")
    p.add_argument("--imgsz", type=imgsz, default=None, help="network input size (default: the checkpoint's)")
    p.add_argument("--record", default=None, metavar="DIR",
                   help="record MP4 + JSONL of the cameras with record: true under DIR on each node (default: none)")
    p.add_argument("--start-wait", type=float_above(0), default=120.0, metavar="S",
                   help="seconds the first placement waits for every engine to start (default 120); later engines "
                        "take cameras from the busiest")
    p.add_argument("--http-port", type=port, default=None, help="serve the fleet's view on this port (0: any)")
    p.add_argument("--http-host", default="127.0.0.1", help="address of the view (default 127.0.0.1)")
    p.add_argument("--project", default="runs", help=f"where --detach keeps {STATE_FILE} (default runs)")
    p.add_argument("--detach", action="store_true", help="leave the fleet running and return")
    p.add_argument("--stop", action="store_true", help="stop the fleet left running by --detach")
    p.add_argument("--duration", type=float_above(0), default=None, help="stop after this many seconds")
    p.add_argument("--report-every", type=float_above(0), default=10.0, help="seconds between status lines")
    return p


class UsageError(ValueError):
    """A flag's value that ``qem serve`` cannot take: one line, exit status 2, as argparse's own."""


# Sinks a fleet cannot carry: the engines are other processes, possibly on other nodes.
NOT_FLEET_SINKS = {
    "stdout": "the engines are processes of their own (on other nodes too), whose standard output reaches this "
              "terminal only inside Ray's log lines",
    "ws": "the fleet has no live view of frames",
}
FLEET_SINKS_HINT = "use mqtt://HOST:PORT/PREFIX or redis://HOST:PORT/DB"


def main(argv: list[str] | None = None) -> int:
    from realtime.fleet.cluster import FleetError, parse_address
    from realtime.sources.readers import SourceError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ray is not None:
        try:
            parse_address(args.ray)
        except FleetError as exc:
            parser.error(str(exc))
    try:
        if args.stop:
            return stop_detached(args)
        cameras, sinks = read_cameras(args)
        return serve(args, cameras, sinks)
    except UsageError as exc:
        parser.error(str(exc))
    except FleetError as exc:
        sys.exit(f"error: {exc}")
    except (ValueError, SourceError) as exc:  # CameraFileError, SinkUriError, a malformed camera URL
        sys.exit(f"error: {_one_line(exc)}")
    except KeyboardInterrupt:
        sys.exit("interrupted")


def read_cameras(args):
    """Cameras of the file, then ``--source`` ones (``stream<i>``); sinks of ``--sink`` and the file's top level.
    Every URL is checked here, before any cluster is reached."""
    from realtime.cameras import Camera, load_cameras
    from realtime.cli import resolve_sources
    from realtime.publish.uri import merge_sinks, parse_sink

    given = tuple(parse_sink(t) for t in args.sink or [])
    for spec in given:
        if spec.scheme in NOT_FLEET_SINKS:
            raise UsageError(f"--sink {spec.name}: {NOT_FLEET_SINKS[spec.scheme]}; {FLEET_SINKS_HINT}")
    file = load_cameras(args.cameras) if args.cameras else None
    cameras = list(file.cameras) if file else []
    n = len(cameras)
    cameras += [Camera(f"stream{n + i}", url) for i, url in enumerate(args.source or [])]
    if not cameras:
        raise ValueError("give cameras: --cameras FILE or --source URL (repeatable)")
    names = [c.name for c in cameras]
    if len(set(names)) < len(names):
        raise ValueError(f"{args.cameras}: a camera is named like a --source camera (stream<i>); rename it")
    resolve_sources([c.url for c in cameras])  # every URL checked; "synth": the bundled clip, as in qem predict
    in_file = [(f"{args.cameras}: sinks", s) for s in (file.sinks if file else ())]
    in_file += [(f"{args.cameras}: camera {c.name!r}: sinks", s) for c in cameras for s in c.sinks]
    for where, spec in in_file:
        if spec.scheme in NOT_FLEET_SINKS:
            raise ValueError(f"{where}: {spec.name}: {NOT_FLEET_SINKS[spec.scheme]}; {FLEET_SINKS_HINT}")
    merged = merge_sinks(given + (tuple(file.sinks) if file else ()) + tuple(s for c in cameras for s in c.sinks),
                         warn=lambda line: print(line, file=sys.stderr))
    sinks = [s for s in merged if s.options.streams is None]  # the run's; a camera's own is opened on its engine
    # ... unless a run-wide one covers it: each engine opens both, so that camera's messages would go there twice
    covered = {(s.uri, replace(s.options, streams=None)) for s in sinks}
    cameras = [replace(c, sinks=tuple(s for s in c.sinks if (s.uri, replace(s.options, streams=None)) not in covered))
               for c in cameras]
    return tuple(cameras), tuple(sinks)


def plan_engines(args, resources: dict) -> tuple[str, int, float, float]:
    """(device, engines, cpus per engine, gpus per engine) for the cluster's ``resources``; one line on a mismatch.
    On an existing cluster (``--ray``) more engines than it holds now may be asked: they start when nodes join (an
    autoscaler adds nodes for them); on a local cluster, where none will join, that is an error."""
    from realtime.fleet.cluster import FleetError

    gpus, cpus = resources.get("GPU", 0.0), resources.get("CPU", 0.0)
    device = args.device if args.device != "auto" else ("cuda" if gpus >= args.gpus_per_engine else "cpu")
    if device == "cuda":
        if gpus < args.gpus_per_engine:
            raise FleetError(f"--device cuda: the cluster has {gpus:g} GPU(s); add a GPU worker group (docs/cluster.md)"
                             f" or use --device cpu")
        most = int(gpus // args.gpus_per_engine)
        engines = _engines(args, most, f"GPUs for {most} engine(s) of {args.gpus_per_engine:g} GPU")
        return device, engines, 1.0, args.gpus_per_engine
    most = int(cpus // args.cpus_per_engine)
    if most < 1:
        raise FleetError(f"--cpus-per-engine {args.cpus_per_engine:g}: the cluster has {cpus:g} CPU(s)")
    engines = _engines(args, most, f"CPUs for {most} engine(s) of {args.cpus_per_engine:g} CPU")
    return device, engines, args.cpus_per_engine, 0.0


def _engines(args, most: int, holds: str) -> int:
    from realtime.fleet.cluster import FleetError

    engines = args.engines or most
    if engines <= most:
        return engines
    if args.ray is None:
        raise FleetError(f"--engines {engines}: the local cluster has {holds} (use --cpus or --cpus-per-engine)")
    print(f"fleet: --engines {engines}: the cluster has {holds} now; the others start when nodes join",
          file=sys.stderr, flush=True)
    return engines


def serve(args, cameras, sinks) -> int:
    from realtime.fleet.cluster import HEAD_LOG, FleetError, connect, start_head, write_state
    from realtime.fleet.coordinator import COORDINATOR, NAMESPACE, Coordinator, FleetSpec
    from realtime.fleet.engine_host import EngineOptions

    head_pid = head_log = None
    address = args.ray
    if args.detach:
        refuse_second_detached(args.project)
    if args.detach and address is None:
        address, head_pid = start_head(args.cpus, Path(args.project))
        head_log = Path(args.project) / HEAD_LOG
    ray = connect(address, args.cpus)
    try:
        device, engines, cpus, gpus = plan_engines(args, ray.cluster_resources())
        try:
            ray.get_actor(COORDINATOR, namespace=NAMESPACE)
            raise FleetError("a fleet already runs on this cluster; stop it first (qem serve --stop)")
        except ValueError:
            pass
        options = EngineOptions(weights=args.weights, imgsz=args.imgsz, device=device, backend=args.backend,
                                threads=max(1, int(cpus)) if device == "cpu" else None, record_root=args.record,
                                capacity=args.capacity * 1e6 if args.capacity else None)
        spec = FleetSpec(cameras=cameras, sinks=sinks, engine=options, engines=engines, cpus_per_engine=cpus,
                         gpus_per_engine=gpus, http_host=args.http_host, http_port=args.http_port,
                         cluster=cluster_address(ray, address), start_wait=args.start_wait)
        coordinator = ray.remote(Coordinator).options(
            name=COORDINATOR, namespace=NAMESPACE, lifetime="detached", max_restarts=-1, max_task_retries=-1,
            num_cpus=0, max_concurrency=8).remote(spec)
        view = ray.get(coordinator.view_url.remote(), timeout=60)
        where = address or "a local cluster on 127.0.0.1"
        print(f"fleet: {len(cameras)} camera(s) on {engines} {device} engine(s) of {where}"
              + (f"; view {view}" if view else ""), file=sys.stderr, flush=True)
        if args.detach:
            state = {"address": address, "head_pid": head_pid,
                     "head_log": str(head_log.resolve()) if head_log else None, "view": view}
            write_state(Path(args.project) / STATE_FILE, state)
            print("fleet: running detached; stop it with: qem serve --stop"
                  + (f" --ray {address}" if head_pid is None else ""), file=sys.stderr)
            return 0
        return watch(ray, coordinator, args)
    except BaseException:
        if head_pid is not None:
            from realtime.fleet.cluster import stop_head
            stop_head(head_pid)  # its log stays, for a look at what went wrong
        raise
    finally:
        if not args.detach:
            ray.shutdown()


def refuse_second_detached(project: str) -> None:
    """One line when the state file of ``--detach`` names a cluster that still answers: a second detached fleet
    would overwrite it and leave the first one running with nothing that knows it."""
    from realtime.fleet.cluster import FleetError, check_reachable, read_state

    path = Path(project) / STATE_FILE
    address = (read_state(path) or {}).get("address")
    if not address:
        return
    try:
        check_reachable(address, timeout=2.0)
    except FleetError:  # its cluster is gone: the file is stale and is overwritten
        return
    stop = "qem serve --stop" + ("" if project == "runs" else f" --project {project}")
    raise FleetError(f"a fleet left by --detach still runs at {address} ({path}); stop it first: {stop}")


def cluster_address(ray, address: str | None) -> str:
    """HOST:PORT of the cluster's GCS as a driver reaches it (a local cluster: on 127.0.0.1, where it listens)."""
    if address is not None:
        return address
    return f"127.0.0.1:{ray.get_runtime_context().gcs_address.rpartition(':')[2]}"


def watch(ray, coordinator, args) -> int:
    """Status lines until Ctrl-C, SIGTERM, ``--duration``, or every camera has ended or failed for good (files played
    to their end, as ``qem predict`` ends with them; a live camera never ends by itself); then the fleet stops and its
    summary is printed. Status 1 when every camera failed."""
    stop = {"asked": False}
    status, final_polls = 0, 0

    def ask(signum, frame):
        stop["asked"] = True

    previous = {s: signal.signal(s, ask) for s in (signal.SIGINT, signal.SIGTERM)}
    reported: set[str] = set()
    start = time.monotonic()
    next_line = start + args.report_every
    try:
        while not stop["asked"] and (args.duration is None or time.monotonic() - start < args.duration):
            time.sleep(0.5)
            try:
                snap = ray.get(coordinator.snapshot.remote(), timeout=10)
            except Exception:  # noqa: BLE001 - the coordinator restarts: the next poll reaches it
                continue
            for u in snap["unplaced"]:
                if u["name"] not in reported:
                    reported.add(u["name"])
                    print(f"error: camera {u['name']!r} fits on no engine: {u['reason']}; the cameras that fit run",
                          file=sys.stderr, flush=True)
            if time.monotonic() >= next_line:
                next_line += args.report_every
                print(status_line(snap), file=sys.stderr, flush=True)
            cams = snap["cameras"]
            final_polls = final_polls + 1 if cams and all(c["state"] in ("ended", "failed") for c in cams) else 0
            if final_polls >= 2:  # twice in a row: not a camera between two engines
                status = every_camera_over(cams)
                break
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    last = ray.get(coordinator.stop.remote(), timeout=120)
    ray.kill(coordinator, no_restart=True)
    print(summary(last), file=sys.stderr)
    return status


def every_camera_over(cams: list[dict]) -> int:
    """The lines for a fleet whose cameras have all ended or failed; its exit status."""
    failed = [c for c in cams if c["state"] == "failed"]
    for c in failed:
        print(f"error: camera {c['name']!r} failed: {c['error'] or 'no frames'}", file=sys.stderr, flush=True)
    if len(failed) == len(cams):
        return 1
    print("fleet: every camera has ended (a file plays once: `loop: true` in the camera file plays it again); "
          "stopping", file=sys.stderr, flush=True)
    return 0


def status_line(snap: dict) -> str:
    cams = snap["cameras"]
    running = sum(c["state"] == "running" for c in cams)
    fps = sum(c["fps"] for c in cams)
    up = sum(e["state"] == "up" for e in snap["engines"])
    others = [f"{c['name']} {c['state']}" for c in cams if c["state"] != "running"]
    return (f"fleet: {running}/{len(cams)} cameras running on {up} engine(s), {fps:.1f} fps in all"
            + (f" | {', '.join(others)}" if others else ""))


def summary(snap: dict) -> str:
    rows = [f"summary: {len(snap['cameras'])} camera(s), {len(snap['engines'])} engine(s), "
            f"{len(snap['failovers'])} engine restart(s)"]
    for c in snap["cameras"]:
        sinks = "; ".join(f"{s['name']} sent {s['sent']} delivered {s['delivered']} dropped {s['dropped']} "
                          f"lost {s['lost']} unconfirmed {s['unconfirmed']}" for s in c["sinks"])
        rows.append(f"  {c['name']}: {c['frames']} frames" + (f" ({c['unplaced']})" if c["unplaced"] else "")
                    + (f"; {sinks}" if sinks else ""))
    return "\n".join(rows)


def stop_detached(args) -> int:
    from realtime.fleet.cluster import HEAD_LOG, FleetError, check_reachable, connect, read_state, stop_head
    from realtime.fleet.coordinator import COORDINATOR, NAMESPACE

    path = Path(args.project) / STATE_FILE
    state = read_state(path) or {}
    address = args.ray or state.get("address")
    if address is None:
        raise FleetError(f"no detached fleet known here ({path} missing); give its cluster with --ray ADDRESS")
    if args.ray is None and state.get("head_pid"):
        try:
            check_reachable(address, timeout=2.0)
        except FleetError:  # the local head that --detach started has ended, and the fleet with it
            log = Path(state.get("head_log") or path.parent / HEAD_LOG)
            path.unlink(missing_ok=True)
            print(f"fleet: nothing to stop, its local Ray head at {address} had already ended"
                  + (f" (its output: {log})" if log.exists() else "") + f"; removed {path}", file=sys.stderr)
            return 0
    ray = connect(address, args.cpus)
    try:
        try:
            coordinator = ray.get_actor(COORDINATOR, namespace=NAMESPACE)
        except ValueError:
            raise FleetError(f"no fleet runs on the cluster at {address}") from None
        last = ray.get(coordinator.stop.remote(), timeout=120)
        ray.kill(coordinator, no_restart=True)
        print(summary(last), file=sys.stderr)
    finally:
        ray.shutdown()
        if args.ray is None or args.ray == state.get("address"):
            if state.get("head_pid"):  # a head this command started, its output beside the state file
                stop_head(state["head_pid"])
                Path(state.get("head_log") or path.parent / HEAD_LOG).unlink(missing_ok=True)
            path.unlink(missing_ok=True)
    return 0


def _one_line(exc: BaseException) -> str:
    from realtime.sources.redact import redact

    text = str(exc).strip().splitlines()
    return redact(text[0] if text else type(exc).__name__)


if __name__ == "__main__":
    sys.exit(main())

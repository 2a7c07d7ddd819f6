"""The coordinator: one named, restartable Ray actor (``qem-coordinator`` in the namespace ``qem``) that starts the
engine actors, places the cameras on them (``realtime.fleet.placement``) and moves them when an engine dies.

Engines are named, detached actors (``qem-engine-<i>``, ``max_restarts=-1``) running ``EngineHost``: a SIGKILL or
an out-of-memory kill of an engine's process makes Ray start it again; the new process holds no cameras, and the
coordinator's next poll (every ``poll`` seconds) gives it back its own. An engine whose actor is gone for good
(``ray.kill(..., no_restart=True)``, its node left the cluster) has its cameras placed on the engines left, within
their capacity; a camera that fits nowhere is listed in ``unplaced`` with the reason. A restarted coordinator
finds its engines again by name (``get_if_exists``) and takes the cameras they run as the current placement.

``snapshot()`` is the fleet's one view (``/status.json`` of ``realtime.fleet.status_view``): every camera with its
engine, node, state, FPS, p95 latency, people, and its messages per sink summed over every pipeline it ran in
(an engine killed by a signal counts with the figures of its last poll: what it did after that is lost with it).
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from realtime.cameras import Camera
from realtime.fleet.engine_host import EngineHost, EngineOptions
from realtime.fleet.placement import CameraLoad, EngineRoom, Placement, place

NAMESPACE = "qem"
COORDINATOR = "qem-coordinator"
ENGINE_PREFIX = "qem-engine-"
STATE_KEY = "qem-fleet-state"
START_WAIT_S = 120.0


@dataclass(frozen=True)
class FleetSpec:
    cameras: tuple[Camera, ...]
    sinks: tuple = ()                    # realtime.publish.SinkSpec: every camera's messages go there
    engine: EngineOptions = field(default_factory=EngineOptions)
    engines: int = 1
    cpus_per_engine: float = 1.0
    gpus_per_engine: float = 0.0
    http_host: str = "127.0.0.1"
    http_port: int | None = None          # None: no status view
    poll: float = 0.5                     # seconds between polls of the engines
    call_timeout: float = 2.0             # a poll not answered by then: the engine is unavailable
    cluster: str = ""                     # the cluster's address (HOST:PORT of its GCS), for the view


@dataclass
class Slot:
    """What the coordinator knows of one engine."""

    name: str
    handle: object
    state: str = "starting"               # starting, up, restarting, gone
    info: dict | None = None
    status: dict | None = None
    pid: int | None = None
    restarts: int = 0
    down_since: float | None = None
    joined: float = field(default_factory=time.time)
    pending: object = None                # the ObjectRef of an assign() not answered yet
    pending_set: tuple = ()


def engine_actor_class():
    import ray

    return ray.remote(EngineHost)


class Coordinator:
    def __init__(self, spec: FleetSpec):
        self.spec = spec
        self.cameras = {c.name: c for c in spec.cameras}
        self.slots: dict[str, Slot] = {}
        self.placement = Placement()
        self.history: dict[str, dict] = {}     # camera -> counters of engine incarnations that are gone
        self.events: deque[dict] = deque(maxlen=200)
        self.failovers: list[dict] = []        # per engine restart: when it was noticed, when cameras ran again
        self.lock = threading.RLock()
        self.address = spec.cluster
        self._stop = threading.Event()
        self._had_engines = False
        self._measured: dict[str, CameraLoad] = {}
        self._started = time.monotonic()
        self._restore()
        actor = engine_actor_class()
        for i in range(spec.engines):
            name = f"{ENGINE_PREFIX}{i}"
            handle = actor.options(name=name, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
                                   max_restarts=-1, max_task_retries=0, max_concurrency=8,
                                   num_cpus=spec.cpus_per_engine, num_gpus=spec.gpus_per_engine
                                   ).remote(name, spec.engine, spec.sinks)
            self.slots[name] = Slot(name, handle)
        self.view = None
        if spec.http_port is not None:
            from realtime.fleet.status_view import FleetView

            self.view = FleetView(self.snapshot, spec.http_host, spec.http_port).start()
        self.thread = threading.Thread(target=self._loop, name="coordinator", daemon=True)
        self.thread.start()

    # -- called by the command line and the tests ----------------------------------------------------------------
    def ready(self) -> bool:
        return True

    def view_url(self) -> str | None:
        return self.view.url if self.view is not None else None

    def snapshot(self) -> dict:
        with self.lock:
            now = time.time()
            cameras = []
            totals = self._totals()
            for name in self.cameras:
                engine = self.placement.assignment.get(name)
                slot = self.slots.get(engine) if engine else None
                live = self._camera_status(slot, name)
                state = "unplaced" if name in self.placement.unplaced else (
                    "failover" if slot is not None and slot.state in ("restarting", "starting") else
                    (live or {}).get("state", "assigning"))
                t = totals.get(name, {"frames": 0, "sinks": {}})
                cameras.append({
                    "name": name, "engine": engine, "node": (slot.info or {}).get("host") if slot else None,
                    "state": state, "fps": (live or {}).get("fps", 0.0), "p95_ms": (live or {}).get("p95_ms"),
                    "people": (live or {}).get("people", 0), "width": (live or {}).get("width", 0),
                    "height": (live or {}).get("height", 0), "error": (live or {}).get("error"),
                    "unplaced": self.placement.unplaced.get(name), "frames": t["frames"],
                    "sinks": [{"name": k, **v} for k, v in t["sinks"].items()]})
            engines = []
            for s in self.slots.values():
                engines.append({"name": s.name, "state": s.state, "node": (s.info or {}).get("host"),
                                "pid": s.pid, "restarts": s.restarts,
                                "pipelines": (s.status or {}).get("generation", 0),
                                "running": [c["name"] for c in (s.status or {}).get("cameras", [])],
                                "capacity_mpx_s": round((s.info or {}).get("capacity", 0.0) / 1e6, 3),
                                "load_mpx_s": round(self.placement.load(s.name, self._loads()) / 1e6, 3),
                                "cameras": self.placement.cameras_of(s.name)})
            return {"schema": 1, "type": "fleet", "time": round(now, 3), "cluster": self.address,
                    "coordinator_pid": os.getpid(),
                    "cameras": cameras, "engines": engines,
                    "unplaced": [{"name": c, "reason": r} for c, r in self.placement.unplaced.items()],
                    "failovers": list(self.failovers), "events": list(self.events)[-20:]}

    def stop(self) -> dict:
        """Stops every engine's pipeline (files and sinks close), then the engine actors; returns the last view."""
        import ray

        self._stop.set()
        self.thread.join(timeout=10.0)
        with self.lock:
            refs = {n: s.handle.stop.remote() for n, s in self.slots.items() if s.state != "gone"}
            ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=30.0)
            for name, ref in refs.items():
                if ref in ready:
                    try:
                        self.slots[name].status = ray.get(ref) or self.slots[name].status
                    except Exception:  # noqa: BLE001 - it died meanwhile: its last poll stands
                        pass
            self._poll(final=True)
            last = self.snapshot()
            self.forget()
            for s in self.slots.values():
                try:
                    ray.kill(s.handle, no_restart=True)
                except Exception:  # noqa: BLE001 - already gone
                    pass
                s.state = "gone"
        if self.view is not None:
            self.view.close()
        return last

    # -- what survives a restart of the coordinator: kept in the cluster's key-value store (the GCS) ----------------
    def _restore(self) -> None:
        """A coordinator that Ray restarted takes the measured rates and counters back; a new one starts afresh."""
        import ray
        from ray.experimental.internal_kv import _internal_kv_get

        if not ray.get_runtime_context().was_current_actor_reconstructed:
            self.forget()
            return
        raw = _internal_kv_get(STATE_KEY, namespace=NAMESPACE)
        if not raw:
            return
        state = json.loads(raw)
        self._measured = {n: CameraLoad(n, r, measured=True) for n, r in state["rates"].items() if n in self.cameras}
        self.history = state["history"]
        self._event("coordinator", "restarted: the engines keep their cameras")

    def _save(self) -> None:
        from ray.experimental.internal_kv import _internal_kv_put

        state = {"rates": {n: c.rate for n, c in self._measured.items()}, "history": self.history}
        text = json.dumps(state, sort_keys=True)
        if text != getattr(self, "_saved", None):
            _internal_kv_put(STATE_KEY, text, namespace=NAMESPACE)
            self._saved = text

    def forget(self) -> None:
        """Drops the saved state (the fleet is stopped for good)."""
        from ray.experimental.internal_kv import _internal_kv_del

        _internal_kv_del(STATE_KEY, namespace=NAMESPACE)

    # -- the control loop -----------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                with self.lock:
                    self._poll()
                    self._place()
                    self._save()
            except Exception as exc:  # noqa: BLE001 - the loop must go on; say why once per kind
                self._event("error", f"{type(exc).__name__}: {exc}")
            self._stop.wait(max(0.05, self.spec.poll - (time.monotonic() - t0)))

    def _event(self, kind: str, text: str) -> None:
        if self.events and self.events[-1]["kind"] == kind and self.events[-1]["text"] == text:
            return
        self.events.append({"time": round(time.time(), 3), "kind": kind, "text": text})
        print(f"fleet: {text}", file=sys.stderr, flush=True)

    def _poll(self, final: bool = False) -> None:
        import ray

        live = {n: s for n, s in self.slots.items() if s.state != "gone"}
        if final:
            refs = {n: s.handle.counters.remote() for n, s in live.items()}
        else:
            refs = {n: s.handle.status.remote() for n, s in live.items()}
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=self.spec.call_timeout)
        now = time.time()
        for name, ref in refs.items():
            slot = live[name]
            try:
                if ref not in ready:
                    raise TimeoutError("no answer")
                result = ray.get(ref)
            except Exception:  # noqa: BLE001 - RayActorError, unavailable, timeout: restarting or gone
                if not final:
                    self._unavailable(slot, now)
                continue
            if final:
                if slot.status is not None:
                    slot.status = {**slot.status, "totals": result}
                continue
            self._answered(slot, result, now)

    def _unavailable(self, slot: Slot, now: float) -> None:
        import ray

        try:
            ray.get_actor(slot.name, namespace=NAMESPACE)
        except ValueError:
            self._gone(slot)
            return
        if slot.state == "up":
            slot.state, slot.down_since = "restarting", now
            self._event("engine", f"{slot.name} does not answer (its process died?): its cameras wait for it")

    def _gone(self, slot: Slot) -> None:
        slot.state = "gone"
        self._retire(slot)
        moved = self.placement.cameras_of(slot.name)
        self._event("engine", f"{slot.name} is gone for good; its cameras move: {', '.join(moved) or 'none'}")

    def _retire(self, slot: Slot) -> None:
        """The counters of an incarnation that is gone join the history (the figures of its last poll)."""
        if slot.status is None:
            return
        for cam, t in slot.status.get("totals", {}).items():
            h = self.history.setdefault(cam, {"frames": 0, "sinks": {}})
            h["frames"] += t["frames"]
            for sink, v in t["sinks"].items():
                hs = h["sinks"].setdefault(sink, {"sent": 0, "delivered": 0, "dropped": 0})
                for k in hs:
                    hs[k] += v[k]
        slot.status = None

    def _answered(self, slot: Slot, status: dict, now: float) -> None:
        if slot.pid is not None and status["pid"] != slot.pid:
            slot.restarts += 1
            self._retire(slot)
            since = slot.down_since or now
            self.failovers.append({"engine": slot.name, "down_since": round(since, 3), "back": None,
                                   "cameras": self.placement.cameras_of(slot.name)})
            self._event("engine", f"{slot.name} restarted (pid {slot.pid} -> {status['pid']}); its cameras go back")
        elif slot.state == "starting":
            self._event("engine", f"{slot.name} up on {status['host']} (pid {status['pid']}, capacity "
                                  f"{status['capacity'] / 1e6:.2f} Mpx/s)")
        slot.pid, slot.info, slot.status = status["pid"], status, status
        slot.state, slot.down_since = "up", None
        if slot.pending is not None:
            import ray

            done, _ = ray.wait([slot.pending], timeout=0)
            if done:
                slot.pending = None
        for f in self.failovers:
            if f["engine"] == slot.name and f["back"] is None:
                running = {c["name"] for c in status["cameras"] if c["fps"] > 0}
                if f["cameras"] and set(f["cameras"]) <= running:
                    f["back"] = round(now, 3)
                    self._event("engine", f"{slot.name}: its cameras deliver again "
                                          f"{now - f['down_since']:.1f} s after it stopped answering")

    def _loads(self) -> dict[str, CameraLoad]:
        loads = {}
        seen = {c["name"]: c for s in self.slots.values() if s.status for c in s.status["cameras"]}
        for name in self.cameras:
            cam = seen.get(name)
            if cam and cam.get("width") and (cam.get("source_fps") or cam.get("fps")):
                fps = cam.get("source_fps") or cam["fps"]
                limit = self.cameras[name].fps
                fps = min(fps, limit) if limit else fps
                loads[name] = CameraLoad(name, cam["width"] * cam["height"] * fps, measured=True)
            else:
                loads[name] = self._measured.get(name) or CameraLoad(name)
        return loads

    @staticmethod
    def _camera_status(slot: Slot | None, name: str) -> dict | None:
        if slot is None or slot.status is None:
            return None
        return next((c for c in slot.status["cameras"] if c["name"] == name), None)

    def _place(self) -> None:
        up = [s for s in self.slots.values() if s.state in ("up", "restarting") and s.info]
        starting = any(s.state == "starting" for s in self.slots.values())
        if not up or (starting and not self._had_engines and time.monotonic() - self._started < START_WAIT_S):
            return  # the first placement waits for every engine (or START_WAIT_S), so one does not get them all
        first = not self._had_engines
        joined = self._had_engines and any(s.state == "up" and s.restarts == 0 and not self.placement.cameras_of(
            s.name) for s in up) and len(up) > 1
        self._had_engines = True
        loads = self._loads()
        measured_now = bool({n for n, c in loads.items() if c.measured} - set(self._measured))
        self._measured = {n: c for n, c in loads.items() if c.measured}
        rooms = [EngineRoom(s.name, s.info["capacity"]) for s in up]
        old = self.placement
        current = dict(old.assignment)
        if first:  # a restarted coordinator: what the engines run now is the placement to keep
            current = {c["name"]: s.name for s in up if s.status for c in s.status["cameras"] if c["name"] in loads}
        new = place([loads[n] for n in self.cameras], rooms, current, rebalance=joined or measured_now)
        for cam, why in new.unplaced.items():
            if old.unplaced.get(cam) != why:
                self._event("unplaced", f"camera {cam!r} fits on no engine: {why}; the others run")
        self.placement = new
        for s in up:
            if s.state != "up":
                continue
            want = tuple(self.cameras[c] for c in self.cameras if new.assignment.get(c) == s.name)
            running = tuple(c["name"] for c in s.status["cameras"])
            if running == tuple(c.name for c in want) and s.status["running"] == bool(want):
                continue
            if s.pending is not None and s.pending_set == want:
                continue
            s.pending, s.pending_set = s.handle.assign.remote(list(want)), want

    def _totals(self) -> dict[str, dict]:
        out = {c: {"frames": h["frames"], "sinks": {k: dict(v) for k, v in h["sinks"].items()}}
               for c, h in self.history.items()}
        for s in self.slots.values():
            if s.status is None:
                continue
            for cam, t in s.status.get("totals", {}).items():
                o = out.setdefault(cam, {"frames": 0, "sinks": {}})
                o["frames"] += t["frames"]
                for sink, v in t["sinks"].items():
                    os_ = o["sinks"].setdefault(sink, {"sent": 0, "delivered": 0, "dropped": 0})
                    for k in os_:
                        os_[k] += v[k]
        return out

"""The coordinator: one named, restartable Ray actor (``qem-coordinator`` in the namespace ``qem``) that starts the
engine actors, places the cameras on them (``realtime.fleet.placement``) and moves them when an engine dies.

Engines are named, detached actors (``qem-engine-<i>``, ``max_restarts=-1``) running ``EngineHost``: a SIGKILL or
an out-of-memory kill of an engine's process makes Ray start it again; the new process holds no cameras, and the
coordinator's next poll (every ``poll`` seconds) gives it back its own. An engine whose actor is gone for good
(``ray.kill(..., no_restart=True)``) or whose node left the cluster has its cameras placed on the engines left,
within their capacity; a camera that fits nowhere is listed in ``unplaced`` with the reason. An engine that starts
after the first placement (its node joined, or came back) takes cameras from the busiest engines. A restarted
coordinator finds its engines again by name (``get_if_exists``) and takes the cameras they run as the current
placement.

``snapshot()`` is the fleet's one view (``/status.json`` of ``realtime.fleet.status_view``): every camera with its
engine, node, state, FPS, p95 latency, people, and its messages per sink summed over every engine process it ran
in. The figures of a process that is gone are its final ones when an engine on its node read them from its counter
files (``realtime.fleet.counter_files``), with ``lost``: messages still queued when it died, and ``unconfirmed``: the
batch it was sending, which the receiver may or may not have; else those of its last poll.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, replace

from realtime.cameras import Camera
from realtime.fleet.counter_files import SINK_KEYS
from realtime.fleet.engine_host import EngineHost, EngineOptions
from realtime.fleet.placement import CameraLoad, EngineRoom, Placement, place

NAMESPACE = "qem"
COORDINATOR = "qem-coordinator"
ENGINE_PREFIX = "qem-engine-"
STATE_KEY = "qem-fleet-state"


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
    start_wait: float = 120.0             # seconds the first placement waits for every engine to start


@dataclass
class Slot:
    """What the coordinator knows of one engine."""

    name: str
    handle: object
    state: str = "starting"               # starting, up, restarting, lost (its node left), gone
    info: dict | None = None
    status: dict | None = None
    pid: int | None = None
    restarts: int = 0
    down_since: float | None = None
    fresh: bool = False                   # came up (started, or back from a lost node) since the last placement
    asking: object = None                 # the ObjectRef of a status() not answered yet
    asked: float = 0.0
    pending: object = None                # the ObjectRef of an assign() not answered yet
    pending_set: tuple = ()


class RayEngine(EngineHost):
    """``EngineHost`` in a Ray actor: its info names the Ray node it runs on."""

    def info(self) -> dict:
        import ray

        return {**super().info(), "node_id": ray.get_runtime_context().get_node_id()}


class Coordinator:
    def __init__(self, spec: FleetSpec):
        if not spec.engine.fleet_id:  # the engines' counter files on each node: one folder for this fleet
            spec = replace(spec, engine=replace(spec.engine, fleet_id=uuid.uuid4().hex))
        self.spec = spec
        self.cameras = {c.name: c for c in spec.cameras}
        self.slots: dict[str, Slot] = {}
        self.placement = Placement()
        self.history: dict[str, dict] = {}     # incarnation that is gone -> {"totals": per camera, "final": bool}
        self.events: deque[dict] = deque(maxlen=200)
        self.failovers: list[dict] = []        # per engine restart: when it was noticed, when cameras ran again
        self.lock = threading.RLock()
        self.address = spec.cluster
        self._stop = threading.Event()
        self._had_engines = False
        self._measured: dict[str, CameraLoad] = {}
        self._started = time.monotonic()
        self._restore()
        import ray

        actor = ray.remote(RayEngine)
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
                    "failover" if slot is not None and slot.state in ("restarting", "starting", "lost") else
                    (live or {}).get("state", "assigning"))
                t = totals.get(name, {"frames": 0, "sinks": {}})
                cameras.append({
                    "name": name, "engine": engine, "node": (slot.info or {}).get("host") if slot else None,
                    "node_id": (slot.info or {}).get("node_id") if slot else None,
                    "state": state, "fps": (live or {}).get("fps", 0.0), "p95_ms": (live or {}).get("p95_ms"),
                    "people": (live or {}).get("people", 0), "width": (live or {}).get("width", 0),
                    "height": (live or {}).get("height", 0), "error": (live or {}).get("error"),
                    "unplaced": self.placement.unplaced.get(name), "frames": t["frames"],
                    "sinks": [{"name": k, **v} for k, v in t["sinks"].items()]})
            engines = []
            for s in self.slots.values():
                engines.append({"name": s.name, "state": s.state, "node": (s.info or {}).get("host"),
                                "node_id": (s.info or {}).get("node_id"),
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
            refs = [s.handle.discard.remote() for s in self.slots.values() if s.state != "gone"]
            ray.wait(refs, num_returns=len(refs), timeout=10.0)
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
        """A coordinator that Ray restarted takes the measured rates and counters back; a new one starts afresh.
        Ray restarts an actor under the same actor id, and the saved state names the id that wrote it: state of
        another id is an earlier fleet's."""
        import ray
        from ray.experimental.internal_kv import _internal_kv_get

        self._actor_id = ray.get_runtime_context().get_actor_id()
        raw = _internal_kv_get(STATE_KEY, namespace=NAMESPACE)
        state = json.loads(raw) if raw else {}
        if state.get("coordinator") != self._actor_id:
            self.forget()
            self._save()  # from now on a restart of this actor knows itself
            return
        self._measured = {n: CameraLoad(n, r, measured=True) for n, r in state["rates"].items() if n in self.cameras}
        self.history = state["history"]
        self._event("coordinator", "restarted: the engines keep their cameras")

    def _save(self) -> None:
        from ray.experimental.internal_kv import _internal_kv_put

        state = {"coordinator": self._actor_id, "rates": {n: c.rate for n, c in self._measured.items()},
                 "history": self.history}
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
        """Asks every engine for its status (one call in flight each: an engine that does not start or is
        restarting is not asked again meanwhile) and waits up to ``call_timeout`` for the answers."""
        import ray

        live = [s for s in self.slots.values() if s.state != "gone"]
        now = time.time()
        for slot in live:
            if slot.asking is None:
                slot.asking, slot.asked = slot.handle.status.remote(), now
        fresh = [s.asking for s in live if now - s.asked < self.spec.call_timeout]
        ray.wait(fresh, num_returns=len(fresh), timeout=self.spec.call_timeout)
        now = time.time()
        for slot in live:
            done, _ = ray.wait([slot.asking], timeout=0)
            if not done:
                if not final and now - slot.asked >= self.spec.call_timeout:
                    self._unavailable(slot, now)
                continue
            ref, slot.asking = slot.asking, None
            try:
                status = ray.get(ref)
            except Exception:  # noqa: BLE001 - RayActorError: the process died (restarting) or the actor is gone
                if not final:
                    self._unavailable(slot, now)
                continue
            self._take_orphans(slot, status.get("orphans", {}))
            if final:
                slot.status = {**(slot.status or status), "totals": status["totals"]}
            else:
                self._answered(slot, status, now)

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
        if slot.state == "restarting" and not self._node_alive((slot.info or {}).get("node_id")):
            slot.state = "lost"
            self._retire(slot)
            moved = self.placement.cameras_of(slot.name)
            self._event("engine", f"{slot.name}'s node left the cluster; its cameras move: {', '.join(moved) or 'none'}"
                                  f" (Ray starts the engine again where there is room)")

    @staticmethod
    def _node_alive(node_id: str | None) -> bool:
        import ray

        if node_id is None:
            return True
        return any(n["NodeID"] == node_id and n["Alive"] for n in ray.nodes())

    def _gone(self, slot: Slot) -> None:
        slot.state = "gone"
        self._retire(slot)
        moved = self.placement.cameras_of(slot.name)
        self._event("engine", f"{slot.name} is gone for good; its cameras move: {', '.join(moved) or 'none'}")

    def _retire(self, slot: Slot) -> None:
        """The counters of an engine process that is gone join the history: the figures of its last poll, unless an
        engine on its node already reported its final ones."""
        if slot.status is None:
            return
        incarnation = slot.status["incarnation"]
        if not self.history.get(incarnation, {}).get("final"):
            self.history[incarnation] = {"totals": slot.status.get("totals", {}), "final": False}
        slot.status = None

    def _take_orphans(self, slot: Slot, orphans: dict) -> None:
        """The final counters of engine processes that are gone, read from their files by an engine on their node:
        they replace the figures of their last poll; then the files go."""
        if not orphans:
            return
        for incarnation, orphan in orphans.items():
            if not self.history.get(incarnation, {}).get("final"):
                self.history[incarnation] = {"totals": orphan["totals"], "final": True}
                self._event("counters", f"took the final counters of {orphan['engine']} (pid {orphan['pid']}), "
                                        f"which was killed")
        slot.handle.release.remote(list(orphans))

    def _answered(self, slot: Slot, status: dict, now: float) -> None:
        if slot.pid is not None and status["pid"] != slot.pid:
            slot.restarts += 1
            self._retire(slot)
            if slot.state == "lost":
                self._event("engine", f"{slot.name} started again on {status['host']} (pid {status['pid']}); "
                                      f"it takes cameras from the busiest engines")
                slot.fresh = True
            else:
                since = slot.down_since or now
                self.failovers.append({"engine": slot.name, "down_since": round(since, 3), "back": None,
                                       "cameras": self.placement.cameras_of(slot.name)})
                self._event("engine", f"{slot.name} restarted (pid {slot.pid} -> {status['pid']}); its cameras go back")
        elif slot.state == "starting":
            self._event("engine", f"{slot.name} up on {status['host']} (pid {status['pid']}, capacity "
                                  f"{status['capacity'] / 1e6:.2f} Mpx/s)")
            slot.fresh = True
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
        if not up or (starting and not self._had_engines and time.monotonic() - self._started < self.spec.start_wait):
            return  # the first placement waits for every engine (or start_wait), so one does not get them all
        first = not self._had_engines
        joined = self._had_engines and any(s.fresh for s in up) and len(up) > 1
        for s in up:
            s.fresh = False
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
        """Per camera: frames and per sink sent, delivered, dropped, unconfirmed (sent, not confirmed: the receiver
        may have them) and lost (queued when a process died), over every engine process it ran in."""
        out: dict[str, dict] = {}
        gone = set(self.history)
        parts = [(h["totals"], h["final"]) for h in self.history.values()]
        parts += [(s.status.get("totals", {}), False) for s in self.slots.values()
                  if s.status is not None and s.status.get("incarnation") not in gone]
        for totals, final in parts:
            for cam, t in totals.items():
                o = out.setdefault(cam, {"frames": 0, "sinks": {}})
                o["frames"] += t["frames"]
                for sink, v in t["sinks"].items():
                    counts = o["sinks"].setdefault(sink, {**dict.fromkeys(SINK_KEYS, 0), "lost": 0})
                    for k in SINK_KEYS:
                        counts[k] += v[k]
                    if final:  # still queued when the process died: never sent
                        counts["lost"] += v["sent"] - v["delivered"] - v["dropped"] - v["unconfirmed"]
        return out

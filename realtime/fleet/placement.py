"""Placement of cameras on engines by pixel rate (width x height x fps), never beyond an engine's capacity.

A camera's rate is measured from its frames once it has run (``CameraLoad.measured``); before that it counts as
``ASSUMED_RATE`` (640x480 at 15 FPS), and one that does not fit with that rate still runs, on trial, on the engine
with the most room: a camera is only refused once its rate is measured, and a camera on trial never pushes a
measured one out. ``place`` is sticky: a camera stays on the engine it runs on while that engine is alive and still
holds it (moving a camera restarts two pipelines), so only the cameras of an engine that left, the new ones and
those that outgrew their engine move. Those go, largest first, to the engine with the most free capacity (spreading
the load); one that fits nowhere is returned in ``unplaced`` with the reason, never dropped silently. With
``rebalance`` (an engine joined, or cameras ended their trial), the busiest engines hand cameras to the idlest.
"""
from __future__ import annotations

from dataclasses import dataclass, field

ASSUMED_RATE = 640 * 480 * 15.0


@dataclass(frozen=True)
class CameraLoad:
    name: str
    rate: float = ASSUMED_RATE   # pixels a second
    measured: bool = False


@dataclass(frozen=True)
class EngineRoom:
    name: str
    capacity: float              # pixels a second the engine carries


@dataclass
class Placement:
    assignment: dict[str, str] = field(default_factory=dict)    # camera -> engine
    unplaced: dict[str, str] = field(default_factory=dict)      # camera -> why it runs nowhere

    def cameras_of(self, engine: str) -> list[str]:
        return [c for c, e in self.assignment.items() if e == engine]

    def load(self, engine: str, cameras: dict[str, CameraLoad]) -> float:
        return sum(cameras[c].rate for c in self.cameras_of(engine))


def mpx(rate: float) -> str:
    return f"{rate / 1e6:.2f} Mpx/s"


def place(cameras: list[CameraLoad], engines: list[EngineRoom], current: dict[str, str] | None = None,
          rebalance: bool = False) -> Placement:
    """Cameras (in the order given) on ``engines``; ``current``: camera -> engine as it runs now."""
    current = current or {}
    by_name = {c.name: c for c in cameras}
    rooms = {e.name: e for e in engines}
    free = {e.name: e.capacity for e in engines}
    out = Placement()
    pending: list[CameraLoad] = []
    for cam in sorted(cameras, key=lambda c: not c.measured):  # measured first: a camera on trial displaces none
        engine = current.get(cam.name)
        if engine in rooms and (cam.rate <= free[engine] or not cam.measured):
            out.assignment[cam.name] = engine
            free[engine] -= cam.rate
        else:
            pending.append(cam)
    for cam in sorted(pending, key=lambda c: -c.rate):
        if not engines:
            out.unplaced[cam.name] = "no engine is running"
            continue
        best = max(engines, key=lambda e: (free[e.name], e.name == current.get(cam.name),
                                           -len(out.cameras_of(e.name))))
        if cam.rate <= free[best.name] or not cam.measured:
            out.assignment[cam.name] = best.name  # an unmeasured camera runs on trial until its rate is known
            free[best.name] -= cam.rate
        else:
            out.unplaced[cam.name] = (f"needs {mpx(cam.rate)}, the most any engine has free is "
                                      f"{mpx(max(free[best.name], 0.0))}")
    if rebalance:
        _rebalance(out, by_name, rooms, free)
    return out


def _rebalance(out: Placement, cameras: dict[str, CameraLoad], rooms: dict[str, EngineRoom],
               free: dict[str, float]) -> None:
    """Moves the smallest camera of the busiest engine to the idlest one while that narrows the gap between them."""
    while len(rooms) > 1:
        used = {e: rooms[e].capacity - free[e] for e in rooms}
        busy, idle = max(used, key=used.get), min(used, key=used.get)
        movable = sorted((cameras[c] for c in out.cameras_of(busy)), key=lambda c: c.rate) if busy != idle else []
        if not movable:
            return
        cam = movable[0]
        if not (cam.rate <= free[idle] and used[idle] + cam.rate < used[busy]):
            return
        out.assignment[cam.name] = idle
        free[idle] -= cam.rate
        free[busy] += cam.rate

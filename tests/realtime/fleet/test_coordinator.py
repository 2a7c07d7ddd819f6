"""The coordinator in a local Ray (loopback only), without engines or cameras: it tells a restart by Ray (which keeps
its actor id) from a coordinator started anew, takes its saved state back only in the first case, and does so without
Ray's deprecated calls (their warnings reached every ``qem serve`` terminal)."""
from __future__ import annotations

import os
import signal
import time
import warnings

import pytest

from realtime.fleet.cluster import connect, loopback_environment
from realtime.fleet.coordinator import Coordinator, FleetSpec

loopback_environment()  # before Ray is imported: it reads its settings (single-machine mode, tokens) at import
pytest.importorskip("ray", reason="needs Ray: pip install -e .[cluster]")
pytestmark = pytest.mark.slow

RESTARTED = "restarted: the engines keep their cameras"


class Watched(Coordinator):
    """A coordinator that keeps the warnings its start raised."""

    def __init__(self, spec: FleetSpec):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            super().__init__(spec)
        self.seen = [f"{w.category.__name__}: {w.message}" for w in seen]

    def pid(self) -> int:
        return os.getpid()

    def warned(self) -> list[str]:
        return self.seen

    def events(self) -> list[str]:
        return [e["text"] for e in self.snapshot()["events"]]


@pytest.fixture(scope="module")
def ray():
    ray = connect(None, 1)  # a local cluster on 127.0.0.1, as qem serve starts one
    yield ray
    ray.shutdown()


def start(ray):
    handle = ray.remote(Watched).options(max_restarts=-1, num_cpus=0).remote(FleetSpec(cameras=(), engines=0))
    return handle, ray.get(handle.pid.remote(), timeout=120)


def test_a_coordinator_restarted_by_ray_takes_its_state_back_and_a_new_one_does_not(ray):
    first, pid = start(ray)
    assert ray.get(first.warned.remote()) == []
    assert RESTARTED not in ray.get(first.events.remote())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while True:  # calls fail while Ray starts it again
        assert time.monotonic() < deadline, "the coordinator did not come back"
        try:
            again = ray.get(first.pid.remote(), timeout=30)
        except Exception:  # noqa: BLE001 - the actor is restarting
            time.sleep(0.5)
            continue
        if again != pid:
            break
    assert RESTARTED in ray.get(first.events.remote())
    assert ray.get(first.warned.remote()) == []
    ray.kill(first, no_restart=True)
    second, _ = start(ray)  # a coordinator started anew (another actor id): the first one's state is not its own
    try:
        assert RESTARTED not in ray.get(second.events.remote())
        assert ray.get(second.warned.remote()) == []
    finally:
        ray.kill(second, no_restart=True)

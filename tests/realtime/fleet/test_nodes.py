"""Nodes joining and leaving a running fleet, end to end on one machine. The cluster is Ray's own multi-node test
cluster (``ray.cluster_utils.Cluster``: each node a raylet of its own, with its own resources, all on 127.0.0.1),
started by this test; ``qem serve --ray`` joins it as a user joins an existing cluster, with two engines of one CPU
while the cluster holds one CPU, four RTSP cameras and a real Redis. In order: the second engine waits for a node
while the first runs every camera; a node joins and its engine takes cameras from the busy one, whose other cameras
never stop; that node leaves and its cameras join the other engine's running pipeline, whose own cameras never
pause; a node joins again and the engine comes back; at the stop, the messages at the
subscriber equal what the fleet reports, those of the engine process lost with its node included."""
from __future__ import annotations

import os
import signal
import time

import pytest

from realtime.fleet.cluster import loopback_environment
from tests.realtime.fleet.serving import (LOOPBACK, addresses, cameras_and_redis, descendants, gaps, listening,
                                          serve, settled, summary_counts)

loopback_environment()  # before Ray is imported: the test's cluster lives on 127.0.0.1 only
pytest.importorskip("ray", reason="needs Ray: pip install -e .[cluster]")
pytestmark = pytest.mark.slow

CAMERAS = [f"cam{i}" for i in range(4)]
HALF = 0.384  # Mpx/s of two of the cameras (160x120 at 10 FPS each)


class Nodes:
    """The test's Ray cluster: a head of one CPU, worker nodes of one CPU added and removed on demand."""

    def __init__(self):
        from ray.cluster_utils import Cluster

        self.cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        self.workers: list = []

    @property
    def address(self) -> str:
        return self.cluster.address

    def join(self):
        node = self.cluster.add_node(num_cpus=1)
        self.workers.append(node)
        return node

    def leave(self) -> None:
        self.cluster.remove_node(self.workers.pop())

    def shutdown(self) -> None:
        self.cluster.shutdown()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, tiny_checkpoint):
    tmp = tmp_path_factory.mktemp("nodes")
    with cameras_and_redis(tmp, {n: ("160x120", 10) for n in CAMERAS}) as redis:
        nodes = Nodes()
        f = serve(tmp, redis, CAMERAS, "--ray", nodes.address, "--engines", "2", "--cpus-per-engine", "1",
                  "--start-wait", "5", "--capacity", "1.0", "--imgsz", "128", "--backend", "torch",
                  "--weights", str(tiny_checkpoint))
        f.nodes = nodes
        try:
            yield f
        finally:
            f.stop()
            nodes.shutdown()


def engines(s: dict) -> dict[str, dict]:
    return {e["name"]: e for e in s["engines"]}


def running_on(s: dict, engine: str) -> bool:
    return all(c["engine"] == engine and c["state"] == "running" for c in s["cameras"])


def test_an_engine_waits_for_a_node_while_the_other_runs_every_camera(fleet):
    s = fleet.wait(lambda s: [e["state"] for e in s["engines"]].count("up") == 1
                   and running_on(s, next(e["name"] for e in s["engines"] if e["state"] == "up")), 180,
                   "one engine up with every camera, the other waiting for a node")
    assert sorted(e["state"] for e in s["engines"]) == ["starting", "up"]
    assert any("the others start when nodes join" in line for line in fleet.log), fleet.log[-10:]


def test_a_node_that_joins_takes_cameras_from_the_busy_engine(fleet):
    before = fleet.status()
    busy = next(e for e in before["engines"] if e["state"] == "up")
    joined = time.time()
    fleet.nodes.join()
    s = fleet.wait(lambda s: all(e["state"] == "up" for e in s["engines"]) and settled(s)
                   and sorted(e["load_mpx_s"] for e in s["engines"]) == [HALF, HALF]
                   and all(c["state"] == "running" for c in s["cameras"]), 120,
                   "the new engine up on the new node with half the cameras")
    new = next(e for e in s["engines"] if e["name"] != busy["name"])
    assert new["node_id"] != busy["node_id"] and busy["node_id"] == engines(s)[busy["name"]]["node_id"]
    moved = new["cameras"]
    kept = [c for c in CAMERAS if c not in moved]
    time.sleep(2.0)
    messages = fleet.frames()
    # A moved camera leaves the busy engine's running pipeline and opens on the new engine; the cameras the busy
    # engine keeps never stop (its pipeline goes on without the ones that left).
    switch = max(gaps(messages[c], joined - 2.0) for c in moved)
    pause = max(gaps(messages[c], joined - 2.0) for c in kept)
    assert switch < 10.0 and pause < 2.0, (switch, pause)
    assert engines(s)[busy["name"]]["pipelines"] == busy["pipelines"]  # the same pipeline, not a new one
    print(f"moved cameras {moved}: no frame for {switch:.1f} s at most; kept cameras: {pause:.1f} s at most")


def test_nothing_the_nodes_or_the_fleet_start_listens_beyond_loopback():
    ours = listening(descendants(os.getpid()))
    raylets = [r for r in ours if '"raylet"' in r]
    assert len(raylets) >= 4, ours  # two nodes, two servers each
    assert addresses(ours) <= LOOPBACK, ours


def test_a_node_that_leaves_has_its_cameras_moved(fleet):
    s = fleet.status()
    leaving = next(e for e in s["engines"] if e["node_id"] == fleet.nodes.workers[-1].node_id)
    stays = next(e for e in s["engines"] if e["name"] != leaving["name"])
    left = time.time()
    fleet.nodes.leave()
    s = fleet.wait(lambda s: engines(s)[leaving["name"]]["state"] in ("lost", "starting")
                   and running_on(s, stays["name"]), 60, "the cameras of the node that left on the engine left")
    back = fleet.delivering(leaving["cameras"], since=left, within=30)
    assert set(back) == set(leaving["cameras"])
    assert any("node left the cluster; its cameras move" in line for line in fleet.log), fleet.log[-10:]
    assert engines(fleet.status())[stays["name"]]["pipelines"] == stays["pipelines"]  # they joined its pipeline
    messages = fleet.frames()
    pause = max(gaps(messages[c], left - 2.0) for c in stays["cameras"])
    assert pause < 2.0  # whose own cameras never paused
    print(f"the other engine's own cameras: longest gap {pause:.2f} s while the moved cameras joined")
    print(f"cameras of the node that left delivered again {max(back.values()) - left:.1f} s after it left")


def test_the_engine_comes_back_when_a_node_joins_again(fleet):
    lost = next(e for e in fleet.status()["engines"] if e["state"] != "up")
    fleet.nodes.join()
    s = fleet.wait(lambda s: engines(s)[lost["name"]]["state"] == "up" and settled(s)
                   and sorted(e["load_mpx_s"] for e in s["engines"]) == [HALF, HALF]
                   and all(c["state"] == "running" for c in s["cameras"]), 120, "the engine back with half the cameras")
    assert engines(s)[lost["name"]]["restarts"] >= 1


def test_messages_at_the_subscriber_equal_what_the_fleet_reports(fleet):
    fleet.proc.send_signal(signal.SIGINT)
    fleet.proc.wait(120)
    text = "".join(fleet.log)
    reported = summary_counts(text)
    assert fleet.proc.returncode == 0 and set(reported) == set(CAMERAS), text[-3000:]
    received = fleet.frames()
    for cam in CAMERAS:
        r = reported[cam]
        got = len(received[cam])  # exact but for the batch a killed process was sending (see test_failover)
        assert r["dropped"] == 0 and r["delivered"] <= got <= r["delivered"] + r["unconfirmed"], (cam, r, got)
        assert r["sent"] == r["delivered"] + r["lost"] + r["unconfirmed"], (cam, r)

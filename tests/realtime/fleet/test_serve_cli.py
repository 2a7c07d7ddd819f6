"""``qem serve`` as a user meets it: every bad input is one line (no Ray, an address nobody answers on, GPU engines
on a cluster without GPUs, a bad sink or camera), and ``--detach`` leaves a fleet running that ``--stop`` ends."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.cli import assert_one_error_line
from tests.realtime.helpers import ROOT, free_port

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def serve(*args, cwd=ROOT, timeout=180, prelude: str = "") -> subprocess.CompletedProcess:
    code = f"import sys\n{prelude}\nfrom models.cli import main\nsys.exit(main(['serve', *sys.argv[1:]]))"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def test_without_ray_the_error_names_the_extra_to_install():
    proc = serve("--source", "rtsp://127.0.0.1:9/live", prelude="sys.modules['ray'] = None  # not installed")
    assert_one_error_line(proc, "needs Ray, which is not installed: pip install -e .[cluster]")


def test_an_address_nobody_answers_on_is_one_line_at_once():
    pytest.importorskip("ray")
    address = f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    proc = serve("--source", "rtsp://127.0.0.1:9/live", "--ray", address)
    assert_one_error_line(proc, f"--ray {address}: no Ray cluster answers there")
    assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("args, words", [
    (["--sink", "kafka://127.0.0.1:9092/x"], "unknown scheme 'kafka'"),
    (["--sink", "ws"], "--sink ws: the fleet has no live view of frames"),
    (["--source", "ftp://127.0.0.1/live"], "unsupported URL scheme 'ftp'"),
    ([], "give cameras: --cameras FILE or --source URL"),
])
def test_bad_cameras_and_sinks_are_one_line_before_any_cluster(args, words):
    source = [] if "--source" in args or not args else ["--source", "rtsp://127.0.0.1:9/live"]
    assert_one_error_line(serve(*source, *args), words)


def test_stop_without_a_detached_fleet_is_one_line(tmp_path):
    assert_one_error_line(serve("--stop", "--project", tmp_path), "no detached fleet known here")


def test_more_engines_than_the_cluster_holds_wait_for_nodes_only_on_an_existing_cluster(capsys):
    from realtime.fleet.cli import build_parser, plan_engines
    from realtime.fleet.cluster import FleetError

    local = build_parser().parse_args(["--source", "rtsp://127.0.0.1:9/live", "--engines", "3"])
    with pytest.raises(FleetError, match=r"--engines 3: the local cluster has CPUs for 2 engine\(s\) of 1 CPU"):
        plan_engines(local, {"CPU": 2.0})
    joined = build_parser().parse_args(["--source", "rtsp://127.0.0.1:9/live", "--engines", "3", "--ray", "h:6379"])
    assert plan_engines(joined, {"CPU": 2.0}) == ("cpu", 3, 1.0, 0.0)
    assert "the cluster has CPUs for 2 engine(s) of 1 CPU now; the others start when nodes join" in \
        capsys.readouterr().err
    assert plan_engines(build_parser().parse_args(["--source", "x", "--device", "cuda", "--ray", "h:1"]),
                        {"CPU": 8.0, "GPU": 2.0}) == ("cuda", 2, 1.0, 1.0)


@pytest.mark.slow
def test_gpu_engines_on_a_cluster_without_gpus_is_one_line():
    pytest.importorskip("ray")
    proc = serve("--source", "rtsp://127.0.0.1:9/live", "--device", "cuda")
    assert_one_error_line(proc, "--device cuda: the cluster has 0 GPU(s)")


@pytest.mark.slow
def test_detach_leaves_the_fleet_running_and_stop_ends_it(tmp_path, tiny_checkpoint, gst_server):
    pytest.importorskip("ray")
    import psutil

    server = gst_server(size="160x120", fps=10)
    port = free_port()
    proc = serve("--source", server.url(), "--detach", "--project", tmp_path, "--imgsz", "128", "--engines", "1",
                 "--backend", "torch", "--weights", tiny_checkpoint, "--capacity", "1", "--http-port", port)
    assert proc.returncode == 0, proc.stderr
    assert "running detached; stop it with: qem serve --stop" in proc.stderr
    state = json.loads((tmp_path / "serve.json").read_text())
    head = psutil.Process(state["head_pid"])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the driver is gone; the fleet runs on
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=5) as r:
                    status = json.load(r)
                if status["cameras"][0]["frames"] > 5:
                    break
            except OSError:
                pass
            time.sleep(1.0)
        else:
            raise AssertionError("the detached fleet delivered no frames")
    finally:
        stopped = serve("--stop", "--project", tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert "summary: 1 camera(s), 1 engine(s)" in stopped.stderr and "stream0:" in stopped.stderr
    head.wait(30)
    assert not (tmp_path / "serve.json").exists()

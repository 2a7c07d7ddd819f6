"""``qem serve`` as a user meets it: every bad input is one line (no Ray, an address nobody answers on or where a Redis
answers, GPU engines on a cluster without GPUs, a bad sink or camera, a sink the engines cannot carry), ``synth`` is
the bundled clip as in ``qem predict``, and ``--detach`` leaves a fleet running that ``--stop`` ends, while a second
``--detach`` is refused."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.cli import assert_one_error_line
from tests.realtime.brokers import RedisServer, missing
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


def test_a_redis_at_the_address_is_one_line_saying_what_answered(tmp_path):
    """Redis listens on 6379 by default, the port of a Ray head in the docs: Ray itself would retry for minutes."""
    pytest.importorskip("ray")
    if missing("redis-server"):
        pytest.skip(missing("redis-server"))
    redis = RedisServer(tmp_path).start()
    try:
        address = f"127.0.0.1:{redis.port}"
        t0 = time.monotonic()
        proc = serve("--source", "rtsp://127.0.0.1:9/live", "--ray", address, timeout=60)
    finally:
        redis.stop()
    assert_one_error_line(proc, f"--ray {address}: something answers there, but not a Ray cluster (it answered "
                                f"\"-ERR unknown command 'PRI'")
    assert "check the address (the head's GCS port, 6379 by default)" in proc.stderr
    assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("args, words", [
    (["--sink", "kafka://127.0.0.1:9092/x"], "unknown scheme 'kafka'"),
    (["--sink", "ws"], "--sink ws: the fleet has no live view of frames"),
    (["--source", "ftp://127.0.0.1/live"], "unsupported URL scheme 'ftp'"),
    ([], "give cameras: --cameras FILE or --source URL"),
    (["--ray", "http://127.0.0.1:6379"], "--ray http://127.0.0.1:6379: give HOST:PORT of the cluster's head (e.g. "
                                         "10.0.0.5:6379) or ray://HOST:PORT, not http://"),
])
def test_bad_cameras_and_sinks_are_one_line_before_any_cluster(args, words):
    source = [] if "--source" in args or not args else ["--source", "rtsp://127.0.0.1:9/live"]
    assert_one_error_line(serve(*source, *args), words)


STDOUT_REFUSED = ("the engines are processes of their own (on other nodes too), whose standard output reaches this "
                  "terminal only inside Ray's log lines; use mqtt://HOST:PORT/PREFIX or redis://HOST:PORT/DB")


def test_stdout_is_no_sink_of_a_fleet_on_the_command_line_or_in_the_camera_file(tmp_path):
    """Each engine's output reaches the terminal prefixed by Ray, in colour: no JSON a pipe could read."""
    flag = serve("--source", "rtsp://127.0.0.1:9/live", "--sink", "stdout?every=2")
    assert_one_error_line(flag, f"--sink stdout?every=2: {STDOUT_REFUSED}")
    assert flag.returncode == 2  # a usage error, as argparse's own
    (tmp_path / "top.yaml").write_text("sinks: [stdout]\ncameras:\n  cam0: {url: 'rtsp://127.0.0.1:9/live'}\n")
    (tmp_path / "own.yaml").write_text("cameras:\n  cam0: {url: 'rtsp://127.0.0.1:9/live', sinks: [stdout]}\n")
    assert_one_error_line(serve("--cameras", tmp_path / "top.yaml"), f"top.yaml: sinks: stdout: {STDOUT_REFUSED}")
    assert_one_error_line(serve("--cameras", tmp_path / "own.yaml"),
                          f"own.yaml: camera 'cam0': sinks: stdout: {STDOUT_REFUSED}")


def test_synth_is_the_bundled_clip_as_in_qem_predict(tmp_path):
    from realtime.fleet.cli import build_parser, read_cameras

    (tmp_path / "cameras.yaml").write_text("cameras:\n  lobby: {url: synth}\n")
    cameras, _ = read_cameras(build_parser().parse_args(["--cameras", str(tmp_path / "cameras.yaml"),
                                                         "--source", "synth"]))
    assert [(c.name, c.url) for c in cameras] == [("lobby", "synth"), ("stream1", "synth")]  # each engine resolves


def test_a_sink_on_the_command_line_and_in_the_camera_file_is_one_sink(tmp_path, capsys):
    from realtime.fleet.cli import build_parser, read_cameras

    (tmp_path / "cameras.yaml").write_text("sinks: [mqtt://127.0.0.1:1883/qem]\ncameras:\n  lobby: {url: synth}\n")
    _, sinks = read_cameras(build_parser().parse_args(["--cameras", str(tmp_path / "cameras.yaml"),
                                                       "--sink", "mqtt://127.0.0.1:1883/qem"]))
    assert [s.uri for s in sinks] == ["mqtt://127.0.0.1:1883/qem"]
    assert capsys.readouterr().err == ("warning: sink mqtt://127.0.0.1:1883/qem is given more than once; each "
                                       "message goes there once\n")


def test_a_cameras_own_sink_that_a_run_wide_one_covers_is_dropped_from_the_camera(tmp_path, capsys):
    """Each engine opens the run-wide sinks and, per camera, that camera's own: the same sink in both would carry the
    camera's messages twice. A sink with other options (here every 5th frame) is another sink and stays."""
    from realtime.fleet.cli import build_parser, read_cameras

    (tmp_path / "cameras.yaml").write_text(
        "cameras:\n"
        "  lobby: {url: synth, sinks: [mqtt://127.0.0.1:1883/qem, redis://127.0.0.1:6379/0]}\n"
        "  door: {url: synth, sinks: ['mqtt://127.0.0.1:1883/qem?every=5']}\n")
    cameras, sinks = read_cameras(build_parser().parse_args(["--cameras", str(tmp_path / "cameras.yaml"),
                                                             "--sink", "mqtt://127.0.0.1:1883/qem"]))
    assert [s.uri for s in sinks] == ["mqtt://127.0.0.1:1883/qem"]
    assert [[s.uri for s in c.sinks] for c in cameras] == [["redis://127.0.0.1:6379/0"],
                                                           ["mqtt://127.0.0.1:1883/qem?every=5"]]
    assert capsys.readouterr().err == ("warning: sink mqtt://127.0.0.1:1883/qem is given more than once; each "
                                       "message goes there once\n")


def test_stop_without_a_detached_fleet_is_one_line(tmp_path):
    assert_one_error_line(serve("--stop", "--project", tmp_path), "no detached fleet known here")


def test_stop_after_the_detached_head_died_cleans_up_in_one_line(tmp_path):
    """A head that --detach started and that has since ended (killed, the machine restarted): --stop removes the state
    file, so `qem serve --stop` leaves nothing behind, and keeps the head's output for a look at why it ended."""
    from realtime.fleet.cluster import write_state

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "ray-head.log").write_text("the head's last words\n")
    address = f"127.0.0.1:{free_port()}"
    write_state(tmp_path / "serve.json", {"address": address, "head_pid": dead.pid,
                                          "head_log": str(tmp_path / "ray-head.log"), "view": None})
    proc = serve("--stop", "--project", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"fleet: nothing to stop, its local Ray head at {address} had already ended (its output: "
        f"{tmp_path / 'ray-head.log'}); removed {tmp_path / 'serve.json'}"]
    assert not (tmp_path / "serve.json").exists() and (tmp_path / "ray-head.log").exists()


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
def test_a_fleet_of_files_stops_when_every_camera_has_ended_and_fails_when_all_failed(tiny_checkpoint):
    """As ``qem predict`` ends with its files: the bundled clip plays once and the command returns with the
    summary; a camera that failed for good is one error line, and a fleet of only those exits 1."""
    pytest.importorskip("ray")
    base = ["--imgsz", "128", "--engines", "1", "--backend", "torch", "--weights", tiny_checkpoint,
            "--capacity", "10", "--report-every", "60"]
    gone = f"http://127.0.0.1:{free_port()}/gone.mp4"  # a file over HTTP that nothing serves: failed at once
    proc = serve("--source", "synth", "--source", gone, *base, timeout=240)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert f"error: camera 'stream1' failed: {gone}: cannot open (Connection refused)" in lines
    assert any(line.startswith("fleet: every camera has ended") for line in lines)
    assert "  stream0: 240 frames" in lines
    only_gone = serve("--source", gone, *base, timeout=240)
    assert only_gone.returncode == 1, only_gone.stderr
    assert f"error: camera 'stream0' failed: {gone}: cannot open (Connection refused)" in only_gone.stderr


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
    assert (tmp_path / "ray-head.log").is_file()  # while it runs
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
    assert not (tmp_path / "ray-head.log").exists()  # the head's output is of no use once it stopped cleanly


@pytest.fixture
def environment():
    """``os.environ`` as it was, after a test that starts a head here (which sets Ray's loopback settings)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.slow
def test_a_second_detach_while_the_first_head_answers_is_refused(tmp_path, environment):
    """The state file of a running detached fleet is not overwritten (the first fleet would run on, known to nobody);
    a state file whose head is gone is no obstacle."""
    pytest.importorskip("ray")
    from realtime.fleet.cli import refuse_second_detached
    from realtime.fleet.cluster import start_head, stop_head, write_state

    address, pid = start_head(1, tmp_path)  # a real head: its GCS passes the check of a Ray cluster
    try:
        write_state(tmp_path / "serve.json", {"address": address, "head_pid": pid, "view": None})
        before = (tmp_path / "serve.json").read_text()
        # --device cuda: without the refusal the command would start a second head and stop at the GPU check
        proc = serve("--source", "rtsp://127.0.0.1:9/live", "--detach", "--project", tmp_path, "--device", "cuda")
        assert_one_error_line(proc, f"a fleet left by --detach still runs at {address} ({tmp_path / 'serve.json'}); "
                                    f"stop it first: qem serve --stop --project {tmp_path}")
        assert (tmp_path / "serve.json").read_text() == before
    finally:
        stop_head(pid)
    refuse_second_detached(str(tmp_path))  # its head is gone: a new --detach may write the file again

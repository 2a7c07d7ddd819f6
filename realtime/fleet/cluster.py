"""Reaching a Ray cluster: an existing one (``--ray ADDRESS``), a local one inside this process (the default), or a
local head left running for ``--detach`` (``ray start --head --block`` in a process of its own, stopped by
``--stop``).

A local cluster lives on loopback only: Ray takes the machine's outward address as the node's address and binds
its servers to every interface unless it runs in its single-machine mode, which ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``
selects on Linux too (set before Ray is imported; every Ray process started from here inherits it). Then the GCS,
the raylet, the object manager and every worker listen on 127.0.0.1 (tests/realtime/fleet checks it with ``ss``).
No dashboard, no usage statistics; Ray's token authentication on (``RAY_AUTH_MODE=token`` unless set otherwise: a
driver that names the address of a local head must send the token of ``~/.ray/auth_token`` too). For a remote
cluster with token authentication, set ``RAY_AUTH_MODE=token`` and the token (``RAY_AUTH_TOKEN``) as Ray's
documentation says.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
AUTH_MODE = "RAY_AUTH_MODE"  # "token" unless set: a local cluster makes a token (~/.ray/auth_token), drivers send it


class FleetError(Exception):
    """A fleet that cannot start or be reached; the message is one line."""


def import_ray():
    try:
        import ray
    except ImportError:
        raise FleetError("qem serve needs Ray, which is not installed: pip install -e .[cluster]") from None
    return ray


def loopback_environment(env: dict | None = None) -> dict:
    """``env`` (default: this process's) with Ray in single-machine mode and this checkout importable by workers."""
    env = os.environ if env is None else env
    for key, value in LOOPBACK_ENV.items():
        env[key] = value
    env.setdefault(AUTH_MODE, "token")
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(ROOT) not in paths:
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *paths])
    return env


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A TCP connection to ``host:port`` of ``address`` (``ray://`` allowed), so a wrong address is one line at
    once instead of Ray's long retries."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise FleetError(f"--ray {address!r}: give HOST:PORT of the cluster's head (e.g. 10.0.0.5:6379)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise FleetError(f"--ray {address}: no Ray cluster answers there ({exc.strerror or exc}); check the address "
                         f"or leave --ray out to start a local cluster") from None


def connect(address: str | None, cpus: int, gpus: int | None = None, quiet: bool = True):
    """``ray.init`` on ``address``, or a new local cluster of ``cpus`` CPUs on loopback; returns the module."""
    import logging

    if address is None or address.split("://", 1)[-1].rpartition(":")[0] in ("127.0.0.1", "localhost"):
        loopback_environment()
    ray = import_ray()
    kwargs = dict(namespace="qem", logging_level=logging.WARNING if quiet else logging.INFO, log_to_driver=True)
    if address is None:
        ray.init(address="local", num_cpus=cpus, num_gpus=gpus, include_dashboard=False, **kwargs)  # never a found one
    else:
        check_reachable(address)
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise FleetError(f"--ray {address}: cannot join the cluster: {str(exc).strip().splitlines()[0]}") from None
    return ray


def start_head(cpus: int, log_dir: Path) -> tuple[str, int]:
    """A local head on loopback in a process of its own (``ray start --head --block``: its processes end with it);
    returns (address, pid of that process)."""
    env = loopback_environment()  # this process too: it joins the head next, and Ray reads these at import
    import_ray()
    port = _free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_dir / "ray-head.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                             "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", str(cpus),
                             "--include-dashboard", "false", "--disable-usage-stats"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise FleetError(f"the local Ray head did not start (see {log_dir / 'ray-head.log'})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return address, proc.pid
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise FleetError(f"the local Ray head did not answer within 60 s (see {log_dir / 'ray-head.log'})")


def stop_head(pid: int, timeout: float = 30.0) -> None:
    """Ends a head started by ``start_head`` (SIGTERM to its ``ray start --block``, which stops what it started)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_state(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2))


def read_state(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None

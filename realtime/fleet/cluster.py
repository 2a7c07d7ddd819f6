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
HEAD_LOG = "ray-head.log"  # the output of a head started for --detach, beside the state file; --stop removes it
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


def parse_address(address: str) -> tuple[str, int]:
    """(host, port) of ``--ray``: ``HOST:PORT`` or ``ray://HOST:PORT``; any other form is one line."""
    scheme, sep, hostport = address.rpartition("://")
    if sep and scheme.lower() != "ray":
        raise FleetError(f"--ray {address}: give HOST:PORT of the cluster's head (e.g. 10.0.0.5:6379) or "
                         f"ray://HOST:PORT, not {scheme}://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise FleetError(f"--ray {address!r}: give HOST:PORT of the cluster's head (e.g. 10.0.0.5:6379)")
    return host.strip("[]"), int(port)


# Ray's GCS (and its client server behind ray://) is a gRPC server: HTTP/2 without TLS. A client opens with this
# preface and an empty SETTINGS frame (RFC 9113, 3.4); the server's first frame is its own SETTINGS (type 0x4).
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 0x4, 0, 0, 0, 0, 0])
HTTP2_SETTINGS = 0x4


def check_reachable(address: str, timeout: float = 5.0, answer_timeout: float = 3.0) -> None:
    """Something at ``address`` (``ray://`` allowed) that speaks gRPC, as Ray's GCS does: a wrong address (nobody
    there, a Redis, a web server) is one line at once instead of Ray's own retries, which go on for minutes.
    With Ray's TLS on (``RAY_USE_TLS``) only the TCP connection is checked."""
    host, port = parse_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
                return
            answer = _first_bytes(conn, HTTP2_PREFACE, answer_timeout)
    except OSError as exc:
        raise FleetError(f"--ray {address}: no Ray cluster answers there ({exc.strerror or exc}); check the address "
                         f"or leave --ray out to start a local cluster") from None
    if answer and len(answer) >= 9 and answer[3] == HTTP2_SETTINGS:
        return
    if answer:
        said = f"it answered {_printable(answer)}"
    else:
        said = f"no answer within {answer_timeout:g} s" if answer is None else "it closed the connection"
    raise FleetError(f"--ray {address}: something answers there, but not a Ray cluster ({said}); check the address "
                     f"(the head's GCS port, 6379 by default)")


def _first_bytes(conn: socket.socket, hello: bytes, timeout: float) -> bytes | None:
    """What the peer sends within ``timeout`` after ``hello`` (once it has sent a frame header's 9 bytes, or closed);
    None when it says nothing at all."""
    conn.settimeout(timeout)
    try:
        conn.sendall(hello)
    except OSError:  # closed on us already: it answered nothing
        return b""
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < 9:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        conn.settimeout(left)
        try:
            chunk = conn.recv(256)
        except socket.timeout:
            break
        except OSError:  # reset
            return data
        if not chunk:
            return data
        data += chunk
    return data if data else None


def _printable(answer: bytes, limit: int = 60) -> str:
    """The first line of a text answer, quoted and trimmed; else its first bytes in hex."""
    line = answer.split(b"\n", 1)[0].rstrip(b"\r")
    if line and all(32 <= b < 127 for b in line):
        text = line.decode("ascii")
        return repr(text if len(text) <= limit else text[:limit] + "...")
    return "bytes " + answer[:12].hex(" ") + (" ..." if len(answer) > 12 else "")


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
    """A local head on loopback in a process of its own (``ray start --head --block``: its processes end with it),
    its output in ``log_dir/ray-head.log``; returns (address, pid of that process)."""
    env = loopback_environment()  # this process too: it joins the head next, and Ray reads these at import
    import_ray()
    ensure_auth_token(env)
    port = _free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / HEAD_LOG, "ab") as log:  # the head's own process keeps it open
        proc = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                                 "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", str(cpus),
                                 "--include-dashboard", "false", "--disable-usage-stats"],
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise FleetError(f"the local Ray head did not start (see {log_dir / HEAD_LOG})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return address, proc.pid
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise FleetError(f"the local Ray head did not answer within 60 s (see {log_dir / HEAD_LOG})")


def ensure_auth_token(env: dict) -> None:
    """With token authentication, a token for the head about to start: ``ray start`` needs one to exist already (a
    local ``ray.init`` makes its own), so on a machine that has never run Ray, ``ray get-auth-token --generate``
    writes ``~/.ray/auth_token`` first. Its output (the token) goes nowhere."""
    if env.get(AUTH_MODE, "").lower() != "token" or env.get("RAY_AUTH_TOKEN") or env.get("RAY_AUTH_TOKEN_PATH"):
        return
    if (Path.home() / ".ray" / "auth_token").exists():
        return
    done = subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "get-auth-token", "--generate"], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    if done.returncode != 0:
        raise FleetError("could not make a Ray authentication token (ray get-auth-token --generate failed)")


def stop_head(pid: int, timeout: float = 30.0) -> None:
    """Ends a head started by ``start_head`` (SIGTERM to its ``ray start --block``, which stops what it started)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:  # a child of this process (started here): ended and reaped
                return
        except ChildProcessError:  # started by an earlier command: not ours to reap
            pass
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

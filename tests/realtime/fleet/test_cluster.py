"""Reaching a cluster (``realtime.fleet.cluster``): ``--ray`` takes ``HOST:PORT`` or ``ray://HOST:PORT`` only, and an
address where something other than Ray's GCS answers (a Redis on 6379, a web server, a server that says nothing) is
one line at once, naming what answered, instead of Ray's retries that go on for minutes. That a real GCS passes is
checked where a real head runs (``test_serve_cli.py``: ``--detach`` and a second ``--detach``)."""
from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import pytest

from realtime.fleet.cluster import FleetError, check_reachable, parse_address

REDIS = b"-ERR unknown command 'PRI', with args beginning with: '*' 'HTTP/2.0' \r\n"
HTTP1 = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@contextmanager
def answering(reply: bytes | None, close: bool = True):
    """A server on a free loopback port that reads what a client sends and answers ``reply`` (None: nothing, the
    connection held open until the test ends); yields its ``HOST:PORT``."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    done = threading.Event()

    def serve():
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2.0)
                try:
                    conn.recv(1024)
                    if reply:
                        conn.sendall(reply)
                    if reply is None or not close:
                        done.wait(10.0)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        done.set()
        server.close()
        thread.join(5.0)


@pytest.mark.parametrize("reply, said", [
    (REDIS, "it answered \"-ERR unknown command 'PRI', with args beginning with: '*' 'H...\""),
    (HTTP1, "it answered 'HTTP/1.1 400 Bad Request'"),
    (b"\x15\x03\x03\x00\x02\x02\x46", "it answered bytes 15 03 03 00 02 02 46"),
    (None, "no answer within 0.5 s"),
    (b"", "it closed the connection"),
])
def test_a_server_that_is_not_a_ray_gcs_is_one_line_saying_what_answered(reply, said):
    with answering(reply) as address:
        t0 = time.monotonic()
        with pytest.raises(FleetError) as caught:
            check_reachable(address, answer_timeout=0.5)
        elapsed = time.monotonic() - t0
    assert str(caught.value) == (f"--ray {address}: something answers there, but not a Ray cluster ({said}); check "
                                 f"the address (the head's GCS port, 6379 by default)")
    assert elapsed < 3.0


def test_only_a_server_whose_first_frame_is_http2_settings_passes():
    settings = bytes([0, 0, 6, 0x4, 0, 0, 0, 0, 0]) + bytes([0, 3, 0, 0, 0, 100])  # MAX_CONCURRENT_STREAMS 100
    with answering(settings, close=False) as address:
        check_reachable(address, answer_timeout=2.0)
    goaway = bytes([0, 0, 8, 0x7, 0, 0, 0, 0, 0]) + bytes(8)  # HTTP/2, but a frame a server does not open with
    with answering(goaway) as address, pytest.raises(FleetError, match=r"it answered bytes 00 00 08 07 00 00 00 00"):
        check_reachable(address, answer_timeout=2.0)


@pytest.mark.parametrize("address, words", [
    ("http://127.0.0.1:6379", "or ray://HOST:PORT, not http://"),
    ("redis://10.0.0.5:6379", "not redis://"),
    ("127.0.0.1:70000", "give HOST:PORT of the cluster's head"),
])
def test_only_host_port_or_ray_scheme_is_an_address(address, words):
    with pytest.raises(FleetError, match="^--ray ") as caught:
        parse_address(address)
    assert words in str(caught.value)
    assert parse_address("ray://10.0.0.5:10001") == ("10.0.0.5", 10001)
    assert parse_address("[::1]:6379") == ("::1", 6379)


@pytest.mark.slow
def test_a_head_starts_on_a_machine_that_never_ran_ray(tmp_path, monkeypatch):
    """``ray start`` refuses to start without a token when token authentication is on, and only ``ray.init`` makes
    one: ``start_head`` makes it first (in a fresh home here), and the head answers."""
    pytest.importorskip("ray")
    from realtime.fleet.cluster import AUTH_MODE, start_head, stop_head

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", AUTH_MODE):
        monkeypatch.delenv(name, raising=False)
    address, pid = start_head(1, tmp_path / "logs")
    try:
        check_reachable(address, timeout=5.0)
        token = (tmp_path / "home" / ".ray" / "auth_token").read_text().strip()
        assert token and token not in (tmp_path / "logs" / "ray-head.log").read_text()
    finally:
        stop_head(pid)

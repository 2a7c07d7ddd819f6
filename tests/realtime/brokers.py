"""Real brokers for the sink tests: Debian's ``mosquitto`` and ``redis-server``, each a subprocess on a free port of
127.0.0.1, with its data in a temporary folder, so a broker stopped and started again on the same port keeps what a
real deployment's broker keeps (mosquitto's persistent sessions, Redis' append-only file). Subscribers that count
what arrives run in threads of the test."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from tests.realtime.helpers import free_port


def missing(binary: str) -> str | None:
    return None if shutil.which(binary) or Path(f"/usr/sbin/{binary}").exists() else \
        f"{binary} not installed (Debian package; .ci/install-system-deps installs it as root)"


def _wait_port(port: int, up: bool, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise AssertionError(f"port {port} did not go {'up' if up else 'down'} within {timeout} s")


class Broker:
    """A broker process; ``stop()`` ends it (SIGTERM: it saves its data), ``start()`` brings it back on the port."""

    def __init__(self, folder: Path):
        self.folder, self.port, self.proc = Path(folder), free_port(), None
        self.folder.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> "Broker":
        self.proc = subprocess.Popen(self.command(), cwd=self.folder, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        _wait_port(self.port, True)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None
        _wait_port(self.port, False)


class Mosquitto(Broker):
    def command(self) -> list[str]:
        conf = self.folder / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                        f"persistence_location {self.folder}/\nmax_queued_messages 0\nmax_inflight_messages 0\n"
                        f"log_dest none\n")
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        return [binary, "-c", str(conf)]

    def url(self, prefix: str = "qem", query: str = "") -> str:
        return f"mqtt://127.0.0.1:{self.port}/{prefix}" + (f"?{query}" if query else "")


class RedisServer(Broker):
    def command(self) -> list[str]:
        return [shutil.which("redis-server") or "/usr/bin/redis-server", "--bind", "127.0.0.1", "--port",
                str(self.port), "--save", "", "--appendonly", "yes", "--appendfsync", "always",
                "--dir", str(self.folder), "--protected-mode", "no"]

    def url(self, query: str = "") -> str:
        return f"redis://127.0.0.1:{self.port}/0" + (f"?{query}" if query else "")


class MqttCounter:
    """Subscribes to ``<prefix>/#`` with QoS 1 and a persistent session (what a broker restart keeps); keeps every
    message by topic, and reconnects by itself."""

    def __init__(self, port: int, prefix: str = "qem"):
        import paho.mqtt.client as mqtt

        self.prefix, self.messages, self.lock = prefix, {}, threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"counter-{port}",
                                  protocol=mqtt.MQTTv311, clean_session=False)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{prefix}/#", qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "the counting subscriber could not subscribe"

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.setdefault(msg.topic, []).append(msg.payload.decode())

    def json(self, suffix: str) -> list[dict]:
        with self.lock:
            return [json.loads(p) for topic, ps in self.messages.items() if topic.endswith(suffix) for p in ps]

    def last(self, topic: str) -> str | None:
        with self.lock:
            return (self.messages.get(topic) or [None])[-1]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def redis_entries(port: int, pattern: str = "qem:*") -> list[dict]:
    """Every message in the Redis streams whose key matches ``pattern`` (state keys left out)."""
    import redis

    client = redis.Redis(port=port)
    out = []
    for key in client.scan_iter(pattern):
        if client.type(key) == b"stream":
            out += [json.loads(fields[b"message"]) for _, fields in client.xrange(key)]
    client.close()
    return out

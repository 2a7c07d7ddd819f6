"""``mqtt://[user:password@]host[:port][/prefix]``: MQTT through paho-mqtt (MQTT 3.1.1), in the manner of Frigate.

Topics, per stream (its name): ``<prefix>/<stream>/poses`` (frame messages), ``<prefix>/<stream>/events`` (track
events), ``<prefix>/<stream>/state`` (retained: connecting, running, stalled, reconnecting, ended, failed). The
program's own presence: ``<prefix>/available`` (retained ``online``; the last will, sent by the broker when the
connection dies without a goodbye, and the goodbye itself, is ``offline``). QoS 1 by default (``?qos=0|1|2``), so
a message counts as delivered once the broker acknowledged it. Default port 1883, prefix ``qem``.

paho's network work runs in the sink's own worker thread, through paho's calls for an outside loop (``loop_read``,
``loop_write``, ``loop_misc``), not in a network thread of paho's: a publish is written at once, the acknowledgements
are read while the worker waits for them, and ``poll`` keeps the connection alive when nothing is sent. With paho's
thread each message woke a second thread twice (its publish, its acknowledgement): 27% more CPU a message
(BENCHMARKS.md, message sinks).
"""
from __future__ import annotations

import select
import time
import uuid

from realtime.publish.base import Message, SendFailed, Transport


class MqttTransport(Transport):
    def __init__(self, name: str, host: str, port: int, prefix: str, username: str | None = None,
                 password: str | None = None, qos: int = 1, timeout: float = 5.0):
        import paho.mqtt.client  # noqa: F401 - a missing package is reported before the run starts

        self.name, self.host, self.port, self.prefix, self.qos, self.timeout = name, host, port, prefix, qos, timeout
        self.username, self.password = username, password
        self.client = None
        self.up = False
        self.refused: str | None = None

    def _new_client(self):
        """A fresh client per connection: nothing of a broken session is sent twice behind the sink's back."""
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"qem-{uuid.uuid4().hex[:12]}",
                             protocol=mqtt.MQTTv311, clean_session=True)
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        client.will_set(f"{self.prefix}/available", "offline", qos=1, retain=True)
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.refused = str(reason_code)
        else:
            self.up = True

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.up = False

    def _pump(self, client, timeout: float) -> None:
        """One round of paho's network work: waits up to ``timeout`` s for the socket, reads what came
        (acknowledgements, the broker's answer to a keepalive), writes what is left, sends a keepalive when due."""
        sock = client.socket()
        if sock is None:
            self.up = False
            return
        try:
            readable, writable, _ = select.select([sock], [sock] if client.want_write() else [], [], timeout)
        except (OSError, ValueError):  # the socket closed under us
            self.up = False
            return
        for ready, step in ((readable, client.loop_read), (writable, client.loop_write), (True, client.loop_misc)):
            if ready and step():  # an error code: the connection is gone (on_disconnect ran too)
                self.up = False
                return

    def _wait(self, client, infos, timeout: float) -> bool:
        """Until every message of ``infos`` is published (QoS 1: acknowledged; QoS 0: written); False when the
        connection went or ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while not all(i.is_published() for i in infos):
            left = deadline - time.monotonic()
            if not self.up or left <= 0:
                return False
            self._pump(client, min(left, 0.05))
        return True

    def connect(self) -> None:
        self.close()
        self.up, self.refused = False, None
        self.client = self._new_client()
        self.client.connect(self.host, self.port, keepalive=30)  # raises OSError when nobody listens
        deadline = time.monotonic() + self.timeout
        while not self.up and self.refused is None and time.monotonic() < deadline:
            self._pump(self.client, 0.05)
        if self.refused is not None:
            raise ConnectionError(f"refused by the broker: {self.refused}")
        if not self.up:
            raise ConnectionError(f"no answer from the broker within {self.timeout:g}s")
        self.client.publish(f"{self.prefix}/available", "online", qos=1, retain=True)

    def set_state(self, stream: str, state: str) -> None:
        self.client.publish(f"{self.prefix}/{stream}/state", state, qos=1, retain=True)

    def send(self, batch: list[Message]) -> None:
        infos = [self.client.publish(f"{self.prefix}/{m.stream}/{'poses' if m.kind == 'frame' else 'events'}",
                                     m.payload, qos=self.qos) for m in batch]
        if not self._wait(self.client, infos, self.timeout):
            undelivered = [m for m, i in zip(batch, infos) if not i.is_published()]
            raise SendFailed("connection lost" if not self.up else
                             f"no acknowledgement within {self.timeout:g}s", undelivered)

    def poll(self) -> None:
        self._pump(self.client, 0.0)
        if not self.up:
            raise ConnectionError("connection lost")

    def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            if self.up:
                self._wait(client, [client.publish(f"{self.prefix}/available", "offline", qos=1, retain=True)], 1.0)
            client.disconnect()
        except Exception:  # noqa: BLE001 - a broken connection has nothing to say goodbye on
            pass
        finally:
            self.up = False

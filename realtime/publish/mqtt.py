"""``mqtt://[user:password@]host[:port][/prefix]``: MQTT through paho-mqtt (MQTT 3.1.1), in the manner of Frigate.

Topics, per stream (its name): ``<prefix>/<stream>/poses`` (frame messages), ``<prefix>/<stream>/events`` (track
events), ``<prefix>/<stream>/state`` (retained: connecting, running, stalled, reconnecting, ended, failed). The
program's own presence: ``<prefix>/available`` (retained ``online``; the last will, sent by the broker when the
connection dies without a goodbye, and the goodbye itself, is ``offline``). QoS 1 by default (``?qos=0|1|2``), so
a message counts as delivered once the broker acknowledged it. Default port 1883, prefix ``qem``.
"""
from __future__ import annotations

import threading
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
        self.up = threading.Event()
        self.acked = threading.Condition()
        self.refused: str | None = None
        self.outstanding: set[int] = set()  # message ids of the batch not yet acknowledged
        self.early: set[int] = set()        # ids acknowledged before send() registered its batch

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
        client.on_publish = self._on_publish
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.refused = str(reason_code)
        else:
            self.up.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.up.clear()
        with self.acked:
            self.acked.notify_all()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self.acked:
            if mid in self.outstanding:
                self.outstanding.discard(mid)
                if not self.outstanding:  # one wake-up a batch, not one a message
                    self.acked.notify_all()
            else:
                self.early.add(mid)

    def connect(self) -> None:
        self.close()
        self.up.clear()
        self.refused = None
        self.client = self._new_client()
        self.client.connect(self.host, self.port, keepalive=30)  # raises OSError when nobody listens
        self.client.loop_start()
        deadline = time.monotonic() + self.timeout
        while not self.up.is_set() and self.refused is None and time.monotonic() < deadline:
            self.up.wait(0.05)
        if self.refused is not None:
            raise ConnectionError(f"refused by the broker: {self.refused}")
        if not self.up.is_set():
            raise ConnectionError(f"no answer from the broker within {self.timeout:g}s")
        self.client.publish(f"{self.prefix}/available", "online", qos=1, retain=True)

    def set_state(self, stream: str, state: str) -> None:
        self.client.publish(f"{self.prefix}/{stream}/state", state, qos=1, retain=True)

    def send(self, batch: list[Message]) -> None:
        infos = [self.client.publish(f"{self.prefix}/{m.stream}/{'poses' if m.kind == 'frame' else 'events'}",
                                     m.payload, qos=self.qos) for m in batch]
        with self.acked:  # acknowledgements that came before this line are in ``early``
            self.outstanding = {i.mid for i in infos} - self.early
            self.early.clear()
        if self.qos == 0:
            if not self.up.is_set():
                raise SendFailed("connection lost", batch)
            return
        deadline = time.monotonic() + self.timeout
        with self.acked:
            done = self.acked.wait_for(lambda: not self.up.is_set() or not self.outstanding, timeout=self.timeout)
        if not (done and self.up.is_set()) or not all(i.is_published() for i in infos):
            undelivered = [m for m, i in zip(batch, infos) if not i.is_published()]
            if undelivered:
                raise SendFailed("connection lost" if not self.up.is_set() or time.monotonic() < deadline else
                                 f"no acknowledgement within {self.timeout:g}s", undelivered)

    def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            if self.up.is_set():
                client.publish(f"{self.prefix}/available", "offline", qos=1, retain=True).wait_for_publish(1.0)
            client.disconnect()
        except Exception:  # noqa: BLE001 - a broken connection has nothing to say goodbye on
            pass
        finally:
            client.loop_stop()
            self.up.clear()

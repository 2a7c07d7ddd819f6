"""Results out of the process: one versioned message (``messages``, ``message.schema.json``) fanned out by one
``Dispatcher`` to every sink: ``stdout``, ``mqtt``, ``redis``, ``ws`` (the live view's WebSocket); the JSONL files
of ``realtime.outputs.recording`` write the same lines.

One file per transport (``stdout.py``, ``mqtt.py``, ``redis_streams.py``, ``ws.py``), each a small ``Transport``
behind the same ``QueuedSink`` (``base.py``: bounded queue, drop-oldest, reconnection with backoff); the URI
grammar is ``uri.py``. Adding a transport: a file with a ``Transport``, a scheme in ``uri.SCHEMES``, a line in
``open_sink``.
"""
from __future__ import annotations

from typing import Callable

from realtime.publish.base import QueuedSink, SinkOptions
from realtime.publish.uri import SinkSpec, SinkUriError, parse_sink

__all__ = ["QueuedSink", "SinkOptions", "SinkSpec", "SinkUriError", "open_sink", "parse_sink"]

_PACKAGES = {"mqtt": "paho-mqtt", "redis": "redis"}


def open_sink(spec: SinkSpec, log: Callable[[str], None], hub=None, backoff_max: float = 10.0) -> QueuedSink:
    """The started sink of ``spec`` (``hub``: the live view's WebSocket hub, for ``ws``). A client library that is
    not installed raises ``SinkUriError`` (one line); a receiver that is down does not raise: it is retried."""
    try:
        if spec.scheme == "stdout":
            from realtime.publish.stdout import StdoutTransport
            transport = StdoutTransport()
        elif spec.scheme == "ws":
            if hub is None:
                raise SinkUriError(f"--sink {spec.name!r}: needs the live view (--http-port): it serves /ws")
            from realtime.publish.ws import WsTransport
            transport = WsTransport(hub)
        elif spec.scheme == "mqtt":
            from realtime.publish.mqtt import MqttTransport
            transport = MqttTransport(spec.name, spec.host, spec.port, spec.path, spec.username, spec.password,
                                      qos=spec.extra["qos"])
        else:
            from realtime.publish.redis_streams import RedisTransport
            transport = RedisTransport(spec.name, spec.host, spec.port, int(spec.path), spec.extra["key"],
                                       spec.extra["maxlen"], spec.username, spec.password)
    except ImportError as exc:
        raise SinkUriError(f"--sink {spec.name!r}: needs the Python package {_PACKAGES.get(spec.scheme, exc.name)} "
                           f"(pip install -e .[sinks])") from None
    transport.name = spec.name
    return QueuedSink(transport, spec.options, log, backoff_max=backoff_max).start()

"""Sink URIs (``--sink``, repeatable, and ``sinks:`` in a camera file), parsed before anything starts.

``stdout``, ``ws``, ``mqtt://[user:pw@]host[:port][/prefix]``, ``redis://[:pw@]host[:port][/db]``; options in the
query, for every sink: ``every=N`` (every N-th frame of each stream), ``fps=R`` (at most R frames a second per
stream), ``events=only`` (track events only), ``queue=N`` (messages waiting at most, default 1000); MQTT also
``qos=0|1|2`` (default 1); Redis also ``stream=KEY`` (``{stream}``: the stream's name; default ``qem:{stream}``) and
``maxlen=N`` (default 10000). A bad URI raises ``SinkUriError`` with one line that names it, credentials masked.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from realtime.publish.base import SinkOptions
from realtime.sources.redact import redact

SCHEMES = ("stdout", "ws", "mqtt", "redis")
_COMMON = {"every", "fps", "events", "queue"}
_EXTRA = {"stdout": set(), "ws": set(), "mqtt": {"qos"}, "redis": {"stream", "maxlen"}}
DEFAULT_PORTS = {"mqtt": 1883, "redis": 6379}


class SinkUriError(ValueError):
    """A sink URI that cannot be used; the message is one line."""


@dataclass(frozen=True)
class SinkSpec:
    scheme: str
    uri: str = field(repr=False)  # as given (may hold credentials)
    name: str                # credentials masked: logs, the view, status.json
    host: str = ""
    port: int = 0
    path: str = ""           # mqtt: the topic prefix; redis: the database number
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    options: SinkOptions = field(default_factory=SinkOptions)
    extra: dict = field(default_factory=dict)

    def for_streams(self, streams) -> "SinkSpec":
        return replace(self, options=replace(self.options, streams=frozenset(streams)))


def merge_sinks(specs, warn: Callable[[str], None] = lambda line: None) -> list[SinkSpec]:
    """One sink per URI and options: a sink given twice (on the command line and in a camera file, or for the run
    and for one camera) would send each message twice. Returns the sinks, each carrying the union of the streams it
    was given for (None: all); ``warn`` hears one line per sink given twice for a stream (two cameras that each name
    the same sink are not: each message went there once anyway)."""
    merged: list[SinkSpec] = []
    repeated: list[str] = []
    for spec in specs:
        key = replace(spec.options, streams=None)
        i = next((k for k, m in enumerate(merged) if m.uri == spec.uri and replace(m.options, streams=None) == key),
                 None)
        if i is None:
            merged.append(spec)
            continue
        a, b = merged[i].options.streams, spec.options.streams
        merged[i] = replace(merged[i], options=replace(merged[i].options,
                                                       streams=None if a is None or b is None else a | b))
        if (a is None or b is None or a & b) and spec.name not in repeated:
            repeated.append(spec.name)
    for name in repeated:
        warn(f"warning: sink {name} is given more than once; each message goes there once")
    return merged


def parse_sink(text: str) -> SinkSpec:
    name = redact(text)
    bad = lambda why: SinkUriError(f"--sink {name!r}: {why}")  # noqa: E731
    scheme = text.split(":", 1)[0].split("?", 1)[0].lower() if text else ""
    if scheme not in SCHEMES:
        return_err = f"unknown scheme {scheme!r}" if scheme else "empty"
        raise bad(f"{return_err} (use one of: {', '.join(SCHEMES)}; e.g. mqtt://127.0.0.1:1883/qem)")
    parts = urlsplit(text if "://" in text or scheme in ("stdout", "ws") else text.replace(":", "://", 1))
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(query) - _COMMON - _EXTRA[scheme])
    if unknown:
        allowed = ", ".join(sorted(_COMMON | _EXTRA[scheme]))
        raise bad(f"unknown option {unknown[0]!r} (options: {allowed})")
    options = SinkOptions(every=_number(query, "every", int, 1, bad, low=1),
                          fps=_number(query, "fps", float, None, bad, low=1e-9),
                          events_only=_events(query, bad), queue=_number(query, "queue", int, 1000, bad, low=1))
    if scheme in ("stdout", "ws"):
        if parts.netloc or parts.path.strip("/") not in ("", scheme):
            raise bad(f"{scheme} takes no address, only options (e.g. {scheme}?every=2)")
        return SinkSpec(scheme, text, name, options=options)
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise bad("port out of range (1-65535)") from None
    if not parts.hostname:
        raise bad("no host name (e.g. " + ("mqtt://127.0.0.1:1883/qem)" if scheme == "mqtt" else
                                           "redis://127.0.0.1:6379/0)"))
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    path = parts.path.strip("/")
    extra: dict = {}
    if scheme == "mqtt":
        if any(c in path for c in "+#") or "//" in path:
            raise bad(f"topic prefix {path!r} may not hold '+', '#' or empty levels")
        path = path or "qem"
        extra["qos"] = _number(query, "qos", int, 1, bad, low=0, high=2)
    else:
        if path and not path.isdigit():
            raise bad(f"database {path!r} is not a number (redis://host:port/0)")
        path = path or "0"
        extra["key"] = query.get("stream") or "qem:{stream}"
        extra["maxlen"] = _number(query, "maxlen", int, 10000, bad, low=1)
    return SinkSpec(scheme, text, name, parts.hostname, port, path, user, password, options, extra)


def _events(query: dict, bad) -> bool:
    value = query.get("events", "all")
    if value not in ("only", "all"):
        raise bad(f"events={value!r} (use events=only or events=all)")
    return value == "only"


def _number(query: dict, key: str, kind, default, bad, low=None, high=None):
    if key not in query:
        return default
    try:
        value = kind(query[key])
    except ValueError:
        raise bad(f"{key}={query[key]!r} is not a{'n integer' if kind is int else ' number'}") from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise bad(f"{key}={query[key]!r} out of range")
    return value

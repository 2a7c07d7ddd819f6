"""The camera file: ``qem predict --cameras cameras.yaml`` (the demos take it too), in the manner of Frigate's
``cameras:`` section::

    sinks: [mqtt://127.0.0.1:1883/qem]          # optional: every camera's messages go here too
    cameras:
      door:                                      # the name: files, topics, the view ([A-Za-z0-9_-], 1-64 chars)
        url: rtsp://${DOOR_USER}:${DOOR_PASSWORD}@192.168.1.20:554/stream1
        record: true                             # MP4 + JSONL in the run folder (default true)
        segment: 60                              # seconds per file (default: one file)
        keep: 100                                # with segment: newest segments kept
        sinks: [redis://127.0.0.1:6379/0]        # this camera's messages only
        as_live: false                           # a file played like a camera
        loop: false                              # a file starts again at its end (with as_live: a fake camera)
        fps: 10                                  # a frame-rate cap: frames beyond it are skipped before the network

``${NAME}`` in a URL is replaced by the environment variable NAME, so passwords stay out of the file (and out of
every log: URLs are redacted). Any mistake (not YAML, an unknown key, a missing variable, a duplicate name, a bad
value) raises ``CameraFileError`` with one line naming the file and the camera.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from realtime.publish.uri import SinkSpec, SinkUriError, parse_sink


@dataclass(frozen=True)
class StreamOptions:
    """Settings of one stream that override the run's (a camera file's entry): ``record`` its files, ``segment``
    seconds and ``keep`` segments, ``as_live``, ``max_fps`` (a frame-rate cap before the network), ``loop``."""

    record: bool = True
    segment: float | None = None
    keep: int | None = None
    as_live: bool = False
    max_fps: float | None = None
    loop: bool = False


NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_VAR = re.compile(r"\$\{([^}]*)\}")


class CameraFileError(ValueError):
    """A camera file that cannot be used; one line."""


@dataclass(frozen=True)
class Camera:
    name: str
    url: str = field(repr=False)  # may hold credentials
    record: bool = True
    segment: float | None = None
    keep: int | None = None
    sinks: tuple[SinkSpec, ...] = ()
    as_live: bool = False
    fps: float | None = None
    loop: bool = False

    def options(self) -> StreamOptions:
        """The settings its stream runs with."""
        return StreamOptions(self.record, self.segment, self.keep, self.as_live, self.fps, self.loop)


@dataclass(frozen=True)
class CameraFile:
    path: Path
    cameras: list[Camera]
    sinks: tuple[SinkSpec, ...] = field(default_factory=tuple)


_TYPES = {"url": str, "record": bool, "segment": (int, float), "keep": int, "sinks": list, "as_live": bool,
          "fps": (int, float), "loop": bool}
_KEYS = [f.name for f in fields(Camera) if f.name != "name"]


def load_cameras(path: str | Path, environ: dict | None = None) -> CameraFile:
    import yaml

    path = Path(path)
    env = os.environ if environ is None else environ
    where = str(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise CameraFileError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CameraFileError(f"{where}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    except _DuplicateKey as exc:
        raise CameraFileError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise CameraFileError(f"{where}: not valid YAML{line}: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("cameras"), dict) or not data["cameras"]:
        raise CameraFileError(f"{where}: needs a 'cameras:' mapping of name -> settings (see docs/realtime.md)")
    unknown = sorted(set(data) - {"cameras", "sinks"})
    if unknown:
        raise CameraFileError(f"{where}: unknown key {unknown[0]!r} at the top (keys: cameras, sinks)")
    sinks = _sinks(data.get("sinks", []), where, "the top-level sinks")
    cameras = [_camera(str(name), spec, where, env) for name, spec in data["cameras"].items()]
    return CameraFile(path, cameras, sinks)


def _camera(name: str, spec, where: str, env) -> Camera:
    at = f"{where}: camera {name!r}"
    if not NAME.fullmatch(name):
        raise CameraFileError(f"{at}: a name is 1-64 letters, digits, '_' or '-' (it names files and topics)")
    if isinstance(spec, str):
        spec = {"url": spec}
    if not isinstance(spec, dict):
        raise CameraFileError(f"{at}: needs a mapping of settings (url: ..., record: ..., ...)")
    for key, value in spec.items():
        if key not in _TYPES:
            raise CameraFileError(f"{at}: unknown key {key!r} (keys: {', '.join(_KEYS)})")
        kinds = _TYPES[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and kinds is not bool):
            want = {str: "a string", bool: "true or false", int: "a whole number",
                    list: "a list"}.get(kinds, "a number")
            raise CameraFileError(f"{at}: {key} must be {want}, got {value!r}")
    if "url" not in spec:
        raise CameraFileError(f"{at}: no url")
    url = _fill(spec["url"], at, env)
    for key in ("segment", "fps"):
        if key in spec and not spec[key] > 0:
            raise CameraFileError(f"{at}: {key} must be > 0, got {spec[key]!r}")
    if "keep" in spec and (spec["keep"] < 1 or "segment" not in spec):
        raise CameraFileError(f"{at}: keep must be >= 1 and needs segment (retention deletes whole segments)")
    sinks = tuple(s.for_streams([name]) for s in _sinks(spec.get("sinks", []), where, f"camera {name!r}"))
    return Camera(name, url, spec.get("record", True), spec.get("segment"), spec.get("keep"), sinks,
                  spec.get("as_live", False), spec.get("fps"), spec.get("loop", False))


def _fill(url: str, at: str, env) -> str:
    def value(m: re.Match) -> str:
        if m[1] not in env:
            raise CameraFileError(f"{at}: the environment variable {m[1]!r} of its url is not set")
        return env[m[1]]
    return _VAR.sub(value, url)


def _sinks(items, where: str, owner: str) -> tuple[SinkSpec, ...]:
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise CameraFileError(f"{where}: {owner}: sinks must be a list of URIs")
    try:
        return tuple(parse_sink(i) for i in items)
    except SinkUriError as exc:
        raise CameraFileError(f"{where}: {owner}: {str(exc).removeprefix('--sink ')}") from None


class _DuplicateKey(Exception):
    pass


def _unique_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            what = f"camera {key!r} appears twice" if _is_cameras(node, loader) else f"key {key!r} appears twice"
            raise _DuplicateKey(f"{what} (line {key_node.start_mark.line + 1}); names must be unique")
        seen.add(key)
    return loader.construct_mapping_default(node, deep)


def _is_cameras(node, loader) -> bool:
    return getattr(loader, "_cameras_node", None) is node


def _loader():
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping_default(self, node, deep=False):
            return yaml.SafeLoader.construct_mapping(self, node, deep)

        def construct_mapping(self, node, deep=False):
            for key_node, value_node in node.value:  # the node under 'cameras:' names cameras
                if getattr(key_node, "value", None) == "cameras" and isinstance(value_node, yaml.MappingNode):
                    self._cameras_node = value_node
            return _unique_mapping(self, node, deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, Loader.construct_mapping)
    return Loader


class _LazyLoader:
    """Builds the YAML loader on first use, so importing this module does not import PyYAML."""

    def __call__(self, stream):
        return _loader()(stream)


_UniqueKeyLoader = _LazyLoader()

"""What a source string means, and readers that turn a source into RGB images.

A source is a camera index (``"0"``), a stream URL (``rtsp://``, ``rtsps://``, ``rtmp://``, ``http(s)://``,
``udp://``, ``tcp://``, ``srt://``), a video file, or images: one image file, a folder of images or a glob
(``"photos/*.jpg"``; quote it so that the shell leaves it alone). Cameras and stream URLs are *live* (keep only
the newest frame); files and images deliver every frame. An ``http(s)://`` URL whose path ends in a video file's
suffix (``VIDEO_SUFFIXES``) is a file read over the network, not a stream; one that ends in an image's suffix is an
image, fetched once.

Readers: ``open()`` raises ``SourceError`` (``permanent`` when retrying cannot help), ``read()`` returns
``(image RGB uint8 HxWx3, pts seconds or None)`` or ``None`` at the end, ``close()`` never raises. Every
network call has a timeout: ``open_timeout`` to connect and ``read_timeout`` for each read.
A PyAV reader given a ``shrink`` target (``realtime.sources.frontend``) returns the image already shrunk to the network
canvas's content size and sets ``full_size`` to the decoded frame's (height, width).
"""
from __future__ import annotations

import errno
import glob
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import numpy as np

from realtime.sources.frontend import orient
from realtime.sources.redact import redact

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MAX_IMAGE_BYTES = 64 << 20  # an image fetched from a URL
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")  # not .ts, .flv, .mjpg, .m3u8: live formats too


class SourceError(Exception):
    """A source cannot be opened or read; the message is one line and already redacted. ``permanent``: retrying
    cannot help; ``again_at_once``: nothing failed, the next attempt starts at once and the state stays (a
    listener whose publisher has not come yet)."""

    def __init__(self, message: str, permanent: bool = False, again_at_once: bool = False):
        super().__init__(redact(message))
        self.permanent, self.again_at_once = permanent, again_at_once


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source string; ``uri`` may hold credentials, ``name`` never does."""

    uri: str
    kind: str  # "camera" | "stream" | "file" (a video) | "images" (an image file, a folder or a glob)
    listen: bool = False  # RTSP only: act as the server a publisher pushes to (FFmpeg's listen mode)

    @property
    def live(self) -> bool:
        return self.kind in ("camera", "stream")

    @property
    def remote(self) -> bool:
        """Read over the network: a stream, or a file named by a URL."""
        return "://" in self.uri

    @property
    def name(self) -> str:
        return redact(self.uri)


def parse_source(text: str, listen: bool = False) -> SourceSpec:
    """Classify a source string; raises ``SourceError(permanent=True)`` for a malformed URL or a missing path.

    ``listen``: an ``rtsp://`` URL is the address to listen on for a pushed stream instead of one to pull."""
    text = text.strip()
    if text.isdigit():
        return SourceSpec(text, "camera")
    if "://" in text:
        try:
            parts = urlsplit(text)
            parts.port  # raises ValueError on a bad port
        except ValueError as exc:
            raise SourceError(f"malformed URL {text!r}: {exc}", permanent=True) from None
        scheme = parts.scheme.lower()
        if scheme == "file":
            return parse_source(parts.path)
        if scheme not in STREAM_SCHEMES:
            raise SourceError(f"unsupported URL scheme {scheme!r} in {text!r}; use one of "
                              f"{', '.join(STREAM_SCHEMES)}", permanent=True)
        if not parts.hostname and scheme not in ("udp", "tcp", "srt"):
            raise SourceError(f"malformed URL {text!r}: no host name", permanent=True)
        suffix = Path(parts.path).suffix.lower() if scheme in ("http", "https") else ""
        if suffix in VIDEO_SUFFIXES or suffix in IMAGE_SUFFIXES:
            return SourceSpec(text, "file" if suffix in VIDEO_SUFFIXES else "images")
        return SourceSpec(text, "stream", listen=listen and scheme == "rtsp")
    path = Path(text).expanduser()
    if path.is_dir() or (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES):
        return SourceSpec(str(path), "images")
    if not path.exists():
        if glob.has_magic(text):
            if not image_paths(str(path)):
                raise SourceError(f"no image matches {text} ({', '.join(IMAGE_SUFFIXES)})", permanent=True)
            return SourceSpec(str(path), "images")
        raise SourceError(f"no such file or folder: {text}", permanent=True)
    return SourceSpec(str(path), "file")


def image_paths(uri: str) -> list[Path]:
    """The image files an images source names, in name order: the file itself, a folder's images, a glob's."""
    path = Path(uri)
    if path.is_file():
        return [path]
    found = path.iterdir() if path.is_dir() else (Path(p) for p in glob.glob(uri, recursive=True))
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


class PyAVReader:
    """Files and network streams through PyAV (FFmpeg): RTSP over TCP, low-delay flags, timeouts on every call."""

    def __init__(self, spec: SourceSpec, open_timeout: float = 5.0, read_timeout: float = 5.0, shrink=None,
                 warn: Callable[[str], None] | None = None):
        self.spec, self.open_timeout, self.read_timeout = spec, open_timeout, read_timeout
        self._warn = warn or (lambda line: None)
        self.shrink = shrink  # realtime.sources.frontend.ShrinkTarget, or None: whole RGB frames
        self.full_size: tuple[int, int] | None = None  # (H, W) of the last frame when it came back shrunk
        self.container = None
        self._frames = None
        self.fps: float | None = None
        self.num_frames: int | None = None

    def _options(self) -> dict[str, str]:
        us = str(int(self.read_timeout * 1e6))
        if self.spec.kind == "file":
            return {"rw_timeout": us} if self.spec.remote else {}
        options = {"fflags": "nobuffer", "flags": "low_delay", "max_delay": "500000",
                   "analyzeduration": "1000000", "probesize": "1000000"}
        scheme = urlsplit(self.spec.uri).scheme.lower()
        if scheme.startswith("rtsp"):
            options.update(rtsp_transport="tcp", timeout=us)
            if self.spec.listen:
                options.update(rtsp_flags="listen", listen_timeout=str(max(1, round(self.open_timeout))))
        else:
            options.update(rw_timeout=us)
        return options

    def _resolve_host(self) -> None:
        import socket

        host = urlsplit(self.spec.uri).hostname
        if not self.spec.remote or self.spec.listen or not host:
            return
        try:
            socket.getaddrinfo(host, None)
        except (socket.gaierror, UnicodeError) as exc:
            raise SourceError(f"{self.spec.name}: cannot resolve host {host!r} ({_reason(exc)})") from None

    def open(self) -> None:
        self._resolve_host()
        options = self._options()
        self.container = self._open(options)
        if self.spec.kind == "stream" and self.container.duration and "fflags" in options:
            # a file served over the network (its length is known): what was read while probing is its first frames,
            # which nobuffer throws away (a short file: all of them); opened again, keeping them
            self.container.close()
            self.container = self._open({k: v for k, v in options.items() if k != "fflags"})
            self._warn(f"{self.spec.name} is a file served over the network: it plays like a live stream (the newest "
                       f"frame each time, the others dropped); a URL ending in a video suffix "
                       f"({', '.join(VIDEO_SUFFIXES)}) is read as a file, every frame")
        if not self.container.streams.video:
            self.close()
            raise SourceError(f"{self.spec.name}: has no video stream", permanent=True)
        stream = self.container.streams.video[0]
        stream.thread_type = "AUTO" if self.spec.kind == "file" else "SLICE"
        width, height = stream.codec_context.width, stream.codec_context.height
        if width and height:
            from realtime.sources.frontend import decoder_options, decoder_threads

            stream.codec_context.thread_count = decoder_threads(width, height)
            options = decoder_options(width, height, self.shrink)
            if options:
                stream.codec_context.options = options
        self.fps = float(stream.average_rate) if stream.average_rate else None
        self.num_frames = int(stream.frames) if stream.frames else None
        self._frames = self.container.decode(stream)

    def _open(self, options: dict[str, str]):
        """The container, or one ``SourceError`` line saying why not."""
        import av

        started = time.monotonic()
        try:
            return av.open(self.spec.uri, options=options, timeout=(self.open_timeout, self.read_timeout))
        except av.error.FileNotFoundError:
            raise SourceError(f"{self.spec.name}: no such file", permanent=True) from None
        except (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError, av.error.HTTPNotFoundError) as exc:
            raise SourceError(f"{self.spec.name}: refused by the server ({_reason(exc)}); check the URL and "
                              f"credentials", permanent=True) from None
        except av.error.ExitError:  # PyAV's timeout interrupted FFmpeg ("Immediate exit requested")
            if self.spec.listen:
                raise SourceError(f"{self.spec.name}: no publisher pushed a stream within "
                                  f"{self.open_timeout:g}s", again_at_once=True) from None
            raise SourceError(f"{self.spec.name}: no answer within {self.open_timeout:g}s",
                              permanent=self.spec.kind == "file") from None
        except av.error.InvalidDataError:
            if self.spec.kind == "stream" and time.monotonic() - started < 0.9 * self.open_timeout:
                raise SourceError(f"{self.spec.name}: the server's answer is not a video stream") from None
            if self.spec.kind == "stream":
                raise SourceError(f"{self.spec.name}: no valid stream within {self.open_timeout:g}s "
                                  f"(no answer, or not a video stream)") from None
            raise SourceError(f"{self.spec.name}: not a video file (or the file is empty/damaged)",
                              permanent=True) from None
        except (av.error.FFmpegError, OSError) as exc:
            if self.spec.listen and getattr(exc, "errno", None) == errno.EADDRNOTAVAIL:
                raise SourceError(f"{self.spec.name}: cannot listen there: {urlsplit(self.spec.uri).hostname} is not "
                                  f"an address of this machine (listen on 0.0.0.0 or one of its own)",
                                  permanent=True) from None
            raise SourceError(f"{self.spec.name}: cannot open ({_reason(exc)})",
                              permanent=self.spec.kind == "file") from None

    def read(self) -> tuple[np.ndarray, float | None] | None:
        import av

        started = time.monotonic()
        try:
            frame = next(self._frames)
        except StopIteration:
            return None
        except av.error.EOFError:
            return None
        except av.error.ExitError:
            if self.spec.kind == "file" and not self.spec.remote:
                return None
            raise SourceError(f"{self.spec.name}: no frame within {self.read_timeout:g}s") from None
        except (av.error.FFmpegError, OSError) as exc:
            if self.spec.kind == "file" and not self.spec.remote:
                return None  # a truncated file ends where its readable data ends
            if time.monotonic() - started >= 0.9 * self.read_timeout:  # FFmpeg's own timeout: the data stopped
                raise SourceError(f"{self.spec.name}: no data within {self.read_timeout:g}s (the server stopped "
                                  f"sending)") from None
            raise SourceError(f"{self.spec.name}: read failed ({_reason(exc)})") from None
        pts = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else None
        if self.shrink is not None:
            from realtime.sources.frontend import shrink

            image, self.full_size = shrink(frame, self.shrink)
            return image, pts
        image = orient(frame.to_ndarray(format="rgb24"), frame.rotation)
        return image, pts

    def close(self) -> None:
        if self.container is not None:
            try:
                self.container.close()
            except Exception:  # noqa: BLE001 - closing a broken stream must not raise
                pass
            self.container = None


class CameraReader:
    """A local camera by index through OpenCV."""

    def __init__(self, spec: SourceSpec, **_):
        self.spec = spec
        self.cap = None
        self.fps: float | None = None
        self.num_frames = None

    def open(self) -> None:
        import cv2

        index = int(self.spec.uri)
        if os.name == "posix" and Path("/dev").exists() and not Path(f"/dev/video{index}").exists():
            raise SourceError(f"no camera at index {index} (/dev/video{index} does not exist)", permanent=True)
        cap = cv2.VideoCapture(index)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"no camera at index {index} (OpenCV could not open it)", permanent=True)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's queue adds latency; capture keeps the newest frame anyway
        self.cap = cap
        self.fps = cap.get(cv2.CAP_PROP_FPS) or None

    def read(self) -> tuple[np.ndarray, float | None] | None:
        import cv2

        ok, bgr = self.cap.read()
        if not ok:
            raise SourceError(f"camera {self.spec.uri}: read failed")
        ms = self.cap.get(cv2.CAP_PROP_POS_MSEC)
        image = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB if bgr.ndim == 2 else cv2.COLOR_BGR2RGB)
        return image, (ms / 1000.0 if ms > 0 else None)

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class ImageReader:
    """Image files in name order (``image_paths``), or one image at an ``http(s)://`` URL (fetched with the read
    timeout); ``pts`` = index / ``fps``; ``path`` is the file that the last ``read()`` came from, or the URL with
    its credentials masked (the outputs name their annotated image and JSONL line after it:
    ``realtime.frames.image_file_name``).

    A file that cannot be decoded (damaged, or not an image) is skipped with one ``warn`` line naming it and the
    source goes on; a single image file that cannot be read, or a set of which none can, is a permanent
    SourceError. OpenCV applies the EXIF orientation, so a phone's portrait photo comes out upright."""

    def __init__(self, spec: SourceSpec, fps: float = 30.0, warn: Callable[[str], None] | None = None,
                 read_timeout: float = 5.0, **_):
        self.spec, self.fps, self.warn, self.read_timeout = spec, fps, warn or (lambda line: None), read_timeout
        self.paths: list[Path] = []
        self.index = 0
        self.delivered = 0
        self.num_frames = None
        self.path: str | None = None

    def open(self) -> None:
        self.paths = [self.spec.uri] if self.spec.remote else image_paths(self.spec.uri)
        if not self.paths:
            raise SourceError(f"{self.spec.name}: no images ({', '.join(IMAGE_SUFFIXES)})", permanent=True)
        self.num_frames = len(self.paths)

    def read(self) -> tuple[np.ndarray, float | None] | None:
        import cv2

        while self.index < len(self.paths):
            i, self.index = self.index, self.index + 1
            path = self.paths[i]
            if self.spec.remote:
                path = self.spec.name
                data = np.frombuffer(fetch_image(self.spec, self.read_timeout), np.uint8)
                bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
            else:
                bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                problem = f"{path}: not a readable image (damaged, or not an image)"
                if len(self.paths) == 1:
                    raise SourceError(problem, permanent=True)
                self.warn(f"skipped {problem}")
                continue
            self.path, self.delivered = str(path), self.delivered + 1
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), i / self.fps
        if not self.delivered:
            raise SourceError(f"{self.spec.name}: none of its {len(self.paths)} images could be read", permanent=True)
        return None

    def close(self) -> None:
        pass


def fetch_image(spec: SourceSpec, timeout: float) -> bytes:
    """The body at ``spec.uri`` (user and password of the URL sent as HTTP basic authentication, as ``qem import``
    sends them), or one permanent ``SourceError`` line naming the URL without its credentials."""
    import urllib.error
    import urllib.request

    from models.imports.fetch import authorized_request

    try:
        with urllib.request.urlopen(authorized_request(spec.uri), timeout=timeout) as response:
            body = response.read(MAX_IMAGE_BYTES + 1)  # bounded: a URL that streams (an MJPEG camera) never ends
    except urllib.error.HTTPError as exc:
        raise SourceError(f"{spec.name}: refused by the server (HTTP {exc.code} {exc.reason}); check the URL and "
                          f"credentials", permanent=True) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(getattr(exc, "reason", None), BaseException) else exc
        raise SourceError(f"{spec.name}: cannot fetch it ({_reason(reason)})", permanent=True) from None
    if len(body) > MAX_IMAGE_BYTES:
        raise SourceError(f"{spec.name}: over {MAX_IMAGE_BYTES >> 20} MiB, not one image (a stream? give its URL "
                          f"without the image suffix)", permanent=True)
    return body


def make_reader(spec: SourceSpec, open_timeout: float = 5.0, read_timeout: float = 5.0,
                warn: Callable[[str], None] | None = None, shrink=None):
    """The reader for a spec; ``warn`` gets its one-line warnings (an images source's skipped file, a file served
    over the network); ``shrink``
    (``realtime.sources.frontend.ShrinkTarget``) makes a PyAV reader return frames shrunk to the network canvas's content."""
    if spec.kind == "camera":
        return CameraReader(spec)
    if spec.kind == "images":
        return ImageReader(spec, warn=warn, read_timeout=read_timeout)
    return PyAVReader(spec, open_timeout=open_timeout, read_timeout=read_timeout, shrink=shrink, warn=warn)


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return redact(text.splitlines()[0] if text else type(exc).__name__)

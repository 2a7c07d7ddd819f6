"""The two values that travel through the pipeline: a captured ``Frame`` and its ``Result``.

Times: ``pts`` is the presentation time in seconds from the source's own clock (``None`` when the source has
none); ``wall_time`` is ``time.time()`` when the frame was received (for outputs); ``recv_time`` is
``time.perf_counter()`` at the same moment (for latencies, monotonic). Images are RGB uint8 HxWx3.

``full_size``: None when ``image`` is the whole decoded frame; else the (height, width) of the decoded frame, and
``image`` is that frame already shrunk to the network canvas's content size while decoding (``realtime.sources.frontend``,
when no output draws on the full frame). ``height`` and ``width`` are always the decoded frame's: poses, messages
and tracks are in its pixels.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from models.poses import Poses


@dataclass
class Frame:
    """One decoded image of one source."""

    source: int          # index of the source in the pipeline
    seq: int             # 0, 1, 2, ... per source, in capture order (gaps mean dropped frames)
    pts: float | None    # seconds, source clock
    wall_time: float     # time.time() at receipt
    recv_time: float     # time.perf_counter() at receipt
    image: np.ndarray    # HxWx3 uint8 RGB
    path: str | None = None  # the image file or URL it was read from (images sources); None for video and streams
    full_size: tuple[int, int] | None = None  # (H, W) of the decoded frame when ``image`` is shrunk (module doc)

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f"Frame.image must be HxWx3 uint8, got {self.image.shape} {self.image.dtype}")

    @property
    def height(self) -> int:
        return self.full_size[0] if self.full_size else self.image.shape[0]

    @property
    def width(self) -> int:
        return self.full_size[1] if self.full_size else self.image.shape[1]


@dataclass
class Result:
    """The people found in a ``Frame``; ``track_ids[i]`` belongs to ``poses`` row i (-1: not tracked).

    ``stage_ms`` holds the per-stage latencies of this frame in milliseconds (batched stages are shared by every
    frame of the batch); ``done_time`` is ``time.perf_counter()`` when the result was final.
    """

    frame: Frame
    poses: Poses
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    stage_ms: dict[str, float] = field(default_factory=dict)
    done_time: float = 0.0

    @property
    def latency_ms(self) -> float:
        """End-to-end latency: result time minus receive time."""
        return (self.done_time - self.frame.recv_time) * 1000.0


def image_file_name(path: str) -> str:
    """The name an annotated image is written under (``Frame.path``): the file's name, or the last part of a URL's
    path (no query)."""
    return Path(urlsplit(path).path if "://" in path else path).name

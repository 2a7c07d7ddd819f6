"""Recording per stream: the annotated MP4 and the poses JSONL, optionally cut into segments, with retention.

Names in the run folder: for an images source, each annotated image under its input's name (``ImageSink``) +
``poses.jsonl``; for video, ``annotated.mp4`` + ``poses.jsonl`` (one stream) or ``annotated_<i>.mp4`` +
``poses_<i>.jsonl`` (stream i of several). With segments of ``segment`` seconds: ``annotated_000000.mp4`` +
``poses_000000.jsonl``, then ``..._000001``, ... (several streams: ``annotated_<i>_000000.mp4`` +
``poses_<i>_000000.jsonl``). The counter sorts by time; a run continued in the same folder (``--exist-ok``) counts
on after the last segment there, so nothing is overwritten. Each frame's wall time is in its JSONL line.

A new segment starts with the first frame ``segment`` seconds or more (on the video's clock: the source's pts for
files, the receive time for live sources) after the first frame of the current one. MP4 and JSONL rotate at the
same frame, so a pair holds the same frames; each MP4 starts with a keyframe and its own clock at 0.

Retention (``Retention``): ``keep`` keeps the newest N segments per stream (the one being written included);
``keep_gb`` keeps the finished segments of the folder (all streams) within X GB (1e9 bytes), the one being written
on top. The oldest go first, segments found in the folder at the start included (in the order they were written).
"""
from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from realtime.frames import Result, image_file_name
from realtime.outputs.files import ImageSink, JsonlSink, Mp4Sink


@dataclass
class Segment:
    stream: int
    paths: tuple[Path, ...]

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in self.paths if p.exists())


class Retention:
    """Deletes the oldest finished segments beyond ``keep`` per stream or ``keep_gb`` in all."""

    def __init__(self, keep: int | None = None, keep_gb: float | None = None,
                 log: Callable[[str], None] = lambda line: None):
        self.keep, self.max_bytes, self.log = keep, None if keep_gb is None else keep_gb * 1e9, log
        self.finished: deque[tuple[Segment, int]] = deque()  # (segment, its size), oldest first
        self.deleted = 0

    def add(self, segment: Segment) -> None:
        self.finished.append((segment, segment.size))
        self._enforce()

    def _enforce(self) -> None:
        if self.keep is not None:
            for stream in {s.stream for s, _ in self.finished}:
                mine = [entry for entry in self.finished if entry[0].stream == stream]
                for entry in mine[:max(0, len(mine) - (self.keep - 1))]:
                    self._delete(entry)
        while self.max_bytes is not None and self.finished and sum(b for _, b in self.finished) > self.max_bytes:
            self._delete(self.finished[0])

    def _delete(self, entry: tuple[Segment, int]) -> None:
        self.finished.remove(entry)
        for path in entry[0].paths:
            path.unlink(missing_ok=True)
        self.deleted += 1


class StreamRecorder:
    """The files of one stream (``mp4`` and/or ``jsonl`` of the current segment) and their rotation."""

    def __init__(self, out_dir: Path, stream: int, streams: int, *, save_mp4: bool = True, save_jsonl: bool = True,
                 segment: float | None = None, fragmented: bool = True, keyframe_every: float = 1.0,
                 retention: Retention | None = None, images: ImageSink | None = None, tag: str | None = None):
        self.out_dir, self.stream = Path(out_dir), stream
        # a named stream (camera file) is annotated_<name>.mp4; else annotated.mp4 alone, annotated_<i>.mp4 of several
        self.tag = f"_{tag}" if tag else ("" if streams == 1 else f"_{stream}")
        self.save_mp4, self.save_jsonl, self.segment, self.fragmented = save_mp4, save_jsonl, segment, fragmented
        self.keyframe_every = keyframe_every
        self.retention = retention
        self.images = images  # an images source: annotated images (one sink for the run), not an MP4
        self.index = 0
        if segment is not None:
            earlier = self._existing_segments()
            self.index = earlier[-1][0] + 1 if earlier else 0
            if retention is not None:
                for _, seg in sorted(earlier, key=lambda e: max(p.stat().st_mtime for p in e[1].paths)):
                    retention.add(seg)
        self.mp4: Mp4Sink | None = None
        self.jsonl: JsonlSink | None = None
        self.start_t: float | None = None
        self._open()

    def paths(self, index: int | None = None) -> tuple[Path, Path]:
        seq = "" if self.segment is None else f"_{self.index if index is None else index:06d}"
        return (self.out_dir / f"annotated{self.tag}{seq}.mp4", self.out_dir / f"poses{self.tag}{seq}.jsonl")

    def _existing_segments(self) -> list[tuple[int, Segment]]:
        pattern = re.compile(rf"(annotated|poses){re.escape(self.tag)}_(\d{{6,}})\.(mp4|jsonl)")
        found: dict[int, list[Path]] = {}
        for path in self.out_dir.glob(f"*{self.tag}_*") if self.out_dir.is_dir() else ():
            m = pattern.fullmatch(path.name)
            if m:
                found.setdefault(int(m.group(2)), []).append(path)
        return [(i, Segment(self.stream, tuple(sorted(found[i])))) for i in sorted(found)]

    def _open(self) -> None:
        mp4_path, jsonl_path = self.paths()
        try:
            # JSONL first: a kill between the two leaves a segment's MP4 only where its JSONL exists
            self.jsonl = JsonlSink(jsonl_path) if self.save_jsonl else None
            self.mp4 = (Mp4Sink(mp4_path, fragmented=self.fragmented, keyframe_every=self.keyframe_every)
                        if self.save_mp4 else None)
        except BaseException:
            self.close()
            raise

    def write(self, result: Result, image, t: float, lines: list[str]) -> None:
        """Writes one result shown at ``t`` seconds (see the module docstring for the clock) and its messages
        (``realtime.publish.messages``, one JSON text each); rotates first when the current segment is full."""
        if self.segment is not None and self.start_t is not None and t - self.start_t >= self.segment:
            self._rotate()
        if self.start_t is None:
            self.start_t = t
        if self.jsonl is not None:
            self.jsonl.write(lines)
        if self.mp4 is not None:
            self.mp4.write(image, t)
        if self.images is not None:
            self.images.write(image, image_file_name(result.frame.path or f"frame_{result.frame.seq:06d}.jpg"))

    def _rotate(self) -> None:
        finished = Segment(self.stream, tuple(p for p in self.paths() if p.exists()))
        self.close()
        if self.retention is not None:
            self.retention.add(finished)
        self.index += 1
        self.start_t = None
        self._open()

    def close(self) -> None:
        """Closes both files; both are closed even when one fails, and the first error is raised."""
        error = None
        for sink in (self.mp4, self.jsonl):
            if sink is not None:
                try:
                    sink.close()
                except Exception as exc:  # noqa: BLE001 - the other file must still be closed
                    error = error or exc
        self.mp4 = self.jsonl = None
        if error is not None:
            raise error

    @property
    def current(self) -> Path:
        if self.images is not None and self.images.last is not None:
            return self.images.last
        return self.paths()[0 if self.save_mp4 else 1]

    @property
    def needs_image(self) -> bool:
        return self.save_mp4 or self.images is not None

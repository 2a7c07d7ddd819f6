"""Files written per stream: an H.264 MP4 (PyAV) with the frames' real timestamps, and a JSONL of poses.

MP4: the output size is fixed by the first frame (rounded up to even sizes, which yuv420p needs); later frames
of another size (a mid-stream resolution change) are letterboxed into it. Timestamps: ``pts`` of the source
when it has one, else the receive wall time, relative to the first frame, in milliseconds; a timestamp that does
not increase is bumped by 1 ms. ``close()`` flushes the encoder and writes the index, so the file plays.

JSONL, one line per frame, flushed per line::

    {"source": "<redacted source>", "stream": 0, "seq": 12, "pts": 0.4, "wall_time": 1764100000.123,
     "latency_ms": 41.2, "width": 640, "height": 480,
     "people": [{"track_id": 3, "score": 0.87, "keypoints": [[x, y], ...17], "keypoint_scores": [...17]}]}

Keypoints are image pixels (pixel centres at integers) rounded to 0.01, scores to 1e-4.
"""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np

from models.preprocess import letterbox
from realtime.frames import Result


class SinkError(Exception):
    """An output cannot be written; one line naming the path."""


def ensure_writable(path: Path) -> None:
    """Creates the parent folder and checks that ``path`` can be written; raises SinkError otherwise."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise SinkError(f"cannot write {path}: {exc.strerror or exc}") from None


class Mp4Sink:
    def __init__(self, path: Path, crf: int = 23, preset: str = "veryfast"):
        self.path, self.crf, self.preset = Path(path), crf, preset
        ensure_writable(self.path)
        self.container = None
        self.stream = None
        self.size: tuple[int, int] | None = None  # (h, w) of the content
        self.t0: float | None = None
        self.last_pts = -1
        self.frames = 0

    def _open(self, h: int, w: int) -> None:
        import av

        self.size = (h, w)
        self.container = av.open(str(self.path), mode="w")
        self.stream = self.container.add_stream("libx264", options={"crf": str(self.crf), "preset": self.preset})
        self.stream.width, self.stream.height = w + w % 2, h + h % 2
        self.stream.pix_fmt = "yuv420p"
        self.stream.time_base = Fraction(1, 1000)
        self.stream.codec_context.time_base = Fraction(1, 1000)

    def write(self, image: np.ndarray, t: float) -> None:
        """Encode one RGB frame shown at ``t`` seconds (any origin; the first frame is 0)."""
        import av

        if self.container is None:
            self._open(*image.shape[:2])
        h, w = self.size
        if image.shape[:2] != (h, w):
            image = _fit(image, h, w)
        if (self.stream.height, self.stream.width) != (h, w):
            image = np.pad(image, ((0, self.stream.height - h), (0, self.stream.width - w), (0, 0)), mode="edge")
        if self.t0 is None:
            self.t0 = t
        pts = max(int(round((t - self.t0) * 1000)), self.last_pts + 1)
        self.last_pts = pts
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts, frame.time_base = pts, Fraction(1, 1000)
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self.container is None:
            if self.frames == 0 and self.path.is_file() and self.path.stat().st_size == 0:
                self.path.unlink()  # the placeholder of ensure_writable: no video was ever written
            return
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        finally:
            self.container.close()
            self.container = None


def _fit(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """Letterbox ``image`` into h x w (aspect kept, gray bars)."""
    side = max(h, w)
    canvas, _ = letterbox(image, side)
    y0, x0 = (side - h) // 2, (side - w) // 2
    return canvas[y0:y0 + h, x0:x0 + w]


def result_record(result: Result, source_name: str) -> dict:
    f, poses = result.frame, result.poses
    people = []
    for p in range(len(poses)):
        people.append({
            "track_id": int(result.track_ids[p]) if p < len(result.track_ids) else -1,
            "score": round(float(poses.scores[p]), 4),
            "keypoints": np.round(poses.keypoints[p].astype(np.float64), 2).tolist(),
            "keypoint_scores": np.round(poses.keypoint_scores[p].astype(np.float64), 4).tolist(),
        })
    return {"source": source_name, "stream": f.source, "seq": f.seq, "pts": f.pts,
            "wall_time": round(f.wall_time, 6), "latency_ms": round(result.latency_ms, 3),
            "width": f.width, "height": f.height, "people": people}


class JsonlSink:
    def __init__(self, path: Path):
        self.path = Path(path)
        ensure_writable(self.path)
        self.file = open(self.path, "w", encoding="utf-8")
        self.lines = 0

    def write(self, result: Result, source_name: str) -> None:
        self.file.write(json.dumps(result_record(result, source_name), separators=(",", ":")) + "\n")
        self.file.flush()
        self.lines += 1

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()

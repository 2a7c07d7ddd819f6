"""Files written per stream: an H.264 MP4 (PyAV) with the frames' real timestamps, and a JSONL of poses.

MP4: the output size is fixed by the first frame (rounded up to even sizes, which yuv420p needs); later frames
of another size (a mid-stream resolution change) are letterboxed into it. Timestamps: ``pts`` of the source
when it has one, else the receive wall time, relative to the first frame, in milliseconds; a timestamp that does
not increase is bumped by 1 ms.

Layout (``fragmented``, the default): while recording, a fragmented MP4
(``movflags=frag_keyframe+empty_moov+default_base_moof``): an empty index up front, then one fragment (moof +
mdat) per keyframe, a keyframe forced at least every ``keyframe_every`` seconds of the video's clock (1 s). Each
fragment reaches the disk in one write (``realtime.outputs.whole_writes``), so a process killed at any moment leaves a
file that plays up to its last whole fragment: a crash loses about ``keyframe_every`` seconds plus the encoder's delay
(5 frames of look-ahead), not the file. ``close()`` then turns it into a regular MP4 in place (``hybrid_fragmented``,
FFmpeg >= 7.1: a full index appended, the header patched; no data moved), so a finished file shows its duration and
seeks at once in browsers too (Chrome reads a fragmented file's duration one fragment at a time). No B-frames: a
fragmented file has no edit list to hide their start delay, and the timestamps must stay the source's.
``fragmented=False`` writes the classic layout (index at the end, moved to the front by ``close()``,
``movflags=+faststart``): a closed file streams from its first byte, but one that was never closed does not play.

Images (an images source: an image file, a folder, a glob): each annotated image is written under its input's
file name in the run folder, in its own size and format (``ImageSink``), as Ultralytics and MMPose do.

JSONL: the messages of ``realtime.publish.messages`` (schema 1, ``realtime/publish/message.schema.json``), one a
line, flushed per result: a frame's message, then the track events it caused (``source`` is the image file for an
images source)::

    {"schema": 1, "type": "frame", "stream": "stream0", "index": 0, "source": "<redacted source>", "seq": 12,
     "pts": 0.4, "wall_time": 1764100000.123, "latency_ms": 41.2, "width": 640, "height": 480,
     "people": [{"track_id": 3, "score": 0.87, "box": [x0, y0, x1, y1], "keypoints": [[x, y], ...17],
                 "keypoint_scores": [...17]}]}
    {"schema": 1, "type": "track_started", "stream": "stream0", "index": 0, "track_id": 3, "seq": 12, ...}
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from models.preprocess import letterbox
from realtime.outputs.whole_writes import WholeWrites


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


FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}
HYBRID_SINCE = (61, 7)  # libavformat of FFmpeg 7.1, which added movflags=hybrid_fragmented
FASTSTART = {"movflags": "+faststart"}
X264 = "bframes=0:rc-lookahead=5"


class Mp4Sink:
    def __init__(self, path: Path, crf: int = 23, preset: str = "veryfast", fragmented: bool = True,
                 keyframe_every: float = 1.0):
        self.path, self.crf, self.preset = Path(path), crf, preset
        self.fragmented, self.keyframe_every_ms = fragmented, int(round(keyframe_every * 1000))
        ensure_writable(self.path)
        self.container = None
        self.stream = None
        self.file: WholeWrites | None = None
        self.size: tuple[int, int] | None = None  # (h, w) of the content
        self.t0: float | None = None
        self.last_pts = -1
        self.last_key: int | None = None  # pts of the last forced keyframe
        self.frames = 0

    def _open(self, h: int, w: int) -> None:
        import av

        self.size = (h, w)
        if self.fragmented:  # flush_packets: each finished fragment is handed over before mux() returns
            self.file = WholeWrites(self.path)
            options = dict(FRAGMENTED)
            if tuple(av.library_versions["libavformat"][:2]) >= HYBRID_SINCE:
                options["movflags"] += "+hybrid_fragmented"
            self.container = av.open(self.file, mode="w", format="mp4", options=options)
        else:
            self.container = av.open(str(self.path), mode="w", options=FASTSTART)
        options = {"crf": str(self.crf), "preset": self.preset, "x264-params": X264}
        self.stream = self.container.add_stream("libx264", options=options)
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
        if self.last_key is None or pts - self.last_key >= self.keyframe_every_ms:
            frame.pict_type = av.video.frame.PictureType.I  # a keyframe: a new fragment starts here
            self.last_key = pts
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        if self.file is not None:
            self.file.commit()
        self.frames += 1

    def close(self) -> None:
        """Flushes the encoder and ends the file (last fragment, or the index of the classic layout). The file
        is closed even when that fails (e.g. a full disk); a fragmented file then keeps its whole fragments."""
        if self.container is None:
            if self.frames == 0 and self.path.is_file() and self.path.stat().st_size == 0:
                self.path.unlink()  # the placeholder of ensure_writable: no video was ever written
            return
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        finally:
            try:
                self.container.close()
            finally:
                self.container = None
                if self.file is not None:
                    self.file.close()


def _fit(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """Letterbox ``image`` into h x w (aspect kept, gray bars)."""
    side = max(h, w)
    canvas, _ = letterbox(image, side)
    y0, x0 = (side - h) // 2, (side - w) // 2
    return canvas[y0:y0 + h, x0:x0 + w]


class ImageSink:
    """Annotated images named after their input files, in ``folder``. A name already written in this run (two
    folders may both hold ``img1.jpg``) gets ``_2``, ``_3``, ... before its suffix, so nothing of the run is
    overwritten; ``last`` is the path written last."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot write {self.folder}: {exc.strerror or exc}") from None
        self.written: set[str] = set()
        self.last: Path | None = None

    def write(self, image: np.ndarray, name: str) -> Path:
        """Writes an RGB image as ``name`` (its suffix picks the format); returns the path."""
        import cv2

        stem, suffix = Path(name).stem, Path(name).suffix
        path, n = self.folder / name, 1
        while path.name in self.written:
            n += 1
            path = self.folder / f"{stem}_{n}{suffix}"
        self.written.add(path.name)
        try:
            ok = cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        except cv2.error as exc:
            raise SinkError(f"cannot write {path}: {str(exc).strip().splitlines()[-1]}") from None
        if not ok:
            raise SinkError(f"cannot write {path}")
        self.last = path
        return path

    def close(self) -> None:
        pass


class JsonlSink:
    """The lines of one result in one write, so every line on disk is whole (after a crash too), and a failed write
    (disk full) leaves no partial line."""

    def __init__(self, path: Path):
        self.path = Path(path)
        ensure_writable(self.path)
        self.file = WholeWrites(self.path)
        self.lines = 0

    def write(self, lines: list[str]) -> None:
        """``lines``: JSON texts without their newline (one result's messages)."""
        self.file.write("".join(line + "\n" for line in lines).encode("utf-8"))
        self.file.commit()
        self.lines += len(lines)

    def close(self) -> None:
        self.file.close()

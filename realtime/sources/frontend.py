"""The front end: from the decoder's picture to the network's canvas without full-resolution RGB when nothing needs it.

Today's path: the decoder's YUV frame becomes a full-resolution RGB image (``Frame.image``), which the
engine's preprocessing shrinks (OpenCV, area filter) and pads into the canvas. The outputs that draw on that full
image are the MP4 recording, annotated images, the window and the browser view (``needs_full_frame``).

The fast path, for a PyAV source (file or stream) none of whose outputs needs the full frame: one
libswscale call (``VideoFrame.reformat``) turns the decoder's YUV into RGB at the letterboxed content size, so the
image that travels is already the canvas's content (``Frame.image``) and ``Frame.full_size`` keeps the decoded
frame's (height, width). The engine's Letterbox is computed from that full size exactly as before (the content size
depends only on the frame's shape and the long side), so the poses map back to full-frame pixels as before; only
the padding is left to the engine. Shrinking uses swscale's ``AREA`` filter (``BILINEAR`` when the content is larger
than the frame), the closest to OpenCV's ``INTER_AREA`` / ``INTER_LINEAR`` of today's path among swscale's filters
(docs/realtime.md has the comparison). The fast path is for a CPU engine (a GPU resizes on the device).

Decoder threads (``decoder_threads``) are chosen per resolution for both paths, from ``qem bench --sections
frontend``; a frame shrunk three times or more is decoded without the deblocking filter (``decoder_options``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.preprocess import PAD_VALUE, Letterbox, long_side, rect_canvas

# A frame shrunk by this linear factor or more is decoded without H.264/HEVC's deblocking filter: the area filter
# averages 8-pixel block edges into sub-pixel steps anyway. At 1280x720 -> 320x180 that saved 0.25-0.4 ms of CPU a
# frame and moved the bundled checkpoint's poses little more than the resampler change itself (docs/realtime.md).
SKIP_DEBLOCKING_FROM = 3.0
# Frames up to this many pixels decode on one thread: from 640x360 to 1920x1080 one thread cost the least CPU time
# (which the network, on the same cores, needs more) in 13 of 15 measurements, and it decodes 1080p at over 250
# frames a second (BENCHMARKS.md, front end); larger frames get two.
ONE_THREAD_MAX_PIXELS = 1920 * 1080


@dataclass(frozen=True)
class ShrinkTarget:
    """What the network's canvas needs of a frame: its long side ``size`` under the model's ``resize`` rule
    (``models.preprocess.long_side``)."""

    size: int
    resize: str = "long"

    def content_size(self, height: int, width: int) -> tuple[int, int]:
        """(width, height) of a ``height x width`` frame inside the canvas, as ``Letterbox`` places it."""
        side = long_side([(height, width)], self.size, self.resize)
        return Letterbox.fit(height, width, side, rect_canvas(height, width, side)).content_size(height, width)


def needs_full_frame(config, index: int) -> bool:
    """Whether any output of stream ``index`` of a ``PipelineConfig`` draws on the full frame: the window, the
    browser view (its MJPEG and snapshots), or a recording that writes pictures (MP4 or annotated images)."""
    if config.show or config.http_port is not None:
        return True
    return config.out_dir is not None and config.save_mp4 and config.stream(index).record


def shrink_targets(config, engine) -> list[ShrinkTarget | None]:
    """Per stream of a ``PipelineConfig``: the target its frames are shrunk to while decoding, or None for today's
    path (an output needs the full frame, the source is not read by PyAV, or the engine is not a CPU ``Engine``)."""
    pre = getattr(engine, "preprocess", None)
    if getattr(getattr(pre, "device", None), "type", None) != "cpu":
        return [None] * len(config.specs)
    return [ShrinkTarget(pre.size, pre.resize)
            if spec.kind in ("file", "stream") and not needs_full_frame(config, i) else None
            for i, spec in enumerate(config.specs)]


def decoder_threads(width: int, height: int) -> int:
    """Decoder threads for a ``width x height`` video (``ONE_THREAD_MAX_PIXELS``)."""
    return 1 if width * height <= ONE_THREAD_MAX_PIXELS else 2


def decoder_options(width: int, height: int, target: ShrinkTarget | None) -> dict[str, str]:
    """FFmpeg decoder options for a ``width x height`` video read for ``target`` (None: whole frames): deblocking
    skipped when the frame is shrunk ``SKIP_DEBLOCKING_FROM`` times or more."""
    if target is None or not width or not height:
        return {}
    new_w, new_h = target.content_size(height, width)
    return {"skip_loop_filter": "all"} if min(width / new_w, height / new_h) >= SKIP_DEBLOCKING_FROM else {}


def orient(image: np.ndarray, rotation: float) -> np.ndarray:
    """Apply a display-matrix rotation as players do: PyAV's ``frame.rotation`` -90 means turn 90 deg clockwise."""
    turn = int(round(-rotation)) % 360
    if turn == 90:
        return np.ascontiguousarray(np.rot90(image, k=-1))
    if turn == 180:
        return np.ascontiguousarray(image[::-1, ::-1])
    if turn == 270:
        return np.ascontiguousarray(np.rot90(image, k=1))
    return image


def oriented_size(height: int, width: int, rotation: float) -> tuple[int, int]:
    """(height, width) after ``orient`` turns the picture by its display rotation."""
    return (width, height) if int(round(-rotation)) % 180 == 90 else (height, width)


def shrink(frame, target: ShrinkTarget) -> tuple[np.ndarray, tuple[int, int]]:
    """A PyAV ``VideoFrame`` -> (RGB uint8 content at the canvas's content size, upright; the full (height, width)
    upright), in one libswscale pass."""
    full = oriented_size(frame.height, frame.width, frame.rotation)
    new_w, new_h = target.content_size(*full)
    if full != (frame.height, frame.width):
        new_w, new_h = new_h, new_w  # scaled before it is turned upright
    interpolation = "AREA" if new_w <= frame.width and new_h <= frame.height else "BILINEAR"
    small = frame.reformat(width=new_w, height=new_h, format="rgb24", interpolation=interpolation, threads=1)
    return orient(small.to_ndarray(), frame.rotation), full


def place(content: np.ndarray, full_size: tuple[int, int], size: int,
          canvas: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """The letterbox of a frame of ``full_size`` (H, W) whose content was shrunk while decoding: the Letterbox of the
    full frame, and the content centred in a ``canvas`` (W, H) padded with gray (as ``models.preprocess.letterbox``).
    A content of another size (a batch of a ``resize="short"`` model whose frames differ in shape needs a larger
    long side than one frame alone) is resized to fit first."""
    import cv2

    box = Letterbox.fit(full_size[0], full_size[1], size, canvas)
    new_w, new_h = box.content_size(*full_size)
    if content.shape[:2] != (new_h, new_w):
        grow = new_w > content.shape[1]
        content = cv2.resize(content, (new_w, new_h), interpolation=cv2.INTER_LINEAR if grow else cv2.INTER_AREA)
    out = np.full((box.height, box.width, 3), PAD_VALUE, dtype=np.uint8)
    out[int(box.pad_y):int(box.pad_y) + new_h, int(box.pad_x):int(box.pad_x) + new_w] = content
    return out, box

"""Publishes a moving test pattern to an RTSP server that listens (FFmpeg's RTSP push: ANNOUNCE + RECORD over TCP).

``python rtsp_publisher.py rtsp://127.0.0.1:PORT/live --seconds 5 --fps 15``; retries the connection until
``--connect-timeout`` so it can be started before the listener, and ends with one line when the listener goes
away. Run it as a separate process (the README's example of ``--rtsp-listen``).
"""
import argparse
import sys
import time
from fractions import Fraction

import av
import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("url")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--fps", type=int, default=15)
    p.add_argument("--size", default="320x240")
    p.add_argument("--connect-timeout", type=float, default=20.0)
    args = p.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    deadline = time.monotonic() + args.connect_timeout
    while True:
        try:
            out = av.open(args.url, mode="w", format="rtsp", options={"rtsp_transport": "tcp"})
            stream = out.add_stream("libx264", rate=args.fps,
                                    options={"tune": "zerolatency", "preset": "ultrafast", "g": str(args.fps)})
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.codec_context.time_base = Fraction(1, args.fps)
            out.start_encoding()  # the RTSP connection is made here (ANNOUNCE), not in av.open
            break
        except (av.error.FFmpegError, OSError):
            if time.monotonic() > deadline:
                sys.exit(f"error: no listener at {args.url} within {args.connect_timeout:g} s; start "
                         f"`qem predict --rtsp-listen --source {args.url}` first, or raise --connect-timeout")
            time.sleep(0.2)
    print(f"publisher: pushing {w}x{h} at {args.fps} fps to {args.url} for {args.seconds:g} s", file=sys.stderr,
          flush=True)
    start = time.monotonic()
    i = 0
    try:
        while time.monotonic() - start < args.seconds:
            image = np.zeros((h, w, 3), np.uint8)
            x = (i * 7) % (w - 40)
            image[h // 4: 3 * h // 4, x:x + 40] = (220, 180, 40)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
            i += 1
            time.sleep(max(0.0, start + i / args.fps - time.monotonic()))
        for packet in stream.encode(None):
            out.mux(packet)
        print(f"publisher: done, {i} frames", file=sys.stderr)
    except (av.error.FFmpegError, OSError) as exc:  # the listener went away (e.g. it reached --max-frames)
        sys.exit(f"publisher: connection closed after {i} frames ({exc})")
    finally:
        try:
            out.close()
        except (av.error.FFmpegError, OSError):
            pass


if __name__ == "__main__":
    main()

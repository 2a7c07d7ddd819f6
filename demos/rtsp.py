"""Pose estimation on one or more RTSP (or HTTP, file) streams at once, batched together.

Run from the repository root: ``python demos/rtsp.py rtsp://host/path [URL ...]`` (``--help`` lists every option).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from realtime.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="python demos/rtsp.py", positional_sources=True, name="rtsp"))

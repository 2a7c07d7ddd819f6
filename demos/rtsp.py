"""Pose estimation on one or more RTSP (or HTTP, file) streams at once, batched together.

Run from the repository root: ``python demos/rtsp.py rtsp://host/path [URL ...]`` (``--help`` lists every option).
"""
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: no spinning OpenMP workers (see realtime.cli)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from realtime.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="python demos/rtsp.py", positional_sources=True, name="rtsp"))

"""Pose estimation on camera 0 (or --source ...); without a camera it plays the bundled synthetic clip.

Run from the repository root: ``python demos/webcam.py`` (``--help`` lists every option).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from realtime.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="python demos/webcam.py", name="webcam", webcam_fallback=True))

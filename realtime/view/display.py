"""An on-screen window, only where one can exist.

OpenCV's full build aborts the whole process (Qt) when asked for a window without a display, and the headless
build raises; so a window is opened only when ``DISPLAY`` or ``WAYLAND_DISPLAY`` is set *and* this OpenCV was
built with a GUI backend.
"""
from __future__ import annotations

import os
import re

import cv2
import numpy as np


def has_display() -> bool:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    match = re.search(r"GUI:\s*(\S+)", cv2.getBuildInformation())
    return bool(match) and match.group(1).upper() != "NONE"


class Window:
    """One window per stream; ``show`` returns False once the user pressed q or Esc."""

    def __init__(self, names: list[str]):
        self.titles = [f"qem-pose {i}: {n}" for i, n in enumerate(names)]

    def add(self, name: str) -> None:
        self.titles.append(f"qem-pose {len(self.titles)}: {name}")

    def show(self, stream: int, image: np.ndarray) -> bool:
        cv2.imshow(self.titles[stream], cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self) -> None:
        cv2.destroyAllWindows()

"""Headless Chromium (Debian's ``chromium``) from its command line: load a page, let its scripts run for a budget
of real time (``--timeout``: the page's WebSocket pushes arrive in real time, which virtual time would outrun),
then take a screenshot and the DOM as it is at that moment. Every call gets a fresh profile and a timeout, so a
page that never finishes loading (the MJPEG images never do) cannot hang a test."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium() -> str | None:
    """The browser's path, or None."""
    return next((path for path in map(shutil.which, NAMES) if path), None)


def load(url: str, screenshot: Path, size: tuple[int, int] = (1320, 620), budget_ms: int = 2000,
         timeout: float = 60.0) -> tuple[np.ndarray, str]:
    """Loads ``url`` in a ``size`` (w, h) window; returns (the screenshot as RGB, the DOM after the scripts ran)."""
    exe = chromium()
    assert exe, "chromium not found"
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [exe, "--headless", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--mute-audio",
               f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
               f"--timeout={budget_ms}", f"--screenshot={screenshot}", "--dump-dom", url]
        if os.geteuid() == 0:
            cmd.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    image = cv2.imread(str(screenshot), cv2.IMREAD_COLOR)
    assert image is not None, f"no screenshot; chromium said: {proc.stderr[-2000:]}"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), proc.stdout


def regions_of_colour(image: np.ndarray, colour: tuple[int, int, int], tolerance: int = 3,
                      min_area: int = 2000) -> list[tuple[int, int, int, int]]:
    """Boxes (x, y, w, h) of the connected areas of ``colour`` (within ``tolerance`` per channel) of at least
    ``min_area`` pixels, left to right."""
    mask = (np.abs(image.astype(np.int16) - np.array(colour, np.int16)) <= tolerance).all(axis=2)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=4)
    boxes = [tuple(int(v) for v in stats[i, :4]) for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_area]
    return sorted(boxes)

"""Headless Chromium (Debian's ``chromium``) driven over its DevTools protocol (a WebSocket, aiohttp's client): load
a page, let its scripts run for a budget of real time (the page's WebSocket pushes arrive in real time; a
virtual-time budget would outrun them, and the command line's ``--screenshot`` fires as soon as the MJPEG images
have their first frame), then take a screenshot and the DOM as they are at that moment. Every call gets a fresh
profile and a timeout, so a page that never finishes loading (the MJPEG images never do) cannot hang a test."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium() -> str | None:
    """The browser's path, or None."""
    return next((path for path in map(shutil.which, NAMES) if path), None)


def load(url: str, screenshot: Path, size: tuple[int, int] = (1320, 620), budget_ms: int = 2000,
         timeout: float = 60.0) -> tuple[np.ndarray, str]:
    """Loads ``url`` in a ``size`` (w, h) viewport; returns (the screenshot as RGB, the DOM after the scripts ran
    for ``budget_ms`` of real time). The screenshot is also written to ``screenshot``."""
    exe = chromium()
    assert exe, "chromium not found"
    with tempfile.TemporaryDirectory(prefix="chromium-profile-", ignore_cleanup_errors=True) as profile:
        cmd = [exe, "--headless", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--mute-audio",
               f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}", "--remote-debugging-port=0",
               "about:blank"]
        if os.geteuid() == 0:
            cmd.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # keeps the pipe drained
        reader.start()
        try:
            png, dom = asyncio.run(asyncio.wait_for(_drive(lines, url, size, budget_ms / 1000.0), timeout))
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    Path(screenshot).write_bytes(png)
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "no screenshot"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), dom


async def _drive(lines: list[str], url: str, size: tuple[int, int], seconds: float) -> tuple[bytes, str]:
    import aiohttp

    endpoint = None
    while endpoint is None:  # "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID" on stderr
        found = next((m for m in map(re.compile(r"DevTools listening on ws://([^/]+)/").search, list(lines)) if m),
                     None)
        endpoint = found and found.group(1)
        await asyncio.sleep(0.05)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{endpoint}/json/list") as r:
            page, = [t for t in await r.json() if t["type"] == "page"]
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            ids = iter(range(1, 1_000_000))

            async def call(method: str, **params) -> dict:
                n = next(ids)
                await ws.send_json({"id": n, "method": method, "params": params})
                async for msg in ws:
                    reply = json.loads(msg.data)
                    if reply.get("id") == n:
                        assert "error" not in reply, reply
                        return reply["result"]
                raise AssertionError(f"DevTools closed during {method}")

            await call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1,
                       mobile=False)
            await call("Page.navigate", url=url)
            await asyncio.sleep(seconds)
            dom = await call("Runtime.evaluate", expression="document.documentElement.outerHTML",
                             returnByValue=True)
            shot = await call("Page.captureScreenshot", format="png")
    return base64.b64decode(shot["data"]), dom["result"]["value"]


def regions_of_colour(image: np.ndarray, colour: tuple[int, int, int], tolerance: int = 3,
                      min_area: int = 2000) -> list[tuple[int, int, int, int]]:
    """Boxes (x, y, w, h) of the connected areas of ``colour`` (within ``tolerance`` per channel) of at least
    ``min_area`` pixels, left to right."""
    mask = (np.abs(image.astype(np.int16) - np.array(colour, np.int16)) <= tolerance).all(axis=2)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=4)
    boxes = [tuple(int(v) for v in stats[i, :4]) for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_area]
    return sorted(boxes)

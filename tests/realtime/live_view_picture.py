"""Makes the picture of the live view for the docs: the bundled clip played as a live camera beside a GStreamer
RTSP camera that goes away, in ``python -m realtime``'s browser view, photographed by headless Chromium.

Run from the repository root: ``python -m tests.realtime.live_view_picture [docs/img/live_view.png]``.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image

from tests.realtime.browser import load
from tests.realtime.helpers import ROOT, GstServer, free_port


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except OSError:  # the view is not up yet
            pass
        if time.monotonic() > deadline:
            sys.exit(f"error: timed out waiting for {what}")
        time.sleep(0.2)


def main(out: Path) -> None:
    camera = GstServer(size="640x360").start()
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    clip = "realtime/assets/synth_clip.mp4"  # relative to the repository root: the caption the picture shows
    cli = subprocess.Popen([sys.executable, "-m", "realtime", "--source", clip, "--source", camera.url(), "--as-live",
                            "--loop", "--no-show", "--no-save", "--no-jsonl", "--http-port", str(port)],
                           cwd=ROOT, stderr=subprocess.DEVNULL)

    def streams():
        return json.loads(urllib.request.urlopen(base + "status.json", timeout=5).read())["streams"]
    try:
        wait_for(lambda: all(s["state"] == "running" and s["frames"] >= 10 for s in streams()), 120, "both streams")
        camera.stop()
        wait_for(lambda: streams()[1]["state"] == "reconnecting", 30, "the camera to drop")
        with tempfile.TemporaryDirectory() as tmp:
            image, _ = load(base, Path(tmp) / "shot.png", size=(1320, 460), budget_ms=1500)
        out.parent.mkdir(parents=True, exist_ok=True)
        # 128 colours: a small PNG for the repository (the page is mostly flat colour)
        Image.fromarray(image).quantize(colors=128, method=Image.Quantize.MEDIANCUT,
                                        dither=Image.Dither.NONE).save(out, optimize=True)
        print(f"wrote {out}")
    finally:
        camera.stop()
        cli.send_signal(signal.SIGINT)
        try:
            cli.wait(30)
        except subprocess.TimeoutExpired:
            cli.kill()
            cli.wait()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "img" / "live_view.png"))

"""The recordings in a real browser (headless Chromium, skipped when it is not installed): a closed recording shows
its whole duration at once; a recording cut by a kill loads and can play."""
import functools
import json
import re
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.realtime.outputs.test_mp4_layout import record

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PAGE = """<html><body><pre id="out"></pre><script>
const names = NAMES, found = {};
for (const n of names) {
  const v = document.createElement('video');
  v.muted = true; v.preload = 'auto'; v.src = n;
  const done = (what) => { if (found[n]) return;
    found[n] = {what, duration: v.duration, width: v.videoWidth, error: v.error && v.error.code};
    if (Object.keys(found).length === names.length) document.getElementById('out').textContent = JSON.stringify(found);
  };
  v.addEventListener('canplay', () => done('canplay'));
  v.addEventListener('error', () => done('error'));
  document.body.appendChild(v);
}
</script></body></html>"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def browser_report(folder, names) -> dict:
    (folder / "page.html").write_text(PAGE.replace("NAMES", json.dumps(names)))
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                              "--dump-dom", f"http://127.0.0.1:{server.server_port}/page.html"],
                             capture_output=True, text=True, timeout=60).stdout
    finally:
        server.shutdown()
    found = re.search(r'<pre id="out">([^<]*)</pre>', dom)
    assert found and found.group(1), dom[-500:]
    return json.loads(found.group(1))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/install-system-deps)")
def test_chromium_plays_the_closed_recording_and_the_one_cut_by_a_kill(tmp_path):
    on_disk = record(tmp_path / "closed.mp4")  # 3 s at 25 fps
    (tmp_path / "killed.mp4").write_bytes(on_disk[60])  # as a kill after frame 60 leaves it: two whole fragments
    report = browser_report(tmp_path, ["closed.mp4", "killed.mp4"])
    closed, killed = report["closed.mp4"], report["killed.mp4"]
    assert closed["what"] == "canplay" and closed["width"] == 160, report
    assert closed["duration"] == pytest.approx(3.0, abs=0.05)  # known at once: a regular MP4 once closed
    assert killed["what"] == "canplay" and killed["width"] == 160 and killed["duration"] >= 1.0, report

"""Real kills: the command line runs on the bundled clip in a subprocess and is killed with SIGKILL (what an
out-of-memory kill, ``docker kill`` or a power supply pulled from the process does); the recording left behind
must play up to all but its last 2 s, and every JSONL line must be whole."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from realtime import BUNDLED_CLIP
from tests.realtime.helpers import ROOT, decode_cut

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not BUNDLED_CLIP.exists(), reason=f"bundled clip {BUNDLED_CLIP} missing")]


def run_and_kill(tmp_path: Path, *args: str, lines: int = 90, at_rotation: bool = False,
                 timeout: float = 15.0) -> Path:
    """Starts ``python -m realtime --source synth --pace`` and SIGKILLs it once ``lines`` JSONL lines are out
    (``at_rotation``: then the moment the next segment's files appear, just after the last ones were ended)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("DISPLAY", None)
    out = tmp_path / "runs" / "kill"
    proc = subprocess.Popen([sys.executable, "-m", "realtime", "--source", "synth", "--pace", "--no-show",
                             "--no-progress", "--imgsz", "128", "--name", "kill", *args],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None and count_lines(out) < lines:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        assert count_lines(out) >= lines, f"only {count_lines(out)} JSONL lines in {timeout} s"
        segments = len(list(out.glob("annotated_*.mp4")))
        while at_rotation and time.monotonic() < deadline and len(list(out.glob("annotated_*.mp4"))) == segments:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    return out


def count_lines(out: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in out.glob("poses*.jsonl")) if out.is_dir() else 0


def records(path: Path) -> list[dict]:
    data = path.read_text()
    assert data == "" or data.endswith("\n"), f"{path.name} ends in a partial line"
    messages = [json.loads(line) for line in data.splitlines()]  # every line parses
    return [m for m in messages if m["type"] == "frame"]  # the frames (track events leave no picture)


def assert_plays_all_but_the_last_2_s(pairs: list[tuple[Path, Path]]) -> None:
    """Each (MP4, JSONL) pair: the MP4 decodes to at least its JSONL lines shown 2 s or more before the last line
    of the whole recording (the clip's own clock: it is a file), with the frames' times in order."""
    recs = [records(jsonl) for _, jsonl in pairs]
    last = max(r["pts"] for rs in recs for r in rs)
    for (mp4, _), rs in zip(pairs, recs):
        times = decode_cut(mp4) if mp4.exists() and mp4.stat().st_size else []
        needed = sum(1 for r in rs if r["pts"] <= last - 2.0)
        assert len(times) >= needed, f"{mp4.name}: {len(times)} frames, {needed} lines older than 2 s"
        assert len(times) <= len(rs) and times == sorted(times)
        if times:
            assert times[0] == 0.0 and abs(times[-1] - (rs[len(times) - 1]["pts"] - rs[0]["pts"])) < 2e-3


def test_sigkill_leaves_an_mp4_that_plays_up_to_the_last_2_s(tmp_path):
    out = run_and_kill(tmp_path, lines=100)
    assert sorted(p.name for p in out.iterdir()) == ["annotated.mp4", "poses.jsonl"]
    assert_plays_all_but_the_last_2_s([(out / "annotated.mp4", out / "poses.jsonl")])
    assert len(decode_cut(out / "annotated.mp4")) >= 30  # at least one whole second


def test_sigkill_while_segments_rotate_leaves_every_segment_playable(tmp_path):
    out = run_and_kill(tmp_path, "--segment", "0.5", lines=100, at_rotation=True)  # a rotation every 15 frames
    mp4s = sorted(out.glob("annotated_*.mp4"))
    jsonls = sorted(out.glob("poses_*.jsonl"))
    assert len(jsonls) >= 5 and [p.stem[-6:] for p in jsonls] == [f"{i:06d}" for i in range(len(jsonls))]
    assert [p.stem[-6:] for p in mp4s] == [p.stem[-6:] for p in jsonls][:len(mp4s)]
    pairs = [(out / f"annotated_{p.stem[-6:]}.mp4", p) for p in jsonls]
    assert_plays_all_but_the_last_2_s(pairs)
    seqs = [r["seq"] for _, jsonl in pairs for r in records(jsonl)]
    assert seqs == list(range(len(seqs)))  # the segments hold every frame once, in order

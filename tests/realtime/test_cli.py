"""The real command lines in subprocesses (tiny checkpoint saved by the test, or the bundled one), and the error
lines for bad input (one line, no traceback)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from realtime import BUNDLED_CLIP
from realtime.cli import main
from tests.realtime.helpers import ROOT, count_frames, free_port, run_cli, write_video


@pytest.mark.slow
def test_webcam_demo_on_a_file_writes_mp4_and_jsonl(tmp_path, tiny_checkpoint):
    clip = write_video(tmp_path / "clip.mp4", frames=15, size=(160, 120))
    proc = run_cli(["--source", str(clip), "--weights", str(tiny_checkpoint), "--no-show", "--imgsz", "128"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "runs" / "webcam"
    assert count_frames(out / "annotated.mp4")[:2] == (15, (160, 120))
    lines = (out / "poses.jsonl").read_text().splitlines()
    assert [m["seq"] for m in map(json.loads, lines) if m["type"] == "frame"] == list(range(15))
    assert "summary: 15 frames out" in proc.stderr and "Traceback" not in proc.stderr
    again = run_cli(["--source", str(clip), "--weights", str(tiny_checkpoint), "--no-show", "--imgsz", "128",
                     "--no-save", "--max-frames", "3"], tmp_path)
    assert again.returncode == 0 and (tmp_path / "runs" / "webcam2" / "poses.jsonl").exists()
    assert not (tmp_path / "runs" / "webcam2" / "annotated.mp4").exists()


@pytest.mark.slow
def test_rtsp_demo_takes_several_sources(tmp_path, tiny_checkpoint):
    a = write_video(tmp_path / "a.mp4", frames=6)
    b = write_video(tmp_path / "b.mp4", frames=4, size=(96, 64))
    proc = run_cli([str(a), str(b), "--weights", str(tiny_checkpoint), "--imgsz", "128", "--name", "two"],
                   tmp_path, script="demos/rtsp.py")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "runs" / "two"
    assert count_frames(out / "annotated_0.mp4")[0] == 6 and count_frames(out / "annotated_1.mp4")[0] == 4


@pytest.mark.slow
def test_rtsp_demo_names_every_camera_it_cannot_reach(tmp_path, tiny_checkpoint):
    urls = [f"rtsp://127.0.0.1:{free_port()}/cam{i}" for i in (1, 2)]
    proc = run_cli([*urls, "--weights", str(tiny_checkpoint), "--imgsz", "128", "--max-attempts", "1"], tmp_path,
                   script="demos/rtsp.py")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(errors) == 1 and proc.stderr.strip().splitlines()[-1] == errors[0]
    assert errors[0].startswith("error: 2 sources failed: ") and all(url in errors[0] for url in urls)
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(not BUNDLED_CLIP.exists(), reason=f"bundled clip {BUNDLED_CLIP} not there yet")
@pytest.mark.skipif(Path("/dev/video0").exists(), reason="this machine has a camera")
def test_webcam_demo_without_camera_plays_the_bundled_clip(tmp_path, tiny_checkpoint):
    proc = run_cli(["--no-show", "--weights", str(tiny_checkpoint), "--max-frames", "6"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[0].startswith("no camera at index 0; playing the bundled clip")
    assert count_frames(tmp_path / "runs" / "webcam" / "annotated.mp4")[0] >= 6


@pytest.mark.slow
def test_ctrl_c_leaves_a_playable_mp4_and_whole_jsonl(tmp_path, tiny_checkpoint):
    clip = write_video(tmp_path / "long.mp4", frames=300, size=(160, 120), fps=30)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop("DISPLAY", None)
    proc = subprocess.Popen([sys.executable, "-m", "realtime", "--source", str(clip), "--weights",
                             str(tiny_checkpoint), "--imgsz", "128", "--pace", "--name", "cut"],
                            cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE, text=True)
    jsonl = tmp_path / "runs" / "cut" / "poses.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not jsonl.exists() or len(jsonl.read_text().splitlines()) < 10):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "interrupted: stopped cleanly" in stderr and "Traceback" not in stderr
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]  # every line whole
    n, size, _ = count_frames(tmp_path / "runs" / "cut" / "annotated.mp4")
    assert 10 <= len(records) < 300 and n == len(records) and size == (160, 120)


def test_help_comes_from_the_module_docstring(tmp_path):
    proc = run_cli(["--help"], tmp_path, script="-m")
    assert proc.returncode == 0 and "Run the real-time pose pipeline" in proc.stdout and "--http-port" in proc.stdout


def test_bad_source_is_one_line_on_stderr_without_traceback(tmp_path):
    proc = run_cli(["--source", "rtsp://user:pw@cam:notaport/live", "--no-show"], tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: malformed URL 'rtsp://***@cam:notaport/live'")
    assert "pw" not in proc.stderr


def error_of(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args, name="t")
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and "\n" not in message
    assert "Traceback" not in capsys.readouterr().err
    return message


def test_error_lines(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["--no-show", "--weights", str(tiny_checkpoint), "--imgsz", "128", "--no-progress"]
    assert "no such file or folder: missing.mp4" in error_of(["--source", "missing.mp4", *base], capsys)
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert "empty.mp4: not a video file" in error_of(["--source", "empty.mp4", *base], capsys)
    (tmp_path / "text.mp4").write_text("hello\n" * 100)
    assert "text.mp4: not a video file" in error_of(["--source", "text.mp4", *base], capsys)
    assert "no camera at index 7" in error_of(["--source", "7", *base], capsys)
    clip = write_video(tmp_path / "clip.mp4", frames=2)
    (tmp_path / "blocker").write_text("a file")
    assert "cannot write blocker/" in error_of(["--source", str(clip), "--project", "blocker", *base], capsys)
    bad_ckpt = tmp_path / "bad.pt"
    bad_ckpt.write_bytes(b"\x00" * 64)
    assert "bad.pt" in error_of(["--source", str(clip), "--no-show", "--weights", str(bad_ckpt)], capsys)
    assert "CUDA is not available" in error_of(["--source", str(clip), *base, "--device", "cuda"], capsys)


def test_opencv_is_loaded_before_pyav():
    """With OpenCV's GUI build, PyAV loaded first makes Qt hang on the first window (it waits for the display's
    answer forever); the command line must load OpenCV first, whatever the sources and options."""
    code = (
        "import builtins, sys\n"
        "order = []\n"
        "real = builtins.__import__\n"
        "def record(name, *a, **k):\n"
        "    top = name.split('.')[0]\n"
        "    if top in ('cv2', 'av') and top not in order:\n"
        "        order.append(top)\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = record\n"
        "from realtime.cli import main\n"
        "main(['--source', 'synth', '--no-show', '--max-frames', '2', '--no-save', '--no-jsonl', '--no-progress',\n"
        "      '--backend', 'torch', '--name', 'import_order', '--project', sys.argv[1]])\n"
        "print(order)\n")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-c", code, tmp], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "['cv2', 'av']"

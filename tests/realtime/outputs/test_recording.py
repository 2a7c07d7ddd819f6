"""Recording: segments (MP4 and JSONL rotate together), retention (--keep, --keep-gb), a run continued in the same
folder, and a disk that fills up for real (a small tmpfs): one line, the recording stops, the pipeline goes on."""
import json
import subprocess
import threading
import time
import urllib.request

import pytest

from realtime.pipeline import Pipeline, PipelineConfig
from realtime.outputs.recording import Retention, Segment
from realtime.sources.readers import parse_source
from tests.realtime.helpers import decode_cut, run_cli, write_video


def run(specs, out, engine, **kwargs):
    logs = []
    pipeline = Pipeline(PipelineConfig(specs=specs, out_dir=out, progress=False, **kwargs), engine, log=logs.append)
    return pipeline, pipeline.run(), logs


def lines(path):
    """The frame messages of a JSONL (every line must parse; track events are left out)."""
    text = path.read_text()
    assert text == "" or text.endswith("\n")
    return [m for m in map(json.loads, text.splitlines()) if m["type"] == "frame"]


def test_segments_rotate_mp4_and_jsonl_at_the_same_frame(tmp_path, engine):
    src = write_video(tmp_path / "clip.mp4", frames=25, size=(160, 120), fps=10)
    run([parse_source(str(src))], tmp_path / "out", engine, segment=1.0)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [f"{kind}_{i:06d}.{ext}" for kind, ext in (("annotated", "mp4"), ("poses", "jsonl"))
                     for i in range(3)]
    for i, count in enumerate((10, 10, 5)):  # 1 s of video each: frames at 0.0-0.9, 1.0-1.9, 2.0-2.4
        recs = lines(tmp_path / "out" / f"poses_{i:06d}.jsonl")
        assert [r["seq"] for r in recs] == list(range(10 * i, 10 * i + count))
        times = decode_cut(tmp_path / "out" / f"annotated_{i:06d}.mp4")
        assert times == pytest.approx([k / 10 for k in range(count)], abs=1e-3)  # each segment's clock from 0


def test_several_streams_keep_their_index_in_segment_names(tmp_path, engine):
    a = write_video(tmp_path / "a.mp4", frames=15, size=(160, 120), fps=10)
    b = write_video(tmp_path / "b.mp4", frames=8, size=(96, 64), fps=10)
    run([parse_source(str(a)), parse_source(str(b))], tmp_path / "out", engine, segment=1.0, save_mp4=False)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["poses_0_000000.jsonl", "poses_0_000001.jsonl", "poses_1_000000.jsonl"]


def test_keep_deletes_the_oldest_segments_and_a_continued_run_counts_on(tmp_path, engine):
    src = write_video(tmp_path / "clip.mp4", frames=45, size=(160, 120), fps=10)
    out = tmp_path / "out"
    run([parse_source(str(src))], out, engine, segment=1.0, keep=2)
    assert sorted(p.name for p in out.glob("annotated_*")) == ["annotated_000003.mp4", "annotated_000004.mp4"]
    assert sorted(p.name for p in out.glob("poses_*")) == ["poses_000003.jsonl", "poses_000004.jsonl"]
    run([parse_source(str(src))], out, engine, segment=1.0, keep=3)  # the same folder again (--exist-ok)
    assert sorted(p.name for p in out.glob("annotated_*")) == [f"annotated_{i:06d}.mp4" for i in (7, 8, 9)]
    assert lines(out / "poses_000007.jsonl")[0]["seq"] == 20  # nothing overwritten: the counter went on


def test_keep_gb_bounds_the_finished_segments_of_all_streams(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    retention = Retention(keep_gb=2.5e-6)  # 2,500 bytes
    for i in range(4):
        for stream in (0, 1):
            path = out / f"poses_{stream}_{i:06d}.jsonl"
            path.write_bytes(b"x" * 1000)
            retention.add(Segment(stream, (path,)))
    left = sorted(p.name for p in out.iterdir())
    assert left == ["poses_0_000003.jsonl", "poses_1_000003.jsonl"]  # the oldest went first, whatever the stream
    assert retention.deleted == 6


@pytest.fixture
def small_disk(tmp_path):
    """A real 96 KiB filesystem (tmpfs; mounting needs root, else the test skips)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.mark.parametrize("segment", [None, 0.2])
def test_a_full_disk_stops_the_recording_with_one_line_and_the_view_goes_on(tmp_path, engine, small_disk, segment):
    src = write_video(tmp_path / "clip.mp4", frames=90, size=(320, 240), fps=30)
    config = PipelineConfig(specs=[parse_source(str(src))], out_dir=small_disk / "run", http_port=0, pace=True,
                            progress=False, segment=segment)
    logs = []
    pipeline = Pipeline(config, engine, log=logs.append)
    runner = threading.Thread(target=pipeline.run)
    runner.start()
    jpegs_after = 0
    deadline = time.monotonic() + 30
    while runner.is_alive() and time.monotonic() < deadline:
        if any("recording stopped" in line for line in logs) and pipeline.view_url:
            try:
                jpeg = urllib.request.urlopen(pipeline.view_url + "frame/0.jpg", timeout=5).read()
            except OSError:  # the view closes when the clip ends
                assert pipeline.stop_event.is_set()
                break
            jpegs_after += jpeg[:2] == b"\xff\xd8"
        time.sleep(0.1)
    runner.join(timeout=10)
    errors = [line for line in logs if line.startswith("error")]
    assert len(errors) == 1 and "No space left on device" in errors[0], logs
    assert errors[0].startswith(f"error: recording stopped: cannot write {small_disk / 'run'}/")
    assert jpegs_after >= 2  # the browser view kept serving frames after the recording stopped
    assert pipeline.metrics.frames_out == 90 and pipeline.recording_error
    jsonls = sorted((small_disk / "run").glob("poses*.jsonl"))
    recs = [r for path in jsonls for r in lines(path)]  # every line on the full disk whole
    assert [r["seq"] for r in recs] == list(range(len(recs))) and 0 < len(recs) < 90
    for jsonl in jsonls:  # each MP4 opens and plays at most the frames of its JSONL
        mp4 = jsonl.with_name(jsonl.name.replace("poses", "annotated").replace(".jsonl", ".mp4"))
        assert not mp4.exists() or mp4.stat().st_size == 0 or len(decode_cut(mp4)) <= len(lines(jsonl))
    assert (len(jsonls) > 1) == (segment is not None)


@pytest.mark.slow
def test_the_command_line_on_a_full_disk_exits_1_with_one_error_line(tmp_path, small_disk, tiny_checkpoint):
    proc = run_cli(["--source", "synth", "--weights", str(tiny_checkpoint), "--imgsz", "128", "--max-frames", "60",
                    "--no-show", "--no-progress", "--project", str(small_disk)], tmp_path, script="-m")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "recording stopped" in errors[0] and "No space left on device" in errors[0]
    assert "summary: 60 frames out" in proc.stderr

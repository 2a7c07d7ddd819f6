"""The whole pipeline in-process with a real (untrained tiny) network: files in, MP4 + JSONL out, decoded back."""
import contextlib
import json
import os
import threading
import time

import pytest

from realtime.pipeline import Pipeline, PipelineConfig
from realtime.outputs.files import SinkError
from realtime.sources.readers import parse_source
from realtime.post.tracking import Tracker
from tests.realtime.helpers import count_frames, write_video


def run(specs, tmp_path, engine, **kwargs):
    config = PipelineConfig(specs=specs, out_dir=tmp_path / "out", progress=False, **kwargs)
    logs = []
    metrics = Pipeline(config, engine, log=logs.append).run()
    return metrics, logs


def jsonl(path):
    """The frame messages of a run's JSONL (track events left out; tests/realtime/publish/test_messages.py checks
    them)."""
    return [m for m in map(json.loads, path.read_text().splitlines()) if m["type"] == "frame"]


def test_file_every_frame_out_with_real_timestamps(tmp_path, engine):
    src = write_video(tmp_path / "clip.mp4", frames=12, size=(160, 120), fps=10)
    metrics, logs = run([parse_source(str(src))], tmp_path, engine)
    assert metrics.frames_out == 12
    n, size, times = count_frames(tmp_path / "out" / "annotated.mp4")
    assert n == 12 and size == (160, 120)
    assert times == pytest.approx([i / 10 for i in range(12)], abs=1e-3)  # the source's own clock
    records = jsonl(tmp_path / "out" / "poses.jsonl")
    assert [r["seq"] for r in records] == list(range(12))
    r = records[0]
    assert set(r) == {"schema", "type", "stream", "index", "source", "seq", "pts", "wall_time", "latency_ms", "width",
                      "height", "people"}
    assert (r["schema"], r["stream"], r["index"]) == (1, "stream0", 0)
    people = [p for rec in records for p in rec["people"]]
    assert people and all(rec["people"] for rec in records)
    for person in people:
        assert len(person["keypoints"]) == 17 and len(person["keypoint_scores"]) == 17
        xs, ys = [k[0] for k in person["keypoints"]], [k[1] for k in person["keypoints"]]
        assert person["box"] == [min(xs), min(ys), max(xs), max(ys)]
        assert isinstance(person["track_id"], int) and 0 <= person["score"] <= 1
    assert all(p["track_id"] >= 1 or p["track_id"] == -1 for p in people)  # -1: a track not yet confirmed
    first = records[0]["people"]  # a stream's first frame confirms every pose that may start a track
    assert [p["track_id"] >= 1 for p in first] == [p["score"] >= Tracker().high_score for p in first], first
    assert any("-> ended" in line for line in logs)
    stages = metrics.as_dict()["stages"]
    assert {"preprocess", "forward", "postprocess", "post", "outputs", "end_to_end"} <= set(stages)


def test_two_streams_batch_together_and_keep_their_own_files(tmp_path, engine):
    a = write_video(tmp_path / "a.mp4", frames=8, size=(160, 120))
    b = write_video(tmp_path / "b.mp4", frames=5, size=(96, 64))
    metrics, _ = run([parse_source(str(a)), parse_source(str(b))], tmp_path, engine)
    assert metrics.frames_out == 13 and metrics.batches < 13  # some batches held both streams
    assert count_frames(tmp_path / "out" / "annotated_0.mp4")[:2] == (8, (160, 120))
    assert count_frames(tmp_path / "out" / "annotated_1.mp4")[:2] == (5, (96, 64))
    assert [r["seq"] for r in jsonl(tmp_path / "out" / "poses_1.jsonl")] == list(range(5))


def test_odd_size_and_resolution_change_still_give_a_playable_mp4(tmp_path, engine):
    odd = write_video(tmp_path / "odd.mp4", frames=4, size=(161, 119), pix_fmt="yuv444p")
    change = write_video(tmp_path / "change.ts", sizes=[(4, (160, 120)), (4, (96, 80))])
    metrics, _ = run([parse_source(str(odd)), parse_source(str(change))], tmp_path, engine)
    assert metrics.frames_out == 12
    assert count_frames(tmp_path / "out" / "annotated_0.mp4")[:2] == (4, (162, 120))  # padded to even
    assert count_frames(tmp_path / "out" / "annotated_1.mp4")[:2] == (8, (160, 120))  # first size kept
    widths = [r["width"] for r in jsonl(tmp_path / "out" / "poses_1.jsonl")]
    assert widths == [160] * 4 + [96] * 4  # JSONL keeps each frame's own size


def test_the_progress_bar_shows_once_it_knows_its_total(tmp_path, engine, capsys):
    src = write_video(tmp_path / "clip.mp4", frames=12)
    config = PipelineConfig(specs=[parse_source(str(src))], out_dir=tmp_path / "out")
    assert Pipeline(config, engine, log=lambda line: None).run().frames_out == 12
    err = capsys.readouterr().err
    assert "12/12" in err and "0/12" in err and "0frame [" not in err  # no bar without its total first


def test_max_frames_stops_early(tmp_path, engine):
    """The source stopped early says so (not "end of input"); with names from a camera file, the log uses them."""
    src = write_video(tmp_path / "clip.mp4", frames=40)
    metrics, logs = run([parse_source(str(src))], tmp_path, engine, max_frames=5, stream_names=["door"],
                        file_tags=True)
    assert 5 <= metrics.frames_out <= 6
    assert count_frames(tmp_path / "out" / "annotated_door.mp4")[0] == metrics.frames_out
    assert "source 0 door: running -> ended (stopped)" in logs and not any("end of input" in line for line in logs)
    unfinished = metrics.totals()["frames_in"] - metrics.frames_out  # a file is read ahead of the network
    assert unfinished > 0 and f", {unfinished} read but not finished when the run stopped" in metrics.summary()
    assert "\n  source 0 door: ended, " in metrics.summary()


def test_a_failed_source_does_not_stop_the_others(tmp_path, engine):
    good = write_video(tmp_path / "good.mp4", frames=6)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    metrics, logs = run([parse_source(str(bad)), parse_source(str(good))], tmp_path, engine)
    assert metrics.frames_out == 6
    assert any("source 0" in line and "failed" in line and "not a video" in line for line in logs)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_is_one_error_before_anything_starts_nonroot(tmp_path, engine):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    config = PipelineConfig(specs=[parse_source(str(write_video(tmp_path / "a.mp4", frames=2)))],
                            out_dir=locked / "run", progress=False)
    with pytest.raises(SinkError, match="cannot write"):
        Pipeline(config, engine).run()


def test_output_path_under_a_file_is_one_error(tmp_path, engine):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    config = PipelineConfig(specs=[parse_source(str(write_video(tmp_path / "a.mp4", frames=2)))],
                            out_dir=blocker / "run", progress=False)
    pipeline = Pipeline(config, engine)
    with pytest.raises(SinkError, match="cannot write .*blocker"):
        pipeline.run()
    assert all(not c.is_alive() for c in pipeline.captures)


@contextlib.contextmanager
def bundled_clips_as_cameras(tmp_path, checkpoint, streams: int, **config):
    """A pipeline of ``streams`` copies of the bundled clip played like cameras, with the bundled network (its
    people make tracks), running in a thread once 20 results are out; stopped on the way out."""
    from models import Predictor, load_checkpoint
    from realtime import BUNDLED_CLIP
    from realtime.engine.stage import Engine

    predictor = Predictor(load_checkpoint(checkpoint), device="cpu", input_size=320)
    config = PipelineConfig(specs=[parse_source(str(BUNDLED_CLIP))] * streams, out_dir=tmp_path / "out",
                            progress=False, as_live=True, loop=True, **config)
    pipeline = Pipeline(config, Engine(predictor, predictor.input_size, "cpu"), log=lambda line: None)
    thread = threading.Thread(target=pipeline.run)
    thread.start()
    try:
        wait_until(lambda: pipeline.metrics.frames_out >= 20)
        yield pipeline
    finally:
        pipeline.stop_event.set()
        thread.join(30)


def wait_until(check, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_stream_that_leaves_ends_its_tracks_and_files_while_the_other_goes_on(tmp_path, tiny_checkpoint):
    with bundled_clips_as_cameras(tmp_path, tiny_checkpoint, 2) as pipeline:
        left = time.time()
        pipeline.leave(0)
        time.sleep(1.5)
        assert pipeline.captures[0].state == "ended" and pipeline.captures[1].state == "running"
        lines = [json.loads(line) for line in (tmp_path / "out" / "poses_0.jsonl").read_text().splitlines()]
        frames_a = [m for m in lines if m["type"] == "frame"]
        assert frames_a and max(m["wall_time"] for m in frames_a) < left + 0.5
        assert lines[-1]["type"] == "track_ended"  # the tracks it had open end when it leaves, not at the run's end
        assert not [m for m in lines if m["type"] == "track_started"
                    and m["track_id"] not in {e["track_id"] for e in lines if e["type"] == "track_ended"}]
        assert count_frames(tmp_path / "out" / "annotated_0.mp4")[0] == len(frames_a)  # closed, playable
    frames_b = jsonl(tmp_path / "out" / "poses_1.jsonl")
    assert max(m["wall_time"] for m in frames_b) > left + 1.0  # the other stream went on


def test_a_stream_that_joins_a_running_pipeline_starts_while_the_other_goes_on(tmp_path, tiny_checkpoint):
    """A second camera joins the running pipeline under a name of its own: it gets its files and messages, and the
    first never pauses (the gap in its frames stays at frame spacing)."""
    from realtime import BUNDLED_CLIP

    with bundled_clips_as_cameras(tmp_path, tiny_checkpoint, 1, stream_names=["door"], file_tags=True) as pipeline:
        joined = time.time()
        assert pipeline.join(parse_source(str(BUNDLED_CLIP)), name="yard") == 1
        wait_until(lambda: pipeline.captures[1].frames_in >= 20 and time.time() > joined + 2.5)
        assert [c.state for c in pipeline.captures] == ["running", "running"]
    door, yard = (jsonl(tmp_path / "out" / f"poses_{name}.jsonl") for name in ("door", "yard"))
    assert {m["stream"] for m in yard} == {"yard"} and min(m["wall_time"] for m in yard) > joined
    assert count_frames(tmp_path / "out" / "annotated_yard.mp4")[0] == len(yard)  # its own MP4, closed, playable
    times = sorted(m["wall_time"] for m in door if m["wall_time"] > joined - 1.0)
    assert max(times) > joined + 2.0 and max(b - a for a, b in zip(times, times[1:])) < 1.0  # never paused


def test_a_live_stream_that_joins_a_pipeline_of_files_ends_its_prefetching(tmp_path, engine):
    """Files are prepared a batch ahead in a thread of their own; a camera that joins must not wait behind those
    batches: the prefetching ends, and no frame of the file is lost or reordered on the way."""
    from realtime import BUNDLED_CLIP
    from realtime.cameras import StreamOptions

    clip = write_video(tmp_path / "a.mp4", frames=40, size=(160, 120), fps=20)
    config = PipelineConfig(specs=[parse_source(str(clip))], out_dir=tmp_path / "out", pace=True)
    pipeline = Pipeline(config, engine, log=lambda line: None)
    thread = threading.Thread(target=pipeline.run)
    thread.start()
    try:
        wait_until(lambda: pipeline.metrics.frames_out >= 5)
        assert pipeline.prefetch and pipeline._outputs.bar is not None
        pipeline.join(parse_source(str(BUNDLED_CLIP)), StreamOptions(as_live=True))
        wait_until(lambda: pipeline.captures[1].frames_in >= 10)
        assert not pipeline.prefetch and pipeline._outputs.bar is None  # the metrics line, not a progress bar, from now on
        prepare = [t for t in threading.enumerate() if t.name == "prepare"]
        assert not prepare, "the prepare thread ended"
        wait_until(lambda: '"seq":39,' in (tmp_path / "out" / "poses.jsonl").read_text())
    finally:
        pipeline.stop_event.set()
        thread.join(30)
    assert [m["seq"] for m in jsonl(tmp_path / "out" / "poses.jsonl")] == list(range(40))
    assert jsonl(tmp_path / "out" / "poses_1.jsonl")


def test_a_stream_that_joins_before_the_run_is_an_ordinary_stream(tmp_path, engine):
    a = write_video(tmp_path / "a.mp4", frames=6, size=(160, 120), fps=10)
    b = write_video(tmp_path / "b.mp4", frames=4, size=(160, 120), fps=10)
    config = PipelineConfig(specs=[parse_source(str(a))], out_dir=tmp_path / "out", progress=False)
    pipeline = Pipeline(config, engine, log=lambda line: None)
    assert pipeline.join(parse_source(str(b))) == 1
    assert pipeline.run().frames_out == 10
    assert [len(jsonl(tmp_path / "out" / f"poses_{i}.jsonl")) for i in (0, 1)] == [6, 4]


def test_a_stream_that_joins_a_pipeline_with_a_browser_view_gets_its_place_there(tmp_path, tiny_checkpoint):
    import urllib.request

    from realtime import BUNDLED_CLIP

    with bundled_clips_as_cameras(tmp_path, tiny_checkpoint, 1, http_port=0, stream_names=["door"],
                                  file_tags=True) as pipeline:
        base = pipeline.view_url
        assert base
        pipeline.join(parse_source(str(BUNDLED_CLIP)), name="yard")
        wait_until(lambda: pipeline.captures[1].frames_in >= 5)
        status = json.loads(urllib.request.urlopen(base + "status.json", timeout=5).read())
        assert [(s["index"], s["name"]) for s in status["streams"]] == [(0, "door"), (1, "yard")]  # cameras' names
        assert status["streams"][1]["state"] == "running"
        jpeg = urllib.request.urlopen(base + "frame/1.jpg", timeout=10).read()
        assert jpeg[:2] == b"\xff\xd8"
        assert b'id="stream-1"' in urllib.request.urlopen(base, timeout=5).read()

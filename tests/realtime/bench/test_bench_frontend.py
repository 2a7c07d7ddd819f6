"""The front-end benchmark: both paths alternate on every clip, each stage is reported per frame, and the live part
measures a real RTSP stream from the test publisher up to the outputs written."""
import pytest

from realtime.bench import frontend as bench_frontend
from realtime.bench.frontend import STAGES, GstPublisher, bench_stages, run_live, run_path
from tests.realtime.helpers import gst_available, write_video


def test_the_paths_alternate_on_every_clip_and_every_stage_is_reported(tmp_path, monkeypatch):
    clips = {(160, 96): write_video(tmp_path / "a.mp4", frames=12, size=(160, 96)),
             (96, 64): write_video(tmp_path / "b.mp4", frames=12, size=(96, 64))}
    calls = []

    def recorded(path, name, size=320):
        calls.append((path.name, name))
        return run_path(path, name, size)

    monkeypatch.setattr(bench_frontend, "run_path", recorded)
    out = bench_stages(clips, rounds=2)
    order = ["today", "deblocked", "fast"]
    assert calls == ([("a.mp4", p) for p in order] + [("b.mp4", p) for p in order]
                     + [("a.mp4", p) for p in order[::-1]] + [("b.mp4", p) for p in order[::-1]])
    assert set(out) == {"160x96", "96x64"}
    for r in out.values():
        for name in order:
            assert all(r[name][s] >= 0 for s in STAGES) and r[name]["wall"] > 0
            assert r[name]["total"] == pytest.approx(sum(r[name][s] for s in STAGES), abs=0.01)
        assert set(r["decoder_threads"]) == {"1", "2", "auto"}


def test_the_live_part_measures_a_real_stream_up_to_the_outputs_written(tmp_path, engine):
    reason = gst_available()
    if reason:
        pytest.skip(reason)
    publisher = GstPublisher("320x240", 15)
    try:
        for fast in (True, False):
            r = run_live(engine, publisher.url, fast, seconds=1.5, out_dir=tmp_path / str(fast), warmup=1.5)
            assert r["fps_out"] > 0
            assert r["written_p50_ms"] >= r["end_to_end_p50_ms"] > 0  # written after the result is final
            assert (tmp_path / str(fast) / "poses.jsonl").stat().st_size > 0
    finally:
        publisher.stop()
    assert publisher.proc.poll() is not None

"""The soak benchmark's section, run for a few seconds: samples come every interval, the summary is computed over
the last 80%, the recording runs in segments with retention, and the curves are drawn when matplotlib exists."""
import numpy as np
import pytest

from realtime import BUNDLED_CLIP
from realtime.bench.soak import bench_soak, plot, process_sample, summarize


def test_process_sample_reads_this_process():
    rss, fds, threads = process_sample()
    assert rss > 10 and fds >= 3 and threads >= 1


def test_summary_is_taken_over_the_last_80_percent():
    rows = [(0, 100.0, 9, 5), (10, 200.0, 10, 7), (20, 202.0, 10, 7), (30, 220.0, 11, 7), (50, 210.0, 10, 7)]
    s = summarize(rows)
    assert (s["rss_mb_start"], s["rss_mb_end"], s["rss_mb_max"]) == (200.0, 210.0, 220.0)
    slope, start = np.polyfit([0, 10, 20, 40], [200.0, 202.0, 220.0, 210.0], 1)  # the samples from 10 s on
    assert s["rss_growth_pct"] == pytest.approx(100 * slope * 40 / start)
    flat = summarize([(t, 300.0 + (5 if t % 20 else -5), 10, 7) for t in range(0, 600, 10)])
    assert abs(flat["rss_growth_pct"]) < 0.5  # noise around a flat line is no growth
    assert (s["fds_start"], s["fds_end"], s["fds_max"], s["threads_max"]) == (10, 10, 11, 7)


@pytest.mark.skipif(not BUNDLED_CLIP.exists(), reason="bundled clip missing")
def test_a_short_soak_records_in_segments_and_samples(engine, tmp_path):
    r = bench_soak(engine, minutes=0.1, streams=2, every=1.0, segment=1.0, keep=2)
    assert r["samples"] >= 6 and r["fps_out"] > 0 and not r["errors"] and r["recording_error"] is None
    assert r["files_left"] <= 2 * 2 * 2  # 2 streams x (MP4 + JSONL) x the 2 segments kept
    assert abs(r["fds_end"] - r["fds_start"]) <= 2  # a sample may fall inside a rotation (its 2 files reopening)
    assert r["fds_after"] < r["fds_end"]  # the files closed at the stop
    assert r["threads_after"] < r["threads_end"]  # capture, stage and encoder threads joined
    png = plot(r["rows"], str(tmp_path / "soak.png"))
    if png is not None:
        assert (tmp_path / "soak.png").read_bytes()[:4] == b"\x89PNG"

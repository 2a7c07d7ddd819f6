"""Live behaviour with a model slower than the source: old frames are dropped, results stay fresh."""
import json
import time

import pytest

from realtime.engine.stage import Engine
from realtime.pipeline import Pipeline, PipelineConfig
from realtime.sources.readers import parse_source
from tests.realtime.helpers import write_video


class SlowEngine:
    """The real engine plus a fixed delay per batch: a network slower than the camera."""

    def __init__(self, engine: Engine, delay: float):
        self.engine, self.delay = engine, delay

    def prepare(self, frames):
        return self.engine.prepare(frames)

    def run(self, prepared):
        time.sleep(self.delay)
        return self.engine.run(prepared)


def test_slow_model_on_live_source_drops_frames_and_keeps_results_fresh(tmp_path, engine):
    clip = write_video(tmp_path / "clip.mp4", frames=20, fps=50)
    config = PipelineConfig(specs=[parse_source(str(clip))], out_dir=None, loop=True, as_live=True,
                            progress=False, report_every=1e9)
    pipeline = Pipeline(config, SlowEngine(engine, 0.08), log=lambda line: None)
    import threading

    threading.Timer(2.5, pipeline.stop_event.set).start()
    metrics = pipeline.run()
    capture = pipeline.captures[0]
    assert capture.frames_in >= 80 and capture.drops >= capture.frames_in // 2
    # A queueing pipeline would hand over frames ever older (seconds by the end); newest-frame-only keeps the
    # wait before inference below one source interval plus one inference.
    queue_p50, _, queue_max, n = metrics.stats("queue")
    assert n >= 10 and queue_max < 400 and queue_p50 < 150


@pytest.mark.slow
def test_bench_prints_tables_and_writes_json(tmp_path, capsys):
    from realtime import BUNDLED_CLIP
    from realtime.bench import cli as bench

    if not BUNDLED_CLIP.exists():
        pytest.skip("bundled clip not there yet")
    out = tmp_path / "bench.json"
    bench.main(["--sections", "streams", "--stream-counts", "1", "2", "--stream-seconds", "1.5",
                "--stream-config", "tiny", "--imgsz", "128", "--json", str(out)])
    text = capsys.readouterr().out
    assert text.startswith("machine: ") and "streams" in text
    figures = json.loads(out.read_text())
    assert [r["streams"] for r in figures["streams"]] == [1, 2]
    assert all(r["fps_out"] > 0 and r["e2e_p95_ms"] > 0 for r in figures["streams"])

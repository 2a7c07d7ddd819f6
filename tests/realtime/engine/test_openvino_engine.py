"""The engine on an OpenVINO model: several inference streams keep every frame of a file, in order, with the poses
one stream gives (the default is two streams for files read at full speed, one for live sources and paced files), and
a paced file's results are not held back; the uint8 canvases it hands over give the poses of the normalised float
batch; a run stopped mid-file leaves the engine idle for the next."""
import json

import numpy as np
import pytest
import torch

from realtime.engine.model import infer_streams
from realtime.pipeline import Pipeline, PipelineConfig
from realtime.sources.readers import parse_source
from tests.realtime.helpers import write_video

pytest.importorskip("openvino")


def test_two_streams_for_files_one_for_live_sources_unless_asked():
    assert infer_streams(None, threads=2, at_full_speed=True) == 2
    assert infer_streams(None, threads=1, at_full_speed=True) == 1
    assert infer_streams(None, threads=8, at_full_speed=False) == 1
    assert infer_streams(3, threads=8, at_full_speed=False) == 3


@pytest.fixture(scope="module")
def openvino_model(tmp_path_factory, tiny_checkpoint):
    from models.export.exporter import export

    return export(tiny_checkpoint, "openvino", dynamic=True, out=tmp_path_factory.mktemp("ov") / "tiny_openvino",
                  quiet=True)


def run_clip(openvino_model, clip, out_dir, streams, pace=False):
    from models import Predictor
    from realtime.engine.stage import Engine

    predictor = Predictor(str(openvino_model), input_size=128, precision="fp32", threads=2, streams=streams)
    engine = Engine(predictor, predictor.input_size, "cpu")
    config = PipelineConfig(specs=[parse_source(str(clip))], out_dir=out_dir, save_mp4=False, progress=False,
                            pace=pace)
    metrics = Pipeline(config, engine, log=lambda line: None).run()
    return engine, metrics, [json.loads(line) for line in (out_dir / "poses.jsonl").read_text().splitlines()]


def test_files_through_three_requests_in_flight_keep_every_frame_in_order(tmp_path, openvino_model):
    clip = write_video(tmp_path / "clip.mp4", frames=16, size=(160, 96), fps=10)
    one, m1, want = run_clip(openvino_model, clip, tmp_path / "one", streams=1)
    two, m2, got = run_clip(openvino_model, clip, tmp_path / "two", streams=2)
    assert (one.depth, two.depth) == (1, 4)
    assert m1.frames_out == m2.frames_out == 16
    assert [r["seq"] for r in got] == list(range(16))
    assert [r["pts"] for r in got] == [r["pts"] for r in want]
    assert sum(len(r["people"]) for r in want) > 0, "the clip must give poses to compare"
    for g, w in zip(got, want):  # the same inputs through the same compiled graph: the same poses
        assert len(g["people"]) == len(w["people"])
        for a, b in zip(g["people"], w["people"]):
            np.testing.assert_allclose(a["keypoints"], b["keypoints"], atol=1e-3)
            assert a["score"] == pytest.approx(b["score"], abs=1e-5)


def test_the_engine_hands_openvino_uint8_canvases_with_the_poses_of_the_float_batch(openvino_model):
    from models import Predictor
    from realtime.bench.measure import first_frame
    from realtime.engine.stage import Engine
    from realtime.frames import Frame

    predictor = Predictor(str(openvino_model), input_size=128, precision="fp32", threads=1)
    engine = Engine(predictor, predictor.input_size, "cpu")
    frames = [Frame(source=0, seq=0, pts=None, wall_time=0.0, recv_time=0.0, image=first_frame())]
    assert engine.preprocess.uint8
    prepared = engine.prepare(frames)
    assert prepared.batch.dtype == torch.uint8 and prepared.batch.shape == (1, 96, 128, 3)
    got = engine.run(prepared)[0].poses
    engine.preprocess.uint8 = False
    want = engine.infer(frames)[0].poses
    assert len(want) > 0 and len(got) == len(want)
    np.testing.assert_allclose(got.keypoints, want.keypoints, atol=0.05)
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-3)


def test_a_paced_file_gets_each_result_before_its_next_frame_arrives(tmp_path, openvino_model):
    """Frames 200 ms apart: a result held back behind frames yet to come would wait for them, or for the engine's
    100 ms idle timeout; a result not held back takes a forward (a few ms). The first frames also wait for OpenVINO
    to compile the model for their shape."""
    clip = write_video(tmp_path / "clip.mp4", frames=6, size=(160, 96), fps=5)
    engine, metrics, records = run_clip(openvino_model, clip, tmp_path / "paced", streams=2, pace=True)
    assert engine.depth == 4 and metrics.frames_out == 6
    assert max(r["latency_ms"] for r in records[3:]) < 60, [r["latency_ms"] for r in records]


def test_a_run_stopped_mid_file_leaves_the_engine_idle_for_the_next(tmp_path, openvino_model):
    """``max_frames`` stops a file with batches in flight over two streams: the run waits for them (results dropped),
    so every request is idle when it returns, and the next run of the same engine keeps every frame."""
    from models import Predictor
    from realtime.engine.stage import Engine

    clip = write_video(tmp_path / "clip.mp4", frames=12, size=(160, 96), fps=10)
    predictor = Predictor(str(openvino_model), input_size=640, precision="fp32", threads=2, streams=2)
    engine = Engine(predictor, predictor.input_size, "cpu")
    runs = []
    for name, max_frames in (("stopped", 3), ("whole", None)):
        config = PipelineConfig(specs=[parse_source(str(clip))], out_dir=tmp_path / name, save_mp4=False,
                                progress=False, max_frames=max_frames)
        runs.append(Pipeline(config, engine, log=lambda line: None).run().frames_out)
        requests = [r for reqs in predictor.runtime.compiled.values() for r in reqs]
        assert requests and all(r.wait_for(0) for r in requests), "a request still running after the run"
    assert runs[0] >= 3 and runs[1] == 12

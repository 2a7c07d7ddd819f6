"""The engine's CUDA paths against its eager fp32 path: pinned upload and device letterbox, fp16, CUDA graphs,
torch.compile, and the demo end to end on CUDA (skipped without CUDA)."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from realtime import BUNDLED_CLIP
from realtime.engine.stage import Engine
from realtime.frames import Frame
from tests.realtime.helpers import count_frames, run_cli

pytestmark = pytest.mark.gpu


def clip_frames(count: int) -> list[np.ndarray]:
    import av

    with av.open(str(BUNDLED_CLIP)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                return frames
    return frames


def as_frames(images) -> list[Frame]:
    return [Frame(source=0, seq=i, pts=None, wall_time=0.0, recv_time=0.0, image=im) for i, im in enumerate(images)]


def make_engine(tiny_checkpoint, device="cuda", **options) -> Engine:
    from models import Predictor

    predictor = Predictor(str(tiny_checkpoint), device=device, input_size=192, half=options.get("half", False))
    return Engine(predictor, predictor.input_size, device, **options)


def assert_same_people(poses, ref, px: float, score: float):
    """Every confident reference pose has a pose within ``px`` mean keypoint distance and ``score`` of its score."""
    confident = ref.scores > 0.3
    assert confident.any(), "the reference found nobody: the comparison would be empty"
    for kp, s in zip(ref.keypoints[confident], ref.scores[confident]):
        dist = np.linalg.norm(poses.keypoints - kp, axis=-1).mean(-1) if len(poses) else np.array([np.inf])
        best = int(np.argmin(dist))
        assert dist[best] < px and abs(poses.scores[best] - s) < score, (dist[best], poses.scores[best], s)


def test_device_letterbox_from_pinned_memory_matches_the_same_letterbox_on_the_cpu():
    from realtime.engine.preprocess import DevicePreprocess

    images = [clip_frames(1)[0], np.random.default_rng(0).integers(0, 256, (359, 641, 3), dtype=np.uint8)]
    gpu = DevicePreprocess(192, torch.device("cuda"))
    batch, boxes = gpu(images)
    assert batch.is_cuda and all(buf.is_pinned() for buf in gpu._pinned.values()) and len(gpu._pinned) == 2
    cpu = DevicePreprocess(192, torch.device("cpu"))
    ref, ref_boxes = cpu.torch_letterbox([torch.from_numpy(im) for im in images])
    assert boxes == ref_boxes
    torch.testing.assert_close(batch.cpu(), ref, atol=1e-4, rtol=1e-4)
    again, _ = gpu(images[::-1])  # the pinned buffers are reused per slot and shape
    torch.testing.assert_close(again.cpu()[0], ref[1], atol=1e-4, rtol=1e-4)


def test_cuda_fp32_and_fp16_find_the_people_the_cpu_finds_in_the_same_batch(tiny_checkpoint):
    frames = as_frames(clip_frames(3))
    cpu, gpu, half = (make_engine(tiny_checkpoint, "cpu"), make_engine(tiny_checkpoint),
                      make_engine(tiny_checkpoint, half=True))
    prepared = gpu.prepare(frames)
    ref = [r.poses for r in cpu.run(replace(prepared, batch=prepared.batch.cpu()))]
    prepared_half = half.prepare(frames)
    assert prepared_half.batch.dtype == torch.float16
    for engine, batch, px, score in ((gpu, prepared, 0.5, 0.01), (half, prepared_half, 3.0, 0.06)):
        for result, expected in zip(engine.run(batch), ref):
            assert_same_people(result.poses, expected, px, score)


def test_cuda_graph_replays_equal_the_eager_forward_on_each_new_batch(tiny_checkpoint):
    images = clip_frames(6)
    eager = make_engine(tiny_checkpoint)
    graphs = make_engine(tiny_checkpoint, cuda_graphs=True, static_batch=2)
    for pair in (images[0:2], images[2:4], images[4:5]):  # the last batch is padded to the static shape
        got = graphs.infer(as_frames(pair))
        want = eager.infer(as_frames(pair))
        assert graphs.cuda_graphs and len(graphs._graphs) == 1 and len(got) == len(pair)
        for g, w in zip(got, want):  # TF32 convolutions, and cuDNN may pick other algorithms inside a capture
            np.testing.assert_allclose(g.poses.keypoints, w.poses.keypoints, atol=0.1)
            np.testing.assert_allclose(g.poses.scores, w.poses.scores, atol=1e-3)


def test_a_batch_of_another_shape_gets_its_own_graph(tiny_checkpoint):
    images = clip_frames(3)
    engine = make_engine(tiny_checkpoint, cuda_graphs=True)
    one, three = engine.infer(as_frames(images[:1])), engine.infer(as_frames(images))
    assert len(engine._graphs) == 2 and len(one) == 1 and len(three) == 3
    np.testing.assert_allclose(three[0].poses.scores, one[0].poses.scores, atol=1e-3)


def test_torch_compile_with_cuda_graphs_agrees_with_eager_and_does_not_fall_back(tiny_checkpoint, capfd):
    images = clip_frames(2)
    eager = make_engine(tiny_checkpoint)
    compiled = make_engine(tiny_checkpoint, compile=True, cuda_graphs=True, static_batch=1)
    for image in images:
        got = compiled.infer(as_frames([image]))[0]
        assert_same_people(got.poses, eager.infer(as_frames([image]))[0].poses, px=0.5, score=0.01)
    assert compiled.cuda_graphs and compiled.compile
    assert "running eagerly" not in capfd.readouterr().err


def test_webcam_demo_on_cuda_with_half_and_cuda_graphs(tmp_path, tiny_checkpoint):
    proc = run_cli(["--source", str(BUNDLED_CLIP), "--weights", str(tiny_checkpoint), "--no-show", "--device", "cuda",
                    "--half", "--cuda-graphs", "--max-frames", "40"], tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "running eagerly" not in proc.stderr and "Traceback" not in proc.stderr
    out = tmp_path / "runs" / "webcam"
    assert count_frames(out / "annotated.mp4")[0] == 40
    lines = [json.loads(line) for line in (out / "poses.jsonl").read_text().splitlines()]
    assert [line["seq"] for line in lines] == list(range(40))
    assert sum(len(line["people"]) for line in lines) > 0

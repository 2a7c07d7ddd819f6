"""The engine's fallbacks, on the CPU: a compile that fails leaves one warning line and an eager network that
still runs in the same thread."""
import numpy as np
import torch

from models import Predictor, build_model
from realtime.engine.stage import Engine
from realtime.frames import Frame


def test_a_failed_compile_warns_once_and_runs_eagerly(capsys):
    torch.manual_seed(0)
    predictor = Predictor(build_model("tiny", threshold=0.005), device="cpu", input_size=64)
    engine = Engine(predictor, 64, "cpu")
    eager = predictor.net.dense

    def broken(x):
        raise RuntimeError("backend='inductor' raised:\n\nLoweringException: no lowering for this op")

    predictor.net.dense = broken  # what Engine(compile=True) installs on CUDA, failing
    engine.compile, engine._compiled_ok = True, False
    image = np.random.default_rng(0).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    frames = [Frame(source=0, seq=i, pts=None, wall_time=0.0, recv_time=0.0, image=image) for i in range(2)]
    first, second = engine.infer(frames[:1]), engine.infer(frames[1:])
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["warning: torch.compile failed (RuntimeError: backend='inductor' raised: LoweringException: no "
                   "lowering for this op); running eagerly"]
    assert not engine.compile and predictor.net.dense == eager
    assert len(first) == len(second) == 1
    np.testing.assert_allclose(first[0].poses.scores, second[0].poses.scores)

"""Fixtures of the real-time tests: a tiny untrained network (or the bundled checkpoint), an Engine on the CPU,
and the GStreamer RTSP server."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.realtime.helpers import GstServer, gst_available


@pytest.fixture(scope="session")
def tiny_net():
    from models import build_model

    torch.manual_seed(0)
    # Untrained scores sit near the score head's prior (about 0.01): a threshold below it makes the network
    # emit poses, so tracking, drawing and the JSONL get real people to handle.
    return build_model("tiny", threshold=0.005).eval()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_net) -> Path:
    """The bundled checkpoint when present, else an untrained tiny model saved with save_checkpoint."""
    from models import DEFAULT_CHECKPOINT, save_checkpoint

    if Path(DEFAULT_CHECKPOINT).is_file():
        return Path(DEFAULT_CHECKPOINT)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", tiny_net)


@pytest.fixture(scope="session")
def engine(tiny_net):
    from models import Predictor
    from realtime.engine.stage import Engine

    torch.set_num_threads(1)
    predictor = Predictor(tiny_net, device="cpu", input_size=128)
    return Engine(predictor, predictor.input_size, "cpu")


@pytest.fixture
def gst_server():
    reason = gst_available()
    if reason:
        pytest.skip(reason)
    servers = []

    def start(**options) -> GstServer:
        server = GstServer(**options).start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()

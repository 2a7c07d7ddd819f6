"""A small random network with peaks, keypoint heatmaps (snapping on), the labelled head and a random QEM, saved as
a checkpoint and exported once per session: ONNX static 64x96, ONNX dynamic, OpenVINO dynamic."""
from __future__ import annotations

import pytest
import torch

from models import build_model, save_checkpoint
from models.export.exporter import export


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Exported twins and auto choices of these tests go to a temporary cache, not the user's."""
    import os
    from models.export.auto import CACHE_ENV
    old = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("qem-cache"))
    yield
    if old is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = old


def random_net(seed: int = 0):
    """Tiny net whose score map has peaks above threshold and whose zero-initialised outputs are random."""
    torch.manual_seed(seed)
    net = build_model("tiny", input_size=64, max_people=8, threshold=0.7, keypoint_heatmaps=True, snap_radius=1,
                      labelled_head=True, kpt_blocks=1, head_channels=16, pose_score="labelled_mean")
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith("qem.") or ".out." in name or ".offset." in name:
                p.normal_(std=0.3)
        net.heads.score.out.weight.normal_(std=20.0)
        net.heads.score.out.bias.fill_(2.0)
    return net.eval()


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("export") / "random.pt", random_net())


@pytest.fixture(scope="session")
def onnx_static(random_checkpoint):
    return export(random_checkpoint, "onnx", imgsz=[64, 96], out=random_checkpoint.with_name("static.onnx"),
                  quiet=True)


@pytest.fixture(scope="session")
def onnx_dynamic(random_checkpoint):
    return export(random_checkpoint, "onnx", dynamic=True, out=random_checkpoint.with_name("dynamic.onnx"),
                  quiet=True)


@pytest.fixture(scope="session")
def openvino_dynamic(random_checkpoint):
    return export(random_checkpoint, "openvino", dynamic=True,
                  out=random_checkpoint.with_name("dynamic_openvino"), quiet=True)

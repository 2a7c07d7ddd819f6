"""DEKR's hierarchical pool: an imported DEKR model looks for centre peaks in a 3x3 window, 5x5 where the map's mean
side (h + w) / 2 exceeds 200 px and 7x7 above 300 (DEKR's TEST.POOL_THRESHOLD2 / 1). The network's decode picks the
window from the map; the exported graph computes it in the graph, so one dynamic export picks it at run time."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from kernels.decode_ref import decode_ref
from models.config import preset
from models.export.graph import decode_topk
from tests.models.export.test_graph import FIELDS, check_same, run_onnxruntime, run_openvino

DEKR = preset("dekr_w32")
# (h, w) -> the window: a mean side of 200 is still 3x3, 200.5 is 5x5, 300 is 5x5, 300.5 is 7x7
SIZES = [((100, 300), 3), ((100, 301), 5), ((200, 400), 5), ((200, 401), 7)]


def two_peaks(h: int, w: int, gap: int, seed: int = 0):
    """Low noise with two peaks ``gap`` px apart in a row: a window wider than ``gap`` keeps only the higher one."""
    g = torch.Generator().manual_seed(seed)
    score = torch.randn(1, 1, h, w, generator=g) * 0.01 - 6.0
    score[0, 0, h // 2, w // 2], score[0, 0, h // 2, w // 2 + gap] = 3.0, 2.0
    return (score, torch.randn(1, 2 * 17, h, w, generator=g), torch.randn(1, 17 * 2, h, w, generator=g),
            torch.randn(1, 4, h, w, generator=g))


@pytest.mark.parametrize("size,window", SIZES)
def test_dekr_config_picks_dekrs_window_and_ours_keeps_its_own(size, window):
    assert DEKR.peak_window(*size) == window
    assert preset("dekr_qem_w32").peak_window(*size) == preset("dekr_qem_w32").nms_kernel  # our head: fixed


@pytest.mark.parametrize("size,window", SIZES)
def test_graph_decode_equals_the_reference_at_dekrs_window(size, window):
    args = two_peaks(*size, gap=2)
    kw = dict(max_people=30, threshold=0.01, num_keypoints=17, kfeat_channels=2)
    got = decode_topk(*args, nms_kernel=DEKR.nms_kernel, pool_steps=DEKR.pool_steps, **kw)
    want = decode_ref(*args, max_people=30, threshold=0.01, nms_kernel=window)
    check_same(got, want)
    assert int(got.valid.sum()) == (2 if window == 3 else 1)  # peaks 2 px apart: only a 3x3 window keeps both


class PooledDecode(torch.nn.Module):
    def forward(self, score, offsets, kfeat, ifeat):
        c = decode_topk(score, offsets, kfeat, ifeat, max_people=30, threshold=0.01, nms_kernel=3,
                        num_keypoints=17, kfeat_channels=2, pool_steps=DEKR.pool_steps)
        return c.scores, c.indices, c.valid, c.keypoints, c.kpt_queries, c.inst_queries


@pytest.fixture(scope="module")
def pooled_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("pool") / "pooled.onnx"
    names = ["score", "offsets", "kfeat", "ifeat"]
    torch.onnx.export(PooledDecode(), two_peaks(64, 96, gap=2), str(path), input_names=names,
                      dynamic_axes={n: {0: "b", 2: "h", 3: "w"} for n in names}, opset_version=17, dynamo=False)
    return path


@pytest.mark.parametrize("run", [run_onnxruntime, run_openvino], ids=["onnxruntime", "openvino"])
def test_one_dynamic_export_picks_the_window_at_run_time(pooled_onnx, run):
    """Exported at a 3x3 size, run at every size: each gives the reference's candidates at its own window."""
    for size, window in SIZES:
        inputs = two_peaks(*size, gap=2, seed=1)
        want = decode_ref(*inputs, max_people=30, threshold=0.01, nms_kernel=window)
        got = run(pooled_onnx, inputs)
        for f, array in zip(FIELDS, got):
            expected = getattr(want, f).numpy()
            if f in ("indices", "valid"):
                assert np.array_equal(array, expected), (size, f)
            else:
                np.testing.assert_allclose(array, expected, rtol=0, atol=1e-5, err_msg=f"{size} {f}")


def test_the_networks_decode_uses_the_window_of_its_map():
    from models import build_model
    from models.modeling.network import DenseOutput

    net = build_model("dekr_w32")
    for size, window in SIZES:
        args = two_peaks(*size, gap=2, seed=2)
        want = decode_ref(*args, max_people=30, threshold=DEKR.decode_threshold, nms_kernel=window)
        check_same(net.decode(DenseOutput(*args), backend="torch"), want)

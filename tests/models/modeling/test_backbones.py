"""Every configuration builds and gives the documented shapes; sizes match what docs/architecture.md states."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from kernels.candidates import Candidates
from models import ModelConfig, build_model
from models.config import PRESETS

K = 17


@pytest.mark.parametrize("name", ["tiny", "realtime", pytest.param("hrnet_w32", marks=pytest.mark.slow),
                                  pytest.param("hrnet_w48", marks=pytest.mark.slow)])
def test_dense_decode_and_sparse_shapes(name):
    torch.manual_seed(0)
    net = build_model(name, threshold=0.001, nms_kernel=1).eval()
    cfg = net.cfg
    size = 128 if name.startswith("hrnet") else 96
    with torch.no_grad():
        dense = net.dense(torch.randn(1, 3, size, size + 32))
        h, w = size // 4, (size + 32) // 4
        assert dense.score.shape == (1, 1, h, w)
        assert dense.offsets.shape == (1, 2 * K, h, w)
        assert dense.kfeat.shape == (1, K * cfg.kpt_channels, h, w)
        assert dense.ifeat.shape == (1, cfg.inst_channels, h, w)
        cands = net.decode(dense)
        out = net.sparse(dense, cands)
    n = cfg.max_people
    assert isinstance(cands, Candidates) and cands.valid.all()  # a tiny threshold: every slot is a peak
    assert out.keypoints.shape == (1, n, K, 2) and out.keypoints.dtype == torch.float32
    assert out.keypoint_scores.shape == (1, n, K) and out.score_logits.shape == (1, n)
    assert ((out.keypoint_scores >= 0) & (out.keypoint_scores <= 1)).all()
    assert torch.isfinite(out.score_logits).all()


def test_infer_batches_and_marks_unused_slots():
    net = build_model("tiny").eval()
    with torch.no_grad():
        cands, out = net.infer(torch.randn(2, 3, 64, 64))
    assert cands.valid.shape == (2, net.cfg.max_people)
    assert not cands.valid.any()  # a fresh net scores 0.01 everywhere, below the 0.05 threshold
    assert (out.keypoints == 0).all() and (out.score_logits == 0).all()


@pytest.mark.slow
@pytest.mark.parametrize("name,dekr", [("hrnet_w32", 29.6e6), ("hrnet_w48", 65.7e6)])
def test_hrnet_sizes_are_within_ten_percent_of_dekr(name, dekr):
    params = sum(p.numel() for p in build_model(name).parameters())
    assert abs(params - dekr) / dekr < 0.10, params


def test_realtime_is_two_to_three_gflops_at_320():
    net = build_model("realtime").eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net.dense(torch.randn(1, 3, 160, 160))
    assert 2.0e9 <= 4 * counter.get_total_flops() <= 3.0e9  # convolutions scale exactly with the area


def test_config_rejects_unknown_names_and_values():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet")
    with pytest.raises(ValueError, match="unknown ModelConfig fields: widht"):
        build_model("tiny", widht=3)
    with pytest.raises(ValueError, match="score_mode"):
        build_model("tiny", score_mode="heatmap")
    with pytest.raises(ValueError, match="multiple of 32"):
        ModelConfig(input_size=100)
    assert set(PRESETS) == {"tiny", "realtime", "hrnet_w32", "hrnet_w48", "dekr_w32", "dekr_w48", "dekr_w32_crowdpose",
                            "dekr_w48_crowdpose", "dekr_qem_w32", "dekr_qem_w48", "dekr_qem_w32_crowdpose",
                            "dekr_qem_w48_crowdpose"}
    with pytest.raises(ValueError, match="DEKR's heads sit on an HRNet backbone"):
        build_model("tiny", head="dekr")
    with pytest.raises(ValueError, match="multiples of 32"):
        build_model("tiny").dense(torch.zeros(1, 3, 50, 64))

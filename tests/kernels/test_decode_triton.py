"""The Triton decode against the reference, case by case and on random maps: on the GPU when there is one, else
on the CPU under Triton's interpreter (tests/conftest.py sets TRITON_INTERPRET=1 without CUDA)."""
import pytest
import torch

from kernels.decode_triton import decode_triton
from kernels.decode_ref import decode_ref
from tests.kernels.helpers import DEVICE, assert_candidates_match, random_inputs

LOW = -8.0


def blank(batch=1, h=6, w=9, num_kpts=2, ck=3, ci=4, dtype=torch.float32, seed=0):
    """Random features and offsets over a score map that is LOW everywhere (no peak yet)."""
    score, offsets, kfeat, ifeat = random_inputs(batch, h, w, num_kpts, ck, ci, seed=seed, dtype=torch.float32)
    return [torch.full_like(score, LOW), offsets, kfeat, ifeat], dtype


def run(inputs, dtype, **args):
    inputs = tuple(t.to(device=DEVICE, dtype=dtype) for t in inputs)
    out = decode_triton(*inputs, **args)
    assert_candidates_match(out, inputs, **args)
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_single_peak(dtype):
    inputs, dtype = blank(dtype=dtype)
    inputs[0][0, 0, 2, 5] = 1.5
    out = run(inputs, dtype, max_people=3, threshold=0.5)
    assert out.indices.tolist() == [[2 * 9 + 5, -1, -1]]


def test_plateau_ties_keep_index_order():
    inputs, dtype = blank()
    inputs[0][0, 0, 1:3, 2:5] = 2.0  # a 2x3 plateau: all six are peaks
    inputs[0][0, 0, 4, 7] = 2.0  # an equal, separate peak
    out = run(inputs, dtype, max_people=8, threshold=0.5)
    assert out.indices.tolist() == [[11, 12, 13, 20, 21, 22, 43, -1]]


def test_peaks_on_all_four_borders_and_corners():
    inputs, dtype = blank(h=7, w=10)
    for y, x, v in ((0, 4, 1.0), (6, 5, 1.1), (3, 0, 1.2), (2, 9, 1.3), (0, 0, 0.5), (6, 9, 0.7)):
        inputs[0][0, 0, y, x] = v
    out = run(inputs, dtype, max_people=8, threshold=0.5, nms_kernel=5)
    assert out.indices.tolist() == [[2 * 10 + 9, 3 * 10, 6 * 10 + 5, 4, 6 * 10 + 9, 0, -1, -1]]


def test_nothing_above_threshold():
    inputs, dtype = blank(batch=2)
    out = run(inputs, dtype, max_people=4, threshold=0.3)
    assert not out.valid.any() and (out.indices == -1).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_more_peaks_than_max_people(dtype):
    inputs = random_inputs(1, 12, 12, seed=3)
    out = run(inputs, dtype, max_people=5, threshold=0.1, nms_kernel=1)  # every pixel over 0.1 is a peak
    assert out.valid.all()


def test_keypoints_outside_the_map_sample_the_border():
    inputs, dtype = blank(h=5, w=6)
    inputs[0][0, 0, 2, 2] = 1.0
    inputs[1][0, :, 2, 2] = torch.tensor([-30.0, 0.25, 40.0, 99.0])  # kpt 0 off the left, kpt 1 off bottom-right
    out = run(inputs, dtype, max_people=1, threshold=0.5)
    assert out.keypoints[0, 0].tolist() == [[-28.0, 2.25], [42.0, 101.0]]
    torch.testing.assert_close(out.kpt_queries[0, 0, 1].cpu(), inputs[2][0, 3:6, 4, 5])  # corner pixel (y4, x5)


def test_mixed_precision_maps_and_features():
    score, offsets, kfeat, ifeat = random_inputs(2, 9, 7, seed=4, device=DEVICE)
    inputs = (score, offsets, kfeat.half(), ifeat.half())
    out = decode_triton(*inputs, max_people=6, threshold=0.4)
    assert_candidates_match(out, inputs, max_people=6, threshold=0.4)


# Property-style: seeded random maps over a grid of sizes (non-square, non-power-of-two, 1-pixel, batch > 1).
@pytest.mark.parametrize("h, w, batch, people, nms", [
    (1, 1, 1, 2, 3), (1, 13, 2, 4, 3), (11, 3, 1, 9, 1), (16, 16, 1, 20, 3), (13, 29, 2, 7, 5), (33, 40, 1, 33, 3),
    (45, 50, 1, 12, 1),  # three pixel blocks of 1024, hundreds of peaks: the running top-N is merged across blocks
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_random_maps_match_the_reference(h, w, batch, people, nms, dtype):
    seed = h * 1000 + w * 10 + batch
    inputs = random_inputs(batch, h, w, num_kpts=2, ck=5, ci=3, seed=seed, dtype=dtype, device=DEVICE)
    out = decode_triton(*inputs, max_people=people, threshold=0.3, nms_kernel=nms)
    assert_candidates_match(out, inputs, max_people=people, threshold=0.3, nms_kernel=nms)


def test_best_peaks_in_a_later_block_displace_earlier_ones():
    inputs, dtype = blank(h=40, w=60)  # 2400 pixels: three blocks of 1024
    inputs[0][0, 0, 0::2, 0::2] = 1.0  # many equal peaks everywhere
    inputs[0][0, 0, 39, 58] = 3.0  # the best, in the last block
    inputs[0][0, 0, 20, 30] = 2.0  # second, in the middle block
    out = run(inputs, dtype, max_people=4, threshold=0.5)
    assert out.indices.tolist() == [[39 * 60 + 58, 20 * 60 + 30, 0, 2]]


def test_nan_is_never_a_peak_and_suppresses_its_window():
    inputs, dtype = blank(h=5, w=12)
    inputs[0][0, 0, 2, 2] = float("nan")
    inputs[0][0, 0, 2, 3] = 2.0  # beside the NaN: suppressed (the reference's window max is NaN)
    inputs[0][0, 0, 2, 8] = 1.0  # far from it: a peak
    out = run(inputs, dtype, max_people=3, threshold=0.5)
    assert out.indices.tolist() == [[2 * 12 + 8, -1, -1]]


def test_kernel_writes_every_output_element(monkeypatch):
    # Outputs start as garbage (7, True) instead of torch.empty's memory: unused slots must be written too.
    real_empty = torch.empty

    def garbage(*size, dtype=torch.float32, device=None):
        return real_empty(*size, dtype=dtype, device=device).fill_(True if dtype == torch.bool else 7)

    monkeypatch.setattr(torch, "empty", garbage)
    inputs, dtype = blank(batch=2, h=7, w=11)
    inputs[0][0, 0, 3, 3] = 1.0
    out = run(inputs, dtype, max_people=5, threshold=0.5)
    assert out.valid.tolist() == [[True] + [False] * 4, [False] * 5]


def test_nan_offsets_keep_nan_keypoints_and_sample_at_zero():
    inputs, dtype = blank(h=5, w=6)
    inputs[0][0, 0, 2, 3] = 1.0
    inputs[1][0, :, 2, 3] = torch.tensor([float("nan"), 1.0, 0.5, float("nan")])  # kpt 0: x NaN; kpt 1: y NaN
    out = run(inputs, dtype, max_people=1, threshold=0.5)
    assert out.keypoints[0, 0, 0, 0].isnan() and out.keypoints[0, 0, 1, 1].isnan()
    torch.testing.assert_close(out.kpt_queries[0, 0, 0].cpu(), inputs[2][0, 0:3, 3, 0])  # sampled at (x 0, y 3)


def test_empty_batch_gives_empty_outputs_of_the_reference_shapes():
    inputs = random_inputs(0, 5, 6, num_kpts=2, ck=3, ci=4, seed=0, device=DEVICE)
    out, ref = decode_triton(*inputs, max_people=3, threshold=0.5), decode_ref(*inputs, max_people=3, threshold=0.5)
    for name in ("scores", "indices", "valid", "keypoints", "kpt_queries", "inst_queries"):
        got, want = getattr(out, name), getattr(ref, name)
        assert got.shape == want.shape and got.dtype == want.dtype and got.numel() == 0, name


@pytest.mark.parametrize("num_kpts", [17, 14])
def test_dekr_shapes_centre_values_as_scores(num_kpts):
    """An imported DEKR model's maps: 15 channels per keypoint, its heatmap head's 32 as instance features, and the
    centre heatmap's plain values as the score with the converted threshold (ModelConfig.decode_threshold)."""
    score, offsets, kfeat, ifeat = random_inputs(1, 12, 20, num_kpts, 15, 32, seed=num_kpts, dtype=torch.float32)
    score = score.sigmoid()  # values in (0, 1), as DEKR's centre heatmap
    out = run((score, offsets, kfeat, ifeat), torch.float32, max_people=30, threshold=1 / (1 + 2.718281828 ** -0.01),
              nms_kernel=3)
    assert out.valid.any()

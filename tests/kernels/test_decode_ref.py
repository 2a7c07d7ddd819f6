"""The reference decode on hand-computed maps: peaks, tie order, pixel-centre bilinear sampling, unused slots."""
import math
import sys

import pytest
import torch

import kernels
from kernels.decode_ref import bilinear_sample_ref, decode_ref, find_peaks_ref, threshold_logit

LOW = -10.0


def five_by_five():
    """Peaks at (y1,x1)=2.0, (y0,x4)=1.0 (border) and (y3,x3)=1.0 (tie with the border one); K=1, Ck=2, Ci=2."""
    score = torch.full((1, 1, 5, 5), LOW)
    score[0, 0, 1, 1], score[0, 0, 0, 4], score[0, 0, 3, 3] = 2.0, 1.0, 1.0
    offsets = torch.zeros(1, 2, 5, 5)
    offsets[0, :, 1, 1] = torch.tensor([0.5, 0.25])  # keypoint (1.5, 1.25)
    offsets[0, :, 0, 4] = torch.tensor([1.0, -2.0])  # keypoint (5, -2): outside, sampled at (4, 0)
    offsets[0, :, 3, 3] = torch.tensor([-0.5, 0.5])  # keypoint (2.5, 3.5)
    y, x = torch.meshgrid(torch.arange(5.0), torch.arange(5.0), indexing="ij")
    kfeat = torch.stack([10 * y + x, x * y]).unsqueeze(0)  # bilinear sampling reproduces both exactly
    ifeat = torch.stack([y * 5 + x, torch.full((5, 5), -1.0)]).unsqueeze(0)
    return score, offsets, kfeat, ifeat


def test_five_by_five_hand_computed():
    out = decode_ref(*five_by_five(), max_people=4, threshold=0.5)
    assert out.indices.tolist() == [[6, 4, 18, -1]]  # score descending; the tie 1.0 in index order
    assert out.valid.tolist() == [[True, True, True, False]]
    torch.testing.assert_close(out.scores, torch.tensor([[1 / (1 + math.exp(-2)), 1 / (1 + math.exp(-1)),
                                                          1 / (1 + math.exp(-1)), 0.0]]))
    assert out.keypoints.tolist() == [[[[1.5, 1.25]], [[5.0, -2.0]], [[2.5, 3.5]], [[0.0, 0.0]]]]
    expected_kq = [[[[14.0, 1.875]], [[4.0, 0.0]], [[37.5, 8.75]], [[0.0, 0.0]]]]
    torch.testing.assert_close(out.kpt_queries, torch.tensor(expected_kq))
    assert out.inst_queries.tolist() == [[[6.0, -1.0], [4.0, -1.0], [18.0, -1.0], [0.0, 0.0]]]


def test_bilinear_weights_on_a_nonlinear_map():
    feat = torch.tensor([[0.0, 1.0], [2.0, 4.0]]).view(1, 1, 1, 2, 2)
    points = torch.tensor([[0.5, 0.5], [0.25, 0.0], [1.0, 0.75], [-3.0, 9.0], [0.0, 0.0]]).view(1, 5, 1, 2)
    got = bilinear_sample_ref(feat, points).flatten().tolist()
    # centre of the four: mean; (0.25, 0): 0.75*0 + 0.25*1; (1, 0.75): 0.25*1 + 0.75*4; (-3, 9) -> corner (0, 1)
    assert got == [1.75, 0.25, 3.25, 2.0, 0.0]


def test_plateau_neighbours_are_all_peaks_in_index_order():
    score = torch.full((1, 1, 4, 4), LOW)
    score[0, 0, 1, 1] = score[0, 0, 1, 2] = score[0, 0, 2, 1] = 3.0
    _, indices, valid = find_peaks_ref(score, 5, 0.5)
    assert indices.tolist() == [[5, 6, 9, -1, -1]] and valid.sum() == 3


def test_negative_zero_ties_with_zero():
    score = torch.full((1, 1, 1, 5), LOW)
    score[0, 0, 0, 0], score[0, 0, 0, 3] = 0.0, -0.0
    out = decode_ref(score, torch.zeros(1, 2, 1, 5), torch.zeros(1, 1, 1, 5), torch.zeros(1, 1, 1, 5),
                     max_people=2, threshold=0.25)
    assert out.indices.tolist() == [[0, 3]]


def test_window_is_clipped_at_the_border_and_sized_by_nms_kernel():
    score = torch.full((1, 1, 5, 5), LOW)
    score[0, 0, 0, 0], score[0, 0, 2, 2], score[0, 0, 4, 4] = 1.0, 2.0, 1.5
    _, idx3, _ = find_peaks_ref(score, 4, 0.5, nms_kernel=3)
    _, idx5, _ = find_peaks_ref(score, 4, 0.5, nms_kernel=5)
    _, idx1, _ = find_peaks_ref(score, 4, 0.5, nms_kernel=1)
    assert idx3.tolist() == [[12, 24, 0, -1]]
    assert idx5.tolist() == [[12, -1, -1, -1]]  # corners lie within 2 pixels of the centre
    assert idx1.tolist() == [[12, 24, 0, -1]]


def test_threshold_is_strict_and_compared_on_logits():
    score = torch.tensor([[[[0.0, LOW, float(threshold_logit(0.7)), LOW, 0.9]]]])
    _, indices, _ = find_peaks_ref(score, 3, 0.5)
    assert indices.tolist() == [[4, 2, -1]]  # logit 0 is sigmoid 0.5, not above 0.5
    _, indices, _ = find_peaks_ref(score, 3, 0.7)
    assert indices.tolist() == [[4, -1, -1]]  # exactly at the threshold: not a peak


def test_nothing_above_threshold_gives_empty_slots():
    out = decode_ref(*five_by_five(), max_people=3, threshold=0.99)
    assert out.indices.tolist() == [[-1, -1, -1]] and not out.valid.any()
    for field in (out.scores, out.keypoints, out.kpt_queries, out.inst_queries):
        assert (field == 0).all()


def test_more_peaks_than_slots_keeps_the_best():
    out = decode_ref(*five_by_five(), max_people=2, threshold=0.5)
    assert out.indices.tolist() == [[6, 4]]


def test_fp16_inputs_give_fp16_queries_and_fp32_scores():
    out = decode_ref(*(t.half() for t in five_by_five()), max_people=4, threshold=0.5)
    assert out.scores.dtype == out.keypoints.dtype == torch.float32
    assert out.kpt_queries.dtype == out.inst_queries.dtype == torch.float16
    assert out.kpt_queries[0, 0, 0].tolist() == [14.0, 1.875]


def test_batch_images_are_independent_and_empty_batch_keeps_shapes():
    one = five_by_five()
    two = tuple(torch.cat([t, t.flip(-1)]) for t in one)
    out = decode_ref(*two, max_people=4, threshold=0.5)
    assert out.indices[0].tolist() == [6, 4, 18, -1]
    assert out.indices[1].tolist() == [8, 0, 16, -1]  # mirrored: x -> 4 - x
    empty = decode_ref(*(t[:0] for t in one), max_people=4, threshold=0.5)
    assert empty.kpt_queries.shape == (0, 4, 1, 2) and empty.indices.shape == (0, 4)


def test_auto_backend_on_cpu_is_the_reference():
    out = kernels.decode(*five_by_five(), max_people=4, threshold=0.5)
    assert out.indices.tolist() == [[6, 4, 18, -1]]


@pytest.mark.parametrize("change, message", [
    (lambda s, o, k, i: (s[:, 0], o, k, i), "score must be [B,1,h,w]"),
    (lambda s, o, k, i: (s, o[:, :1], k, i), "offsets must be [B,2K,h,w]"),
    (lambda s, o, k, i: (s, o, k[:, :, :4], i), "kfeat must be [B,K*Ck,h,w]"),
    (lambda s, o, k, i: (s, torch.cat([o, o]), k, i), "offsets must be [B,2K,h,w]"),
    (lambda s, o, k, i: (s, o, k, i[..., :3]), "ifeat must be [B,Ci,h,w]"),
    (lambda s, o, k, i: tuple(t[..., :0] for t in (s, o, k, i)), "score map must be at least 1x1"),
])
def test_bad_shapes_name_the_input(change, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]").replace("*", r"\*")):
        decode_ref(*change(*five_by_five()), max_people=4, threshold=0.5)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_people": 0, "threshold": 0.5}, "max_people must be >= 1"),
    ({"max_people": 2, "threshold": 1.0}, r"threshold must lie in \(0, 1\)"),
    ({"max_people": 2, "threshold": 0.5, "nms_kernel": 4}, "nms_kernel must be a positive odd number"),
    ({"max_people": 2, "threshold": 0.5, "backend": "cuda"}, "unknown decode backend 'cuda'"),
])
def test_bad_arguments_give_one_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kernels.decode(*five_by_five(), **kwargs)


def test_cupy_backend_on_cpu_tensors_says_what_to_do():
    with pytest.raises(RuntimeError, match="cupy decode backend needs CUDA tensors; use backend='torch'"):
        kernels.decode(*five_by_five(), max_people=2, threshold=0.5, backend="cupy")


def test_missing_cupy_says_how_to_install_it(monkeypatch):
    from kernels.decode_cupy import import_cupy

    monkeypatch.setitem(sys.modules, "cupy", None)  # what Python does for a package that is not installed
    with pytest.raises(RuntimeError, match="pip install cupy-cuda13x"):
        import_cupy()


def test_triton_backend_on_cpu_tensors_without_interpreter_says_what_to_do(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="triton decode backend needs CUDA tensors"):
        kernels.decode(*five_by_five(), max_people=2, threshold=0.5, backend="triton")


@pytest.mark.parametrize("backend", ["triton", "cupy"])
def test_fused_backends_refuse_what_they_cannot_take(backend):
    inputs = five_by_five()
    with pytest.raises(ValueError, match="takes float16 or float32 maps, got torch.float64"):
        kernels.decode(*(t.double() for t in inputs), max_people=2, threshold=0.5, backend=backend)
    with pytest.raises(ValueError, match="keeps at most 1024 people"):
        kernels.decode(*inputs, max_people=1025, threshold=0.5, backend=backend)

"""The exported graph's top-k decode keeps the decode contract: the same candidates as ``kernels.decode_ref``, in
PyTorch and (the decode alone, exported) in ONNX Runtime and OpenVINO, ties included."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kernels.decode_ref import decode_ref, find_peaks_ref, gather_candidates
from models.export.graph import decode_topk, gather_candidates_rows, tie_ordered_topk

FIELDS = ("scores", "indices", "valid", "keypoints", "kpt_queries", "inst_queries")


def maps(b=2, h=7, w=9, k=3, ck=2, ci=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 1, h, w, generator=g), 3 * torch.randn(b, 2 * k, h, w, generator=g),
            torch.randn(b, k * ck, h, w, generator=g), torch.randn(b, ci, h, w, generator=g))


def plateau_maps():
    """Ties everywhere: a plateau of equal peaks, equal peaks far apart, a peak on each border."""
    score, offsets, kfeat, ifeat = maps(b=1, h=6, w=8)
    score.fill_(-5.0)
    score[0, 0, 2:4, 3:5] = 1.0       # a 2x2 plateau: all four are peaks
    score[0, 0, 0, 0] = 1.0           # equal to it, in a corner
    score[0, 0, 5, 7] = 1.0           # and in the other one
    score[0, 0, 0, 7] = 2.0
    return score, offsets, kfeat, ifeat


def check_same(got, want):
    for f in FIELDS:
        a, b = getattr(got, f), getattr(want, f)
        if f in ("indices", "valid"):
            assert torch.equal(a, b), f
        else:
            torch.testing.assert_close(a.float(), b.float(), rtol=0, atol=1e-6, msg=f)


@pytest.mark.parametrize("shape,n", [((2, 7, 9), 5), ((1, 2, 3), 20), ((3, 16, 24), 8)])
def test_topk_decode_matches_reference_on_random_maps(shape, n):
    b, h, w = shape
    args = maps(b, h, w)
    kw = dict(max_people=n, threshold=0.3, nms_kernel=3)
    check_same(decode_topk(*args, **kw), decode_ref(*args, **kw))


@pytest.mark.parametrize("seed", range(6))
def test_row_gathers_are_the_reference_gathers_bit_for_bit_and_skip_padding_slots(seed):
    b, h, w, k, ck = 2, 5 + seed, 9 - seed, 3, 2
    score, offsets, kfeat, ifeat = maps(b, h, w, k, ck, seed=seed)
    offsets[0, :, 0, 0] = 1e3  # a peak whose keypoints leave the map on every side: clamped to the border
    offsets[1, :, -1, -1] = -1e3
    score[:, :, 0, 0], score[:, :, -1, -1] = 9.0, 9.0
    peaks = find_peaks_ref(score, 6, threshold=0.3, nms_kernel=3)
    want = gather_candidates(offsets, kfeat, ifeat, *peaks)
    noise = torch.randn(b, 2, h, w) * 100  # a padding slot of garbage: never read
    padded_offsets, padded_kfeat = torch.cat([offsets, noise], 1), torch.cat([kfeat, noise[:, :ck]], 1)
    for args in ((offsets, kfeat), (padded_offsets, padded_kfeat)):
        got = gather_candidates_rows(args[0], args[1], ifeat, *peaks, num_keypoints=k, kfeat_channels=ck)
        for f in FIELDS:
            assert torch.equal(getattr(got, f), getattr(want, f)), f
    assert (want.keypoints.abs() > 100).any() and want.valid.sum() >= 2


def test_topk_decode_keeps_the_tie_rule_and_pads_unused_slots():
    args = plateau_maps()
    got = decode_topk(*args, max_people=9, threshold=0.5, nms_kernel=3)
    check_same(got, decode_ref(*args, max_people=9, threshold=0.5, nms_kernel=3))
    assert got.indices[0].tolist() == [7, 0, 19, 20, 27, 28, 47, -1, -1]


class DecodeOnly(torch.nn.Module):
    def forward(self, score, offsets, kfeat, ifeat):
        c = decode_topk(score, offsets, kfeat, ifeat, max_people=9, threshold=0.5, nms_kernel=3)
        return c.scores, c.indices, c.valid, c.keypoints, c.kpt_queries, c.inst_queries


@pytest.fixture(scope="module")
def decode_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("decode") / "decode.onnx"
    names = ["score", "offsets", "kfeat", "ifeat"]
    torch.onnx.export(DecodeOnly(), maps(b=1, h=6, w=8), str(path), input_names=names,
                      dynamic_axes={n: {0: "b", 2: "h", 3: "w"} for n in names}, opset_version=17, dynamo=False)
    return path


def run_onnxruntime(path, inputs):
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {n: t.numpy() for n, t in zip(("score", "offsets", "kfeat", "ifeat"), inputs)})


def run_openvino(path, inputs):
    ov = pytest.importorskip("openvino")
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    result = compiled([t.numpy() for t in inputs])
    return [result[o] for o in compiled.outputs]


@pytest.mark.parametrize("run", [run_onnxruntime, run_openvino], ids=["onnxruntime", "openvino"])
@pytest.mark.parametrize("case", ["plateaus", "random", "small_map"])
def test_exported_decode_keeps_the_contract_in_each_runtime(decode_onnx, run, case):
    inputs = {"plateaus": plateau_maps(), "random": maps(b=2, h=10, w=12, seed=1),
              "small_map": maps(b=1, h=2, w=3, seed=2)}[case]
    want = decode_ref(*inputs, max_people=9, threshold=0.5, nms_kernel=3)
    got = run(decode_onnx, inputs)
    for f, array in zip(FIELDS, got):
        expected = getattr(want, f)
        if f in ("indices", "valid"):
            assert np.array_equal(array, expected.numpy()), (f, array, expected)
        else:
            np.testing.assert_allclose(array, expected.numpy(), rtol=0, atol=1e-5, err_msg=f)
    if case == "plateaus":
        assert got[1][0].tolist() == [7, 0, 19, 20, 27, 28, 47, -1, -1]
    assert math.isfinite(float(np.abs(got[0]).sum()))


@pytest.mark.parametrize("seed", range(8))
def test_tie_ordered_topk_is_the_stable_sort_whatever_the_ties(seed):
    g = torch.Generator().manual_seed(seed)
    m = int(torch.randint(1, 60, (1,), generator=g))
    k = int(torch.randint(1, m + 1, (1,), generator=g))
    x = torch.randint(-3, 4, (3, m), generator=g).float()  # few distinct values: ties at every rank
    x[0, ::3] = -math.inf
    x[1] = -math.inf
    want_values, want_index = torch.sort(x, dim=1, descending=True, stable=True)
    values, index = tie_ordered_topk(x, k)
    assert torch.equal(index, want_index[:, :k]) and torch.equal(values, want_values[:, :k])

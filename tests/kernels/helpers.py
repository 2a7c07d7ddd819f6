"""Inputs and comparisons shared by the decode tests: every fast backend is checked against ``decode_ref``."""
from __future__ import annotations

import torch

from kernels.candidates import Candidates
from kernels.decode_ref import decode_ref

FIELDS = ("scores", "indices", "valid", "keypoints", "kpt_queries", "inst_queries")
# Where the fused tests run: on the GPU when there is one, else on the CPU (Triton under its interpreter).
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# Scores are sigmoid(logit) in fp32; backends differ only in their exp. CPU: a few ulp (2**-21 relative is <= 4
# ulp). GPU: Triton's exp is ex2.approx of x*log2(e), about 2**-21 relative for logits that pass a threshold;
# 2**-18 leaves room.
SCORE_RTOL = 2.0**-18 if DEVICE == "cuda" else 2.0**-21


def random_inputs(batch: int, h: int, w: int, num_kpts: int = 2, ck: int = 3, ci: int = 4, *, seed: int,
                  dtype=torch.float32, quantum: float = 0.25, offset_scale: float = 4.0, device="cpu"):
    """Random maps; logits rounded to ``quantum`` so plateaus and ties occur; offsets reach outside the map."""
    g = torch.Generator().manual_seed(seed)
    score = (torch.randn(batch, 1, h, w, generator=g) * 2 / quantum).round() * quantum
    offsets = torch.randn(batch, 2 * num_kpts, h, w, generator=g) * offset_scale
    kfeat = torch.randn(batch, num_kpts * ck, h, w, generator=g)
    ifeat = torch.randn(batch, ci, h, w, generator=g)
    return tuple(t.to(device=device, dtype=dtype) for t in (score, offsets, kfeat, ifeat))


def assert_candidates_match(out: Candidates, inputs, *, score_rtol: float = SCORE_RTOL,
                            **decode_args) -> None:
    """``out`` agrees with the reference decode of ``inputs``.

    Exact: indices, validity, keypoints (one fp32 add), instance queries (a copy). Scores: within ``score_rtol``.
    Keypoint queries, fp32: a bilinear blend of 4 corners in [0, 1] weights; a different order of its 7 roundings
    (or fused multiply-adds) moves it by at most 8 ulp of the largest corner, so atol = 8 * 2**-24 * max|kfeat|.
    fp16 (flash-attention's rule): error against the fp32 reference at most twice PyTorch's own fp16 error + 1e-5.
    """
    ref = decode_ref(*inputs, **decode_args)
    for name in FIELDS:
        got, want = getattr(out, name), getattr(ref, name)
        assert got.shape == want.shape and got.dtype == want.dtype, (name, got.shape, got.dtype, want.dtype)
        assert got.device == want.device, (name, got.device, want.device)
    for name in ("indices", "valid", "keypoints", "inst_queries"):
        torch.testing.assert_close(getattr(out, name), getattr(ref, name), rtol=0, atol=0, equal_nan=True,
                                   msg=f"{name} differ")
    torch.testing.assert_close(out.scores, ref.scores, rtol=score_rtol, atol=0, msg="scores differ")

    kfeat = inputs[2]
    if kfeat.dtype == torch.float32:
        atol = 8 * 2.0**-24 * kfeat.abs().max().item()
        torch.testing.assert_close(out.kpt_queries, ref.kpt_queries, rtol=0, atol=atol)
    else:
        ref32 = decode_ref(*(t.float() for t in inputs), **decode_args).kpt_queries
        torch_error = (ref.kpt_queries.float() - ref32).abs().max().item()
        kernel_error = (out.kpt_queries.float() - ref32).abs().max().item()
        assert kernel_error <= 2 * torch_error + 1e-5, (kernel_error, torch_error)
    assert (out.kpt_queries[~out.valid] == 0).all() and (out.keypoints[~out.valid] == 0).all()

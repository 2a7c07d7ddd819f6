"""Fused decode in Triton: peak search, top-N and every gather of one image in one launch.

Grid ``(B, K + 1)``: program ``(b, k)`` for ``k < K`` writes keypoint k of every slot of image b (offsets, keypoint,
bilinear query); program ``(b, K)`` writes the slot's score, index, validity and instance query. Every program
repeats the same peak search over its image (cheap, map-sized reads from L2, deterministic), so the whole decode is
one launch whose latency is one peak search plus 1/(K+1) of the gathers.

Peak search: the map is scanned in blocks of ``BLOCK`` flat pixels; each peak gets a strictly ordered int64 key
(order-preserving int32 bits of its fp32 logit in the high word, ``2**31 - 1 - index`` in the low word), so "larger
key" is exactly the contract's "score descending, then flat index ascending". A running top-N of keys lives in
registers; a block's keys enter it one at a time while its best key beats the running minimum, so sparse maps cost
one reduction per block and dense maps at most one insertion per kept peak. The N kept keys are sorted at the end.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.backend_checks import allocate_candidates, interpreting, prepare_fused_inputs
from kernels.candidates import Candidates
from kernels.decode_ref import threshold_logit

# No fused multiply-adds: the bilinear blend rounds as the reference does (fp32 results then match it exactly).
LAUNCH_OPTIONS = {"num_warps": 4, "enable_fp_fusion": False}
EMPTY_KEY = tl.constexpr(-(2**63))  # below every peak key; empty slots hold EMPTY_KEY + lane (distinct keys)
FULL_KEY = tl.constexpr(2**63 - 1)  # padding lanes >= max_people: never the running minimum, never replaced
LOWEST_PEAK_KEY = tl.constexpr(-(2**63) + 2**32)  # a peak's high word is above INT32_MIN (not a negative NaN)


@triton.jit
def _peak_keys(score_img, start, h, w, thr_logit, RADIUS: tl.constexpr, BLOCK: tl.constexpr):
    """Keys of the peaks among flat pixels ``start .. start+BLOCK-1``; EMPTY_KEY elsewhere."""
    idx = start + tl.arange(0, BLOCK)
    inside = idx < h * w
    row = idx // w
    col = idx % w
    logit = tl.load(score_img + idx, mask=inside, other=float("-inf")).to(tl.float32)
    # A peak is >= every neighbour in its clipped window (a NaN anywhere in it fails, as in the reference).
    peak = inside & (logit > thr_logit)
    for dy in tl.static_range(-RADIUS, RADIUS + 1):
        for dx in tl.static_range(-RADIUS, RADIUS + 1):
            ok = inside & (row + dy >= 0) & (row + dy < h) & (col + dx >= 0) & (col + dx < w)
            neighbour = tl.load(score_img + idx + (dy * w + dx), mask=ok, other=float("-inf")).to(tl.float32)
            peak = peak & (logit >= neighbour)
    bits = tl.where(logit == 0.0, 0.0, logit).to(tl.int32, bitcast=True)  # -0 ties with +0, as floats compare
    ordered = bits ^ ((bits >> 31) & 0x7FFFFFFF)  # same order as the floats, as signed integers
    key = (ordered.to(tl.int64) << 32) + (0x7FFFFFFF - idx).to(tl.int64)
    return tl.where(peak, key, EMPTY_KEY)


@triton.jit
def _decode_kernel(
    # inputs, contiguous NCHW
    score_ptr, off_ptr, kfeat_ptr, ifeat_ptr,
    # outputs, contiguous
    scores_ptr, indices_ptr, valid_ptr, kpts_ptr, kq_ptr, iq_ptr,
    # sizes
    h, w, num_kpts, ck, ci, max_people, thr_logit,
    # meta-parameters
    RADIUS: tl.constexpr, BLOCK: tl.constexpr, NPAD: tl.constexpr, BLOCK_C: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    part = tl.program_id(1)
    hw = h * w
    score_img = score_ptr + b * hw
    lane = tl.arange(0, NPAD)
    in_n = lane < max_people

    # Phase 1: running top-N of peak keys over the map, block by block.
    # Empty slots hold distinct keys below every peak; padding lanes hold the largest key and are never replaced.
    top = tl.where(in_n, EMPTY_KEY + lane.to(tl.int64), FULL_KEY)
    floor = tl.min(top, axis=0)  # the running N-th best key: a peak must beat it to enter
    for start in range(0, hw, BLOCK):
        keys = _peak_keys(score_img, start, h, w, thr_logit, RADIUS, BLOCK)
        best = tl.max(keys, axis=0)
        while best > floor:
            top = tl.where(top == floor, best, top)
            keys = tl.where(keys == best, EMPTY_KEY, keys)
            best = tl.max(keys, axis=0)
            floor = tl.min(top, axis=0)

    # Phase 2: order the kept keys (descending key = score descending, index ascending) and decode them.
    top = tl.sort(tl.where(in_n, top, EMPTY_KEY), descending=True)
    valid = in_n & (top >= LOWEST_PEAK_KEY)
    pix = tl.where(valid, 0x7FFFFFFF - (top & 0x7FFFFFFF), 0)  # int64 flat index, 0 in empty slots
    pix32 = pix.to(tl.int32)  # offsets inside one image fit in int32 (checked by the wrapper)
    slot = b * max_people + lane

    if part < num_kpts:
        # Phase 3a: keypoint `part` of every slot, then kfeat sampled there (border-clamped bilinear, fp32).
        k = part
        off_img = off_ptr + b * (2 * num_kpts * hw)
        dx = tl.load(off_img + (2 * k) * hw + pix32, mask=valid, other=0.0).to(tl.float32)
        dy = tl.load(off_img + (2 * k + 1) * hw + pix32, mask=valid, other=0.0).to(tl.float32)
        kx = tl.where(valid, (pix32 % w).to(tl.float32) + dx, 0.0)
        ky = tl.where(valid, (pix32 // w).to(tl.float32) + dy, 0.0)
        tl.store(kpts_ptr + (slot * num_kpts + k) * 2, kx, mask=in_n)
        tl.store(kpts_ptr + (slot * num_kpts + k) * 2 + 1, ky, mask=in_n)

        xs = tl.minimum(tl.maximum(tl.where(kx == kx, kx, 0.0), 0.0), w - 1.0)  # NaN counts as 0
        ys = tl.minimum(tl.maximum(tl.where(ky == ky, ky, 0.0), 0.0), h - 1.0)
        x0 = xs.to(tl.int32)  # floor: xs >= 0
        y0 = ys.to(tl.int32)
        wx = (xs - x0.to(tl.float32))[:, None]
        wy = (ys - y0.to(tl.float32))[:, None]
        x1 = tl.minimum(x0 + 1, w - 1)
        y1 = tl.minimum(y0 + 1, h - 1)
        p00 = (y0 * w + x0)[:, None]
        p01 = (y0 * w + x1)[:, None]
        p10 = (y1 * w + x0)[:, None]
        p11 = (y1 * w + x1)[:, None]
        kfeat_img = kfeat_ptr + b * (num_kpts * ck * hw)
        for c0 in range(0, ck, BLOCK_C):
            cc = c0 + tl.arange(0, BLOCK_C)
            cmask = (cc < ck)[None, :]
            load_mask = valid[:, None] & cmask
            chan = kfeat_img + (k * ck + cc[None, :]) * hw
            v00 = tl.load(chan + p00, mask=load_mask, other=0.0).to(tl.float32)
            v01 = tl.load(chan + p01, mask=load_mask, other=0.0).to(tl.float32)
            v10 = tl.load(chan + p10, mask=load_mask, other=0.0).to(tl.float32)
            v11 = tl.load(chan + p11, mask=load_mask, other=0.0).to(tl.float32)
            value = v00 * (1 - wx) * (1 - wy) + v01 * wx * (1 - wy) + v10 * (1 - wx) * wy + v11 * wx * wy
            out = kq_ptr + (slot * num_kpts + k)[:, None] * ck + cc[None, :]
            tl.store(out, value.to(kq_ptr.dtype.element_ty), mask=in_n[:, None] & cmask)
    else:
        # Phase 3b: score, index, validity and the instance feature at the peak pixel.
        logit = tl.load(score_img + pix32, mask=valid, other=0.0).to(tl.float32)
        tl.store(scores_ptr + slot, tl.where(valid, 1.0 / (1.0 + tl.exp(-logit)), 0.0), mask=in_n)
        tl.store(indices_ptr + slot, tl.where(valid, pix, -1), mask=in_n)
        tl.store(valid_ptr + slot, valid.to(tl.int8), mask=in_n)
        ifeat_img = ifeat_ptr + b * (ci * hw)
        for c0 in range(0, ci, BLOCK_C):
            cc = c0 + tl.arange(0, BLOCK_C)
            cmask = (cc < ci)[None, :]
            value = tl.load(ifeat_img + cc[None, :] * hw + pix32[:, None], mask=valid[:, None] & cmask, other=0.0)
            tl.store(iq_ptr + slot[:, None] * ci + cc[None, :], value, mask=in_n[:, None] & cmask)


def launch_config(h: int, w: int, max_people: int, channels: int, interpreter: bool = False) -> dict:
    """Meta-parameters: blocks of <= 1024 pixels, N padded to a power of two, gather tiles of <= 512 values.

    Sized for 4 warps on sm_90 without register spills (about 130 registers a thread, measured with cuobjdump).
    The CPU interpreter pays per operation, not per register: it gets 4x larger gather tiles (the same pixel
    blocks, so that its tests cover maps of several blocks exactly as the GPU runs them).
    """
    scale = 4 if interpreter else 1
    npad = max(2, triton.next_power_of_2(max_people))
    block_c = max(1, min(triton.next_power_of_2(max(channels, 1)), 512 * scale // npad))
    return {"BLOCK": min(1024, triton.next_power_of_2(h * w)), "NPAD": npad, "BLOCK_C": block_c}


def decode_triton(score: torch.Tensor, offsets: torch.Tensor, kfeat: torch.Tensor, ifeat: torch.Tensor, *,
                  max_people: int, threshold: float, nms_kernel: int = 3) -> Candidates:
    """Fused Triton decode; same signature and contract as ``decode_ref`` (see ``kernels/__init__.py``).

    ================  ========================  ===========================================
    argument          shape                     dtype
    ================  ========================  ===========================================
    ``score``         [B, 1, h, w]              float16 / float32 (logits)
    ``offsets``       [B, 2K, h, w]             float16 / float32 (dx_0, dy_0, dx_1, ...)
    ``kfeat``         [B, K*Ck, h, w]           float16 / float32
    ``ifeat``         [B, Ci, h, w]             float16 / float32
    returns           ``Candidates``            scores [B,N] f32, indices [B,N] i64,
                                                valid [B,N] bool, keypoints [B,N,K,2] f32,
                                                kpt_queries [B,N,K,Ck] kfeat's dtype,
                                                inst_queries [B,N,Ci] ifeat's dtype
    ================  ========================  ===========================================

    CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``. One launch, no host synchronisation.
    """
    num_kpts, ck, (score, offsets, kfeat, ifeat) = prepare_fused_inputs(score, offsets, kfeat, ifeat, "triton",
                                                                        max_people, nms_kernel)
    if not score.is_cuda and not interpreting():
        raise RuntimeError("the triton decode backend needs CUDA tensors (or TRITON_INTERPRET=1 for its CPU "
                           "interpreter); use backend='torch' on the CPU")
    out = allocate_candidates(score, kfeat, ifeat, max_people, num_kpts)
    if score.shape[0] == 0:
        return out
    h, w = score.shape[2:]
    meta = launch_config(h, w, max_people, max(ck, ifeat.shape[1]), interpreter=not score.is_cuda)
    launch((score, offsets, kfeat, ifeat), out, num_kpts, ck, threshold, nms_kernel, meta, LAUNCH_OPTIONS)
    return out


def launch(inputs, out: Candidates, num_kpts: int, ck: int, threshold: float, nms_kernel: int, meta: dict,
           options: dict) -> None:
    """The one launch of ``_decode_kernel`` over checked, contiguous ``inputs`` into ``out`` (``kernels.tune``
    calls it with other ``meta`` / ``options``)."""
    score, offsets, kfeat, ifeat = inputs
    b, _, h, w = score.shape
    max_people = out.scores.shape[1]
    _decode_kernel[(b, num_kpts + 1)](
        score, offsets, kfeat, ifeat,
        out.scores, out.indices, out.valid.view(torch.uint8), out.keypoints, out.kpt_queries, out.inst_queries,
        h, w, num_kpts, ck, ifeat.shape[1], max_people, threshold_logit(threshold),
        RADIUS=nms_kernel // 2, **options, **meta,
    )

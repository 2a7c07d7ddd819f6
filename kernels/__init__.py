"""The fused decode between the dense and the sparse stage.

``decode(score, offsets, kfeat, ifeat, *, max_people, threshold, nms_kernel=3, backend="auto") -> Candidates``

Inputs (B images, map h x w, K keypoints):

================  ===============  ==============================================================================
``score``         [B, 1, h, w]     CIR logits
``offsets``       [B, 2K, h, w]    channels (dx_0, dy_0, dx_1, dy_1, ...) in feature-map pixels; keypoint k of the
                                   pose at pixel (y, x) is ``(x + dx_k, y + dy_k)``
``kfeat``         [B, K*Ck, h, w]  per-keypoint features; channels ``k*Ck .. (k+1)*Ck-1`` belong to keypoint k
``ifeat``         [B, Ci, h, w]    instance features
================  ===============  ==============================================================================

Conventions:

- Peak: a pixel whose logit equals the maximum of its ``nms_kernel x nms_kernel`` window (the window is clipped
  at the border; equal neighbours are all peaks) and whose ``sigmoid(logit) > threshold``, tested as
  ``logit > log(threshold / (1 - threshold))`` so that no sigmoid runs over the map.
- Order: the top ``max_people`` peaks by score descending, then flat index ``y * w + x`` ascending; -0.0 and +0.0
  are equal logits. A NaN logit is never a peak and no pixel whose window holds a NaN is one.
- Coordinates: pixel (y, x) has its centre at integer (x, y). Keypoints are not clamped; for bilinear sampling a
  point outside ``[0, w-1] x [0, h-1]`` is clamped into that range first (border padding), and a NaN coordinate
  (a diverged network) counts as 0; the keypoint itself stays NaN.
- Precision: scores and keypoints are computed in fp32; queries come out in the dtype of the features
  (interpolation in fp32).
- Unused slots: ``valid`` False, ``indices`` -1, every other field 0.
- Fixed output shapes and no host synchronisation in any backend, so the whole decode can be captured in a
  CUDA graph.

Backends share this signature: ``torch`` (``kernels.decode_ref``, the reference, and the CPU path),
``triton`` (``kernels.decode_triton``) and ``cupy`` (``kernels.decode_cupy`` over ``kernels/decode.cu``), both fused
into one launch. ``auto`` picks triton for CUDA tensors and torch otherwise. The fused backends take float16 or
float32 maps (cupy: score and offsets of one dtype, kfeat and ifeat of one dtype) and at most 1024 people; they need
CUDA tensors, except that triton runs CPU tensors under its interpreter (``TRITON_INTERPRET=1``, the CPU tests).
Anything else gets one ValueError / RuntimeError naming the problem and the fix (e.g. ``backend='torch'``).
"""
from __future__ import annotations

from kernels.candidates import Candidates
from kernels.decode_ref import decode_ref

BACKENDS = ("auto", "torch", "triton", "cupy")


def decode(score, offsets, kfeat, ifeat, *, max_people: int, threshold: float, nms_kernel: int = 3,
           backend: str = "auto") -> Candidates:
    """Decode peaks and gather pose queries; see the module docstring for the contract."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown decode backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        backend = "triton" if score.is_cuda else "torch"
    if backend == "torch":
        return decode_ref(score, offsets, kfeat, ifeat, max_people=max_people, threshold=threshold,
                          nms_kernel=nms_kernel)
    if backend == "triton":
        from kernels.decode_triton import decode_triton
        return decode_triton(score, offsets, kfeat, ifeat, max_people=max_people, threshold=threshold,
                             nms_kernel=nms_kernel)
    from kernels.decode_cupy import decode_cupy
    return decode_cupy(score, offsets, kfeat, ifeat, max_people=max_people, threshold=threshold,
                       nms_kernel=nms_kernel)


__all__ = ["BACKENDS", "Candidates", "decode", "decode_ref"]

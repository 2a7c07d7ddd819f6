"""Fused decode in CUDA C (``kernels/decode.cu``), compiled by NVRTC through ``cupy.RawModule``.

CuPy is imported on first use only, so the package works without it (``pip install cupy-cuda13x``, the ``cuda``
extra, to use this backend). Torch tensors are handed over as raw device pointers and the kernel runs on torch's
current CUDA stream, so it orders with the surrounding torch work and can be captured in a CUDA graph (compile
first: the first call per device and dtype pair builds the module).
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from kernels.backend_checks import allocate_candidates, prepare_fused_inputs
from kernels.candidates import Candidates
from kernels.decode_ref import threshold_logit

CU_SOURCE = Path(__file__).with_name("decode.cu")
THREADS = 256  # DECODE_THREADS in decode.cu
CUDA_TYPES = {torch.float32: "float", torch.float16: "f16"}
# (map dtype, feature dtype) -> template instantiation; the map dtype is that of score and offsets.
KERNEL_NAMES = {(m, f): f"decode_kernel<{CUDA_TYPES[m]}, {CUDA_TYPES[f]}>" for m in CUDA_TYPES for f in CUDA_TYPES}


def import_cupy():
    """``cupy``, or one clear error saying how to get it."""
    try:
        import cupy
    except ImportError as exc:
        raise RuntimeError("the cupy decode backend needs CuPy: pip install cupy-cuda13x (the 'cuda' extra), "
                           "or use backend='triton' / 'torch'") from exc
    return cupy


@functools.lru_cache(maxsize=None)
def _module():
    cupy = import_cupy()
    return cupy.RawModule(code=CU_SOURCE.read_text(), options=("-std=c++17",),
                          name_expressions=tuple(KERNEL_NAMES.values()))


@functools.lru_cache(maxsize=64)
def _external_stream(pointer: int, device: int):
    """CuPy's view of a torch stream; a RawKernel launches on CuPy's current stream (``with stream:``)."""
    return import_cupy().cuda.ExternalStream(pointer, device)


def decode_cupy(score: torch.Tensor, offsets: torch.Tensor, kfeat: torch.Tensor, ifeat: torch.Tensor, *,
                max_people: int, threshold: float, nms_kernel: int = 3) -> Candidates:
    """Fused CUDA C decode; same signature, shapes and contract as ``decode_triton`` / ``decode_ref``.

    Score and offsets share one dtype, kfeat and ifeat another (each float16 or float32). CUDA tensors only.
    One launch on torch's current stream, no host synchronisation.
    """
    num_kpts, ck, (score, offsets, kfeat, ifeat) = prepare_fused_inputs(score, offsets, kfeat, ifeat, "cupy",
                                                                        max_people, nms_kernel)
    if not score.is_cuda:
        raise RuntimeError("the cupy decode backend needs CUDA tensors; use backend='torch' on the CPU")
    if score.dtype != offsets.dtype or kfeat.dtype != ifeat.dtype:
        raise ValueError(f"the cupy decode backend needs score and offsets of one dtype and kfeat and ifeat of "
                         f"one dtype, got {score.dtype}/{offsets.dtype} and {kfeat.dtype}/{ifeat.dtype}")
    cupy = import_cupy()
    b, _, h, w = score.shape
    ci = ifeat.shape[1]
    out = allocate_candidates(score, kfeat, ifeat, max_people, num_kpts)
    if b == 0:
        return out
    dev = score.device
    pointers = [np.uint64(t.data_ptr()) for t in (score, offsets, kfeat, ifeat, out.scores, out.indices, out.valid,
                                                    out.keypoints, out.kpt_queries, out.inst_queries)]
    sizes = [np.int32(v) for v in (h, w, num_kpts, ck, ci, max_people, nms_kernel // 2)]
    device = dev.index if dev.index is not None else torch.cuda.current_device()
    with cupy.cuda.Device(device), _external_stream(torch.cuda.current_stream(dev).cuda_stream, device):
        kernel = _module().get_function(KERNEL_NAMES[(score.dtype, kfeat.dtype)])
        kernel((b, num_kpts + 1), (THREADS,), (*pointers, *sizes, np.float32(threshold_logit(threshold))))
    return out

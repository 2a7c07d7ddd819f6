"""What the fused backends (triton, cupy) share: input checks (one clear error naming the problem and the fix) and
the allocation of their outputs."""
from __future__ import annotations

import os

import torch

from kernels.candidates import Candidates
from kernels.decode_ref import check_inputs

SUPPORTED_DTYPES = (torch.float16, torch.float32)
MAX_PEOPLE_FUSED = 1024  # slots live in registers / shared memory; the torch backend has no such limit


def interpreting() -> bool:
    """True when Triton runs its CPU interpreter (``TRITON_INTERPRET=1``), which accepts CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


def check_fused_inputs(tensors, backend: str, max_people: int) -> None:
    """Device, dtype and size limits of the fused backends (shapes are checked by ``check_inputs``)."""
    devices = {t.device for t in tensors}
    if len(devices) != 1:
        raise ValueError(f"decode inputs must share one device, got {sorted(map(str, devices))}")
    for t in tensors:
        if t.dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"the {backend} decode backend takes float16 or float32 maps, got {t.dtype}; "
                             f"convert the inputs or use backend='torch'")
    if max_people > MAX_PEOPLE_FUSED:
        raise ValueError(f"the {backend} decode backend keeps at most {MAX_PEOPLE_FUSED} people, got "
                         f"max_people={max_people}; use backend='torch' for more")
    b, _, h, w = tensors[0].shape
    if max(t.shape[1] for t in tensors) * h * w >= 2**31:
        raise ValueError(f"one image of the decode inputs has 2**31 or more elements ({h}x{w} map); "
                         f"split the channels or use backend='torch'")


def prepare_fused_inputs(score, offsets, kfeat, ifeat, backend: str, max_people: int, nms_kernel: int):
    """Shape checks of the contract plus the fused limits; returns ``(K, Ck, contiguous inputs)``."""
    num_kpts, ck = check_inputs(score, offsets, kfeat, ifeat, max_people, nms_kernel)
    tensors = (score, offsets, kfeat, ifeat)
    check_fused_inputs(tensors, backend, max_people)
    return num_kpts, ck, tuple(t.contiguous() for t in tensors)


def allocate_candidates(score, kfeat, ifeat, max_people: int, num_kpts: int) -> Candidates:
    """Uninitialised outputs for a fused kernel, which writes every element (unused slots included); with no
    image (B = 0) they are already the whole, empty answer."""
    b, dev, n = score.shape[0], score.device, max_people
    return Candidates(
        scores=torch.empty(b, n, device=dev, dtype=torch.float32),
        indices=torch.empty(b, n, device=dev, dtype=torch.int64),
        valid=torch.empty(b, n, device=dev, dtype=torch.bool),
        keypoints=torch.empty(b, n, num_kpts, 2, device=dev, dtype=torch.float32),
        kpt_queries=torch.empty(b, n, num_kpts, kfeat.shape[1] // num_kpts, device=dev, dtype=kfeat.dtype),
        inst_queries=torch.empty(b, n, ifeat.shape[1], device=dev, dtype=ifeat.dtype),
    )

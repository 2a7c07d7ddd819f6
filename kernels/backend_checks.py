"""Input checks shared by the fused backends (triton, cupy): one clear error naming the problem and the fix."""
from __future__ import annotations

import os

import torch

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

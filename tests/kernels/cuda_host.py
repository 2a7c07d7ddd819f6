"""Runs the real ``kernels/decode.cu`` on the CPU: compiled with g++ against a small CUDA emulation header.

This checks the CUDA C decode's logic (peak search, buffer compaction, bitonic sort, gathers) against the reference
on machines without a GPU; the GPU tests run the same source through CuPy.
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import torch

from kernels.candidates import Candidates
from kernels.decode_ref import check_inputs, threshold_logit

HERE = Path(__file__).with_name("cuda_emulation")


def build(out_dir: Path) -> ctypes.CDLL:
    """Compile the emulated decode into a shared library; raises RuntimeError if g++ is missing or fails."""
    gxx = shutil.which("g++")
    if gxx is None:
        raise RuntimeError("g++ not found")
    lib = out_dir / "decode_host.so"
    cmd = [gxx, "-std=c++20", "-O1", "-ffp-contract=off", "-fPIC", "-shared", "-pthread", "-o", str(lib),
           str(HERE / "harness.cpp")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"g++ failed: {done.stderr[-2000:]}")
    library = ctypes.CDLL(str(lib))
    library.decode_host.argtypes = [ctypes.c_int] * 2 + [ctypes.c_void_p] * 10 + [ctypes.c_int] * 8 + [ctypes.c_float]
    return library


def decode_host(library: ctypes.CDLL, score, offsets, kfeat, ifeat, *, max_people: int, threshold: float,
                nms_kernel: int = 3) -> Candidates:
    """The CUDA C decode run on CPU tensors; same contract as ``decode_ref``."""
    num_kpts, ck = check_inputs(score, offsets, kfeat, ifeat, max_people, nms_kernel)
    score, offsets, kfeat, ifeat = (t.contiguous() for t in (score, offsets, kfeat, ifeat))
    b, _, h, w = score.shape
    ci, n = ifeat.shape[1], max_people
    # Filled with garbage: the kernel must write every element itself.
    out = Candidates(scores=torch.full((b, n), 7.0), indices=torch.full((b, n), 7, dtype=torch.int64),
                     valid=torch.ones(b, n, dtype=torch.bool), keypoints=torch.full((b, n, num_kpts, 2), 7.0),
                     kpt_queries=torch.full((b, n, num_kpts, ck), 7.0, dtype=kfeat.dtype),
                     inst_queries=torch.full((b, n, ci), 7.0, dtype=ifeat.dtype))
    library.decode_host(int(score.dtype == torch.float16), int(kfeat.dtype == torch.float16),
                        *(t.data_ptr() for t in (score, offsets, kfeat, ifeat, out.scores, out.indices, out.valid,
                                                 out.keypoints, out.kpt_queries, out.inst_queries)),
                        b, h, w, num_kpts, ck, ci, n, nms_kernel // 2, threshold_logit(threshold))
    return out

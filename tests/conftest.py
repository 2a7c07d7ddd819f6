"""Test-wide setup: Triton runs in its CPU interpreter unless a GPU is here, and `gpu` tests skip without CUDA."""
import os

import pytest

import torch

# Must be set before any module defining Triton kernels is imported. With a GPU, kernels run compiled.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
# `--backend auto` on the bundled checkpoint builds its int8 twin once per cache (NNCF calibration and AP on the
# benchmark split, a minute or more): the command-line tests, each with a time limit, leave int8 out;
# tests/models/export/test_int8.py builds a small twin and tests auto with it.
os.environ.setdefault("QEM_AUTO_INT8", "0")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)

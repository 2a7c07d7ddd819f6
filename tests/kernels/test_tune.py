"""The launch sweep: one error line without CUDA; on CUDA every variant matches the reference."""
import pytest
import torch

from tests.cli import assert_one_error_line, run_module


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without CUDA")
def test_without_cuda_it_says_so_in_one_line():
    assert_one_error_line(run_module("kernels.tune", "--sizes", "32"), "needs CUDA")


@pytest.mark.gpu
def test_every_swept_variant_matches_the_reference():
    from kernels.tune import sweep

    rows = sweep([32], blocks=[256, 1024, 4096], warps=[4, 8], repeats=3)
    assert len(rows) == 4 and all(r["correct"] and r["graph_us"] > 0 for r in rows)  # 4096 > 32*32: skipped
    assert sum(r["default"] for r in rows) == 1

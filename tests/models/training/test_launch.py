"""Training's failures end in one line: the benchmark path without a GPU, and the distributed launcher (one line
from rank 0, a non-zero exit, no traceback), as real command lines."""
import subprocess
import sys

import pytest
import torch

from models.training.launch import strip_nproc
from tests.cli import ROOT, assert_one_error_line, run_module


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_benchmark_on_cuda_without_a_gpu_is_one_line(tmp_path):
    proc = run_module("models", "train", "--benchmark", "3", "--device", "cuda", "--synth", tmp_path)
    assert_one_error_line(proc, "no CUDA device is available; use --device cpu")


def test_strip_nproc_keeps_every_other_argument():
    argv = ["--config", "tiny", "--nproc-per-node", "2", "--epochs", "1", "--nproc-per-node=4", "--out", "r"]
    assert strip_nproc(argv) == ["--config", "tiny", "--epochs", "1", "--out", "r"]


MISSING = ["--config", "tiny", "--train-ann", "missing.json", "--train-images", ".", "--device", "cpu"]


@pytest.mark.slow
def test_launcher_with_a_missing_file_is_one_line_from_rank_0():
    proc = run_module("models", "train", "--nproc-per-node", "2", *MISSING, timeout=180)
    assert_one_error_line(proc, "missing.json does not exist")
    assert "rank 1" not in proc.stderr


@pytest.mark.slow
def test_plain_torchrun_prints_the_error_once_from_rank_0():
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "models.training.train", *MISSING], cwd=ROOT, capture_output=True, text=True,
                          timeout=180)
    ours = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode != 0
    assert ours == ["error: annotation file missing.json does not exist; check --ann / --data"], proc.stderr

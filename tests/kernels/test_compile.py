"""The decode kernels compile for a real GPU target (sm_90) without a GPU, in processes without the interpreter."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def compile_check(*args, interpret="0"):
    env = {**os.environ, "TRITON_INTERPRET": interpret}
    return subprocess.run([sys.executable, "-m", "kernels.compile_check", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_triton_kernel_compiles_for_sm90_in_fp16_and_fp32():
    done = compile_check("--triton-only", "--arch", "90")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 6 and all(line.startswith("triton sm_90") for line in lines)
    assert {"fp16", "fp32"} == {line.split()[2] for line in lines}


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not found")
def test_cuda_source_compiles_with_nvcc_for_every_dtype_pair():
    done = compile_check("--cuda-only", "--arch", "90")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("cuda ")]
    assert [line.split(":")[0] for line in lines] == [
        "cuda sm_90 decode_kernel<float, float>", "cuda sm_90 decode_kernel<float, f16>",
        "cuda sm_90 decode_kernel<f16, float>", "cuda sm_90 decode_kernel<f16, f16>"]


def test_cuda_source_compiles_with_nvrtc_and_its_name_expressions():
    from kernels.compile_check import find_nvrtc

    if find_nvrtc() is None:
        pytest.skip("libnvrtc not found (pip install nvidia-cuda-nvrtc)")
    done = compile_check("--cuda-only", "--arch", "90")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("nvrtc ")]
    assert len(lines) == 4 and all("_Z13decode_kernelI" in line for line in lines)


def test_compile_check_refuses_to_run_under_the_interpreter():
    done = compile_check("--triton-only", interpret="1")
    assert done.returncode != 0
    assert done.stderr.strip() == "error: TRITON_INTERPRET is set; compile for a GPU target in a process without it"


def test_cuda_source_ships_as_package_data_and_cupy_stays_optional():
    setup = (ROOT / "setup.py").read_text()
    assert '"kernels": ["*.cu"]' in setup and (ROOT / "kernels" / "decode.cu").is_file()
    assert "cupy" not in (ROOT / "requirements" / "ci.txt").read_text()  # CI has no GPU


def test_package_imports_without_cupy():
    code = "import sys; sys.modules['cupy'] = None; import kernels, kernels.decode_cupy, kernels.bench; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr

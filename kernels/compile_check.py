"""Compile the decode kernels for a real GPU target without a GPU: Triton to PTX/cubin, the CUDA C with nvcc.

    python -m kernels.compile_check [--arch 90] [--triton-only | --cuda-only]

Triton: ``triton.compile(ASTSource(...), target=GPUTarget("cuda", arch, 32))`` for fp16 and fp32 maps and three
launch configurations; this catches errors that the interpreter accepts. Must run without ``TRITON_INTERPRET``.
CUDA C: ``nvcc -ptx -arch=sm_<arch>`` of ``kernels/decode.cu`` with every template instantiation, and NVRTC (what
CuPy compiles with) with every name expression; each is skipped with a message when nvcc / libnvrtc is absent.
Prints one line per compiled variant; exits non-zero with ``error: ...`` on failure.
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CU_SOURCE = Path(__file__).with_name("decode.cu")
DTYPES = {"fp32": "fp32", "fp16": "fp16"}


def compile_triton(arch: int) -> list[str]:
    """Compile ``_decode_kernel`` for ``sm_<arch>``; returns one description line per variant."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, compile as triton_compile

    from kernels.decode_triton import LAUNCH_OPTIONS, _decode_kernel, launch_config

    sizes = ("h", "w", "num_kpts", "ck", "ci", "max_people")
    # (h, w, people, channels, radius); the 1x1 case has every size 1, which Triton specialises into a constant.
    cases = ((128, 128, 30, 32, 1), (67, 45, 100, 256, 2), (1, 1, 1, 1, 1))
    lines = []
    for map_dtype in DTYPES.values():
        for h, w, people, channels, radius in cases:
            meta = launch_config(h, w, people, channels)
            signature = {name: f"*{map_dtype}" for name in ("score_ptr", "off_ptr", "kfeat_ptr", "ifeat_ptr")}
            signature.update({"scores_ptr": "*fp32", "indices_ptr": "*i64", "valid_ptr": "*u8",
                              "kpts_ptr": "*fp32", "kq_ptr": f"*{map_dtype}", "iq_ptr": f"*{map_dtype}"})
            signature.update({name: "i32" for name in sizes})
            signature["thr_logit"] = "fp32"
            constexprs = {"RADIUS": radius, **meta, **({name: 1 for name in sizes} if h == 1 else {})}
            signature.update({name: "constexpr" for name in constexprs})
            source = ASTSource(_decode_kernel, signature, constexprs=constexprs)
            kernel = triton_compile(source, target=GPUTarget("cuda", arch, 32), options=LAUNCH_OPTIONS)
            ptx = kernel.asm["ptx"]
            lines.append(f"triton sm_{arch} {map_dtype} {h}x{w} people={people} {meta} radius={radius}: "
                         f"{len(ptx)} chars of PTX, {len(kernel.asm['cubin'])} bytes of cubin")
    return lines


def compile_cuda(arch: int) -> list[str]:
    """``nvcc -ptx`` of the CUDA C source; every instantiation must appear in the PTX."""
    from kernels.decode_cupy import KERNEL_NAMES

    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return ["cuda: skipped, nvcc not found"]
    with tempfile.TemporaryDirectory() as tmp:
        ptx_path = Path(tmp) / "decode.ptx"
        cmd = [nvcc, "-ptx", f"-arch=sm_{arch}", "-std=c++17", "-o", str(ptx_path), str(CU_SOURCE)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"nvcc failed: {done.stderr.strip()}")
        ptx = ptx_path.read_text()
    entries = [line.split()[2].rstrip("(") for line in ptx.splitlines() if line.startswith(".visible .entry")]
    missing = [name for name in KERNEL_NAMES.values() if not any(e.startswith(mangled_prefix(name)) for e in entries)]
    if missing:
        raise RuntimeError(f"nvcc PTX lacks the instantiations {missing}")
    return [f"cuda sm_{arch} {name}: {mangled_prefix(name)}... in PTX" for name in KERNEL_NAMES.values()]


def find_nvrtc() -> str | None:
    """Path of libnvrtc: from the ``nvidia-cuda-nvrtc`` wheel (``nvidia/cu13/lib``) or the system's loader."""
    try:
        import nvidia  # namespace package of NVIDIA's CUDA wheels

        for root in nvidia.__path__:
            found = sorted(Path(root).glob("cu*/lib/libnvrtc.so*")) + sorted(Path(root).glob("*/lib/libnvrtc.so*"))
            found = [f for f in found if ".alt." not in f.name]
            if found:
                return str(found[0])
    except ImportError:
        pass
    return ctypes.util.find_library("nvrtc")


def compile_nvrtc(arch: int) -> list[str]:
    """NVRTC (what ``cupy.RawModule`` uses) on the CUDA C source with every name expression; needs libnvrtc."""
    from kernels.decode_cupy import KERNEL_NAMES

    path = find_nvrtc()
    if path is None:
        return ["nvrtc: skipped, libnvrtc not found (pip install nvidia-cuda-nvrtc)"]
    for builtins in sorted(Path(path).parent.glob("libnvrtc-builtins.so*")):  # NVRTC loads it by name at compile
        if ".alt." not in builtins.name:
            ctypes.CDLL(str(builtins), mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(path)
    prog = ctypes.c_void_p()
    source = CU_SOURCE.read_bytes()

    def check(status: int, what: str) -> None:
        if status != 0:
            raise RuntimeError(f"{what} failed with NVRTC status {status}")

    check(lib.nvrtcCreateProgram(ctypes.byref(prog), source, b"decode.cu", 0, None, None), "nvrtcCreateProgram")
    try:
        for name in KERNEL_NAMES.values():
            check(lib.nvrtcAddNameExpression(prog, name.encode()), "nvrtcAddNameExpression")
        options = [f"--gpu-architecture=compute_{arch}".encode(), b"-std=c++17"]
        status = lib.nvrtcCompileProgram(prog, len(options), (ctypes.c_char_p * len(options))(*options))
        if status != 0:
            size = ctypes.c_size_t()
            lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetProgramLog(prog, log)
            raise RuntimeError(f"NVRTC failed: {log.value.decode(errors='replace').strip()}")
        lines = []
        for name in KERNEL_NAMES.values():
            lowered = ctypes.c_char_p()
            check(lib.nvrtcGetLoweredName(prog, name.encode(), ctypes.byref(lowered)), "nvrtcGetLoweredName")
            lines.append(f"nvrtc compute_{arch} {name}: {lowered.value.decode()}")
        return lines
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def mangled_prefix(name: str) -> str:
    """Start of the Itanium-mangled name of ``decode_kernel<A, B>`` (A, B in float / f16): name and template args."""
    base, args = name.rstrip(">").split("<")
    codes = {"float": "f", "f16": "3f16"}
    first, second = (codes[a.strip()] for a in args.split(","))
    if first == second == "f":
        targs = "ff"
    elif first == second:
        targs = f"{first}S0_"
    else:
        targs = first + second
    return f"_Z{len(base)}{base}I{targs}E"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kernels.compile_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 90 for sm_90 (default)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--triton-only", action="store_true", help="compile only the Triton kernel")
    which.add_argument("--cuda-only", action="store_true", help="compile only the CUDA C source")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        sys.exit("error: TRITON_INTERPRET is set; compile for a GPU target in a process without it")
    try:
        lines = [] if args.cuda_only else compile_triton(args.arch)
        lines += [] if args.triton_only else compile_cuda(args.arch) + compile_nvrtc(args.arch)
    except Exception as exc:  # one line for whatever the compilers raise
        sys.exit(f"error: {type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

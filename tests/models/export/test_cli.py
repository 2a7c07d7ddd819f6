"""``qem export`` and the exported models in ``qem predict`` / ``qem val``, as a user runs them (subprocesses):
what they write, and one ``error:`` line for each kind of bad input."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.cli import ROOT, assert_one_error_line, run_module

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")


def run_without(package: str, *args: str) -> subprocess.CompletedProcess:
    """``qem ARGS`` with ``package`` hidden, as on a machine without it (``sys.modules[name] = None``)."""
    code = (f"import sys; sys.modules[{package!r}] = None; from models.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_export_then_run_in_the_pipeline(tmp_path, random_checkpoint):
    out = tmp_path / "net_openvino"
    proc = run_module("models", "export", "--weights", random_checkpoint, "--format", "openvino", "--dynamic",
                      "--out", out)
    assert proc.returncode == 0 and (out / "model.xml").is_file() and (out / "model.bin").is_file(), proc.stderr
    assert f"-> {out} (openvino, dynamic H, W, fp32)" in proc.stderr
    run = run_module("models", "predict", "--source", "synth", "--weights", out, "--imgsz", "64", "--max-frames", "3",
                     "--no-show", "--no-save", "--no-jsonl", "--no-progress", "--threads", "1")
    assert run.returncode == 0, run.stderr
    assert "backend: openvino" in run.stderr and "summary: 3 frames out" in run.stderr


@pytest.mark.parametrize("args,words", [
    (["--format", "onnx", "--int8", "--calib", "x"], "format 'onnx' does not take --int8"),
    (["--format", "openvino", "--int8"], "--int8 needs --calib DIR"),
    (["--imgsz", "100"], "--imgsz must be positive multiples of 32, got 100x100"),
    (["--weights", "missing.pt"], "checkpoint file not found"),
])
def test_export_bad_arguments_are_one_line(args, words):
    assert_one_error_line(run_module("models", "export", *args), words)


def test_a_missing_runtime_names_the_pip_extra(tmp_path):
    assert_one_error_line(run_without("openvino", "export", "--format", "openvino", "--out", tmp_path / "m"),
                          "pip install -e .[deploy]")
    assert_one_error_line(run_without("openvino", "predict", "--source", "synth", "--backend", "openvino",
                                      "--no-show", "--no-save", "--no-jsonl", "--max-frames", "1"),
                          "backend 'openvino' needs the 'openvino' package")


def test_bad_artefacts_and_mismatched_sizes_are_one_line(tmp_path, onnx_static, synth4):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(onnx_static.read_bytes()[:5000])
    predict = ["predict", "--source", "synth", "--no-show", "--no-save", "--no-jsonl", "--max-frames", "1"]
    assert_one_error_line(run_module("models", *predict, "--weights", corrupt), "not a readable ONNX model")
    assert_one_error_line(run_module("models", *predict, "--weights", onnx_static, "--imgsz", "128"),
                          "exported for input 64x96 (H x W), not the 128 asked for")
    empty = tmp_path / "empty_openvino"
    empty.mkdir()
    assert_one_error_line(run_module("models", "val", "--data", synth4, "--checkpoint", empty, "--no-flip"),
                          "without an OpenVINO model")
    assert_one_error_line(run_module("models", "val", "--data", synth4, "--checkpoint", onnx_static),
                          "flip and shift test run on the torch backend only, not onnxruntime; pass --no-flip")
    assert_one_error_line(run_module("models", *predict, "--weights", empty), "without an OpenVINO model")
    assert_one_error_line(run_module("models", *predict, "--weights", onnx_static, "--backend", "openvino"),
                          "cannot run with --backend openvino")

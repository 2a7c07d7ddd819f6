"""Exported models give what ``Predictor.forward`` gives, within a derived tolerance; metadata round-trips; the
runtime follows the path; bad artefacts and mismatched inputs are one clear error."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from models import Predictor
from models.export.formats import ExportError, backend_for_path
from models.export.graph import InferenceGraph
from models.export.runtime import OnnxRuntime, OpenVinoRuntime, load_runtime
from tests.models.export.conftest import random_net

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

SPARSE = ("keypoints", "keypoint_scores", "score_logits", "keypoint_logits", "labelled_logits")
CANDS = ("scores", "keypoints", "kpt_queries", "inst_queries")


def fields(result):
    cands, out = result
    return {**{f"c.{f}": getattr(cands, f).double() for f in CANDS},
            **{f"s.{f}": getattr(out, f).double() for f in SPARSE}}


def fp64_result(x):
    """The graph in float64: the reference that both fp32 implementations are measured against."""
    from models.export.graph import to_result
    with torch.no_grad():
        return to_result(InferenceGraph(random_net().double())(x.double()))


# Snapped keypoints: the parabola's vertex divides log-probability differences by their curvature, so it multiplies
# the dense stage's rounding (the error of the heatmap logits) by up to 1/curvature; on the test net PyTorch fp32 lands
# 1e-5..4e-5 feature px from the fp64 graph and ONNX Runtime 2e-4..4e-4. Bound: 1e-3 feature px (4e-3 input px).
SNAP_TOL = 1e-3


def check_against_torch(runtime, x):
    """Peaks identical to the PyTorch Predictor's; every other output no further from the fp64 graph than twice
    PyTorch fp32's own distance from it, plus 1e-5 (fp32 rounding of values near zero): the tolerance of a second
    fp32 implementation, derived from the first one's error rather than guessed (snapped keypoints: ``SNAP_TOL``)."""
    want = Predictor(random_net()).forward(x)
    got = runtime(x)
    assert torch.equal(got[0].indices, want[0].indices) and torch.equal(got[0].valid, want[0].valid)
    assert got[0].valid.any() and not got[0].valid.all(), "the test net must give some peaks and some empty slots"
    ref, w, g = fields(fp64_result(x)), fields(want), fields(got)
    for name in ref:
        torch_err = (w[name] - ref[name]).abs().max().item()
        err = (g[name] - ref[name]).abs().max().item()
        bound = max(2 * torch_err + 1e-5, SNAP_TOL if name == "s.keypoints" else 0.0)
        assert err <= bound, (name, err, torch_err)


def test_static_onnx_agrees_with_the_predictor(onnx_static):
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    check_against_torch(load_runtime(onnx_static), x)


@pytest.mark.parametrize("shape", [(2, 3, 64, 96), (1, 3, 96, 64)])
@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_dynamic_exports_agree_at_two_shapes(onnx_dynamic, openvino_dynamic, fmt, shape):
    runtime = load_runtime(onnx_dynamic if fmt == "onnx" else openvino_dynamic, precision="fp32")
    check_against_torch(runtime, torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape))))


def test_metadata_round_trips(onnx_static, openvino_dynamic, random_checkpoint):
    from models.export.exporter import sha256
    onnx_rt, ov_rt = load_runtime(onnx_static), load_runtime(openvino_dynamic)
    assert onnx_rt.cfg == random_net().cfg == ov_rt.cfg
    assert onnx_rt.imgsz == (64, 96) and onnx_rt.meta.imgsz == (64, 96) and not onnx_rt.meta.dynamic
    assert ov_rt.imgsz is None and ov_rt.meta.dynamic
    for meta in (onnx_rt.meta, ov_rt.meta):
        assert meta.checkpoint_sha256 == sha256(random_checkpoint)
        assert meta.stride == 4 and meta.kpt_shape == (17, 2) and meta.pose_score == "labelled_mean"
        assert meta.precision == "fp32" and meta.outputs[-1] == "labelled_logits"
        assert "gray 114 padding" in meta.letterbox
    assert onnx_rt.meta.args["imgsz"] == [64, 96]


def test_the_path_picks_the_runtime(onnx_static, openvino_dynamic, random_checkpoint):
    assert isinstance(load_runtime(onnx_static), OnnxRuntime)
    assert isinstance(load_runtime(openvino_dynamic), OpenVinoRuntime)
    assert isinstance(load_runtime(openvino_dynamic / "model.xml"), OpenVinoRuntime)
    assert load_runtime(random_checkpoint).backend == "torch"
    assert backend_for_path(random_checkpoint) == "torch"
    with pytest.raises(ExportError, match="unknown model format '.tflite'"):
        backend_for_path(random_checkpoint.with_suffix(".tflite"))
    with pytest.raises(ExportError, match="cannot run with --backend openvino"):
        load_runtime(onnx_static, backend="openvino")


def test_predictor_runs_an_exported_model_end_to_end(onnx_static):
    images = [np.random.default_rng(0).integers(0, 255, (48, 72, 3), dtype=np.uint8)]
    plain, exported = Predictor(random_net(), input_size=64), Predictor(str(onnx_static), input_size=None)
    assert exported.runtime.backend == "onnxruntime" and exported.input_size == 96
    with pytest.raises(ValueError, match="exported for input 64x96 .* not the 128 asked for"):
        Predictor(str(onnx_static), input_size=128)
    with pytest.raises(ValueError, match="flip and shift test run on the torch backend only"):
        Predictor(str(onnx_static), flip_test=True)
    with pytest.raises(ExportError, match=r"exported for input 64x96 \(H x W\) but the pipeline gives 64x64"):
        exported.forward(torch.zeros(1, 3, 64, 64))
    assert len(plain.predict(images)) == 1


def test_corrupt_and_foreign_artefacts_are_one_line(tmp_path, onnx_static):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all" * 10)
    with pytest.raises(ExportError, match="not a readable ONNX model") as exc:
        load_runtime(bad)
    assert "\n" not in str(exc.value)
    import onnx
    model = onnx.load(str(onnx_static))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "foreign.onnx"))
    with pytest.raises(ExportError, match="not a model exported by `qem export`"):
        load_runtime(tmp_path / "foreign.onnx")
    model.metadata_props.add(key="qem_pose", value=json.dumps({"format": "something else"}))
    onnx.save(model, str(tmp_path / "other.onnx"))
    with pytest.raises(ExportError, match="foreign 'qem_pose' metadata"):
        load_runtime(tmp_path / "other.onnx")
    import openvino as ov
    ov.save_model(ov.convert_model(str(tmp_path / "foreign.onnx")), str(tmp_path / "foreign_openvino" / "model.xml"))
    with pytest.raises(ExportError, match="foreign_openvino: no 'qem_pose' metadata"):
        load_runtime(tmp_path / "foreign_openvino")
    folder = tmp_path / "broken_openvino"
    folder.mkdir()
    (folder / "model.xml").write_text("<net><broken")
    with pytest.raises(ExportError, match="not a readable OpenVINO model"):
        load_runtime(folder)
    with pytest.raises(ExportError, match="without an OpenVINO model"):
        load_runtime(tmp_path)


def test_a_missing_runtime_names_the_extra(monkeypatch, onnx_static):
    import importlib.util
    from models.export import formats
    real = importlib.util.find_spec
    monkeypatch.setattr(formats.importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime"
                        else real(name, *a))
    with pytest.raises(ExportError, match=r"pip install -e \.\[deploy\]"):
        load_runtime(onnx_static)


def test_torch_precisions(random_checkpoint, monkeypatch):
    from models.export import runtime as rt
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(5))
    fp32 = load_runtime(random_checkpoint, "torch", "fp32")
    assert fp32.precision == "fp32"
    assert torch.equal(fp32(x)[1].keypoints, Predictor(random_net()).forward(x)[1].keypoints)
    monkeypatch.setattr(rt, "cpu_has_bf16", lambda: False)
    assert rt.default_precision("torch") == "fp32" and rt.default_precision("openvino") == "bf16"
    with pytest.raises(ExportError, match="precision bf16 needs a CPU with avx512_bf16 or AMX"):
        load_runtime(random_checkpoint, "torch", "bf16")
    with pytest.raises(ExportError, match="backend 'onnxruntime' runs at precision fp32, not 'bf16'"):
        load_runtime(random_checkpoint, "onnxruntime", "bf16")
    monkeypatch.setattr(rt, "cpu_has_bf16", lambda: True)
    bf16 = Predictor(str(random_checkpoint), backend="torch", precision="bf16")
    assert bf16.runtime.precision == "bf16" and bf16.forward(x)[0].scores.shape == (1, 8)


@pytest.mark.slow
def test_int8_export_quantizes_and_runs(random_checkpoint, synth4, tmp_path):
    pytest.importorskip("nncf")
    from models.export.exporter import export
    out = export(random_checkpoint, "openvino", imgsz=[64, 96], int8=True, calib=synth4, out=tmp_path / "q_openvino",
                 quiet=True)
    runtime = load_runtime(out, precision="fp32")
    assert runtime.meta.precision == "int8" and runtime.meta.args["calib"] == str(synth4)
    quantized = [consumer.get_node().get_friendly_name() for op in runtime.model.get_ordered_ops()
                 if op.get_type_name() == "FakeQuantize" for consumer in op.output(0).get_target_inputs()]
    assert quantized and all(name.startswith(("/backbone/", "/heads/")) for name in quantized), quantized
    cands, sparse = runtime(torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(3)))
    assert cands.scores.shape == (1, 8) and torch.isfinite(sparse.keypoints).all()
    with pytest.raises(ExportError, match="no images"):
        export(random_checkpoint, "openvino", int8=True, calib=tmp_path / "q_openvino", out=tmp_path / "x", quiet=True)


def test_a_static_export_letterboxes_into_its_own_shape_and_agrees_with_rect_torch(onnx_static):
    """Exported for 64x96 (H x W): a landscape image fills that canvas as the rectangular torch path would
    (96x64 content, no padding), with the same poses; a portrait one does not fit: one clear error."""
    image = np.random.default_rng(1).integers(0, 255, (48, 72, 3), dtype=np.uint8)
    exported, plain = Predictor(str(onnx_static)), Predictor(random_net(), input_size=96)
    batch, boxes = exported.preprocess([image])
    assert tuple(batch.shape) == (1, 3, 64, 96) and (boxes[0].pad_x, boxes[0].pad_y) == (0, 0)
    assert tuple(plain.preprocess([image])[0].shape) == (1, 3, 64, 96)
    a, b = exported.predict([image])[0], plain.predict([image])[0]
    assert len(a) == len(b) > 0
    np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-2)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
    with pytest.raises(ValueError, match=r"cannot hold a 72x48 \(H x W\) image at 96 px; export it again with --dynamic .*"
                                         "or pass --imgsz 64") as err:
        exported.preprocess([image.transpose(1, 0, 2).copy()])
    assert "\n" not in str(err.value)
    smaller = Predictor(str(onnx_static), input_size=64)  # the fix the message offers: it fits, and runs
    assert len(smaller.predict([image.transpose(1, 0, 2).copy()])) == 1


@pytest.mark.slow
def test_the_pipeline_on_a_portrait_photo_with_a_static_model_says_what_to_do(onnx_static, tmp_path):
    import cv2

    from tests.cli import run_module

    photo = tmp_path / "portrait.png"
    cv2.imwrite(str(photo), np.zeros((120, 60, 3), np.uint8))
    base = ["--source", photo, "--weights", onnx_static, "--no-show", "--project", tmp_path / "runs"]
    proc = run_module("realtime", *base)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert last.startswith("error: ") and "cannot hold a 120x60 (H x W) image at 96 px" in last
    assert "--dynamic" in last and "--imgsz 64" in last
    assert not (tmp_path / "runs" / "exp").exists()  # a run that wrote nothing leaves no folder
    fixed = run_module("realtime", *base, "--imgsz", "64")  # the advice works
    assert fixed.returncode == 0, fixed.stderr
    assert cv2.imread(str(tmp_path / "runs" / "exp" / "portrait.png")).shape == (120, 60, 3)  # exp: the first left none


def test_openvino_streams_return_each_submitted_batch_in_order(openvino_dynamic):
    """Three requests over two THROUGHPUT streams, all in flight at once: each result is its own batch's, equal to
    the one-stream (LATENCY) runtime's on the same input; a request comes round again only once collected."""
    one = load_runtime(openvino_dynamic, precision="fp32", threads=2)
    two = load_runtime(openvino_dynamic, precision="fp32", threads=2, streams=2)
    assert (one.streams, one.in_flight, two.streams, two.in_flight) == (1, 1, 2, 4)
    assert two.config["PERFORMANCE_HINT"] == "THROUGHPUT" and two.config["NUM_STREAMS"] == 2
    g = torch.Generator().manual_seed(5)
    batches = [torch.randn(1, 3, 64, 96, generator=g) for _ in range(7)]
    want = [fields(one(x)) for x in batches]
    pending, got = [], []
    for x in batches:
        pending.append(two.submit(x))
        if len(pending) == two.in_flight:
            got.append(fields(pending.pop(0).result()))
    got += [fields(p.result()) for p in pending]
    assert len(got) == len(want)
    for g_, w in zip(got, want):
        for name in w:
            torch.testing.assert_close(g_[name], w[name], rtol=0, atol=1e-5, msg=name)
    assert not torch.equal(want[0]["c.scores"], want[1]["c.scores"]), "the batches must differ to tell them apart"
    assert load_runtime(openvino_dynamic, threads=1, streams=2).streams == 1  # no more streams than threads


def test_openvino_requests_dropped_in_flight_never_block_the_next_batch(openvino_dynamic):
    """A run stopped mid-file drops the batches it had in flight (their requests still running): the next submit
    waits for its request instead of failing with "Infer Request is busy", and gives its own batch's result; a
    dropped batch whose request was reused raises, never returning another batch's result."""
    one = load_runtime(openvino_dynamic, precision="fp32", threads=2)
    two = load_runtime(openvino_dynamic, precision="fp32", threads=2, streams=2)
    g = torch.Generator().manual_seed(6)
    big = torch.randn(1, 3, 384, 640, generator=g)  # slow enough that the first request is still busy
    dropped = [two.submit(big) for _ in range(two.in_flight)]
    x = torch.randn(1, 3, 384, 640, generator=g)
    got, want = fields(two.submit(x).result()), fields(one(x))
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=1e-5, msg=name)
    with pytest.raises(RuntimeError, match="reused"):
        dropped[0].result()
    assert fields(dropped[1].result())["c.scores"].shape == want["c.scores"].shape


def test_openvino_takes_uint8_canvases_and_normalises_them_itself(openvino_dynamic):
    """The letterboxed uint8 RGB canvases [B,H,W,3] give what their normalised float batch gives (OpenVINO's
    preprocessing folds the normalisation into the graph: only the rounding of the input differs)."""
    from models.preprocess import normalize

    runtime = load_runtime(openvino_dynamic, precision="fp32", threads=1)
    assert runtime.takes_uint8 and not OnnxRuntime.takes_uint8
    canvases = torch.randint(0, 256, (2, 64, 96, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    want, got = runtime(normalize(canvases)), runtime(canvases)
    assert torch.equal(got[0].indices, want[0].indices) and got[0].valid.any()
    for name, value in fields(got).items():
        torch.testing.assert_close(value, fields(want)[name], rtol=1e-4, atol=1e-4, msg=name)
    assert set(runtime.compiled) == {((2, 3, 64, 96), False), ((2, 64, 96, 3), True)}

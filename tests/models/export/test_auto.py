"""``backend="auto"``: exported twins cached by checkpoint content, and the measured choice cached per machine."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from models import save_checkpoint
from models.export import auto
from tests.models.export.conftest import random_net

pytest.importorskip("onnxruntime")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(auto.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_twin_is_exported_once_and_again_when_the_checkpoint_changes(tmp_path, cache, monkeypatch):
    ckpt = save_checkpoint(tmp_path / "net.pt", random_net(0))
    first = auto.exported_twin(ckpt, "onnxruntime")
    assert first.parent == cache and first.suffix == ".onnx" and first.is_file()
    import models.export.exporter as exporter
    real_export = exporter.export
    monkeypatch.setattr(exporter, "export", lambda *a, **k: pytest.fail("exported again"))
    assert auto.exported_twin(ckpt, "onnxruntime") == first
    save_checkpoint(ckpt, random_net(1))  # new weights, same file name
    monkeypatch.setattr(exporter, "export", real_export)
    second = auto.exported_twin(ckpt, "onnxruntime")
    assert second != first and second.is_file() and not first.exists()
    assert [p.name for p in cache.iterdir() if p.suffix == ".onnx"] == [second.name]


def test_auto_picks_the_fastest_measured_and_caches_the_choice(tmp_path, cache, monkeypatch, capsys):
    import models.export.runtime as runtime
    ckpt = save_checkpoint(tmp_path / "net.pt", random_net(0))
    monkeypatch.setattr(auto, "installed", lambda b: True)
    monkeypatch.setattr(runtime, "load_runtime",
                        lambda path, backend, precision, *a, **k: SimpleNamespace(precision=precision))
    monkeypatch.setattr(auto, "time_runtimes", timings({"torch": 9.0, "onnxruntime": 2.0, "openvino": 4.0}))
    assert auto.choose(ckpt, None, 2, 64) == ("onnxruntime", "fp32")
    line = capsys.readouterr().err.strip()
    assert line.startswith("backend auto: onnxruntime fp32, the fastest within the AP limits on this CPU at 1x3x64x64 "
                           "(square: the first frame's size is not known before it arrives), 2 threads")
    assert "(onnxruntime fp32 2.0 ms; openvino bf16 4.0 ms; torch " in line and "measured now" in line
    monkeypatch.setattr(auto, "time_runtimes", lambda rts, shape: pytest.fail("measured again"))
    assert auto.choose(ckpt, None, 2, 64) == ("onnxruntime", "fp32")
    assert "; cached," in capsys.readouterr().err
    monkeypatch.setattr(auto, "time_runtimes", timings({"torch": 1.0, "onnxruntime": 2.0, "openvino": 4.0}))
    assert auto.choose(ckpt, None, 1, 64)[0] == "torch"  # another thread count is measured on its own


def timings(ms: dict[str, float]):
    """A stand-in for ``time_runtimes``: each candidate ("BACKEND PRECISION") takes its backend's ``ms``."""
    return lambda rts, shape: {name: ms[name.split()[0]] for name in rts}


def test_auto_measures_at_the_canvas_of_the_runs_first_frame(tmp_path, cache, monkeypatch, capsys):
    import models.export.runtime as runtime
    ckpt = save_checkpoint(tmp_path / "net.pt", random_net(0))
    monkeypatch.setattr(auto, "installed", lambda b: True)
    monkeypatch.setattr(runtime, "load_runtime",
                        lambda path, backend, precision, *a, **k: SimpleNamespace(precision=precision))
    shapes = []

    def measure(rts, shape):
        shapes.append(shape)
        return {name: 1.0 for name in rts}
    monkeypatch.setattr(auto, "time_runtimes", measure)
    auto.choose(ckpt, None, 2, 320, frame=(360, 640))  # a 640x360 clip at input 320
    auto.choose(ckpt, None, 2, 320, frame=(1080, 1920))  # the same canvas: measured once
    auto.choose(ckpt, None, 2, 320, frame=(480, 640))
    auto.choose(ckpt, None, 2, 320, frame=(360, 640), rect=False)
    assert shapes == [(1, 3, 192, 320), (1, 3, 256, 320), (1, 3, 320, 320)]
    assert "at 1x3x192x320 (the canvas of the first frame, 640x360)" in capsys.readouterr().err


def test_the_predictor_hands_the_first_frame_to_auto(monkeypatch):
    from models import Predictor
    seen = {}

    def fake_choose(path, precision, threads, input_size, verbose, frame, rect):
        seen.update(frame=frame, rect=rect)
        return "torch", "fp32"
    monkeypatch.setattr(auto, "choose", fake_choose)
    Predictor(None, backend="auto", first_frame=(720, 1280))
    assert seen == {"frame": (720, 1280), "rect": True}


def test_auto_without_the_runtimes_is_torch_and_says_why(tmp_path, cache, monkeypatch, capsys):
    ckpt = save_checkpoint(tmp_path / "net.pt", random_net(0))
    monkeypatch.setattr(auto, "installed", lambda b: b == "torch")
    assert auto.choose(ckpt, None, 2, 64) == ("torch", None)
    assert "onnxruntime, openvino not installed: pip install -e .[deploy]" in capsys.readouterr().err


def test_auto_leaves_out_a_backend_that_cannot_load_the_model(tmp_path, cache, monkeypatch, capsys):
    import models.export.runtime as runtime
    ckpt = save_checkpoint(tmp_path / "net.pt", random_net(0))
    monkeypatch.setattr(auto, "installed", lambda b: True)

    def fake(path, backend, precision, *a, **k):
        if backend == "openvino":
            raise RuntimeError("cannot convert this model\nsecond line")
        return SimpleNamespace(precision=precision)
    monkeypatch.setattr(runtime, "load_runtime", fake)
    monkeypatch.setattr(auto, "time_runtimes", timings({"torch": 3.0, "onnxruntime": 2.0}))
    assert auto.choose(ckpt, None, 2, 64) == ("onnxruntime", "fp32")
    err = capsys.readouterr().err
    assert "warning: backend auto leaves out openvino: cannot convert this model\n" in err and "second" not in err

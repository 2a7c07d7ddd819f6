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
    monkeypatch.setattr(auto, "time_runtimes", lambda rts, shape: {"torch": 9.0, "onnxruntime": 2.0, "openvino": 4.0})
    assert auto.choose(ckpt, None, 2, 64) == ("onnxruntime", "fp32")
    line = capsys.readouterr().err.strip()
    assert line.startswith("backend auto: onnxruntime fp32, the fastest on this CPU at 1x3x64x64, 2 threads")
    assert "onnxruntime 2.0 ms, openvino 4.0 ms, torch 9.0 ms; measured now" in line
    monkeypatch.setattr(auto, "time_runtimes", lambda rts, shape: pytest.fail("measured again"))
    assert auto.choose(ckpt, None, 2, 64) == ("onnxruntime", "fp32")
    assert "; cached," in capsys.readouterr().err
    monkeypatch.setattr(auto, "time_runtimes", lambda rts, shape: {"torch": 1.0, "onnxruntime": 2.0, "openvino": 4.0})
    assert auto.choose(ckpt, None, 1, 64)[0] == "torch"  # another thread count is measured on its own


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
    ms = {"torch": 3.0, "onnxruntime": 2.0}
    monkeypatch.setattr(auto, "time_runtimes", lambda rts, shape: {b: ms[b] for b in rts})
    assert auto.choose(ckpt, None, 2, 64) == ("onnxruntime", "fp32")
    err = capsys.readouterr().err
    assert "warning: backend auto leaves out openvino: cannot convert this model\n" in err and "second" not in err

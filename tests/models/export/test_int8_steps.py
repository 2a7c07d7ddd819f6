"""Building the int8 twin on first use says each step on stderr as it starts (the steps themselves stubbed here:
drawing, quantizing and the AP measurements take about a minute together)."""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from models.export import auto, int8

pytest.importorskip("nncf")


def test_each_step_of_the_first_build_is_announced_before_it_runs(tmp_path, monkeypatch, capsys):
    import models.data.paths as paths
    import models.data.synth as synth
    import models.evaluation.evaluate as evaluate
    import models.export.exporter as exporter
    import models.inference.predictor as predictor

    monkeypatch.setenv(auto.CACHE_ENV, str(tmp_path))
    steps: list[tuple[str, str]] = []  # (a step, what stderr said since the step before)

    def step(name: str, result=None):
        steps.append((name, capsys.readouterr().err))
        return result

    def recorded(folder, accuracy, out: Path):
        os.makedirs(out)
        step("record")

    monkeypatch.setattr(synth, "write_split", lambda out, split, *a, **k: step(f"draw {split}"))
    monkeypatch.setattr(exporter, "export", lambda *a, **k: step("quantize", tmp_path / "quantized"))
    monkeypatch.setattr(auto, "exported_twin", lambda *a: step("fp32 twin", tmp_path / "fp32"))
    monkeypatch.setattr(paths, "resolve_data", lambda *a: (tmp_path / "ann.json", tmp_path / "images"))
    monkeypatch.setattr(predictor, "Predictor", lambda model, precision: f"{Path(model).name} at {precision}")
    monkeypatch.setattr(evaluate, "evaluate_predictor",
                        lambda model, *a, **k: step(f"AP of {model}", (SimpleNamespace(ap=0.5), None)))
    monkeypatch.setattr(int8, "record_accuracy", recorded)

    checkpoint = tmp_path / "net.pt"
    checkpoint.write_bytes(b"weights")  # read for its digest only
    assert int8.int8_twin(checkpoint, build=True) == int8.twin_path(checkpoint)
    said = {name: text.strip().splitlines() for name, text in steps}
    assert [name for name, _ in steps] == ["draw calib", "draw val", "quantize", "fp32 twin", "AP of fp32 at fp32",
                                           "AP of fp32 at bf16", "AP of quantized at None", "record"]
    assert said["draw calib"][0].startswith("building the int8 twin of net.pt once")
    assert said["draw calib"][1:] == ["drawing 300 images (synth_calib, seed 9101) ..."]
    assert said["draw val"] == ["drawing 500 images (synth_val, seed 9001) ..."]
    assert said["quantize"] == ["quantizing net.pt with NNCF on 300 calibration images ..."]
    for precision, name in (("fp32", "AP of fp32 at fp32"), ("bf16", "AP of fp32 at bf16"),
                            ("int8", "AP of quantized at None")):
        assert said[name] == [f"measuring the AP of openvino {precision} on 500 images of synth_val-9001-500 ..."]
    assert said["fp32 twin"] == said["record"] == []

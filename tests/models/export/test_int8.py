"""The int8 twin: the bundled checkpoint's is built with its AP recorded, cached and reused; its poses stay close to
fp32's; ``auto`` runs it only where it is faster and within the AP limit; ``qem export --twin`` refuses what it
cannot do in one line. (Small calibration and AP sets here; the real twin uses ``CALIB`` and ``BENCH_SPLIT``.)"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models import DEFAULT_CHECKPOINT, Predictor
from models.export import auto, int8

pytest.importorskip("nncf")
pytest.importorskip("openvino")
ROOT = Path(__file__).resolve().parents[3]
BUNDLED = Path(DEFAULT_CHECKPOINT)


@pytest.fixture(scope="module")
def said() -> list[str]:
    """What drawing and building said, step by step, as each started."""
    return []


@pytest.fixture(scope="module")
def drawn(tmp_path_factory, said) -> tuple[Path, Path]:
    """(calibration images, annotated split), both drawn by the project's generator."""
    root = tmp_path_factory.mktemp("drawn")
    calib = int8.SynthSplit("calib", 9101, 32, "calib").folder(root, said.append) / "calib"
    return calib, int8.SynthSplit("val", 9001, 12, "val").folder(root, said.append)


@pytest.fixture(scope="module")
def twin(drawn, said) -> Path:
    calib, val = drawn
    return int8.build_twin(BUNDLED, calib, val, calib_images=32, ap_images=12, log=said.append)


@pytest.mark.slow
def test_each_step_of_the_build_says_what_it_starts(twin, drawn, said):
    """No wait of the first run goes unexplained: drawing, quantizing and each AP measurement say so as they start."""
    val = drawn[1]
    assert said == ["drawing 32 images (calib, seed 9101) ...", "drawing 12 images (val, seed 9001) ...",
                    f"quantizing {BUNDLED.name} with NNCF on 32 calibration images ...",
                    *(f"measuring the AP of openvino {precision} on 12 images of {val.name} ..."
                      for precision in ("fp32", "bf16", "int8"))]


@pytest.mark.slow
def test_the_bundled_twin_is_int8_in_the_cache_with_its_ap_recorded(twin):
    assert twin == int8.twin_path(BUNDLED) and twin.parent == auto.cache_dir()
    meta = int8.read_metadata(twin)
    assert meta.precision == "int8" and meta.dynamic
    assert meta.accuracy["images"] == 12 and set(meta.accuracy["ap"]) == {"fp32", "bf16", "int8"}
    drops = int8.ap_drops(meta.accuracy)
    assert drops["fp32"] == 0 and abs(drops["int8"]) < 0.05  # 12 images: a coarse AP


@pytest.mark.slow
def test_the_twin_is_reused_not_built_again(twin, monkeypatch):
    monkeypatch.setattr(int8, "build_twin", lambda *a, **k: pytest.fail("built again"))
    assert int8.int8_twin(BUNDLED) == twin


@pytest.mark.slow
def test_the_int8_poses_stay_close_to_fp32(twin, drawn):
    """Confident fp32 poses have an int8 pose whose keypoints lie within 2 px (median over the keypoints) on these
    256 px images, 85% of them at least, and half within 0.5 px. Measured: with 32 calibration images 43 of 48
    within 1.5 px, median 0.3; with the real twin's 300, 20 of 21 within 1.1 px (bf16: all within 0.4 px)."""
    import cv2
    _, val = drawn
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted((val / "val").glob("*.png"))]
    fp32 = Predictor(auto.exported_twin(BUNDLED, "openvino"), precision="fp32").predict(images)
    predictor = Predictor(twin)
    assert predictor.runtime.precision == "int8"
    gaps = []
    for a, b in zip(fp32, predictor.predict(images)):
        for pose in a.keypoints[a.scores > 0.3]:
            d = np.linalg.norm(b.keypoints[..., :2] - pose[None, :, :2], axis=-1) if len(b.keypoints) else None
            gaps.append(np.inf if d is None else float(np.median(d, axis=1).min()))
    assert len(gaps) >= 15
    assert np.mean(np.array(gaps) < 2.0) >= 0.85 and np.median(gaps) < 0.5, np.round(gaps, 2)


@pytest.mark.slow
def test_auto_runs_the_twin_only_where_faster_and_within_the_limit(twin, monkeypatch, capsys):
    import models.export.runtime as runtime
    monkeypatch.setenv(auto.INT8_ENV, "1")

    def timings(ms):
        return lambda rts, shape: {name: ms.get(name, 50.0) for name in rts}
    monkeypatch.setattr(auto, "time_runtimes", timings({"openvino bf16": 9.0, "openvino int8": 7.0}))
    rt = runtime.load_runtime(BUNDLED, "auto", threads=2, frame=(360, 640))
    assert (rt.backend, rt.precision, Path(rt.source)) == ("openvino", "int8", twin)
    line = capsys.readouterr().err
    assert "backend auto: openvino int8" in line and "openvino int8 7.0 ms AP " in line
    monkeypatch.setattr(auto, "time_runtimes", timings({"openvino bf16": 6.0, "openvino int8": 7.0}))
    assert auto.choose(BUNDLED, None, 1, 320, frame=(360, 640)) == ("openvino", "bf16")  # slower: not chosen
    monkeypatch.setattr(int8, "ap_drops", lambda acc: {"fp32": 0.0, "bf16": 0.001, "int8": 0.03})
    monkeypatch.setattr(auto, "time_runtimes", timings({"openvino bf16": 9.0, "openvino int8": 7.0}))
    assert auto.choose(BUNDLED, None, 1, 256, frame=(360, 640)) == ("openvino", "bf16")
    assert "(left out: AP -0.0300, beyond the 0.02 limit)" in capsys.readouterr().err
    monkeypatch.setenv(auto.INT8_ENV, "0")
    monkeypatch.setattr(auto, "time_runtimes", timings({"openvino bf16": 9.0}))
    assert auto.choose(BUNDLED, None, 1, 320, frame=(360, 640)) == ("openvino", "bf16")
    assert "int8" not in capsys.readouterr().err


def test_a_new_twin_replaces_those_of_older_contents_and_keeps_other_versions(tmp_path):
    names = ["net-aaaaaaaaaaaa-11111111-int8_openvino", "net-aaaaaaaaaaaa-22222222-int8_openvino",
             "net-bbbbbbbbbbbb-11111111-int8_openvino", "net-v2-cccccccccccc-11111111-int8_openvino",
             "net-aaaaaaaaaaaa-11111111_openvino"]
    for name in names:
        (tmp_path / name).mkdir()
    stale = int8.stale_twins(tmp_path / names[0], "net")
    assert stale == [tmp_path / "net-bbbbbbbbbbbb-11111111-int8_openvino"]


@pytest.mark.parametrize("args, message, status", [
    (["--format", "openvino", "--int8", "--calib", "x", "--twin"], "--twin needs --int8, --calib DIR and --ap-data", 2),
    (["--format", "openvino", "--ap-data", "x"], "--ap-data only goes with --twin", 2),
    (["--format", "onnx", "--int8", "--calib", "x", "--ap-data", "y", "--twin"], "drop --format other than openvino",
     2),
    (["--format", "openvino", "--int8", "--calib", ".", "--ap-data", "missing", "--twin"], "missing does not exist", 1),
    (["--weights", "nope.pt", "--format", "onnx"], "nope.pt: checkpoint file not found", 1),
])
def test_export_refuses_in_one_line_2_for_options_1_for_what_they_name(args, message, status, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "models", "export", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**__import__("os").environ, "QEM_CACHE_DIR": str(tmp_path)})
    assert (proc.returncode, len(proc.stderr.strip().splitlines())) == (status, 1) and message in proc.stderr

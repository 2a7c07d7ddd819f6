"""``qem bench-decode --quick`` runs end to end and writes well-formed JSON and a plot (not timings)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_bench_writes_json_and_plot(tmp_path):
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    done = subprocess.run([sys.executable, "-m", "kernels.bench", "--quick", "--repeats", "2", "--threads", "1",
                           "--json", str(out_json), "--plot", str(out_png)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(out_json.read_text())
    assert {"device", "torch", "threads", "rows", "cuda"} <= set(report)
    assert report["rows"] and (report["cuda"] or report["threads"] == 1)  # --threads is for the CPU rows
    for row in report["rows"]:
        assert {"device", "backend", "sweep", "batch", "size", "people", "channels", "median_us"} <= set(row)
        assert row["device"] == report["device"] and row["median_us"] > 0
    sweeps = {row["sweep"] for row in report["rows"]}
    assert {"cpu target", "size", "people", "channels", "batch"} <= sweeps
    if not report["cuda"]:
        assert {row["backend"] for row in report["rows"]} == {"torch"}
        assert "need a CUDA device" in done.stdout
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["device"] in done.stdout


def test_bench_rejects_bad_arguments_with_one_line():
    done = subprocess.run([sys.executable, "-m", "kernels.bench", "--repeats", "0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and done.stderr.strip() == "error: --repeats must be >= 1"

"""A checkpoint's int8 twin: its dynamic OpenVINO export with the dense stage quantized (NNCF,
``models.export.quantize``), carrying in its metadata (``Metadata.accuracy``) the AP it and the fp32 twin (at fp32 and
at bf16) read on the benchmark split, so ``backend="auto"`` can tell whether it may run it
(``models.export.choice``).

- Where: the cache folder of the other twins (``models.export.auto.cache_dir``), named
  ``STEM-SHA12-KEY-int8_openvino`` (KEY: the export settings and versions, as for the fp32 twins). A new twin
  removes those of other contents of the same checkpoint name, but keeps those of other versions (another venv
  sharing the cache, e.g. the peer benchmark's, would otherwise rebuild it each time it runs).
- The bundled checkpoint's twin is built on first use by ``auto``: calibration images (``CALIB``) and the
  benchmark split (``BENCH_SPLIT``, what RESULTS.md and BENCHMARKS.md call it) are drawn by the project's synthetic
  generator into the cache folder; about a minute once, then read from the cache. Each step of the build says
  on stderr what it starts (drawing, quantizing, exporting, each AP measurement), so no wait goes unexplained.
- A user's checkpoint gets one with ``qem export --weights W --format openvino --int8 --calib DIR --ap-data VAL
  --twin`` (its own calibration images and annotated split); without ``--twin`` the export is written where asked
  and ``auto`` does not look for it.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from models.export.formats import META_KEY, Metadata

SUFFIX = "-int8_openvino"
Log = Callable[[str], None]


def to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def silent(line: str) -> None:
    pass


@dataclass(frozen=True)
class SynthSplit:
    """Images the project draws itself (``qem synth --num-images N --seed S --split NAME``, the easy preset)."""

    name: str
    seed: int
    images: int
    split: str

    def folder(self, root: Path, log: Log = silent) -> Path:
        """The split drawn under ``root`` (drawn now when absent, said to ``log``; written to a temporary folder,
        then renamed)."""
        from models.data import synth

        target = root / "data" / f"{self.name}-{self.seed}-{self.images}"
        if (target / "annotations" / f"person_keypoints_{self.split}.json").is_file():
            return target
        log(f"drawing {self.images} images ({self.name}, seed {self.seed}) ...")
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".draw-", dir=target.parent))
        try:
            synth.write_split(work, self.split, self.images, self.seed, synth.PRESETS["easy"], progress=False)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(work, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return target


BENCH_SPLIT = SynthSplit("synth_val", 9001, 500, "val")  # RESULTS.md: qem synth --num-images 500 --seed 9001 --split val
CALIB = SynthSplit("synth_calib", 9101, 300, "calib")  # another seed: never the images AP is measured on


def twin_path(checkpoint: Path) -> Path:
    """Where ``checkpoint``'s int8 twin lives in the cache folder (whether or not it exists)."""
    from models.export.auto import cache_dir, versions
    from models.export.exporter import sha256

    key = hashlib.sha256(f"openvino;dynamic;int8;{versions()}".encode()).hexdigest()[:8]
    return cache_dir() / f"{checkpoint.stem}-{sha256(checkpoint)[:12]}-{key}{SUFFIX}"


def read_metadata(folder: Path) -> Metadata:
    import openvino as ov

    model = ov.Core().read_model(str(folder / "model.xml"))
    text = model.get_rt_info(META_KEY).astype(str) if model.has_rt_info(META_KEY) else None
    return Metadata.from_json(text, str(folder))


def find_twin(checkpoint: Path) -> Path | None:
    """The cached int8 twin of ``checkpoint``, or None."""
    path = twin_path(checkpoint)
    return path if (path / "model.xml").is_file() else None


def int8_twin(checkpoint: Path, build: bool | None = None, verbose: bool = True) -> Path | None:
    """``checkpoint``'s int8 twin: the cached one; else, for the bundled checkpoint (or ``build=True``) where NNCF is
    installed, built now on images the project draws (module docstring); else None."""
    from models import DEFAULT_CHECKPOINT

    found = find_twin(checkpoint)
    if found is not None:
        return found
    if build is None:
        build = checkpoint.resolve() == Path(DEFAULT_CHECKPOINT).resolve()
    if not build or importlib.util.find_spec("nncf") is None:  # without NNCF (pip install -e .[deploy]): no int8
        return None
    from models.export.auto import cache_dir

    log = to_stderr if verbose else silent
    log(f"building the int8 twin of {checkpoint.name} once: calibrating on {CALIB.images} drawn images, AP on the "
        f"benchmark split ({BENCH_SPLIT.images} images; cached in {cache_dir()})")
    calib = CALIB.folder(cache_dir(), log) / CALIB.split
    bench = BENCH_SPLIT.folder(cache_dir(), log)
    return build_twin(checkpoint, calib, bench, CALIB.images, BENCH_SPLIT.images, log=log)


def build_twin(checkpoint: Path, calib: Path, ap_data: Path, calib_images: int = 300, ap_images: int = 500,
               out: Path | None = None, log: Log = to_stderr) -> Path:
    """Quantize ``checkpoint`` (dynamic OpenVINO int8, calibrated on ``calib``), measure AP on ``ap_data`` (a synth
    folder), record it in the twin's metadata and write the twin to ``out`` (default: ``twin_path``) atomically.
    ``log`` hears each step as it starts."""
    from models.export.exporter import export

    target = Path(out) if out is not None else twin_path(checkpoint)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".int8-", dir=target.parent))
    with contextlib.suppress(ImportError):
        import nncf  # noqa: F401 - imported first: importing it sets its logger's level
    nncf_log = logging.getLogger("nncf")
    level = nncf_log.level
    nncf_log.setLevel(logging.ERROR)  # its per-layer INFO lines say nothing to a user
    try:
        log(f"quantizing {checkpoint.name} with NNCF on {calib_images} calibration images ...")
        quantized = export(checkpoint, "openvino", dynamic=True, int8=True, calib=calib, calib_images=calib_images,
                           out=work / "quantized", quiet=True)
        accuracy = measure_accuracy(checkpoint, quantized, ap_data, ap_images, log)
        record_accuracy(quantized, accuracy, work / "recorded")
        if target.exists():
            shutil.rmtree(target)
        os.replace(work / "recorded", target)
    finally:
        nncf_log.setLevel(level)
        shutil.rmtree(work, ignore_errors=True)
    if out is None:
        for old in stale_twins(target, checkpoint.stem):
            shutil.rmtree(old, ignore_errors=True)
    return target


def stale_twins(target: Path, stem: str) -> list[Path]:
    """The int8 twins beside ``target`` of earlier contents of checkpoint ``stem`` (another SHA-256); those of the
    same contents under other versions (another venv sharing the cache) are not stale."""
    digest = target.name[len(stem) + 1:].split("-")[0]
    found = []
    for old in target.parent.glob(f"{stem}-*{SUFFIX}"):
        rest = old.name[len(stem) + 1:].split("-")
        if len(rest) == 3 and rest[0] != digest:
            found.append(old)
    return sorted(found)


def measure_accuracy(checkpoint: Path, quantized: Path, ap_data: Path, images: int, log: Log = silent) -> dict:
    """AP (no flip test: the exported graph has none) on the first ``images`` of ``ap_data`` of the fp32 twin at
    fp32 and bf16 and of ``quantized``: ``{"data": ..., "images": n, "ap": {precision: AP}}``. Each measurement is
    said to ``log`` as it starts."""
    from models.data.paths import resolve_data
    from models.evaluation.evaluate import evaluate_predictor
    from models.export.auto import exported_twin
    from models.inference.predictor import Predictor

    ann, image_dir = resolve_data(str(ap_data), None, None)
    fp32_twin = exported_twin(checkpoint, "openvino")
    ap = {}
    for precision, model in (("fp32", fp32_twin), ("bf16", fp32_twin), ("int8", quantized)):
        log(f"measuring the AP of openvino {precision} on {images} images of {Path(ap_data).name} ...")
        predictor = Predictor(model, precision=None if precision == "int8" else precision)
        report, _ = evaluate_predictor(predictor, ann, image_dir, images, progress=False)
        ap[precision] = round(float(report.ap), 4)
    return {"data": str(ap_data), "images": images, "ap": ap}


def record_accuracy(folder: Path, accuracy: dict, out: Path) -> None:
    """Write the OpenVINO model in ``folder`` to ``out`` with ``accuracy`` in its metadata."""
    import openvino as ov

    model = ov.Core().read_model(str(folder / "model.xml"))
    meta = replace(read_metadata(folder), accuracy=accuracy)
    model.set_rt_info(meta.to_json(), META_KEY)
    ov.save_model(model, str(out / "model.xml"), compress_to_fp16=False)


def ap_drops(accuracy: dict) -> dict[str, float]:
    """AP fp32 - AP p for each precision p recorded in ``accuracy`` (empty when fp32's is missing)."""
    ap = (accuracy or {}).get("ap", {})
    if "fp32" not in ap:
        return {}
    return {p: round(ap["fp32"] - v, 4) for p, v in ap.items()}


"""``backend="auto"`` on a CPU: the fastest installed backend, measured, and the exported twins it runs.

- Exported twin: a checkpoint's export (dynamic H, W, fp32) in the user cache folder (``$QEM_CACHE_DIR``, else
  ``$XDG_CACHE_HOME/qem-pose``, else ``~/.cache/qem-pose``), named by the checkpoint's sha256 and a key of the export
  settings and the torch / runtime / package versions: a changed checkpoint or upgraded runtime gets a new twin
  (older twins of the same checkpoint name are removed). Written atomically by ``models.export.exporter``.
- Choice: each installed backend at its default precision, and the checkpoint's int8 twin where it has one
  (``models.export.int8``; the bundled checkpoint's is built on first use; ``QEM_AUTO_INT8=0`` leaves int8 out), runs the network on a random batch of
  the shape the run will use: the canvas of its first frame (640x360 at input 320 -> 1x3x192x320), or the square
  input when that frame's size is not known beforehand; 2 warm-up calls, then 5 rounds alternating the candidates,
  median ms. The fastest candidate within the AP limits wins (``models.export.choice``). The measurement is cached
  in ``choices.json`` in the cache folder, keyed by checkpoint, shape, threads, int8 twin, CPU model and versions,
  so it is made once per machine and shape; delete the file to measure again. One line on stderr says what was
  picked and why (every candidate's ms, AP drops where recorded, what was left out).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from models.export.formats import FORMATS, EXTRA, installed
from models.export.exporter import OPSET, REVISION, package_version, sha256

CACHE_ENV = "QEM_CACHE_DIR"


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qem-pose"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def versions() -> str:
    return ";".join(f"{p}={_version(p)}" for p in ("torch", "onnx", "onnxruntime", "openvino")) + \
        f";qem={package_version()};opset={OPSET};rev={REVISION}"


def exported_twin(checkpoint: Path, backend: str) -> Path:
    """The checkpoint's dynamic fp32 export for ``backend`` in the cache folder, exported on first use."""
    from models.export.exporter import export

    fmt = FORMATS[backend]
    digest = sha256(checkpoint)
    key = hashlib.sha256(f"{fmt.name};dynamic;{versions()}".encode()).hexdigest()[:8]
    folder = cache_dir()
    target = folder / f"{checkpoint.stem}-{digest[:12]}-{key}{fmt.suffix}"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    print(f"exporting {checkpoint.name} for {backend} once (cached in {folder})", file=sys.stderr)
    export(checkpoint, fmt.name, dynamic=True, out=target, quiet=True)
    for old in folder.glob(f"{checkpoint.stem}-*{fmt.suffix}"):
        if old != target and old.name.count("-") == target.name.count("-"):
            _remove(old)
    return target


def _remove(path: Path) -> None:
    import shutil
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), which every speed figure names."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "unknown CPU"


def time_runtimes(runtimes: dict, shape: tuple[int, ...], warmup: int = 2, rounds: int = 5) -> dict[str, float]:
    """Median ms per call of each runtime on one random batch, rounds alternating the runtimes."""
    x = torch.randn(*shape)
    for rt in runtimes.values():
        for _ in range(warmup):
            rt(x)
    times: dict[str, list[float]] = {name: [] for name in runtimes}
    for _ in range(rounds):
        for name, rt in runtimes.items():
            t0 = time.perf_counter()
            rt(x)
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: statistics.median(v) for name, v in times.items()}


def run_shape(checkpoint: Path, input_size: int | None, frame: tuple[int, int] | None,
              rect: bool = True) -> tuple[tuple[int, int, int, int], str]:
    """The batch shape a run feeds the network, and where it comes from: the canvas of the first frame ``frame``
    ((H, W); ``models.preprocess.batch_canvas``, as the Predictor builds it), else the square input."""
    from models.checkpoint import read_checkpoint
    from models.preprocess import batch_canvas, long_side

    cfg = read_checkpoint(checkpoint)["config"]
    size = int(input_size or cfg.get("input_size", 256))
    if frame is None:
        side = -(-size // 32) * 32
        return (1, 3, side, side), "square: the first frame's size is not known before it arrives"
    w, h = batch_canvas([frame], long_side([frame], size, cfg.get("resize", "long")), rect)
    return (1, 3, h, w), f"the canvas of the first frame, {frame[1]}x{frame[0]}"


INT8_ENV = "QEM_AUTO_INT8"  # "0": auto leaves int8 out (no twin built or run)


def _int8_candidate(checkpoint: Path, verbose: bool):
    """(int8 twin or None, AP drops recorded in it); none when ``$QEM_AUTO_INT8`` is 0."""
    from models.export.int8 import ap_drops, int8_twin, read_metadata

    if os.environ.get(INT8_ENV, "1") == "0":
        return None, {}

    try:
        twin = int8_twin(checkpoint, verbose=verbose)
        return twin, ({} if twin is None else ap_drops(read_metadata(twin).accuracy))
    except Exception as exc:  # noqa: BLE001 - no int8 twin (NNCF missing or failing) only leaves int8 out
        print(f"warning: backend auto leaves out openvino int8: {str(exc).strip().splitlines()[0][:200]}",
              file=sys.stderr)
        return None, {}


def choose(checkpoint: Path, precision: str | None, threads: int | None, input_size: int | None,
           verbose: bool = True, frame: tuple[int, int] | None = None, rect: bool = True) -> tuple[str, str | None]:
    """(backend, precision) ``auto`` runs ``checkpoint`` with on this CPU (see the docstring); precision ``int8``
    means the checkpoint's int8 twin (``models.export.int8``)."""
    from models.export.choice import Candidate, pick
    from models.export.runtime import default_precision, load_runtime

    candidates = [b for b in FORMATS if installed(b) and (precision is None or precision in FORMATS[b].precisions)]
    missing = [b for b in FORMATS if not installed(b)]
    if candidates == ["torch"] or not candidates:
        if verbose:
            print(f"backend auto: torch ({', '.join(missing)} not installed: pip install -e .[{EXTRA}])",
                  file=sys.stderr)
        return "torch", precision
    shape, where = run_shape(checkpoint, input_size, frame, rect)
    nthreads = threads or torch.get_num_threads()
    twin, drops = (None, {})
    if precision is None and "openvino" in candidates:
        twin, drops = _int8_candidate(checkpoint, verbose)
    digest = sha256(checkpoint)
    key = (f"{digest[:16]}|{shape}|{nthreads}|{precision}|{twin.name if twin else 'no int8'}|{cpu_model()}|"
           f"{versions()}")
    store = cache_dir() / "choices.json"
    try:
        choices = json.loads(store.read_text())
    except (OSError, ValueError):
        choices = {}
    entry = choices.get(key)
    how = "cached"
    if entry is None:
        runtimes, named = {}, {}
        for b in candidates:
            p = precision or default_precision(b)
            try:
                runtimes[f"{b} {p}"] = load_runtime(checkpoint, b, p, nthreads, verbose=False)
                named[f"{b} {p}"] = (b, runtimes[f"{b} {p}"].precision)
            except Exception as exc:  # noqa: BLE001 - a backend that cannot take this model is left out, said once
                if b == "torch":
                    raise
                print(f"warning: backend auto leaves out {b}: {str(exc).strip().splitlines()[0][:200]}",
                      file=sys.stderr)
        if twin is not None:
            from models.export.runtime import OpenVinoRuntime
            runtimes["openvino int8"] = OpenVinoRuntime(twin, None, nthreads)
            named["openvino int8"] = ("openvino", "int8")
        ms = time_runtimes(runtimes, shape)
        entry = {"ms": {n: round(v, 2) for n, v in ms.items()}, "backends": named,
                 # the AP recorded beside the int8 twin is OpenVINO's (fp32 twin at bf16, int8 twin)
                 "ap_drop": {n: drops[named[n][1]] for n in ms
                             if named[n][0] == "openvino" and named[n][1] != "fp32" and named[n][1] in drops},
                 "date": time.strftime("%Y-%m-%d", time.gmtime())}
        how = "measured now"
    cands = [Candidate(*entry["backends"][n], ms=v, ap_drop=entry["ap_drop"].get(n)) for n, v in entry["ms"].items()]
    choice = pick(cands)
    if how == "measured now":
        entry.update(backend=choice.chosen.backend, precision=choice.chosen.precision)
        choices[key] = entry
        store.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=store.parent, delete=False, suffix=".tmp") as f:
            json.dump(choices, f, indent=1)
        os.replace(f.name, store)
    if verbose:
        print(f"backend auto: {choice.chosen.name}, the fastest within the AP limits on this CPU at "
              f"{'x'.join(map(str, shape))} ({where}), {nthreads} thread{'' if nthreads == 1 else 's'} ({choice.explain()}; {how}, "
              f"{entry['date']}, {store})" + (f"; {', '.join(missing)} not installed" if missing else ""),
              file=sys.stderr)
    return choice.chosen.backend, choice.chosen.precision

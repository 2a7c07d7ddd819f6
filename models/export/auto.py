"""``backend="auto"`` on a CPU: the fastest installed backend, measured, and the exported twins it runs.

- Exported twin: a checkpoint's export (dynamic H, W, fp32) in the user cache folder (``$QEM_CACHE_DIR``, else
  ``$XDG_CACHE_HOME/qem-pose``, else ``~/.cache/qem-pose``), named by the checkpoint's sha256 and a key of the export
  settings and the torch / runtime / package versions: a changed checkpoint or upgraded runtime gets a new twin
  (older twins of the same checkpoint name are removed). Written atomically by ``models.export.exporter``.
- Choice: each installed backend at its default precision runs the network on a random batch of the pipeline's
  shape (1x3xSxS): 2 warm-up calls, then 5 rounds alternating the backends, median ms. The choice is cached in
  ``choices.json`` in the cache folder, keyed by checkpoint, shape, threads, CPU model and versions, so it is
  measured once per machine; delete the file to measure again. One line on stderr says what was picked and why.
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


def choose(checkpoint: Path, precision: str | None, threads: int | None, input_size: int | None,
           verbose: bool = True) -> tuple[str, str | None]:
    """(backend, precision) of the fastest installed backend for ``checkpoint`` on this CPU (see the docstring)."""
    from models.checkpoint import read_checkpoint
    from models.export.runtime import default_precision, load_runtime

    candidates = [b for b in FORMATS if installed(b) and (precision is None or precision in FORMATS[b].precisions)]
    missing = [b for b in FORMATS if not installed(b)]
    if candidates == ["torch"] or not candidates:
        if verbose:
            print(f"backend auto: torch ({', '.join(missing)} not installed: pip install -e .[{EXTRA}])",
                  file=sys.stderr)
        return "torch", precision
    size = int(input_size or read_checkpoint(checkpoint)["config"].get("input_size", 256))
    nthreads = threads or torch.get_num_threads()
    shape = (1, 3, size, size)
    digest = sha256(checkpoint)
    key = f"{digest[:16]}|{shape}|{nthreads}|{precision}|{cpu_model()}|{versions()}"
    store = cache_dir() / "choices.json"
    try:
        choices = json.loads(store.read_text())
    except (OSError, ValueError):
        choices = {}
    entry = choices.get(key)
    how = "cached"
    if entry is None:
        runtimes = {}
        for b in candidates:
            try:
                runtimes[b] = load_runtime(checkpoint, b, precision or default_precision(b), nthreads, verbose=False)
            except Exception as exc:  # noqa: BLE001 - a backend that cannot take this model is left out, said once
                if b == "torch":
                    raise
                print(f"warning: backend auto leaves out {b}: {str(exc).strip().splitlines()[0][:200]}",
                      file=sys.stderr)
        ms = time_runtimes(runtimes, shape)
        best = min(ms, key=ms.get)
        entry = {"backend": best, "precision": runtimes[best].precision, "ms": {b: round(v, 2) for b, v in ms.items()},
                 "date": time.strftime("%Y-%m-%d", time.gmtime())}
        choices[key] = entry
        store.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=store.parent, delete=False, suffix=".tmp") as f:
            json.dump(choices, f, indent=1)
        os.replace(f.name, store)
        how = "measured now"
    if verbose:
        figures = ", ".join(f"{b} {v:.1f} ms" for b, v in sorted(entry["ms"].items(), key=lambda kv: kv[1]))
        print(f"backend auto: {entry['backend']} {entry['precision']}, the fastest on this CPU at "
              f"{'x'.join(map(str, shape))}, {nthreads} threads ({figures}; {how}, {entry['date']}, {store})"
              + (f"; {', '.join(missing)} not installed" if missing else ""), file=sys.stderr)
    return entry["backend"], entry["precision"]

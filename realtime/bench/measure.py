"""What the benchmark sections measure with: the machine's name, the engine the command line would build, the
bundled clip's first frame, the forward alone (``bench_model``) and the pipeline run over the clip as a file
(``bench_pipeline``) or looped like cameras (``bench_live``). ``qem bench`` (``realtime.bench.cli``) prints them;
the deploy, peer and DEKR sections run their engines through ``run_pipeline`` too.
"""
from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch

from realtime import BUNDLED_CLIP
from realtime.engine.stage import Engine
from realtime.pipeline import Pipeline, PipelineConfig
from realtime.sources.readers import parse_source


def machine() -> str:
    from models.export.auto import cpu_model

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{os.cpu_count()}-core {platform.machine()} CPU ({cpu_model()}), {gpu}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} inference thread(s), OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")


def make_engine(config: str, size: int, device: str, threads: int | None = None, half: bool = False,
                compile: bool = False, cuda_graphs: bool = False, static_batch: int = 1) -> Engine:
    """The engine the CLI would build: the bundled checkpoint for ``tiny``, fresh weights for the others."""
    import models
    from realtime.engine.model import cpu_threads

    if config == "tiny" and Path(models.DEFAULT_CHECKPOINT).is_file():
        net = models.load_checkpoint(models.DEFAULT_CHECKPOINT)
    else:  # speed does not depend on the weights: fixed shapes everywhere up to the pose NMS
        torch.manual_seed(0)
        net = models.build_model(config)
    if device == "cpu":
        torch.set_num_threads(cpu_threads(threads))  # as the CLI does
    predictor = models.Predictor(net, device=device, input_size=size, half=half)
    return Engine(predictor, size, device, half=half, compile=compile, cuda_graphs=cuda_graphs,
                  static_batch=static_batch)


def first_frame() -> np.ndarray:
    import av

    with av.open(str(BUNDLED_CLIP)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def bench_model(engine: Engine, repeats: int) -> dict:
    """The forward alone (``Engine.forward``: compiled or graph-replayed when asked for, synchronised on CUDA; with
    several inference streams, ms between results while ``engine.depth`` forwards are kept in flight),
    timed in a worker thread like the pipeline's engine (on a busy CPU, OpenMP in the main thread behaves very
    differently from OpenMP in a worker thread)."""
    batch, _ = engine.preprocess([first_frame()])  # a real frame: a constant one can drive activations to denormals
    times: list[float] = []
    failed: list[BaseException] = []

    def loop() -> None:
        try:
            with torch.inference_mode():
                in_flight: deque = deque()
                for i in range(repeats + 3):
                    t0 = time.perf_counter()
                    if engine.depth > 1:  # several streams: ms between results with depth batches in flight
                        in_flight.append(engine.predictor.submit(batch))
                        if len(in_flight) == engine.depth:
                            in_flight.popleft().result()
                    else:
                        engine.forward(batch)
                    if batch.is_cuda:
                        torch.cuda.synchronize()
                    if i >= 3 + engine.depth - 1:
                        times.append((time.perf_counter() - t0) * 1e3)
                while in_flight:
                    in_flight.popleft().result()
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            failed.append(exc)

    import threading

    worker = threading.Thread(target=loop)
    worker.start()
    worker.join()
    if failed:
        raise failed[0]
    return {"forward_ms_median": statistics.median(times), "forward_ms_p95": float(np.percentile(times, 95))}


def run_pipeline(engine: Engine, specs, seconds: float | None = None, **config) -> tuple[Pipeline, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = PipelineConfig(specs=specs, out_dir=Path(tmp), progress=False, report_every=1e9, **config)
        pipeline = Pipeline(cfg, engine, log=lambda line: None)
        if seconds is not None:
            import threading

            threading.Timer(seconds, pipeline.stop_event.set).start()
        t0 = time.perf_counter()
        pipeline.run()
        return pipeline, time.perf_counter() - t0


def bench_pipeline(engine: Engine, model: dict, save: bool = True) -> dict:
    """Overhead share: 1 - forward time / wall time, with forward time measured inside the same run (``in_run``)
    and taken from the model-alone median (``vs_alone``, which also counts the forward's slowdown caused by the
    other threads competing for the cores)."""
    engine.forward_seconds = 0.0
    pipeline, wall = run_pipeline(engine, [parse_source(str(BUNDLED_CLIP))], save_mp4=save, save_jsonl=save)
    m = pipeline.metrics.as_dict()
    frames = m["frames_out"]
    return {"frames": frames, "wall_s": wall, "fps": frames / wall, "saving": save,
            "overhead_in_run": 1.0 - engine.forward_seconds / wall,
            "overhead_vs_alone": 1.0 - model["forward_ms_median"] * frames / 1e3 / wall, "stages": m["stages"]}


def bench_live(engine: Engine, duration: float, streams: int = 1) -> dict:
    specs = [parse_source(str(BUNDLED_CLIP)) for _ in range(streams)]
    pipeline, wall = run_pipeline(engine, specs, seconds=duration, loop=True, as_live=True)
    met = pipeline.metrics
    e2e = np.asarray(met.all_e2e, np.float64).reshape(-1, 2)
    window = max(5.0, min(30.0, duration / 5))
    start = e2e[e2e[:, 0] <= e2e[0, 0] + window, 1] if len(e2e) else np.zeros(0)
    end = e2e[e2e[:, 0] >= e2e[-1, 0] - window, 1] if len(e2e) else np.zeros(0)
    t = met.totals()
    series = []  # p95 of the age of results in consecutive windows: flat means latency does not build up
    if len(e2e):
        edges = np.arange(e2e[0, 0], e2e[-1, 0] + window, window)
        for lo in edges[:-1]:
            chunk = e2e[(e2e[:, 0] >= lo) & (e2e[:, 0] < lo + window), 1]
            if len(chunk):
                series.append(round(float(np.percentile(chunk, 95)), 1))
    return {"streams": streams, "p95_by_window_ms": series, "seconds": wall, "fps_in": t["frames_in"] / wall,
            "fps_out": t["frames_out"] / wall,
            "drops": t["drops"], "batches": met.batches, "mean_batch": t["frames_out"] / max(met.batches, 1),
            "e2e_p50_ms": float(np.percentile(e2e[:, 1], 50)) if len(e2e) else float("nan"),
            "e2e_p95_ms": float(np.percentile(e2e[:, 1], 95)) if len(e2e) else float("nan"),
            "window_s": window, "p95_start_ms": float(np.percentile(start, 95)) if len(start) else float("nan"),
            "p95_end_ms": float(np.percentile(end, 95)) if len(end) else float("nan")}

"""The inference stage: preprocess on the device, then the network (dense stage, fused decode, sparse stage),
then back to image pixels, for one batch of frames from any mix of streams.

The network is reached only through the Predictor seam of ``models``: ``forward(batch) -> raw`` (dense stage +
decode + sparse stage, fixed shapes, no host sync) and ``postprocess(raw, boxes) -> list[Poses]`` (to image
pixels). On CUDA the network's dense stage can be compiled with ``torch.compile`` (in place, on the predictor's
network) and the whole forward captured in a CUDA graph; both want a static batch shape, so batches are then
padded to ``static_batch`` images (a graph is captured per batch shape). Either falls back to eager with one
warning line when it fails.

``infer(frames) = run(prepare(frames))`` and ``run(p) = finish(start(p))``; the pipeline may call ``prepare`` for the
next batch in another thread while ``run`` is busy with the current one, and, when the predictor runs several
inference streams (an OpenVINO runtime in THROUGHPUT mode: ``depth`` > 1), keep up to ``depth`` batches started
before it finishes the oldest.
"""
from __future__ import annotations

import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Sequence

import torch

from models.export.runtime import Pending
from models.preprocess import Letterbox
from realtime.frames import Frame, Result
from realtime.engine.preprocess import DevicePreprocess


@dataclass
class Prepared:
    """A preprocessed batch: the frames, the device tensor, each frame's Letterbox, when preprocessing began
    (``time.perf_counter()``) and how long it took (ms)."""

    frames: list[Frame]
    batch: torch.Tensor
    boxes: list[Letterbox]
    start: float
    preprocess_ms: float


@dataclass
class InFlight:
    """A started batch: what ``Engine.finish`` needs, the forward's ``Pending`` and when it was started."""

    prepared: Prepared
    pending: Pending
    start: float


class CudaGraphForward:
    """Captures ``fn(static_input)`` once in a CUDA graph and replays it (the output tensors are reused)."""

    def __init__(self, fn, example: torch.Tensor, warmup: int = 3):
        self.input = example.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):
                fn(self.input)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = fn(self.input)

    def __call__(self, batch: torch.Tensor):
        self.input.copy_(batch)
        self.graph.replay()
        return self.output


class Engine:
    def __init__(self, predictor, input_size: int, device: str | torch.device = "cpu", half: bool = False,
                 compile: bool = False, cuda_graphs: bool = False, static_batch: int = 0):
        self.predictor, self.device = predictor, torch.device(device)
        cuda = self.device.type == "cuda"
        self.half = half and cuda
        self.dtype = torch.float16 if self.half else torch.float32
        self.preprocess = DevicePreprocess(input_size, self.device, self.dtype, rect=getattr(predictor, "rect", True),
                                           fixed_canvas=getattr(predictor, "fixed_canvas", None),
                                           uint8=getattr(getattr(predictor, "runtime", None), "takes_uint8", False),
                                           source=getattr(getattr(predictor, "runtime", None), "source", "the model"),
                                           resize=getattr(getattr(predictor, "cfg", None), "resize", "long"))
        self.static_batch = static_batch if cuda and (compile or cuda_graphs) else 0
        self.compile = compile and cuda
        self._compiled_ok = not self.compile  # until the first compiled call has run
        if self.compile:  # the dense stage only: decode is a hand-fused kernel already, the sparse stage is small
            predictor.net.dense = torch.compile(predictor.net.dense, dynamic=False)
        self.cuda_graphs = cuda_graphs and cuda
        self.forward_seconds = 0.0  # total time spent in the network's forward, for overhead figures
        # batches that may be in flight at once: the predictor's (OpenVINO streams; eager, compiled or graphed
        # torch forwards run one at a time)
        self.depth = 1 if cuda else getattr(predictor, "in_flight", 1)
        self._last_result = 0.0
        self._graphs: dict[tuple[int, ...], CudaGraphForward] = {}  # one capture per batch shape

    @staticmethod
    def _warn(what: str, exc: Exception) -> None:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        print(f"warning: {what} failed ({type(exc).__name__}: {' '.join(lines[:2])[:300]}); running eagerly",
              file=sys.stderr)

    def _first_compiled_call(self, batch: torch.Tensor):
        """Compiles (on the first call) in a throwaway thread: a failed compile can leave thread-local dispatcher
        state behind that breaks every later eager call in its thread (seen with torch 2.11)."""
        box: dict = {}

        def call() -> None:
            try:
                on_device = torch.cuda.device(self.device) if self.device.type == "cuda" else nullcontext()
                with on_device, torch.inference_mode():
                    box["out"] = self.predictor.forward(batch)
            except Exception as exc:  # noqa: BLE001 - reported by the caller
                box["exc"] = exc

        worker = threading.Thread(target=call, name="torch-compile")
        worker.start()
        worker.join()
        self._compiled_ok = True
        if "exc" in box:
            self._warn("torch.compile", box["exc"])
            self.predictor.net.__dict__.pop("dense", None)  # back to the eager method
            self.compile = False
            return None
        return box["out"]

    def forward(self, batch: torch.Tensor):
        """The network on a preprocessed batch (dense stage compiled and/or the whole forward replayed from a CUDA
        graph when asked for)."""
        if not self._compiled_ok:
            out = self._first_compiled_call(batch)
            if out is not None and not self.cuda_graphs:
                return out
        if not self.cuda_graphs:
            return self.predictor.forward(batch)
        graph = self._graphs.get(tuple(batch.shape))
        if graph is None:
            try:
                graph = self._graphs[tuple(batch.shape)] = CudaGraphForward(self.predictor.forward, batch)
            except Exception as exc:  # noqa: BLE001 - a model that cannot be captured still runs eagerly
                self._warn("CUDA graph capture", exc)
                self.cuda_graphs = False
                return self.predictor.forward(batch)
        return graph(batch)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @torch.inference_mode()
    def prepare(self, frames: Sequence[Frame]) -> Prepared:
        """Preprocess a batch (may run in another thread than ``run``, overlapping the previous forward)."""
        t0 = time.perf_counter()
        batch, boxes = self.preprocess([f.image for f in frames], pad_to=self.static_batch,
                                       full_sizes=[f.full_size for f in frames])
        self._sync()
        return Prepared(list(frames), batch, boxes, t0, (time.perf_counter() - t0) * 1e3)

    @torch.inference_mode()
    def start(self, prepared: Prepared) -> InFlight:
        """Starts the forward of a prepared batch: in the background with several streams, else now."""
        t1 = time.perf_counter()
        pending = self.predictor.submit(prepared.batch) if self.depth > 1 else Pending(self.forward(prepared.batch))
        return InFlight(prepared, pending, t1)

    @torch.inference_mode()
    def finish(self, flight: InFlight) -> list[Result]:
        """Waits for a started batch and postprocesses it: poses for each frame, in order, with ``stage_ms``
        ("forward": from its start to its result, the wait behind batches in flight included)."""
        prepared, t1 = flight.prepared, flight.start
        frames, batch = prepared.frames, prepared.batch
        raw = flight.pending.result()
        self._sync()
        t2 = time.perf_counter()
        self.forward_seconds += t2 - max(t1, self._last_result)  # in flight together: counted once
        self._last_result = t2
        boxes = prepared.boxes + prepared.boxes[:1] * (batch.shape[0] - len(prepared.boxes))  # static padding
        poses = self.predictor.postprocess(raw, boxes)[: len(frames)]
        t3 = time.perf_counter()
        shared = {"preprocess": prepared.preprocess_ms, "forward": (t2 - t1) * 1e3, "postprocess": (t3 - t2) * 1e3}
        return [Result(frame=f, poses=p, stage_ms={"queue": (prepared.start - f.recv_time) * 1e3, **shared})
                for f, p in zip(frames, poses)]

    def run(self, prepared: Prepared) -> list[Result]:
        """Forward and postprocess a prepared batch: ``finish(start(prepared))``."""
        return self.finish(self.start(prepared))

    def infer(self, frames: Sequence[Frame]) -> list[Result]:
        """``run(prepare(frames))``."""
        return self.run(self.prepare(frames))

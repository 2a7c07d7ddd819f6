"""The inference stage: preprocess on the device, then the network (dense stage, fused decode, sparse stage),
then back to image pixels, for one batch of frames from any mix of streams.

The network is reached only through the Predictor seam of ``models``: ``forward(batch) -> raw`` (dense stage +
decode + sparse stage, fixed shapes, no host sync) and ``postprocess(raw, boxes) -> list[Poses]`` (to image
pixels). On CUDA the forward can be wrapped by ``torch.compile`` and/or captured in a CUDA graph; both need a
static batch shape, so batches are then padded to ``static_batch`` images.

``infer(frames) = run(prepare(frames))``; the pipeline may call ``prepare`` for the next batch in another thread
while ``run`` is busy with the current one.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Sequence

import torch

from models.preprocess import Letterbox
from realtime.frames import Frame, Result
from realtime.preprocess import DevicePreprocess


@dataclass
class Prepared:
    """A preprocessed batch: the frames, the device tensor, each frame's Letterbox, when preprocessing began
    (``time.perf_counter()``) and how long it took (ms)."""

    frames: list[Frame]
    batch: torch.Tensor
    boxes: list[Letterbox]
    start: float
    preprocess_ms: float


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
        self.preprocess = DevicePreprocess(input_size, self.device, self.dtype)
        self.static_batch = static_batch if cuda and (compile or cuda_graphs) else 0
        self._forward = predictor.forward
        self._compiled_ok = not (compile and cuda)  # until the first compiled call has run
        if compile and cuda:
            self._forward = torch.compile(predictor.forward, dynamic=False)
        self.cuda_graphs = cuda_graphs and cuda
        self.forward_seconds = 0.0  # total time spent in the network's forward, for overhead figures
        self._graph: CudaGraphForward | None = None

    def _fallback(self, what: str, exc: Exception) -> None:
        print(f"warning: {what} failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
              f"running eagerly", file=sys.stderr)
        self._forward, self._compiled_ok, self.cuda_graphs = self.predictor.forward, True, False

    def _run_forward(self, batch: torch.Tensor):
        if not self._compiled_ok:
            try:
                out = self._forward(batch)
                self._compiled_ok = True
                if not self.cuda_graphs:
                    return out
            except Exception as exc:  # noqa: BLE001 - a model that cannot be compiled still runs eagerly
                self._fallback("torch.compile", exc)
        if not self.cuda_graphs:
            return self._forward(batch)
        if self._graph is None:
            try:
                self._graph = CudaGraphForward(self._forward, batch)
            except Exception as exc:  # noqa: BLE001 - a model that cannot be captured still runs eagerly
                self._fallback("CUDA graph capture", exc)
                return self._forward(batch)
        return self._graph(batch)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @torch.inference_mode()
    def prepare(self, frames: Sequence[Frame]) -> Prepared:
        """Preprocess a batch (may run in another thread than ``run``, overlapping the previous forward)."""
        t0 = time.perf_counter()
        batch, boxes = self.preprocess([f.image for f in frames], pad_to=self.static_batch)
        self._sync()
        return Prepared(list(frames), batch, boxes, t0, (time.perf_counter() - t0) * 1e3)

    @torch.inference_mode()
    def run(self, prepared: Prepared) -> list[Result]:
        """Forward and postprocess a prepared batch: poses for each frame, in order, with ``stage_ms``."""
        frames, batch = prepared.frames, prepared.batch
        t1 = time.perf_counter()
        raw = self._run_forward(batch)
        self._sync()
        t2 = time.perf_counter()
        self.forward_seconds += t2 - t1
        boxes = prepared.boxes + prepared.boxes[:1] * (batch.shape[0] - len(prepared.boxes))  # static padding
        poses = self.predictor.postprocess(raw, boxes)[: len(frames)]
        t3 = time.perf_counter()
        shared = {"preprocess": prepared.preprocess_ms, "forward": (t2 - t1) * 1e3, "postprocess": (t3 - t2) * 1e3}
        return [Result(frame=f, poses=p, stage_ms={"queue": (prepared.start - f.recv_time) * 1e3, **shared})
                for f, p in zip(frames, poses)]

    def infer(self, frames: Sequence[Frame]) -> list[Result]:
        """``run(prepare(frames))``."""
        return self.run(self.prepare(frames))

"""Runtime backends under the ``Predictor``: one object per loaded model with ``.cfg`` (``ModelConfig``),
``.stride``, ``.backend``, ``.precision``, ``.imgsz`` ((H, W), or None when any multiple of 32 runs) and
``__call__(batch [B,3,H,W] float32) -> (Candidates, SparseOutput)``, exactly what ``Predictor.forward`` returns,
and, for the exported ones, ``submit(batch) -> Pending`` (``.result()`` gives the same): OpenVINO with ``streams`` > 1
runs that many inferences at once (its THROUGHPUT mode, the threads shared among them), so a caller can keep
``in_flight`` batches submitted; ONNX Runtime computes in ``submit``.

    load_runtime("model.onnx")                      ONNX Runtime, fp32
    load_runtime("model_openvino/")                 OpenVINO, its default precision (``DEFAULT_PRECISION``)
    load_runtime("best.pt", backend="auto")         the fastest installed backend, measured (``models.export.auto``)

Precisions: torch ``fp32`` | ``bf16`` (autocast on CPUs with bf16 instructions); onnxruntime ``fp32``; openvino
``fp32`` (``INFERENCE_PRECISION_HINT=f32``) | ``bf16`` (the CPU plugin's default where the CPU has bf16, else f32).
An int8 OpenVINO export says so in its metadata (and, loaded with no precision asked for, in ``.precision``); its
precision hint applies to the layers left in float.
"""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from models.config import ModelConfig
from models.export.formats import FORMATS, META_KEY, BACKENDS, ExportError, Metadata, backend_for_path, require
from models.export.graph import to_result

# The precision each backend runs at unless asked otherwise; a lower precision is a default only when its AP on the
# benchmark split stays within 0.01 of fp32 (int8: 0.02); BENCHMARKS.md (CPU deployment) has the measurements. torch: bf16 on CPUs
# with bf16 instructions (``default_precision``), else fp32.
DEFAULT_PRECISION = {"torch": "bf16", "onnxruntime": "fp32", "openvino": "bf16"}


class Pending:
    """A submitted forward; ``result()`` waits for it (at most once) and returns ``(Candidates, SparseOutput)``."""

    def __init__(self, value=None, wait=None):
        self._value, self._wait = value, wait

    def result(self):
        if self._wait is not None:
            self._value, self._wait = self._wait(), None
        return self._value


def cpu_has_bf16() -> bool:
    """The CPU has bf16 arithmetic (avx512_bf16 or AMX); read from /proc/cpuinfo, else torch's capability."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        return torch.backends.cpu.get_cpu_capability() in ("AVX512_BF16", "AMX")


def default_precision(backend: str) -> str:
    """``DEFAULT_PRECISION[backend]``, fp32 for torch on a CPU without bf16 instructions."""
    if backend == "torch" and not cpu_has_bf16():
        return "fp32"
    return DEFAULT_PRECISION[backend]


def check_precision(backend: str, precision: str | None) -> str:
    precision = precision or default_precision(backend)
    allowed = FORMATS[backend].precisions
    if precision not in allowed:
        raise ExportError(f"backend {backend!r} runs at precision {' or '.join(allowed)}, not {precision!r}")
    if backend == "torch" and precision == "bf16" and not cpu_has_bf16():
        raise ExportError("precision bf16 needs a CPU with avx512_bf16 or AMX; this one has neither (use fp32)")
    return precision


class TorchRuntime:
    """A ``PoseNet`` in eager PyTorch (``net.infer``); bf16: the forward under ``torch.autocast("cpu")``."""

    backend = "torch"

    def __init__(self, net, precision: str = "fp32", decode_backend: str = "auto"):
        self.net, self.cfg, self.stride = net.eval(), net.cfg, net.stride
        self.precision, self.decode_backend, self.imgsz, self.meta = precision, decode_backend, None, None

    def autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16" else nullcontext()

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor, snapping=None):
        with self.autocast():
            return self.net.infer(batch, self.decode_backend, snapping)


class ExportedRuntime:
    """Common part of the exported backends: metadata, the input check and the result."""

    streams = in_flight = 1
    takes_uint8 = False  # True: also takes letterboxed uint8 canvases [B,H,W,3] and normalises them itself

    def __init__(self, meta: Metadata, source: str, precision: str):
        self.meta, self.source, self.precision = meta, source, precision
        try:
            self.cfg = ModelConfig.from_dict(meta.config)
        except (TypeError, ValueError) as exc:
            raise ExportError(f"{source}: bad model config in its metadata ({exc})") from None
        self.stride = meta.stride
        self.imgsz = None if meta.dynamic else tuple(meta.imgsz)

    def submit(self, batch: torch.Tensor) -> Pending:
        return Pending(self(batch))

    @property
    def snapping(self) -> tuple[int, float, float]:
        """The keypoint snapping settings the exported graph runs with (its config's)."""
        return self.cfg.snap_radius, self.cfg.snap_threshold, self.cfg.snap_weight

    def check(self, batch: torch.Tensor) -> np.ndarray:
        """The batch as a contiguous array: float ``[B,3,H,W]`` normalised, or, for a runtime that ``takes_uint8``,
        the letterboxed uint8 RGB canvases ``[B,H,W,3]``."""
        if batch.dtype == torch.uint8 and self.takes_uint8 and batch.dim() == 4 and batch.shape[3] == 3:
            self._check_size(tuple(batch.permute(0, 3, 1, 2).shape))
            return np.ascontiguousarray(batch.numpy())
        shape = tuple(batch.shape)
        if len(shape) != 4 or shape[1] != 3:
            raise ExportError(f"{self.source}: expected a batch [B,3,H,W], got {shape}")
        self._check_size(shape)
        return np.ascontiguousarray(batch.detach().cpu().float().numpy())

    def _check_size(self, shape: tuple[int, ...]) -> None:
        if self.imgsz is not None and shape[2:] != self.imgsz:
            raise ExportError(f"{self.source} was exported for input {self.imgsz[0]}x{self.imgsz[1]} (H x W) but the "
                              f"pipeline gives {shape[2]}x{shape[3]}; export with --imgsz {shape[2]} {shape[3]} or "
                              f"--dynamic")
        if shape[2] % 32 or shape[3] % 32:
            raise ExportError(f"{self.source}: input {shape[2]}x{shape[3]} is not a multiple of 32")


class OnnxRuntime(ExportedRuntime):
    backend = "onnxruntime"

    def __init__(self, path: Path, precision: str | None = None, threads: int | None = None):
        require("onnxruntime")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # No busy-waiting between calls: the pipeline's other threads (capture, drawing, encoding) need those cores.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - corrupt, truncated or foreign files all end here
            raise ExportError(f"{path}: not a readable ONNX model ({_first_line(exc)})") from None
        meta = Metadata.from_json(self.session.get_modelmeta().custom_metadata_map.get(META_KEY), str(path))
        super().__init__(meta, str(path), check_precision("onnxruntime", precision))
        self.names = [o.name for o in self.session.get_outputs()]
        if self.names != meta.outputs:
            raise ExportError(f"{path}: outputs {self.names} differ from its metadata's {meta.outputs}")

    def __call__(self, batch: torch.Tensor):
        x = self.check(batch)
        try:
            return to_result(self.session.run(None, {"x": x}))
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own error types
            raise ExportError(f"{self.source}: ONNX Runtime failed on input {tuple(x.shape)} "
                              f"({_first_line(exc)})") from None


class OpenVinoRuntime(ExportedRuntime):
    """One compiled model per input shape (static shapes compile to the fastest code), built at first use.

    Takes the normalised float batch, or the letterboxed uint8 canvases ``[B,H,W,3]``: OpenVINO's preprocessing
    then converts, transposes and normalises them inside the compiled model (folded into the first convolution), so
    the caller skips its own float pass and hands over a quarter of the bytes.

    ``streams`` = 1: LATENCY mode, every thread on each inference (the lowest latency). ``streams`` = N > 1:
    THROUGHPUT mode with N streams sharing the threads and ``in_flight`` = N + 2 infer requests per shape, used in
    turn: a caller keeps up to ``in_flight`` submitted batches in flight and collects them in submission order
    (fewer in flight is still correct, only slower). A batch submitted past that reuses the oldest request: it waits
    for it, and that batch's ``result()`` then raises; a dropped ``Pending`` needs nothing."""

    backend = "openvino"
    takes_uint8 = True

    def __init__(self, path: Path, precision: str | None = None, threads: int | None = None, streams: int = 1):
        require("openvino")
        import openvino as ov

        xml = path if path.suffix == ".xml" else next(iter(sorted(path.glob("*.xml"))), None)
        if xml is None:
            raise ExportError(f"{path}: a folder without an OpenVINO model (*.xml)")
        self.core = ov.Core()
        try:
            self.model = self.core.read_model(str(xml))
        except Exception as exc:  # noqa: BLE001
            raise ExportError(f"{path}: not a readable OpenVINO model ({_first_line(exc)})") from None
        text = self.model.get_rt_info(META_KEY).astype(str) if self.model.has_rt_info(META_KEY) else None
        meta = Metadata.from_json(text, str(path))
        super().__init__(meta, str(path), check_precision("openvino", precision))
        threads = int(threads or torch.get_num_threads())
        self.streams = max(1, min(int(streams), threads))
        self.config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
        # two requests more than streams, queued: a stream never idles while the caller collects a result or waits
        # for Python's lock (one queued request: 3.5% fewer frames a second on the bundled clip, 10 alternating runs)
        self.in_flight = self.streams + 2 if self.streams > 1 else 1
        if self.streams > 1:
            self.config.update(PERFORMANCE_HINT="THROUGHPUT", NUM_STREAMS=self.streams)
        if self.precision == "fp32":
            self.config["INFERENCE_PRECISION_HINT"] = "f32"
        if meta.precision == "int8" and precision is None:
            self.precision = "int8"  # the quantized layers; the others run at the default precision
        self.names = [o.get_any_name() for o in self.model.outputs]
        if self.names != meta.outputs:
            raise ExportError(f"{path}: outputs {self.names} differ from its metadata's {meta.outputs}")
        self.compiled: dict[tuple, list] = {}  # (input shape, uint8) -> its infer requests
        self._turn = 0
        self._holder: dict[int, object] = {}  # id(infer request) -> the token of the submit that holds it

    def request(self, shape: tuple[int, ...], uint8: bool = False):
        """The next of this input's infer requests, in turn (compiled at the first use of its shape and type)."""
        reqs = self.compiled.get((shape, uint8))
        if reqs is None:
            model = self.model.clone()
            model.reshape({0: [shape[0], 3, *shape[1:3]] if uint8 else list(shape)})
            if uint8:
                model = _normalising_input(model)
            try:
                compiled = self.core.compile_model(model, "CPU", self.config)
            except RuntimeError as exc:
                raise ExportError(f"{self.source}: OpenVINO cannot compile it for input {shape} "
                                  f"({_first_line(exc)})") from None
            reqs = self.compiled[(shape, uint8)] = [compiled.create_infer_request() for _ in range(self.in_flight)]
        self._turn = (self._turn + 1) % len(reqs)
        return reqs[self._turn]

    def submit(self, batch: torch.Tensor) -> Pending:
        x = self.check(batch)
        req = self.request(x.shape, x.dtype == np.uint8)
        req.wait()  # a request whose Pending was dropped (a run stopped mid-file) may still be running
        req.get_input_tensor().data[...] = x  # a third of the CPU time of start_async({0: x})'s input handling
        req.start_async()
        token = self._holder[id(req)] = object()

        def wait():
            req.wait()
            if self._holder[id(req)] is not token:
                raise RuntimeError(f"more than {self.in_flight} batches submitted before this one's result was "
                                   "collected: its infer request was reused")
            return to_result([req.get_output_tensor(i).data.copy() for i in range(len(self.names))])
        return Pending(wait=wait)

    def __call__(self, batch: torch.Tensor):
        return self.submit(batch).result()


def _normalising_input(model):
    """``model`` taking uint8 RGB ``[B,H,W,3]``: converted, transposed and normalised (``models.preprocess``'s
    ImageNet mean and std) by OpenVINO's preprocessing."""
    from openvino import Layout, Type
    from openvino.preprocess import PrePostProcessor

    from models.preprocess import MEAN_RGB, STD_RGB

    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(Type.u8).set_layout(Layout("NHWC"))
    ppp.input().model().set_layout(Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(Type.f32).mean([255.0 * m for m in MEAN_RGB]) \
        .scale([255.0 * s for s in STD_RGB])
    return ppp.build()


def load_runtime(path_or_checkpoint=None, backend: str | None = None, precision: str | None = None,
                 threads: int | None = None, device: str = "cpu", input_size: int | None = None,
                 decode_backend: str = "auto", verbose: bool = True, streams: int = 1,
                 frame: tuple[int, int] | None = None, rect: bool = True):
    """A runtime for a checkpoint (None: the bundled one), an ``.onnx`` file or an OpenVINO folder.

    ``backend``: None = by what the path is (a checkpoint runs in torch); ``"auto"`` = the fastest installed backend
    on this CPU, measured (checkpoints get an exported twin in the user cache, ``models.export.auto``); or a name in
    ``BACKENDS``. A checkpoint with an exported backend is exported (cached) first. ``frame`` ((H, W) of the run's
    first frame) and ``rect``: the shape ``auto`` measures at (``models.export.auto.run_shape``)."""
    from models import DEFAULT_CHECKPOINT
    from models.checkpoint import load_checkpoint

    if backend is not None and backend not in BACKENDS:
        raise ExportError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    path = Path(path_or_checkpoint) if path_or_checkpoint is not None else Path(DEFAULT_CHECKPOINT)
    if not path.exists():
        raise ExportError(f"{path}: model not found")
    kind = backend_for_path(path)
    if kind != "torch":
        if backend not in (None, "auto", kind):
            raise ExportError(f"{path} is an exported {kind} model; it cannot run with --backend {backend} "
                              f"(pass the checkpoint, or --backend {kind})")
        if torch.device(device).type != "cpu":
            raise ExportError(f"{path}: exported models run on the CPU here, not {device!r}")
        if kind == "openvino":
            return OpenVinoRuntime(path, precision, threads, streams)
        return OnnxRuntime(path, precision, threads)
    if precision is None and _imported_dekr(path):
        # bf16 rounds the sampling positions of DEKR's deformable convolutions (8 bits: 0.5 px at 128 px) and moved
        # keypoints by tens of pixels on random weights; fp32 until bf16 is measured on real data
        precision = "fp32"
    if backend == "auto" and torch.device(device).type == "cpu":
        from models.export.auto import choose
        backend, precision = choose(path, precision, threads, input_size, verbose, frame, rect)
        if precision == "int8":
            from models.export.int8 import find_twin
            return OpenVinoRuntime(find_twin(path), None, threads, streams)
    if backend in (None, "auto", "torch"):
        if torch.device(device).type != "cpu":
            if precision not in (None, "fp32"):
                raise ExportError(f"precision {precision} is a CPU setting; on {device} use --half (CUDA)")
            precision = "fp32"
        return TorchRuntime(load_checkpoint(path), check_precision("torch", precision), decode_backend)
    require(backend)
    check_precision(backend, precision)  # before exporting anything
    from models.export.auto import exported_twin
    return load_runtime(exported_twin(path, backend), backend, precision, threads, device, streams=streams)


def _imported_dekr(checkpoint: Path) -> bool:
    from models.checkpoint import CheckpointError, read_checkpoint

    try:
        return read_checkpoint(checkpoint)["config"].get("head") == "dekr"
    except CheckpointError:
        return False


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:200]

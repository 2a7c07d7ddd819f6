"""One table of the formats a network can be exported to and run from, shared by the exporter and the loader.

===========  ==========  ==================================  ===========  ===========================
backend      --format    what the path looks like            package      export arguments
===========  ==========  ==================================  ===========  ===========================
torch        (source)    ``*.pt`` (``models.checkpoint``)    torch        (none: it is the source)
onnxruntime  onnx        ``*.onnx`` file                     onnxruntime  imgsz, dynamic
openvino     openvino    folder ``*_openvino/`` (model.xml)  openvino     imgsz, dynamic, int8, calib
===========  ==========  ==================================  ===========  ===========================

Every exported artefact carries ``Metadata`` (one JSON string): under the key ``qem_pose`` in the ONNX model's
``metadata_props`` and in the OpenVINO model's ``rt_info``, so it runs with no other file.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

META_KEY = "qem_pose"
META_FORMAT = "qem-pose-export"
META_VERSION = 1
EXTRA = "deploy"  # pip install -e .[deploy]
LETTERBOX = ("models.preprocess: aspect kept, content centred, gray 114 padding, ImageNet mean/std RGB; "
             "input px = 4 * feature px + 1.5")


class ExportError(ValueError):
    """A bad export request, or an artefact that cannot run here; the message is one line naming the problem."""


class ExportUsageError(ExportError):
    """Options that do not go together (``qem export`` exits 2 for these, as for argparse's own; 1 for the rest)."""


@dataclass(frozen=True)
class Format:
    backend: str               # --backend name
    name: str                  # --format name ("" for the checkpoint itself)
    suffix: str                # file suffix, or the folder-name ending for folders
    folder: bool               # the artefact is a folder
    package: str               # module the runtime needs
    args: tuple[str, ...]      # export arguments the format takes
    precisions: tuple[str, ...]  # runtime precisions (the first is the fp32 reference)


FORMATS: dict[str, Format] = {
    "torch": Format("torch", "", ".pt", False, "torch", (), ("fp32", "bf16")),
    "onnxruntime": Format("onnxruntime", "onnx", ".onnx", False, "onnxruntime", ("imgsz", "dynamic"), ("fp32",)),
    "openvino": Format("openvino", "openvino", "_openvino", True, "openvino",
                       ("imgsz", "dynamic", "int8", "calib"), ("fp32", "bf16")),
}
BACKENDS = ("auto", *FORMATS)
EXPORT_FORMATS = {f.name: f for f in FORMATS.values() if f.name}


def require(backend: str) -> None:
    """Raise ``ExportError`` (one line naming the pip extra) when ``backend``'s package is not installed."""
    fmt = FORMATS[backend]
    if importlib.util.find_spec(fmt.package) is None:
        raise ExportError(f"backend {backend!r} needs the {fmt.package!r} package, which is not installed: "
                          f"pip install -e .[{EXTRA}]")


def installed(backend: str) -> bool:
    return importlib.util.find_spec(FORMATS[backend].package) is not None


def backend_for_path(path: str | Path) -> str:
    """The backend that runs the artefact at ``path``, by what the path is (suffix, or a folder with model.xml)."""
    p = Path(path)
    if p.is_dir():
        if any(p.glob("*.xml")):
            return "openvino"
        raise ExportError(f"{p}: a folder without an OpenVINO model (*.xml); "
                          f"expected {', '.join(f'*{f.suffix}' for f in FORMATS.values())}")
    if p.suffix == ".xml":
        return "openvino"
    if p.suffix == ".pth":  # a checkpoint under PyTorch's other usual name
        return "torch"
    for fmt in FORMATS.values():
        if not fmt.folder and p.suffix == fmt.suffix:
            return fmt.backend
    raise ExportError(f"{p}: unknown model format {p.suffix or '(no suffix)'!r}; expected a checkpoint *.pt, "
                      f"an ONNX *.onnx file or an OpenVINO *_openvino/ folder")


@dataclass
class Metadata:
    """What an exported model says about itself. ``imgsz`` (H, W) is the export shape (any multiples of 32 when
    ``dynamic``); ``outputs`` in graph order (``models.export.graph``); ``accuracy``: the AP it and the fp32 model
    read on an annotated split, where measured (``models.export.int8``: ``{"data", "images", "ap": {precision: AP}}``)."""

    config: dict
    imgsz: tuple[int, int]
    dynamic: bool
    precision: str
    outputs: list[str]
    checkpoint_sha256: str
    args: dict = field(default_factory=dict)
    stride: int = 4
    kpt_shape: tuple[int, int] = (17, 2)
    pose_score: str = "pqe"
    letterbox: str = LETTERBOX
    package_version: str = ""
    date: str = ""
    accuracy: dict = field(default_factory=dict)
    format: str = META_FORMAT
    version: int = META_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None, source: str) -> "Metadata":
        if not text:
            raise ExportError(f"{source}: no {META_KEY!r} metadata: not a model exported by `qem export`")
        try:
            data = json.loads(text)
        except ValueError:
            raise ExportError(f"{source}: its {META_KEY!r} metadata is not JSON") from None
        if not isinstance(data, dict) or data.get("format") != META_FORMAT:
            raise ExportError(f"{source}: foreign {META_KEY!r} metadata (not a {META_FORMAT})")
        if data.get("version") != META_VERSION:
            raise ExportError(f"{source}: export format version {data.get('version')!r}, this code reads "
                              f"version {META_VERSION}")
        try:
            data["imgsz"], data["kpt_shape"] = tuple(data["imgsz"]), tuple(data["kpt_shape"])
            return cls(**data)
        except (TypeError, KeyError) as exc:
            raise ExportError(f"{source}: incomplete {META_KEY!r} metadata ({exc})") from None

"""DEKR's published weights -> a project checkpoint of DEKR's network (``models.modeling.dekr``), layer for layer.

Two layouts are read:

- ``release``: the authors' files (``pose_dekr_hrnetw32_coco.pth``, ``..._crowdpose.pth``, the W48 ones): a plain
  state dict (``module.`` prefixes allowed). The backbone keeps its names; the heads are ``transition_heatmap``,
  ``head_heatmap``, ``transition_offset``, 17 (or 14) ``offset_feature_layers`` of two adaptive blocks each (a
  2x2 ``transform_matrix_conv``, a ``translation_conv``, a torchvision ``adapt_conv``) and ``offset_final_layer``.
  Their offsets point from the keypoint to the pixel (keypoint = pixel - offset): the last convolution is negated.
- ``mmpose``: MMPose 1.x checkpoints (``dekr_hrnet-w32_8xb10-140e_coco-512x512_*.pth`` and siblings): ``backbone.``
  and ``head.`` names under ``state_dict``, the heads as grouped convolutions (``heatmap_conv_layers``,
  ``displacement_conv_layers``). Their adaptive blocks predict a 2x3 affine ``A`` whose taps land at ``r + A (r,
  1)``: our ``M`` is ``A`` plus the identity. Their displacements already point from the pixel to the keypoint.

DEKR's rescoring net (``final_rescore_coco_kpt.pth``: ``l1``, ``l2``, ``l3``) is kept as the model's pose scorer when
given (``--rescore``), or when an MMPose file carries it (``head.rescore_net``).
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from models.checkpoint import save_checkpoint
from models.weights_file import why_unreadable
from models.export.exporter import sha256
from models.config import preset
from models.modeling.network import PoseNet

DATASETS = {17: "coco", 14: "crowdpose"}
LICENCES = {"release": "MIT (DEKR, Microsoft)", "mmpose": "Apache-2.0 (MMPose, OpenMMLab)"}
EXPECTED = ("DEKR's release (pose_dekr_hrnetw32_coco.pth and siblings: a state dict) or MMPose's DEKR checkpoint "
            "(dekr_hrnet-w32_8xb10-140e_coco-512x512_*.pth)")


class DekrImportError(ValueError):
    """A file that is not DEKR's weights (or not the ones asked for); the message names the file and what was
    expected, in one line."""


class UnreadableWeights(DekrImportError):
    """A file ``torch.load`` refuses: not a PyTorch file, cut short, or holding objects that are not loaded for
    safety. ``detail`` is the message after ``"{path}: "``."""

    def __init__(self, path: Path, detail: str):
        super().__init__(f"{path}: {detail}")
        self.path, self.detail = Path(path), detail


# What a file that torch.load refuses looks like, told from its first bytes (no more is read).
@dataclass(frozen=True)
class Converted:
    """Our network's weights, and what they are."""

    state: dict[str, torch.Tensor]
    layout: str        # "release" | "mmpose"
    width: int         # HRNet width: 32 | 48
    keypoints: int     # 17 (COCO) | 14 (CrowdPose)

    @property
    def config_name(self) -> str:
        return f"dekr_w{self.width}" + ("_crowdpose" if self.keypoints == 14 else "")


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, loaded with ``weights_only=True`` (NumPy arrays allowed in its metadata, which
    MMPose's files carry); ``state_dict`` / ``model`` wrappers and ``module.`` prefixes removed. A file that does
    not load raises ``UnreadableWeights``, saying what it looks like."""
    import numpy as np

    path = Path(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.suffix in (".pth", ".pt") and p.is_file())
        hint = f" (it holds {', '.join(inside[:3])}{', ...' if len(inside) > 3 else ''})" if inside else ""
        raise DekrImportError(f"{path}: is a folder; give the .pth file{hint}")
    if not path.is_file():
        raise DekrImportError(f"{path}: file not found")

    allowed = [np.ndarray, np.dtype, getattr(np, "dtypes").Float64DType, getattr(np, "dtypes").Int64DType]
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        try:
            allowed.append(getattr(__import__(mod, fromlist=["_reconstruct"]), "_reconstruct"))
        except (ImportError, AttributeError):
            pass
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(allowed):
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, foreign and unsafe files end here alike
        if isinstance(exc, OSError) and exc.filename is not None:  # not allowed to read it, say
            raise DekrImportError(f"{path}: cannot read it ({exc.strerror})") from None
        text = str(exc)
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if found:
            raise UnreadableWeights(path, f"holds Python objects ({found.group(1)}), not plain weights; expected "
                                          f"{EXPECTED}") from None
        raise UnreadableWeights(path, why_unreadable(path, exc)) from None
    if isinstance(obj, dict) and obj.get("format") == "qem-pose-checkpoint":
        raise DekrImportError(f"{path}: already a qem-pose checkpoint; use it as it is (--weights {path})")
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DekrImportError(f"{path}: no state dict of tensors inside; expected {EXPECTED}")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def detect_layout(state: dict, path: Path) -> str:
    if "transition_offset.0.weight" in state and "offset_feature_layers.0.0.adapt_conv.weight" in state:
        return "release"
    if "head.displacement_conv_layers.1.adapt_conv.weight" in state:
        return "mmpose"
    if any(k.startswith(("incre_modules.", "classifier.")) for k in state):
        raise DekrImportError(f"{path}: an HRNet ImageNet backbone without DEKR's heads; expected {EXPECTED}")
    heads = sorted({k.split(".")[1] for k in state if k.startswith(("head.", "keypoint_head."))})
    if heads:
        raise DekrImportError(f"{path}: an MMPose checkpoint of another head ({', '.join(heads[:3])}), not DEKR's; "
                           f"expected {EXPECTED}")
    raise DekrImportError(f"{path}: no DEKR heads among its {len(state)} tensors (e.g. {next(iter(state))}); "
                       f"expected {EXPECTED}")


def _bn(out: dict, src: dict, src_prefix: str, dst_prefix: str) -> None:
    for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        if f"{src_prefix}.{name}" in src:
            out[f"{dst_prefix}.{name}"] = src[f"{src_prefix}.{name}"]


def _heads_release(s: dict, k: int) -> dict:
    out = {"heads.heat_transition.0.weight": s["transition_heatmap.0.weight"],
           "heads.offset_transition.0.weight": s["transition_offset.0.weight"],
           "heads.heat_out.weight": s["head_heatmap.1.weight"], "heads.heat_out.bias": s["head_heatmap.1.bias"]}
    _bn(out, s, "transition_heatmap.1", "heads.heat_transition.1")
    _bn(out, s, "transition_offset.1", "heads.offset_transition.1")
    for name in ("conv1.weight", "conv2.weight"):
        out[f"heads.heat_block.{name}"] = s[f"head_heatmap.0.0.{name}"]
    for bn in ("bn1", "bn2"):
        _bn(out, s, f"head_heatmap.0.0.{bn}", f"heads.heat_block.{bn}")
    for block in (0, 1):
        layers = [f"offset_feature_layers.{j}.{block}" for j in range(k)]
        dst = f"heads.offset_blocks.{block}"
        rows = ([0, 1], [0], [2, 3], [1])  # M = [T | u] row by row: T row 0, u_y, T row 1, u_x
        for part in ("weight", "bias"):
            per_kpt = []
            for layer in layers:
                t, u = s[f"{layer}.transform_matrix_conv.{part}"], s[f"{layer}.translation_conv.{part}"]
                per_kpt.append(torch.cat([t[rows[0]], u[rows[1]], t[rows[2]], u[rows[3]]]))
            out[f"{dst}.affine.{part}"] = torch.cat(per_kpt)
        out[f"{dst}.weight"] = torch.cat([s[f"{layer}.adapt_conv.weight"] for layer in layers])
        for name in ("weight", "bias", "running_mean", "running_var"):
            out[f"{dst}.bn.{name}"] = torch.cat([s[f"{layer}.bn.{name}"] for layer in layers])
        tracked = f"{layers[0]}.bn.num_batches_tracked"
        if tracked in s:
            out[f"{dst}.bn.num_batches_tracked"] = s[tracked]
    out["heads.offset_out.weight"] = -torch.cat([s[f"offset_final_layer.{j}.weight"] for j in range(k)])
    out["heads.offset_out.bias"] = -torch.cat([s[f"offset_final_layer.{j}.bias"] for j in range(k)])
    return out


def _heads_mmpose(s: dict, k: int) -> dict:
    h, d = "head.heatmap_conv_layers", "head.displacement_conv_layers"
    out = {"heads.heat_transition.0.weight": s[f"{h}.0.conv.weight"],
           "heads.offset_transition.0.weight": s[f"{d}.0.conv.weight"],
           "heads.heat_out.weight": s[f"{h}.2.weight"], "heads.heat_out.bias": s[f"{h}.2.bias"],
           "heads.offset_out.weight": s[f"{d}.3.weight"], "heads.offset_out.bias": s[f"{d}.3.bias"]}
    _bn(out, s, f"{h}.0.bn", "heads.heat_transition.1")
    _bn(out, s, f"{d}.0.bn", "heads.offset_transition.1")
    for name in ("conv1.weight", "conv2.weight"):
        out[f"heads.heat_block.{name}"] = s[f"{h}.1.{name}"]
    for bn in ("bn1", "bn2"):
        _bn(out, s, f"{h}.1.{bn}", f"heads.heat_block.{bn}")
    identity = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]).repeat(k)
    for block in (0, 1):
        src, dst = f"{d}.{block + 1}", f"heads.offset_blocks.{block}"
        out[f"{dst}.affine.weight"] = s[f"{src}.transform_matrix_conv.weight"]
        bias = s[f"{src}.transform_matrix_conv.bias"]
        out[f"{dst}.affine.bias"] = bias + identity.to(bias.dtype)
        out[f"{dst}.weight"] = s[f"{src}.adapt_conv.weight"]
        _bn(out, s, f"{src}.norm", f"{dst}.bn")
    return out


def convert(state: dict, path: Path) -> Converted:
    """Our names and conventions for a state dict in either layout (``detect_layout``)."""
    layout = detect_layout(state, path)
    prefix, heat = ("", "head_heatmap.1.weight") if layout == "release" else ("backbone.", "head.heatmap_conv_layers.2.weight")
    try:
        k = state[heat].shape[0] - 1
        width = state[f"{prefix}transition1.0.0.weight"].shape[0]
        backbone = {f"backbone.{n[len(prefix):]}": v for n, v in state.items()
                    if n.startswith(prefix) and n[len(prefix):].split(".")[0] in BACKBONE_ROOTS}
        heads = _heads_release(state, k) if layout == "release" else _heads_mmpose(state, k)
    except KeyError as exc:
        raise DekrImportError(f"{path}: DEKR's {layout} layout but {exc.args[0]} is missing (a damaged or partial "
                           f"file?)") from None
    if k not in DATASETS or width not in (32, 48):
        raise DekrImportError(f"{path}: DEKR with HRNet-W{width} and {k} keypoints; this importer knows W32/W48 with "
                           f"17 (COCO) or 14 (CrowdPose) keypoints")
    rescore = {n[len("head.rescore_net."):]: v for n, v in state.items() if n.startswith("head.rescore_net.")}
    rescore = {f"qem.rescore.{n}": v for n, v in mmpose_rescore(rescore, k).items()} if rescore else {}
    return Converted({**backbone, **heads, **rescore}, layout, width, k)


def mmpose_rescore(state: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """MMPose's copy of DEKR's rescoring net in DEKR's feature order. MMPose builds the features from its data
    set's skeleton links (COCO's 19 or CrowdPose's 15: ``keypoint_convention(k).skeleton``), where DEKR lists the
    same links in another order and direction: the first layer's input columns are permuted (and a link's vector
    negated where its direction differs). The torso scale is the same two links in both (MMPose's
    ``norm_indexes``)."""
    from models.keypoints import keypoint_convention
    from models.modeling.dekr import COCO_LINKS, CROWDPOSE_LINKS

    dekr_links, skeleton = (COCO_LINKS if k == 17 else CROWDPOSE_LINKS), keypoint_convention(k).skeleton
    w = state["l1.weight"]
    links = len(dekr_links)
    columns, signs = [], []
    for a, b in dekr_links:
        j = skeleton.index((a, b)) if (a, b) in skeleton else skeleton.index((b, a))
        columns.append(j)
        signs.append(1.0 if (a, b) in skeleton else -1.0)
    sign = torch.tensor(signs, dtype=w.dtype).repeat_interleave(2)
    rel = torch.tensor([2 * j + c for j in columns for c in (0, 1)])
    order = torch.cat([rel, 2 * links + torch.tensor(columns), torch.arange(3 * links, 3 * links + k)])
    weight = w[:, order].clone()
    weight[:, :2 * links] *= sign
    return {**state, "l1.weight": weight}


BACKBONE_ROOTS = {"conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "transition2", "transition3", "stage2",
                  "stage3", "stage4"}


def read_rescore(path: Path, keypoints: int) -> dict[str, torch.Tensor]:
    """DEKR's rescoring net (``l1``, ``l2``, ``l3``) from its own file, as ``qem.rescore.*`` tensors."""
    state = read_state(path)
    names = {f"{layer}.{p}" for layer in ("l1", "l2", "l3") for p in ("weight", "bias")}
    if not names <= set(state):
        raise DekrImportError(f"{path}: not DEKR's rescoring net (final_rescore_coco_kpt.pth: l1, l2, l3 weights)")
    links = {17: 19, 14: 15}[keypoints]
    if state["l1.weight"].shape[1] != 3 * links + keypoints:
        found = {3 * 19 + 17: "COCO", 3 * 15 + 14: "CrowdPose"}.get(state["l1.weight"].shape[1], "unknown")
        raise DekrImportError(f"{path}: a rescoring net for {found} poses, not for this {DATASETS[keypoints]} model")
    return {f"qem.rescore.{n}": state[n] for n in names}


def build(converted: Converted, path: Path) -> PoseNet:
    """Our network with the converted weights, loaded strictly."""
    net = PoseNet(preset(converted.config_name, rescore=any(n.startswith("qem.rescore.") for n in converted.state)))
    own = net.state_dict()
    state = dict(converted.state)
    for name in own:  # files from before BatchNorm counted its batches lack the counters
        if name.endswith("num_batches_tracked") and name not in state:
            state[name] = torch.zeros((), dtype=torch.long)
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    wrong = [n for n in own if n in state and state[n].shape != own[n].shape]
    if missing or extra or wrong:
        first = (missing or extra or wrong)[0]
        raise DekrImportError(f"{path}: does not fit DEKR HRNet-W{converted.width} ({len(missing)} missing, "
                           f"{len(extra)} unexpected, {len(wrong)} misshapen tensors, e.g. {first})")
    net.load_state_dict(state, strict=True)
    return net.eval()


def import_dekr(path: str | Path, out: str | Path | None = None, data: str | None = None,
                rescore: str | Path | None = None, out_dir: str | Path | None = None) -> Path:
    """Convert DEKR's weights at ``path`` into a project checkpoint at ``out`` (default: ``dekr_w32_coco.pt`` and
    siblings, in ``out_dir``, else beside the input file). ``data`` ("coco" | "crowdpose"): what the weights must have
    been trained on (checked against their keypoint count). Returns the checkpoint's path."""
    path = Path(path)
    converted = convert(read_state(path), path)
    found = DATASETS[converted.keypoints]
    if data is not None and data != found:
        raise DekrImportError(f"{path}: has {converted.keypoints} keypoints ({found}'s), not {data}'s; import it with "
                           f"--data {found}")
    if rescore is not None:
        converted = Converted({**converted.state, **read_rescore(Path(rescore), converted.keypoints)},
                              converted.layout, converted.width, converted.keypoints)
    net = build(converted, path)
    meta = {"data": found, "source": path.name, "sha256": sha256(path), "layout": converted.layout,
            "licence": LICENCES[converted.layout], "model": f"DEKR HRNet-W{converted.width} ({found})",
            "rescore": Path(rescore).name if rescore is not None else ""}
    name = f"{converted.config_name.replace('_crowdpose', '')}_{found}.pt"
    out = Path(out) if out is not None else (Path(out_dir) if out_dir is not None else path.parent) / name
    return save_checkpoint(out, net, meta=meta)

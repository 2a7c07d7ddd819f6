"""``ModelConfig``: every size and switch of the network, as plain primitives (it travels inside checkpoints).

Coordinates: the dense maps have stride ``STRIDE`` = 4. Feature pixel (y, x) has its centre at integer (x, y)
(the decode's convention) and covers input pixels ``4x .. 4x+3``, so

    input_px = STRIDE * feature_px + (STRIDE - 1) / 2        feature_px = (input_px - (STRIDE - 1) / 2) / STRIDE

(``to_feature`` / ``to_input``). Mirroring the input (x -> S-1-x) then mirrors the map exactly (x -> w-1-x).

New fields must default to the behaviour before they existed: checkpoints store the config as a dict and
older files fill missing fields from these defaults.

The presets (``PRESETS``) are our reconstruction of the paper's choices (arXiv 2201.01087, built on DEKR and
AdaptivePose); each value is documented where the module using it is built.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

STRIDE = 4
BACKBONES = ("tiny", "realtime", "hrnet_w32", "hrnet_w48")
SCORE_MODES = ("cir", "center_gaussian")
CIR_LOSSES = ("qfl", "varifocal", "mse")
POSE_NMS = ("distance", "oks", "dekr", "none")
HEADS = ("qem", "dekr", "dekr_qem")
RESIZE_SIDES = ("long", "short")
POSE_SCORES = ("pqe", "keypoint_mean", "labelled_mean")
# Fields that change no parameter of the network: weights move between configs that differ only in these.
INFERENCE_FIELDS = ("input_size", "resize", "feature_origin", "max_people", "threshold", "nms_kernel", "pose_nms", "nms_dist", "nms_count",
                    "nms_oks", "pose_score", "snap_radius", "snap_threshold", "snap_weight")
# Switches that only add a module: ``--init`` from a checkpoint without it starts that module's parameters fresh.
ADDED_MODULES = {"keypoint_heatmaps": "heads.heatmaps.", "labelled_head": "qem.labelled_logit."}
# Fields that change only the loss: a checkpoint starts (``--init``) a run that differs in them.
LOSS_FIELDS = ("w_score_map", "w_offset", "w_offset_oks", "w_refine", "w_refine_oks", "w_final_score", "w_kpt_score",
               "w_heatmap", "heatmap_sigma", "w_labelled")


@dataclass
class ModelConfig:
    """Sizes, switches and decode settings of one ``PoseNet``. Units: ``positive_radius``, ``center_sigma``,
    ``heatmap_sigma``, ``snap_radius`` and ``pos_scale`` are feature-map pixels; ``input_size`` is network-input
    pixels: the long side of the letterboxed image (``resize="long"``), or its short side (``"short"``, DEKR's
    convention). ``feature_origin``: the input pixel at the centre of feature pixel 0 ((STRIDE - 1) / 2 for our
    networks; 0 for DEKR's, whose map pixel m is input pixel 4 m)."""

    name: str = "tiny"
    backbone: str = "tiny"
    head: str = "qem"                # "qem": CIR + QEM (ours) | "dekr": DEKR's heads (imported weights) |
                                     # "dekr_qem": DEKR's heads with a CIR score and QEM (fine-tuned from them)
    input_size: int = 256
    resize: str = "long"
    feature_origin: float = (STRIDE - 1) / 2
    num_keypoints: int = 17
    encoder_blocks: int = 1          # BasicBlocks per stride-8/16/32 level (tiny only; models.training.grow)
    # heads
    head_channels: int = 32          # width of the score-head trunk
    kpt_channels: int = 8            # Ck: per-keypoint feature width (one regression branch per keypoint)
    kpt_blocks: int = 2              # grouped residual blocks in each keypoint branch
    offset_scale: float = 1.0        # offsets = this x the offset conv's output (larger: faster early learning)
    keypoint_heatmaps: bool = False  # a per-keypoint heatmap head on the keypoint branches (``models.modeling.snap``)
    heatmap_sigma: float = 1.0       # gaussian sigma of the keypoint heatmap targets
    inst_channels: int = 32          # Ci: instance feature width
    dekr_heat_channels: int = 32     # DEKR's heatmap head width (its instance features; head="dekr" only)
    rescore: bool = False            # DEKR's pose rescoring net (``models.modeling.dekr.RescoreNet``) is present
    # sparse stage (QEM)
    qem_hidden: int = 32             # hidden width of the KQE / PQE MLPs
    pos_frequencies: int = 4         # Fourier frequencies of the KQE positional encoding
    pos_scale: float = 16.0          # offsets are divided by this (feature px) before encoding
    use_kqe: bool = True
    use_pqe: bool = True
    labelled_head: bool = False      # per-keypoint logit: will it be labelled (v > 0)? (models.modeling.qem)
    # instance score and its loss
    score_mode: str = "cir"          # "cir": OKS target (the paper) | "center_gaussian": DEKR-style centre heatmap
    cir_loss: str = "qfl"            # "qfl" | "varifocal" | "mse"
    cir_beta: float = 2.0            # QFL exponent
    center_sigma: float = 2.0        # gaussian sigma of the center_gaussian target
    # targets
    positive_radius: float = 2.0     # half-width of the square positive window around a person's centre
    train_positives: int = 48        # sparse-stage training candidates per image drawn from positive pixels
    train_negatives: int = 16        # ... and from the highest-scoring background pixels
    # loss weights
    w_score_map: float = 1.0
    w_offset: float = 1.0
    w_offset_oks: float = 1.0
    w_refine: float = 1.0
    w_refine_oks: float = 1.0
    w_final_score: float = 1.0
    w_kpt_score: float = 0.5
    w_heatmap: float = 1.0
    w_labelled: float = 0.5
    # decode and post-processing
    max_people: int = 20
    threshold: float = 0.05
    nms_kernel: int = 5
    pose_nms: str = "distance"       # "distance" (DEKR) | "oks" | "none"
    nms_dist: float = 0.15           # distance method: keypoints closer than nms_dist * box diagonal ...
    nms_count: int = 10              # ... in more than nms_count keypoints make two poses duplicates (DEKR)
    nms_oks: float = 0.8             # oks method: OKS above this makes two poses duplicates
    pose_score: str = "pqe"          # a pose's final score (``models.modeling.qem.pose_scores``): one of POSE_SCORES
    snap_radius: int = 0             # keypoint snapping window half-width (needs keypoint_heatmaps; 0: off)
    snap_threshold: float = 0.3      # ... a heatmap peak above this probability moves the keypoint towards it
    snap_weight: float = 1.0         # ... by this fraction of the way (1: onto the peak)

    def __post_init__(self) -> None:
        checks = {
            "backbone": (self.backbone, BACKBONES), "score_mode": (self.score_mode, SCORE_MODES),
            "cir_loss": (self.cir_loss, CIR_LOSSES), "pose_nms": (self.pose_nms, POSE_NMS),
            "pose_score": (self.pose_score, POSE_SCORES), "head": (self.head, HEADS),
            "resize": (self.resize, RESIZE_SIDES),
        }
        for key, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"ModelConfig.{key}={value!r}; choose one of {', '.join(allowed)}")
        if self.encoder_blocks < 1 or (self.encoder_blocks != 1 and self.backbone != "tiny"):
            raise ValueError(f"encoder_blocks={self.encoder_blocks} must be >= 1, and other than 1 only for the tiny "
                             f"backbone (this config's is {self.backbone!r})")
        if self.head != "qem" and not self.backbone.startswith("hrnet"):
            raise ValueError(f"DEKR's heads sit on an HRNet backbone, not {self.backbone!r}")
        if self.head == "dekr_qem" and self.inst_channels != self.dekr_heat_channels:
            raise ValueError(f"head 'dekr_qem' takes its instance features from DEKR's heatmap head: inst_channels "
                             f"({self.inst_channels}) must equal dekr_heat_channels ({self.dekr_heat_channels})")
        if self.rescore and self.head != "dekr":
            raise ValueError("rescore=True needs DEKR's heads (head='dekr')")
        if self.kpt_blocks < 1:
            raise ValueError(f"ModelConfig.kpt_blocks must be >= 1, got {self.kpt_blocks}")
        if self.input_size % 32:
            raise ValueError(f"ModelConfig.input_size must be a multiple of 32, got {self.input_size}")
        if self.nms_kernel < 1 or self.nms_kernel % 2 == 0:
            raise ValueError(f"ModelConfig.nms_kernel must be a positive odd number, got {self.nms_kernel}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"ModelConfig.threshold must lie in (0, 1), got {self.threshold}")
        if self.pose_score == "labelled_mean" and not self.labelled_head:
            raise ValueError("pose_score='labelled_mean' needs a model with the labelled head (labelled_head=True: "
                             "train with --labelled-head)")
        if self.snap_radius < 0 or (self.snap_radius and not self.keypoint_heatmaps):
            raise ValueError(f"snap_radius={self.snap_radius} must be >= 0 and needs a model with keypoint heatmaps "
                             f"(keypoint_heatmaps=True: train with --keypoint-heatmaps)")
        if not 0.0 < self.snap_threshold < 1.0:
            raise ValueError(f"snap_threshold must lie in (0, 1), got {self.snap_threshold}")
        if not 0.0 <= self.snap_weight <= 1.0:
            raise ValueError(f"snap_weight must lie in [0, 1], got {self.snap_weight}")

    @property
    def decode_threshold(self) -> float:
        """The threshold handed to ``kernels.decode``, which compares logits: ``threshold`` itself, or for DEKR's
        centre heatmap (plain values) the threshold that keeps values above ``threshold``."""
        if self.head == "dekr":
            return 1.0 / (1.0 + math.exp(-self.threshold))
        return self.threshold

    @property
    def pool_steps(self) -> tuple[tuple[float, int], ...]:
        """Larger peak windows for larger maps, ``((mean side above, window), ...)`` largest first: DEKR's hierarchical
        pool for DEKR's heads, none otherwise."""
        return DEKR_POOL_STEPS if self.head == "dekr" else ()

    def peak_window(self, map_h: int, map_w: int) -> int:
        """The peak search's window for an ``map_h x map_w`` score map: the first of ``pool_steps`` whose bound the
        mean side ``(h + w) / 2`` exceeds, else ``nms_kernel``."""
        side = (map_h + map_w) / 2
        return next((kernel for bound, kernel in self.pool_steps if side > bound), self.nms_kernel)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {', '.join(unknown)}")
        return cls(**data)


# DEKR's hierarchical pool (its TEST.POOL_THRESHOLD1 and 2): centre-map peaks in a 7x7 window where the map's mean
# side exceeds 300 px, 5x5 above 200, else its 3x3 (``ModelConfig.peak_window``)
DEKR_POOL_STEPS = ((300.0, 7), (200.0, 5))

PRESETS: dict[str, ModelConfig] = {
    # CPU-trainable in minutes on synthetic data: 256 input -> 64x64 map.
    "tiny": ModelConfig(offset_scale=4.0),
    # About 2-3 GFLOPs at 320x320 (measured, see the notes): webcam speed on a GPU, usable on a CPU.
    "realtime": ModelConfig(name="realtime", backbone="realtime", input_size=320, head_channels=32,
                            offset_scale=4.0, kpt_channels=8, inst_channels=32, qem_hidden=64, positive_radius=3.0,
                            max_people=30),
    # The paper's scales (DEKR's widths: Ck = 15 there, 16 here).
    "hrnet_w32": ModelConfig(name="hrnet_w32", backbone="hrnet_w32", input_size=512, head_channels=32,
                             kpt_channels=16, inst_channels=64, qem_hidden=128, pos_scale=32.0,
                             positive_radius=4.0, max_people=30, nms_kernel=5),
    "hrnet_w48": ModelConfig(name="hrnet_w48", backbone="hrnet_w48", input_size=640, head_channels=48,
                             kpt_channels=16, inst_channels=64, qem_hidden=128, pos_scale=32.0,
                             positive_radius=4.0, max_people=30, nms_kernel=5),
}


def _dekr(name: str, width: int, size: int, keypoints: int, nms_count: int) -> ModelConfig:
    """DEKR's network and single-scale inference settings (its ``experiments/*/w*.yaml``): peaks of the centre
    heatmap above 0.01 in a 3x3 window (5x5 and 7x7 for larger maps: ``DEKR_POOL_STEPS``), at most 30 people, its pose NMS (keypoints
    closer than 0.05 of the pose's box diagonal in more than ``nms_count`` joints), short side to ``size``."""
    return ModelConfig(name=name, backbone=f"hrnet_w{width}", head="dekr", input_size=size, resize="short",
                       feature_origin=0.0, num_keypoints=keypoints, kpt_channels=15, dekr_heat_channels=width,
                       max_people=30, threshold=0.01, nms_kernel=3, pose_nms="dekr", nms_dist=0.05,
                       nms_count=nms_count, use_kqe=False, use_pqe=False)


def _dekr_qem(name: str, width: int, size: int, keypoints: int = 17) -> ModelConfig:
    """DEKR's network with the paper's additions, to fine-tune from DEKR's weights (``--pretrained`` an imported
    checkpoint of the same keypoints: COCO's 17 or CrowdPose's 14): a CIR score on DEKR's heatmap-head features
    (initialised from its centre heatmap), instance features = those features, KQE + PQE on DEKR's per-keypoint
    offset features (15 channels). Decode and NMS as ``hrnet_w32``; input as DEKR's (short side)."""
    return replace(PRESETS[f"hrnet_w{width}"], name=name, head="dekr_qem", input_size=size, resize="short",
                   num_keypoints=keypoints, kpt_channels=15, dekr_heat_channels=width, inst_channels=width)


PRESETS.update({
    "dekr_qem_w32": _dekr_qem("dekr_qem_w32", 32, 512),
    "dekr_qem_w48": _dekr_qem("dekr_qem_w48", 48, 640),
    "dekr_qem_w32_crowdpose": _dekr_qem("dekr_qem_w32_crowdpose", 32, 512, 14),
    "dekr_qem_w48_crowdpose": _dekr_qem("dekr_qem_w48_crowdpose", 48, 640, 14),
    "dekr_w32": _dekr("dekr_w32", 32, 512, 17, 8),
    "dekr_w48": _dekr("dekr_w48", 48, 640, 17, 8),
    "dekr_w32_crowdpose": _dekr("dekr_w32_crowdpose", 32, 512, 14, 7),
    "dekr_w48_crowdpose": _dekr("dekr_w48_crowdpose", 48, 640, 14, 7),
})


def preset(name: str, **overrides) -> ModelConfig:
    """The preset ``name`` with ``overrides`` applied (unknown keys raise ``ValueError``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(PRESETS)}")
    known = {f.name for f in fields(ModelConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown ModelConfig fields: {', '.join(unknown)}")
    return replace(PRESETS[name], **overrides)


def to_feature(points, stride: int = STRIDE, origin: float | None = None):
    """Input pixels -> feature-map pixels (works on tensors and arrays, any shape); ``origin``: the config's
    ``feature_origin`` (default ours, (stride - 1) / 2)."""
    return (points - ((stride - 1) / 2 if origin is None else origin)) / stride


def to_input(points, stride: int = STRIDE, origin: float | None = None):
    """Feature-map pixels -> input pixels, the inverse of ``to_feature``."""
    return points * stride + ((stride - 1) / 2 if origin is None else origin)

"""``Predictor``: RGB uint8 images (any size) in, ``Poses`` in image pixels out.

    predict(images) = postprocess(forward(preprocess(images)))

- ``preprocess``: letterbox each image to long side ``input_size`` (``models.preprocess``), stack, normalise on the
  device. With ``rect`` (the default) the batch's canvas is the smallest multiples of 32 that hold its images
  (640x360 at 320 -> 320x192); without it, ``input_size`` squared.
- ``forward``: dense stage -> ``kernels.decode`` -> sparse stage -> keypoint snapping (``models.modeling.snap``; the
  checkpoint's ``snap_*`` settings unless overridden, radius 0: off); returns ``(Candidates, SparseOutput)`` in
  feature-map pixels. With ``flip_test`` the mirrored batch also runs the dense stage; its score and offset maps
  are mirrored back (x -> w-1-x, keypoint k <- FLIP_INDEX[k], dx negated) and averaged with the original's before
  the decode; the sparse stage then runs on both views (the mirrored view's candidates are the same poses,
  mirrored, with features sampled from the mirrored maps) and its outputs are mirrored back and averaged; the
  keypoint heatmaps (if any) are mirrored back and averaged like the score map, and snapping runs once on the
  averaged poses. ``shift_test`` (input px, e.g. ``(16,)``) adds views of the batch placed that far right and down
  in a larger canvas (and their mirror images with ``flip_test``), cropped back onto the plain grid and averaged the
  same way (``models.inference.views``); each shift costs one more dense pass per view.
- ``postprocess``: feature px -> input px (``models.config.to_input``) -> image px (``Letterbox.to_image``),
  final scores ``models.modeling.qem.pose_scores`` (the checkpoint's ``pose_score`` unless overridden), pose NMS
  (``models.inference.nms``, settings from the config), sorted by score.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from models.checkpoint import load_checkpoint
from models.config import POSE_SCORES, to_input
from models.inference.dekr import dekr_poses
from models.inference.nms import pose_nms_np
from models.inference.views import (View, crop_to_plain, mean_sparse, mirror_heatmaps, mirror_maps, mirror_shift,
                                    mirror_sparse, view_batch, views_for)
from models.modeling.network import DenseOutput, PoseNet
from models.modeling.qem import candidates_at, pose_scores
from models.poses import Poses
from models.provenance import SYNTHETIC_NOTICE, SyntheticOnlyWarning, synthetic_only, weights_data
from models.preprocess import Letterbox, batch_canvas, check_fixed_canvas, letterbox, long_side, normalize


class Predictor:
    """Runs a ``PoseNet`` (or the checkpoint at a path; ``None`` = ``models.DEFAULT_CHECKPOINT``) on images."""

    def __init__(self, model_or_checkpoint_path: PoseNet | str | Path | None = None, device: str = "cpu",
                 input_size: int | None = None, flip_test: bool = False, half: bool = False,
                 decode_backend: str = "auto", pose_score: str | None = None, snap_radius: int | None = None,
                 snap_threshold: float | None = None, snap_weight: float | None = None,
                 shift_test: Sequence[int] = (), backend: str | None = None, precision: str | None = None,
                 threads: int | None = None, rect: bool = True, streams: int = 1,
                 first_frame: tuple[int, int] | None = None):
        """``first_frame``: (H, W) of the first image a run will give, where known: ``backend="auto"`` measures the
        runtimes at its canvas (``models.export.auto``)."""
        self.device = torch.device(device)
        # weights that never saw a real person say so once, at the first predict() (the CLI's notice, for the API)
        self.synthetic_only = (not isinstance(model_or_checkpoint_path, PoseNet)
                               and synthetic_only({"data": weights_data(model_or_checkpoint_path)}))
        if half and self.device.type != "cuda":
            raise ValueError("half=True needs a CUDA device; use half=False on the CPU")
        self.runtime = None  # models.export.runtime: an exported model, or torch at another precision
        if isinstance(model_or_checkpoint_path, PoseNet):
            net = model_or_checkpoint_path
        elif backend in (None, "torch") and precision in (None, "fp32") and not _exported(model_or_checkpoint_path):
            from models import DEFAULT_CHECKPOINT
            net = load_checkpoint(model_or_checkpoint_path or DEFAULT_CHECKPOINT)
        else:
            net = self.runtime = _load_runtime(model_or_checkpoint_path, backend, precision, threads, device,
                                               input_size, decode_backend, half, bool(flip_test or shift_test),
                                               streams, first_frame, rect)
            if self.runtime.backend == "torch":
                net = self.runtime.net
        self.net = net.to(self.device).eval() if isinstance(net, PoseNet) else net
        if half:
            self.net.half()
        self.dtype = torch.float16 if half else torch.float32
        self.cfg = net.cfg
        exported_size = getattr(self.runtime, "imgsz", None)
        if exported_size is not None and input_size and input_size not in exported_size:
            raise ValueError(f"{self.runtime.source} was exported for input {exported_size[0]}x{exported_size[1]} "
                             f"(H x W), not the {input_size} asked for; export with --imgsz {input_size} or --dynamic")
        side = min if self.cfg.resize == "short" else max  # the side input_size sets
        self.input_size = int(input_size or (side(exported_size) if exported_size else self.cfg.input_size))
        if self.input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32, got {self.input_size}")
        self.rect = rect
        # A model exported for one input shape takes that canvas only: (W, H)
        self.fixed_canvas = None if exported_size is None else (int(exported_size[1]), int(exported_size[0]))
        self.flip_test = flip_test
        self.shift_test = tuple(shift_test)
        self.views = views_for(flip_test, self.shift_test)
        self.decode_backend = decode_backend
        self.pose_score = pose_score or self.cfg.pose_score
        if self.pose_score not in POSE_SCORES:
            raise ValueError(f"unknown pose_score {self.pose_score!r}; choose one of {', '.join(POSE_SCORES)}")
        overrides = {k: v for k, v in (("snap_radius", snap_radius), ("snap_threshold", snap_threshold),
                                        ("snap_weight", snap_weight)) if v is not None}
        snap_cfg = replace(self.cfg, pose_score=self.pose_score, **overrides)  # ModelConfig checks the values
        self.snapping = (snap_cfg.snap_radius, snap_cfg.snap_threshold, snap_cfg.snap_weight)
        if self.runtime is not None and self.runtime.backend != "torch" and self.snapping != self.net.snapping:
            raise ValueError(f"{self.runtime.source} snaps keypoints with its config's settings {self.net.snapping}; "
                             f"other snap settings need the torch backend")

    def preprocess(self, images: list[np.ndarray]) -> tuple[torch.Tensor, list[Letterbox]]:
        """Letterboxed, normalised batch ``[B,3,H,W]`` on the device, and each image's ``Letterbox``."""
        if isinstance(images, np.ndarray):
            raise TypeError("Predictor takes a list of images; wrap a single image as [image]")
        for i, image in enumerate(images):
            if (not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3
                    or min(image.shape[:2]) == 0):
                raise ValueError(f"image {i}: expected an RGB uint8 HxWx3 array, got "
                                 f"{getattr(image, 'dtype', type(image))} {getattr(image, 'shape', '')}")
        size = self.long_side([image.shape for image in images])
        if self.fixed_canvas is not None:
            check_fixed_canvas([image.shape for image in images], size, self.fixed_canvas, self.runtime.source)
        shared = self.canvas([image.shape for image in images])
        canvases, boxes = [], []
        for image in images:
            canvas, box = letterbox(image, size, shared)
            canvases.append(canvas)
            boxes.append(box)
        batch = torch.from_numpy(np.stack(canvases)).to(self.device, non_blocking=True)
        return normalize(batch).to(self.dtype), boxes

    def canvas(self, shapes) -> tuple[int, int]:
        """(W, H) of the network input for images of ``shapes``: the exported model's fixed shape, else square or,
        with ``rect``, the smallest multiples of 32 that hold them (``models.preprocess.batch_canvas``)."""
        return self.fixed_canvas or batch_canvas(shapes, self.long_side(shapes), self.rect)

    def long_side(self, shapes) -> int:
        """The long side images of ``shapes`` are scaled to: ``input_size``, or for models that scale the short side
        to it (DEKR's, ``ModelConfig.resize``) the long side that gives (``models.preprocess.long_side``)."""
        return long_side(shapes, self.input_size, self.cfg.resize)

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor):
        """``(Candidates, SparseOutput)`` for a preprocessed batch, in feature-map pixels."""
        if self.runtime is None:
            return self.forward_torch(batch)
        if self.runtime.backend != "torch":
            return self.runtime(batch)
        with self.runtime.autocast():
            return self.forward_torch(batch)

    @property
    def in_flight(self) -> int:
        """Forwards that may be submitted at once (``submit``): an OpenVINO runtime's with several streams, else 1."""
        return getattr(self.runtime, "in_flight", 1)

    @property
    def streams(self) -> int:
        """Inferences the runtime runs at once (OpenVINO THROUGHPUT streams), else 1."""
        return getattr(self.runtime, "streams", 1)

    def submit(self, batch: torch.Tensor):
        """``forward`` started: a ``Pending`` whose ``result()`` is ``forward(batch)``; an OpenVINO runtime with several
        streams runs it in the background (keep at most ``in_flight`` submitted), every other path runs it now."""
        if self.runtime is not None and self.runtime.backend != "torch":
            return self.runtime.submit(batch)
        from models.export.runtime import Pending
        return Pending(self.forward(batch))

    def forward_torch(self, batch: torch.Tensor):
        net = self.net
        if len(self.views) == 1:
            return net.infer(batch, self.decode_backend, self.snapping)
        dense = self.dense_views(batch)
        plain_grid = [mirror_maps(d.score, d.offsets) if v.mirrored else (d.score, d.offsets)
                      for v, d in zip(self.views, dense)]
        heatmaps = None
        if dense[0].heatmaps is not None:
            heatmaps = sum(mirror_heatmaps(d.heatmaps) if v.mirrored else d.heatmaps
                           for v, d in zip(self.views, dense)) / len(dense)
        avg = DenseOutput(sum(m[0] for m in plain_grid) / len(dense), sum(m[1] for m in plain_grid) / len(dense),
                          dense[0].kfeat, dense[0].ifeat, heatmaps)
        cands = net.decode(avg, self.decode_backend)
        if self.cfg.head == "dekr":  # DEKR scores the averaged maps once
            return cands, net.sparse(avg, cands)
        w = avg.score.shape[-1]
        idx = cands.indices
        oriented = {False: (avg.score, avg.offsets, idx)}  # the averaged maps and peaks in each view's orientation
        if any(v.mirrored for v in self.views):
            oriented[True] = (*mirror_maps(avg.score, avg.offsets),
                              torch.where(idx >= 0, idx - idx % w + (w - 1 - idx % w), idx))
        outs = []
        for view, d in zip(self.views, dense):
            if view == View():
                outs.append(net.sparse(avg, cands))
                continue
            score, offsets, indices = oriented[view.mirrored]
            out = net.sparse(DenseOutput(score, offsets, d.kfeat, d.ifeat),
                             candidates_at(score, offsets, d.kfeat, d.ifeat, indices))
            outs.append(mirror_sparse(out, w, cands.valid) if view.mirrored else out)
        return cands, net.snap(avg, mean_sparse(outs), cands.valid, self.snapping)

    def dense_views(self, batch: torch.Tensor) -> list[DenseOutput]:
        """The dense outputs of ``self.views`` on the plain view's grid, each in its view's orientation; one
        network pass per canvas size."""
        size = (batch.shape[-2] // self.net.stride, batch.shape[-1] // self.net.stride)
        by_shift: dict[int, list[View]] = {}
        for view in self.views:
            by_shift.setdefault(view.shift, []).append(view)
        out: dict[View, DenseOutput] = {}
        b = batch.shape[0]
        for views in by_shift.values():
            shift = mirror_shift(self.cfg.feature_origin)
            stacked = self.net.dense(torch.cat([view_batch(batch, v, shift) for v in views]))
            for i, view in enumerate(views):
                part = DenseOutput(*(None if t is None else t[i * b:(i + 1) * b]
                                     for t in (stacked.score, stacked.offsets, stacked.kfeat, stacked.ifeat,
                                               stacked.heatmaps)))
                out[view] = crop_to_plain(part, view, size)
        return [out[v] for v in self.views]

    def postprocess(self, raw, boxes: list[Letterbox]) -> list[Poses]:
        """Poses in each image's pixels, pose-NMSed, by score descending. On the host in NumPy
        (``models.inference.nms.pose_nms_np``): a few poses per image, where torch's cost per operation would
        dominate; the outputs are fetched from the device once per batch."""
        cands, out = raw
        cfg = self.cfg
        if cfg.head == "dekr":
            return dekr_poses(self.net, cands, out, boxes)
        valid = cands.valid.cpu().numpy()
        keypoints = to_input(out.keypoints.float().cpu().numpy(), self.net.stride, cfg.feature_origin)
        scores = pose_scores(out, self.pose_score).cpu().numpy()
        keypoint_scores = out.keypoint_scores.float().cpu().numpy()
        results = []
        for b, box in enumerate(boxes):
            kp, sc, ks = keypoints[b][valid[b]], scores[b][valid[b]], keypoint_scores[b][valid[b]]
            keep = pose_nms_np(kp, sc, cfg.pose_nms, cfg.nms_dist, cfg.nms_count, cfg.nms_oks)
            results.append(Poses(box.to_image(kp[keep]), ks[keep], sc[keep]))
        return results

    def predict(self, images: list[np.ndarray]) -> list[Poses]:
        if self.synthetic_only:
            self.synthetic_only = False
            warnings.warn(SYNTHETIC_NOTICE, SyntheticOnlyWarning, stacklevel=2)
        if isinstance(images, (list, tuple)) and not images:
            return []
        batch, boxes = self.preprocess(images)
        return self.postprocess(self.forward(batch), boxes)

    __call__ = predict


def _exported(path) -> bool:
    """``path`` names an exported model (an ``.onnx`` file, an OpenVINO folder or ``.xml``), not a checkpoint."""
    return path is not None and (Path(path).is_dir() or Path(path).suffix in (".onnx", ".xml"))


def _load_runtime(path, backend, precision, threads, device, input_size, decode_backend, half, views: bool,
                  streams: int = 1, first_frame: tuple[int, int] | None = None, rect: bool = True):
    """``models.export.runtime.load_runtime`` for the Predictor: flip and shift test run in torch only."""
    from models.export.runtime import load_runtime

    if views and backend == "auto" and not _exported(path):
        backend = "torch"  # the exported graph has no flip or shift test
    runtime = load_runtime(path, backend, precision, threads, str(device), input_size, decode_backend,
                           streams=streams, frame=first_frame, rect=rect)
    if runtime.backend != "torch" and (views or half):
        raise ValueError(f"{'flip and shift test run' if views else 'half runs'} on the torch backend only, not "
                         f"{runtime.backend}; pass --no-flip (no shift test) or --backend torch with a checkpoint")
    return runtime

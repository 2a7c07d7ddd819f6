"""``Predictor``: RGB uint8 images (any size) in, ``Poses`` in image pixels out.

    predict(images) = postprocess(forward(preprocess(images)))

- ``preprocess``: letterbox each image to ``input_size`` (``models.preprocess``), stack, normalise on the device.
- ``forward``: dense stage -> ``kernels.decode`` -> sparse stage -> keypoint snapping (``models.snap``; the
  checkpoint's ``snap_*`` settings unless overridden, radius 0: off); returns ``(Candidates, SparseOutput)`` in
  feature-map pixels. With ``flip_test`` the mirrored batch also runs the dense stage; its score and offset maps
  are mirrored back (x -> w-1-x, keypoint k <- FLIP_INDEX[k], dx negated) and averaged with the original's before
  the decode; the sparse stage then runs on both views (the mirrored view's candidates are the same poses,
  mirrored, with features sampled from the mirrored maps) and its outputs are mirrored back and averaged; the
  keypoint heatmaps (if any) are mirrored back and averaged like the score map, and snapping runs once on the
  averaged poses.
- ``postprocess``: feature px -> input px (``models.config.to_input``) -> image px (``Letterbox.to_image``),
  final scores ``models.qem.pose_scores`` (the checkpoint's ``pose_score`` unless overridden), pose NMS
  (``models.nms``, settings from the config), sorted by score.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from models.checkpoint import load_checkpoint
from models.config import POSE_SCORES, to_input
from models.keypoints import FLIP_INDEX
from models.network import DenseOutput, PoseNet
from models.nms import pose_nms
from models.poses import Poses
from models.preprocess import Letterbox, letterbox, normalize
from models.qem import SparseOutput, candidates_at, pose_scores


def mirror_heatmaps(heatmaps: torch.Tensor) -> torch.Tensor:
    """Keypoint heatmaps of a horizontally mirrored image in the other view (x -> w-1-x, keypoint k <-
    FLIP_INDEX[k])."""
    return heatmaps.flip(3)[:, torch.as_tensor(FLIP_INDEX, device=heatmaps.device)]


def mirror_maps(score: torch.Tensor, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Score and offset maps of a horizontally mirrored image expressed in the other view (an involution)."""
    b, two_k, h, w = offsets.shape
    flip = torch.as_tensor(FLIP_INDEX, device=offsets.device)
    off = offsets.flip(3).view(b, two_k // 2, 2, h, w)[:, flip]
    off = torch.cat([-off[:, :, :1], off[:, :, 1:]], dim=2).view(b, two_k, h, w)
    return score.flip(3), off


def mirror_sparse(out: SparseOutput, width: int, valid: torch.Tensor) -> SparseOutput:
    """Sparse outputs of the mirrored view mapped back: x -> width-1-x and keypoint identities swapped."""
    flip = torch.as_tensor(FLIP_INDEX, device=out.keypoints.device)
    kp = out.keypoints[:, :, flip]
    kp = torch.stack([(width - 1) - kp[..., 0], kp[..., 1]], dim=-1)
    kp = torch.where(valid[..., None, None], kp, 0.0)
    labelled = None if out.labelled_logits is None else out.labelled_logits[:, :, flip]
    return SparseOutput(keypoints=kp, keypoint_scores=out.keypoint_scores[:, :, flip],
                        score_logits=out.score_logits, keypoint_logits=out.keypoint_logits[:, :, flip],
                        labelled_logits=labelled)


class Predictor:
    """Runs a ``PoseNet`` (or the checkpoint at a path; ``None`` = ``models.DEFAULT_CHECKPOINT``) on images."""

    def __init__(self, model_or_checkpoint_path: PoseNet | str | Path | None = None, device: str = "cpu",
                 input_size: int | None = None, flip_test: bool = False, half: bool = False,
                 decode_backend: str = "auto", pose_score: str | None = None, snap_radius: int | None = None,
                 snap_threshold: float | None = None, snap_weight: float | None = None):
        self.device = torch.device(device)
        if half and self.device.type != "cuda":
            raise ValueError("half=True needs a CUDA device; use half=False on the CPU")
        if isinstance(model_or_checkpoint_path, PoseNet):
            net = model_or_checkpoint_path
        else:
            from models import DEFAULT_CHECKPOINT
            net = load_checkpoint(model_or_checkpoint_path or DEFAULT_CHECKPOINT)
        self.net = net.to(self.device).eval()
        if half:
            self.net.half()
        self.dtype = torch.float16 if half else torch.float32
        self.cfg = net.cfg
        self.input_size = int(input_size or self.cfg.input_size)
        if self.input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32, got {self.input_size}")
        self.flip_test = flip_test
        self.decode_backend = decode_backend
        self.pose_score = pose_score or self.cfg.pose_score
        if self.pose_score not in POSE_SCORES:
            raise ValueError(f"unknown pose_score {self.pose_score!r}; choose one of {', '.join(POSE_SCORES)}")
        overrides = {k: v for k, v in (("snap_radius", snap_radius), ("snap_threshold", snap_threshold),
                                        ("snap_weight", snap_weight)) if v is not None}
        snap_cfg = replace(self.cfg, pose_score=self.pose_score, **overrides)  # ModelConfig checks the values
        self.snapping = (snap_cfg.snap_radius, snap_cfg.snap_threshold, snap_cfg.snap_weight)

    def preprocess(self, images: list[np.ndarray]) -> tuple[torch.Tensor, list[Letterbox]]:
        """Letterboxed, normalised batch ``[B,3,S,S]`` on the device, and each image's ``Letterbox``."""
        if isinstance(images, np.ndarray):
            raise TypeError("Predictor takes a list of images; wrap a single image as [image]")
        canvases, boxes = [], []
        for i, image in enumerate(images):
            if (not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3
                    or min(image.shape[:2]) == 0):
                raise ValueError(f"image {i}: expected an RGB uint8 HxWx3 array, got "
                                 f"{getattr(image, 'dtype', type(image))} {getattr(image, 'shape', '')}")
            canvas, box = letterbox(image, self.input_size)
            canvases.append(canvas)
            boxes.append(box)
        batch = torch.from_numpy(np.stack(canvases)).to(self.device, non_blocking=True)
        return normalize(batch).to(self.dtype), boxes

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor):
        """``(Candidates, SparseOutput)`` for a preprocessed batch, in feature-map pixels."""
        net = self.net
        if not self.flip_test:
            return net.infer(batch, self.decode_backend, self.snapping)
        both = net.dense(torch.cat([batch, batch.flip(3)]))  # one pass over both views
        b = batch.shape[0]
        maps = (both.score, both.offsets, both.kfeat, both.ifeat, both.heatmaps)
        dense = DenseOutput(*(None if t is None else t[:b] for t in maps))
        mirrored = DenseOutput(*(None if t is None else t[b:] for t in maps))
        score_m, offsets_m = mirror_maps(mirrored.score, mirrored.offsets)
        heatmaps = None if dense.heatmaps is None else (dense.heatmaps + mirror_heatmaps(mirrored.heatmaps)) / 2
        avg = DenseOutput((dense.score + score_m) / 2, (dense.offsets + offsets_m) / 2, dense.kfeat, dense.ifeat,
                          heatmaps)
        cands = net.decode(avg, self.decode_backend)
        out = net.sparse(avg, cands)
        w = avg.score.shape[-1]
        score_f, offsets_f = mirror_maps(avg.score, avg.offsets)
        idx = cands.indices
        mirrored_idx = torch.where(idx >= 0, idx - idx % w + (w - 1 - idx % w), idx)
        cands_f = candidates_at(score_f, offsets_f, mirrored.kfeat, mirrored.ifeat, mirrored_idx)
        out_f = mirror_sparse(net.sparse(DenseOutput(score_f, offsets_f, mirrored.kfeat, mirrored.ifeat), cands_f),
                              w, cands.valid)
        labelled = None if out.labelled_logits is None else (out.labelled_logits + out_f.labelled_logits) / 2
        merged = SparseOutput(keypoints=(out.keypoints + out_f.keypoints) / 2,
                              keypoint_scores=(out.keypoint_scores + out_f.keypoint_scores) / 2,
                              score_logits=(out.score_logits + out_f.score_logits) / 2,
                              keypoint_logits=(out.keypoint_logits + out_f.keypoint_logits) / 2,
                              labelled_logits=labelled)
        return cands, net.snap(avg, merged, cands.valid, self.snapping)

    def postprocess(self, raw, boxes: list[Letterbox]) -> list[Poses]:
        """Poses in each image's pixels, pose-NMSed, by score descending."""
        cands, out = raw
        cfg = self.cfg
        keypoints = to_input(out.keypoints.float(), self.net.stride)
        scores = pose_scores(out, self.pose_score)
        results = []
        for b, box in enumerate(boxes):
            valid = cands.valid[b]
            kp, sc, ks = keypoints[b][valid], scores[b][valid], out.keypoint_scores[b][valid].float()
            keep = pose_nms(kp, sc, cfg.pose_nms, cfg.nms_dist, cfg.nms_count, cfg.nms_oks)
            kp_image = box.to_image(kp[keep].cpu().numpy())
            results.append(Poses(kp_image.astype(np.float32), ks[keep].cpu().numpy().astype(np.float32),
                                 sc[keep].cpu().numpy().astype(np.float32)))
        return results

    def predict(self, images: list[np.ndarray]) -> list[Poses]:
        if isinstance(images, (list, tuple)) and not images:
            return []
        batch, boxes = self.preprocess(images)
        return self.postprocess(self.forward(batch), boxes)

    __call__ = predict

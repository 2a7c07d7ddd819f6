"""Test-time views of a batch: the plain view, its mirror image (flip test), and copies placed ``shift`` input px right
and down in a canvas ``SHIFT_MARGIN`` px larger, filled with the letterbox's gray (shift test).

A shifted view sees the same pixels on another sampling phase of the strided backbone; with ``shift`` a multiple of
the stride its maps are cropped back onto the plain view's grid exactly (map pixel (y, x) of the plain view is
(y + shift/4, x + shift/4) of the shifted one; offsets are relative to their pixel, so they need no change). A mirrored
view's maps are mirrored back (``mirror_maps``). The predictor averages the score and offset maps of all views before
the decode and the sparse outputs of all views after it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from models.config import STRIDE
from models.keypoints import flip_index
from models.modeling.network import DenseOutput
from models.preprocess import PAD_VALUE, normalize
from models.modeling.qem import SparseOutput

SHIFT_MARGIN = 32  # px added to the right and bottom of the canvas of a shifted view (keeps it a multiple of 32)


@dataclass(frozen=True)
class View:
    shift: int = 0          # input px right and down (0: the plain canvas)
    mirrored: bool = False  # the batch mirrored left/right before it is placed


def views_for(flip: bool, shifts: Sequence[int] = ()) -> list[View]:
    """The views the predictor runs, plain first: each shift once, and each mirrored too when ``flip``."""
    bad = [s for s in shifts if not isinstance(s, int) or s <= 0 or s > SHIFT_MARGIN or s % STRIDE]
    if bad or len(set(shifts)) != len(shifts):
        raise ValueError(f"shift test: shifts must be distinct multiples of {STRIDE} in {STRIDE}..{SHIFT_MARGIN} px, "
                         f"got {list(shifts)}")
    return [View(s, m) for s in (0, *shifts) for m in ((False, True) if flip else (False,))]


def mirror_shift(feature_origin: float) -> int:
    """Input px a mirrored batch must move left so that its map mirrors the plain one's exactly (x -> w-1-x), for a
    network whose map pixel m is input pixel ``STRIDE m + feature_origin``: ``STRIDE - 1 - 2 feature_origin``, 0 for
    ours (origin 1.5), 3 for DEKR's (origin 0; DEKR's flip test moves its mirrored image the same way)."""
    return int(round(STRIDE - 1 - 2 * feature_origin))


def view_batch(batch: torch.Tensor, view: View, mirror_shift: int = 0) -> torch.Tensor:
    """The network input of ``view`` for a normalised batch ``[B,3,H,W]``; a mirrored batch moved ``mirror_shift``
    input px left, its last columns kept (``mirror_shift()``)."""
    x = batch.flip(3) if view.mirrored else batch
    if view.mirrored and mirror_shift:
        x = torch.cat([x[..., mirror_shift:], x[..., -mirror_shift:]], dim=3)
    if not view.shift:
        return x
    b, c, h, w = x.shape
    fill = normalize(torch.full((1, 1, 1, 3), PAD_VALUE, dtype=torch.uint8, device=x.device))[0, :, 0, 0]
    canvas = fill.to(x.dtype).view(1, c, 1, 1).expand(b, c, h + SHIFT_MARGIN, w + SHIFT_MARGIN).clone()
    canvas[:, :, view.shift:view.shift + h, view.shift:view.shift + w] = x
    return canvas


def crop_to_plain(dense: DenseOutput, view: View, size: tuple[int, int]) -> DenseOutput:
    """The maps of ``view``'s input restricted to the plain view's grid (``size`` = (h, w) map pixels), still in
    ``view``'s orientation."""
    c = view.shift // STRIDE
    h, w = size
    return DenseOutput(*(None if t is None else t[..., c:c + h, c:c + w]
                         for t in (dense.score, dense.offsets, dense.kfeat, dense.ifeat, dense.heatmaps)))


def mirror_heatmaps(heatmaps: torch.Tensor) -> torch.Tensor:
    """Keypoint heatmaps of a horizontally mirrored image in the other view (x -> w-1-x, keypoint k <-
    FLIP_INDEX[k])."""
    return heatmaps.flip(3)[:, torch.as_tensor(flip_index(heatmaps.shape[1]), device=heatmaps.device)]


def mirror_maps(score: torch.Tensor, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Score and offset maps of a horizontally mirrored image expressed in the other view (an involution)."""
    b, two_k, h, w = offsets.shape
    flip = torch.as_tensor(flip_index(two_k // 2), device=offsets.device)
    off = offsets.flip(3).view(b, two_k // 2, 2, h, w)[:, flip]
    off = torch.cat([-off[:, :, :1], off[:, :, 1:]], dim=2).view(b, two_k, h, w)
    return score.flip(3), off


def mirror_sparse(out: SparseOutput, width: int, valid: torch.Tensor) -> SparseOutput:
    """Sparse outputs of the mirrored view mapped back: x -> width-1-x and keypoint identities swapped."""
    flip = torch.as_tensor(flip_index(out.keypoints.shape[2]), device=out.keypoints.device)
    kp = out.keypoints[:, :, flip]
    kp = torch.stack([(width - 1) - kp[..., 0], kp[..., 1]], dim=-1)
    kp = torch.where(valid[..., None, None], kp, 0.0)
    labelled = None if out.labelled_logits is None else out.labelled_logits[:, :, flip]
    return SparseOutput(keypoints=kp, keypoint_scores=out.keypoint_scores[:, :, flip],
                        score_logits=out.score_logits, keypoint_logits=out.keypoint_logits[:, :, flip],
                        labelled_logits=labelled)


def mean_sparse(outs: list[SparseOutput]) -> SparseOutput:
    """The field-wise mean of the sparse outputs of several views of the same candidates."""
    def mean(name):
        fields = [getattr(o, name) for o in outs]
        return None if fields[0] is None else sum(fields[1:], fields[0]) / len(fields)
    return SparseOutput(keypoints=mean("keypoints"), keypoint_scores=mean("keypoint_scores"),
                        score_logits=mean("score_logits"), keypoint_logits=mean("keypoint_logits"),
                        labelled_logits=mean("labelled_logits"))

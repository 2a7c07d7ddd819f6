"""The whole inference graph as one module with tensor outputs, for export: dense stage -> top-k decode -> sparse
stage -> keypoint snapping (the config's settings; off at radius 0).

The decode follows ``kernels.decode_ref`` with one change that makes it traceable and fast in every runtime: the
peak order comes from top-ks instead of a stable sort (``tie_ordered_topk``). The flattened peak logits (non-peaks
at -inf) are padded with ``max_people`` -inf columns, so k = ``max_people`` never exceeds the row, whatever the map
size of a dynamic model. The decode contract breaks ties lower flat index first; a runtime's TopK may return equal
values in any order (OpenVINO's CPU TopK does, unless marked stable, which made it 10 times slower), so no result
here depends on the order a TopK gives equal values (tests/models/export/test_graph.py runs the ties in ONNX
Runtime and OpenVINO).

The gathers at the peaks read the maps channel-last (``gather_candidates_rows``): each map is viewed as a table
of rows, one per pixel (and per keypoint slot), so a gather picks whole rows. The values are
``gather_candidates``'s bit for bit; the runtimes then read the convolutions' own channel-last layout instead of
converting whole maps to planar. The maps may carry more channels than they are read for (the paired keypoint
head's padding slots, ``models.export.rewrite``): only the first ``2K`` offsets and ``K`` feature slots are read.
Outputs (``output_names``, batch first, N = ``max_people``):

    scores [B,N] f32, indices [B,N] i64, valid [B,N] bool, keypoints [B,N,K,2] f32, kpt_queries [B,N,K,Ck] f32,
    inst_queries [B,N,Ci] f32                                            -> kernels.candidates.Candidates
    refined [B,N,K,2] f32, keypoint_scores [B,N,K] f32, score_logits [B,N] f32, keypoint_logits [B,N,K] f32,
    labelled_logits [B,N,K] f32 (only with the labelled head)            -> models.modeling.qem.SparseOutput
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kernels.candidates import Candidates
from kernels.decode_ref import bilinear_corners, bilinear_mix, threshold_logit
from models.modeling.network import PoseNet
from models.modeling.qem import SparseOutput

CANDIDATE_NAMES = ("scores", "indices", "valid", "keypoints", "kpt_queries", "inst_queries")
SPARSE_NAMES = ("refined", "keypoint_scores", "score_logits", "keypoint_logits", "labelled_logits")


def output_names(labelled_head: bool) -> list[str]:
    return [*CANDIDATE_NAMES, *SPARSE_NAMES[:4], *(SPARSE_NAMES[4:] if labelled_head else ())]


def tie_ordered_topk(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest of each row of ``x [B,M]`` (no NaN, k <= M) by value descending, equal values lower index
    first: ``torch.sort(x, descending=True, stable=True)[:, :k]``, built from steps that do not depend on the
    order in which a TopK returns equal values:

    1. the k-th largest value t (a TopK's values are right whatever its tie order);
    2. the chosen: every element above t, and the lowest-index elements equal to t until there are k (a running
       count);
    3. their indices, lowest first: a TopK of ``M - index`` over the chosen (distinct keys; 0 elsewhere);
    4. their order: each one's rank (how many chosen come before it: larger, or equal with a lower index), and
       the permutation that the ranks give, from a [B,k,k] comparison."""
    m = x.shape[1]
    t = torch.topk(x, k, dim=1).values[:, -1:]
    above, at = x > t, x == t
    wanted = k - above.sum(1, keepdim=True)
    chosen = above | (at & (torch.cumsum(at.int(), dim=1) <= wanted))
    countdown = torch.arange(m, 0, -1, device=x.device, dtype=torch.float32).expand_as(x)  # exact below 2^24
    index = torch.topk(torch.where(chosen, countdown, torch.zeros_like(countdown)), k, dim=1).indices
    value = torch.gather(x, 1, index)
    slot = torch.arange(k, device=x.device)
    before = (value.unsqueeze(1) > value.unsqueeze(2)) | (
        (value.unsqueeze(1) == value.unsqueeze(2)) & (slot.view(1, 1, k) < slot.view(1, k, 1)))  # [B, i, j]: j first
    rank = before.sum(2)  # [B, k]: where each chosen element goes
    perm = ((rank.unsqueeze(2) == slot.view(1, 1, k)).long() * slot.view(1, k, 1)).sum(1)  # [B, k]: who goes there
    return torch.gather(value, 1, perm), torch.gather(index, 1, perm)


def window_max(score: torch.Tensor, nms_kernel: int, pool_steps=()) -> torch.Tensor:
    """The maximum of each pixel's peak window (``F.max_pool2d``, -inf padding): ``nms_kernel``, or per
    ``ModelConfig.pool_steps`` a larger window where the map's mean side exceeds a bound. The side is computed in the
    graph, so a model exported with dynamic height and width picks the window at run time."""
    pooled = F.max_pool2d(score, nms_kernel, stride=1, padding=nms_kernel // 2)
    if pool_steps:
        ones = torch.ones_like(score[0, 0])
        side = (ones[:, 0].sum() + ones[0].sum()) / 2
        for bound, kernel in reversed(pool_steps):  # the largest bound is applied last and wins
            larger = F.max_pool2d(score, kernel, stride=1, padding=kernel // 2)
            pooled = torch.where(side > bound, larger, pooled)
    return pooled


def find_peaks_topk(score: torch.Tensor, max_people: int, threshold: float, nms_kernel: int, pool_steps=()):
    """``find_peaks_ref`` with a top-k: ``(logits [B,N], indices [B,N] int64 (-1 unused), valid [B,N] bool)``;
    the window as ``window_max``."""
    logits = score.float().flatten(1)
    pooled = window_max(score.float(), nms_kernel, pool_steps).flatten(1)
    is_peak = (logits == pooled) & (logits > threshold_logit(threshold))
    keyed = torch.where(is_peak, logits, torch.full_like(logits, -math.inf))
    keyed = F.pad(keyed, (0, max_people), value=-math.inf)  # k never exceeds the row, whatever h * w is
    top, order = tie_ordered_topk(keyed, max_people)
    valid = top > -math.inf
    return top, torch.where(valid, order, torch.full_like(order, -1)), valid


def row_table(feat: torch.Tensor, width: int) -> torch.Tensor:
    """``feat [B, S*width, h, w]`` -> ``[B*h*w*S, width]``: row ``(b*h*w + p)*S + s`` holds slot s's ``width``
    channels at flat pixel p of image b."""
    return feat.permute(0, 2, 3, 1).reshape(-1, width)


def gather_candidates_rows(offsets, kfeat, ifeat, logits, indices, valid, *, num_keypoints: int,
                           kfeat_channels: int) -> Candidates:
    """``kernels.decode_ref.gather_candidates`` by row gathers (bit-identical outputs). ``offsets [B, >=2K, h, w]``
    (the first 2K channels are read), ``kfeat [B, S*Ck, h, w]`` with S >= K slots of ``kfeat_channels`` (the first
    K are read), ``ifeat [B, Ci, h, w]``."""
    b, _, h, w = offsets.shape
    k, ck, n, hw = num_keypoints, kfeat_channels, indices.shape[1], h * w
    safe = indices.clamp(min=0)  # [B, N]
    image = torch.arange(b, device=safe.device).view(b, 1) * hw
    rows = (safe + image).flatten()  # each peak's pixel row
    mask = valid.unsqueeze(-1)

    scores = torch.where(valid, torch.sigmoid(logits), torch.zeros_like(logits))
    off = row_table(offsets, offsets.shape[1])[rows].view(b, n, -1)[..., : 2 * k].float().view(b, n, k, 2)
    pixel = torch.stack([safe % w, safe // w], dim=-1).float().unsqueeze(2)  # [B, N, 1, 2]
    keypoints = torch.where(mask.unsqueeze(-1), pixel + off, torch.zeros_like(off))

    # bilinear_sample_ref, read from rows of (pixel, keypoint slot)
    x0, y0, x1, y1, wx, wy = bilinear_corners(keypoints[..., 0], keypoints[..., 1], h, w)  # each [B, N, K]
    corners = torch.stack([y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1])  # [4, B, N, K]
    slots = kfeat.shape[1] // ck
    slot_rows = (corners + image.view(1, b, 1, 1)) * slots + torch.arange(k, device=safe.device)
    corner_values = row_table(kfeat, ck)[slot_rows.flatten()].view(4, b, n, k, ck).float().unbind(0)
    kq = bilinear_mix(*corner_values, wx.unsqueeze(-1), wy.unsqueeze(-1)).to(kfeat.dtype)
    kq = torch.where(mask.unsqueeze(-1), kq, torch.zeros_like(kq))
    iq = row_table(ifeat, ifeat.shape[1])[rows].view(b, n, -1)
    iq = torch.where(mask, iq, torch.zeros_like(iq))
    return Candidates(scores=scores, indices=indices, valid=valid, keypoints=keypoints, kpt_queries=kq,
                      inst_queries=iq)


def decode_topk(score, offsets, kfeat, ifeat, *, max_people: int, threshold: float, nms_kernel: int,
                num_keypoints: int | None = None, kfeat_channels: int | None = None, pool_steps=()) -> Candidates:
    """``kernels.decode_ref.decode_ref`` with ``find_peaks_topk`` and ``gather_candidates_rows`` (same contract,
    same outputs). ``num_keypoints`` and ``kfeat_channels`` default to the unpadded maps' (``offsets`` holding 2K
    channels, ``kfeat`` K*Ck); ``pool_steps``: larger windows for larger maps (``window_max``)."""
    k = num_keypoints or offsets.shape[1] // 2
    peaks = find_peaks_topk(score, max_people, threshold, nms_kernel, pool_steps)
    return gather_candidates_rows(offsets, kfeat, ifeat, *peaks,
                                  num_keypoints=k, kfeat_channels=kfeat_channels or kfeat.shape[1] // k)


class InferenceGraph(nn.Module):
    """``x [B,3,H,W]`` -> the tensors of ``output_names(cfg.labelled_head)``; see the module docstring."""

    def __init__(self, net: PoseNet):
        super().__init__()
        self.net = net.eval()
        self.names = output_names(net.cfg.labelled_head)

    def forward(self, x: torch.Tensor):
        net, cfg = self.net, self.net.cfg
        dense = net.dense(x)
        cands = decode_topk(dense.score, dense.offsets, dense.kfeat, dense.ifeat, max_people=cfg.max_people,
                            threshold=cfg.decode_threshold, nms_kernel=cfg.nms_kernel, num_keypoints=cfg.num_keypoints,
                            kfeat_channels=cfg.kpt_channels, pool_steps=cfg.pool_steps)
        out = net.snap(dense, net.sparse(dense, cands), cands.valid)
        tensors = [cands.scores, cands.indices, cands.valid, cands.keypoints, cands.kpt_queries, cands.inst_queries,
                   out.keypoints, out.keypoint_scores, out.score_logits, out.keypoint_logits]
        if cfg.labelled_head:
            tensors.append(out.labelled_logits)
        return tuple(tensors)


def to_result(arrays) -> tuple[Candidates, SparseOutput]:
    """The graph's outputs (numpy arrays or tensors, in ``output_names`` order) -> ``(Candidates, SparseOutput)``,
    what ``Predictor.forward`` returns."""
    t = [torch.from_numpy(np.asarray(a)) if not isinstance(a, torch.Tensor) else a for a in arrays]
    cands = Candidates(scores=t[0].float(), indices=t[1].long(), valid=t[2].bool(), keypoints=t[3].float(),
                       kpt_queries=t[4].float(), inst_queries=t[5].float())
    sparse = SparseOutput(keypoints=t[6].float(), keypoint_scores=t[7].float(), score_logits=t[8].float(),
                          keypoint_logits=t[9].float(), labelled_logits=t[10].float() if len(t) > 10 else None)
    return cands, sparse

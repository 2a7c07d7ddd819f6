"""The whole inference graph as one module with tensor outputs, for export: dense stage -> top-k decode -> sparse
stage -> keypoint snapping (the config's settings; off at radius 0).

The decode follows ``kernels.decode_ref`` with one change that makes it traceable and fast in every runtime: the
exported peak order comes from a top-k instead of a stable sort. The flattened peak logits (non-peaks at -inf) are
padded with ``max_people`` -inf columns, so k = ``max_people`` never exceeds the row, whatever the map size of a
dynamic model. ONNX TopK returns equal values lower index first, which is the decode contract's tie rule (score
descending, flat index ascending); ONNX Runtime and OpenVINO keep it (tests/models/export/test_graph.py). Eager
PyTorch's ``topk`` does not promise an order for ties, so outside an export the same function sorts stably.
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
from kernels.decode_ref import gather_candidates, threshold_logit
from models.modeling.network import PoseNet
from models.modeling.qem import SparseOutput

CANDIDATE_NAMES = ("scores", "indices", "valid", "keypoints", "kpt_queries", "inst_queries")
SPARSE_NAMES = ("refined", "keypoint_scores", "score_logits", "keypoint_logits", "labelled_logits")


def output_names(labelled_head: bool) -> list[str]:
    return [*CANDIDATE_NAMES, *SPARSE_NAMES[:4], *(SPARSE_NAMES[4:] if labelled_head else ())]


def find_peaks_topk(score: torch.Tensor, max_people: int, threshold: float, nms_kernel: int):
    """``find_peaks_ref`` with a top-k: ``(logits [B,N], indices [B,N] int64 (-1 unused), valid [B,N] bool)``."""
    logits = score.float().flatten(1)
    pooled = F.max_pool2d(score.float(), nms_kernel, stride=1, padding=nms_kernel // 2).flatten(1)  # -inf padding
    is_peak = (logits == pooled) & (logits > threshold_logit(threshold))
    keyed = torch.where(is_peak, logits, torch.full_like(logits, -math.inf))
    keyed = F.pad(keyed, (0, max_people), value=-math.inf)  # k never exceeds the row, whatever h * w is
    if torch.onnx.is_in_onnx_export():  # ONNX TopK: equal values lower index first, the contract's tie rule
        top, order = torch.topk(keyed, max_people, dim=1, largest=True, sorted=True)
    else:  # torch.topk breaks ties in no stated order on a CPU; a stable sort keeps the rule in eager mode
        top, order = torch.sort(keyed, dim=1, descending=True, stable=True)
        top, order = top[:, :max_people], order[:, :max_people]
    valid = top > -math.inf
    return top, torch.where(valid, order, torch.full_like(order, -1)), valid


def decode_topk(score, offsets, kfeat, ifeat, *, max_people: int, threshold: float, nms_kernel: int) -> Candidates:
    """``kernels.decode_ref.decode_ref`` with ``find_peaks_topk`` (same contract, same outputs)."""
    return gather_candidates(offsets, kfeat, ifeat, *find_peaks_topk(score, max_people, threshold, nms_kernel))


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
                            threshold=cfg.threshold, nms_kernel=cfg.nms_kernel)
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

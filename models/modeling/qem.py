"""The sparse stage: the Query Encoding Module (KQE + PQE) on the N decoded candidates.

Our reconstruction (the paper's layer sizes are not known to us; H = ``qem_hidden``):

- KQE, per keypoint k of a candidate at peak pixel p with coarse keypoint ``p + o_k``:
  ``q_k = LayerNorm(R_k(p + o_k) + PE(o_k / pos_scale) + e_k)``: the sampled per-keypoint feature (semantic part),
  a learned projection of Fourier features ``[u, sin(2^f pi u), cos(2^f pi u)]`` of the offset (positional part)
  and a learned keypoint-identity embedding. A shared MLP gives ``h_k`` (H), the pose context ``mean_k h_k`` is
  concatenated back, and two linear outputs give the residual ``delta_k`` (feature px, zero-initialised so the
  refined pose starts at the coarse one) and a keypoint-score logit.
- PQE: the refined pose, centred on its mean and divided by its RMS radius s (the instance scale, feature px),
  plus ``log s`` and the centre's offset from p over s, goes through an MLP; it is summed with projections of the
  instance feature ``ifeat(p)`` and of the pooled keypoint queries, and an MLP gives a residual to the dense
  score: ``final logit = dense logit at p (detached) + PQE(...)`` (zero-initialised).
- Keypoint scores (our design): ``sigmoid`` of the KQE keypoint logit, trained towards the keypoint's own OKS
  term ``exp(-d^2 / (2 s^2 (2 sigma_k)^2))`` of the refined keypoint, so a keypoint score is a predicted
  per-keypoint similarity in [0, 1].
- Labelled head (our design, ``labelled_head``): a linear logit per keypoint on the same features as the keypoint
  score, trained towards whether the ground truth labels that keypoint (v > 0). OKS averages only over labelled
  keypoints, and a keypoint that will not be labelled (a face turned away, a joint outside the image; in COCO
  also any joint the annotators could not place) has an untrained keypoint score, so the ``labelled_mean`` pose
  score weights each keypoint score by this probability.
- Switches: ``use_kqe=False`` keeps the coarse keypoints and scores keypoints with a linear layer on the sampled
  feature; ``use_pqe=False`` makes the final score the dense score at p.

Unused candidate slots (``valid`` False) come out as zeros.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from kernels.candidates import Candidates
from kernels.decode_ref import bilinear_sample_ref
from models.config import ModelConfig


@dataclass
class SparseOutput:
    """Per candidate slot: ``keypoints [B,N,K,2]`` refined (x, y) feature-map px (fp32); ``keypoint_scores
    [B,N,K]`` in [0, 1]; ``keypoint_logits [B,N,K]``; ``score_logits [B,N]`` final pose-quality logits (fp32);
    ``labelled_logits [B,N,K]`` (fp32) logits of "this keypoint is labelled", None without the labelled head."""

    keypoints: torch.Tensor
    keypoint_scores: torch.Tensor
    score_logits: torch.Tensor
    keypoint_logits: torch.Tensor
    labelled_logits: torch.Tensor | None = None

    @property
    def scores(self) -> torch.Tensor:
        return torch.sigmoid(self.score_logits)


def pose_scores(out: SparseOutput, mode: str = "pqe") -> torch.Tensor:
    """Final pose scores ``[B,N]`` in [0, 1], both estimates of the pose's OKS.

    ``"pqe"``: the paper's score, ``sigmoid`` of the final logit (dense CIR logit at the peak + the PQE residual).
    ``"keypoint_mean"``: the mean over the K keypoints of the keypoint scores. Each keypoint score is trained
    towards that keypoint's OKS term, and a pose's OKS is the mean of those terms over its labelled keypoints, so
    the mean is a second estimate of the same quantity (on our synthetic data a closer one; see RESULTS.md).
    ``"labelled_mean"``: the same mean weighted by each keypoint's probability of being labelled,
    ``sum_k p_k s_k / sum_k p_k`` (needs the labelled head), since OKS averages over labelled keypoints only.
    """
    if mode == "pqe":
        return out.score_logits.float().sigmoid()
    if mode == "keypoint_mean":
        return out.keypoint_scores.float().mean(dim=-1)
    if mode == "labelled_mean":
        if out.labelled_logits is None:
            raise ValueError("pose score 'labelled_mean' needs a model with the labelled head (--labelled-head)")
        p = out.labelled_logits.float().sigmoid()
        return (p * out.keypoint_scores.float()).sum(dim=-1) / p.sum(dim=-1).clamp(min=1e-6)
    raise ValueError(f"unknown pose score {mode!r}; choose one of pqe, keypoint_mean, labelled_mean")


def fourier_features(u: torch.Tensor, frequencies: int) -> torch.Tensor:
    """``u [...,2]`` -> ``[..., 2 + 4F]``: u, then sin and cos of ``2^f pi u`` for f < F."""
    scales = (2.0 ** torch.arange(frequencies, device=u.device, dtype=u.dtype)) * math.pi
    angles = (u.unsqueeze(-1) * scales).flatten(-2)
    return torch.cat([u, torch.sin(angles), torch.cos(angles)], dim=-1)


def peak_xy(indices: torch.Tensor, width: int) -> torch.Tensor:
    """Flat indices ``[B,N]`` -> pixel centres (x, y) ``[B,N,2]`` float32 (invalid -1 slots map to 0)."""
    safe = indices.clamp(min=0)
    return torch.stack([safe % width, safe // width], dim=-1).float()


def candidates_at(score, offsets, kfeat, ifeat, indices: torch.Tensor) -> Candidates:
    """Candidates at given flat ``indices [B,N]`` (-1 = unused) with the decode's conventions, for training
    (the sparse stage sees the same inputs as after ``kernels.decode``). Keypoints are detached; features keep
    their graph. Sampling uses the reference decode's own bilinear sampler."""
    b, _, h, w = score.shape
    k = offsets.shape[1] // 2
    valid = indices >= 0
    safe = indices.clamp(min=0)
    logits = torch.gather(score.detach().float().flatten(1), 1, safe)
    off = torch.gather(offsets.detach().float().flatten(2), 2, safe.unsqueeze(1).expand(b, 2 * k, -1))
    keypoints = peak_xy(indices, w).unsqueeze(2) + off.view(b, k, 2, -1).permute(0, 3, 1, 2)
    kq = bilinear_sample_ref(kfeat.view(b, k, -1, h, w), keypoints)
    iq = torch.gather(ifeat.flatten(2), 2, safe.unsqueeze(1).expand(b, ifeat.shape[1], -1)).transpose(1, 2)
    m = valid.unsqueeze(-1)
    return Candidates(scores=torch.where(valid, torch.sigmoid(logits), 0.0), indices=torch.where(valid, indices, -1),
                      valid=valid, keypoints=torch.where(m.unsqueeze(-1), keypoints, 0.0),
                      kpt_queries=torch.where(m.unsqueeze(-1), kq, 0), inst_queries=torch.where(m, iq, 0))


class KQE(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        ck, hidden = cfg.kpt_channels, cfg.qem_hidden
        self.frequencies, self.pos_scale = cfg.pos_frequencies, cfg.pos_scale
        self.position = nn.Linear(2 + 4 * cfg.pos_frequencies, ck)
        self.identity = nn.Parameter(torch.zeros(cfg.num_keypoints, ck))
        self.norm = nn.LayerNorm(ck)
        self.encode = nn.Sequential(nn.Linear(ck, hidden), nn.ReLU(inplace=True),
                                    nn.Linear(hidden, hidden), nn.ReLU(inplace=True))
        self.mix = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(inplace=True))
        self.delta = nn.Linear(hidden, 2)
        self.keypoint_logit = nn.Linear(hidden, 1)
        nn.init.zeros_(self.delta.weight)
        nn.init.zeros_(self.delta.bias)

    def forward(self, kpt_queries: torch.Tensor, offsets: torch.Tensor):
        """``kpt_queries [B,N,K,Ck]``, ``offsets [B,N,K,2]`` (keypoint - peak, feature px) ->
        ``(delta [B,N,K,2], keypoint logits [B,N,K], h [B,N,K,H])``."""
        pe = self.position(fourier_features(offsets / self.pos_scale, self.frequencies))
        h = self.encode(self.norm(kpt_queries + pe + self.identity))
        h = self.mix(torch.cat([h, h.mean(dim=2, keepdim=True).expand_as(h)], dim=-1))
        return self.delta(h), self.keypoint_logit(h).squeeze(-1), h


class PQE(nn.Module):
    def __init__(self, cfg: ModelConfig, query_dim: int):
        super().__init__()
        hidden = cfg.qem_hidden
        self.pose = nn.Sequential(nn.Linear(2 * cfg.num_keypoints + 3, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, hidden))
        self.instance = nn.Linear(cfg.inst_channels, hidden)
        self.query = nn.Linear(query_dim, hidden)
        self.head = nn.Sequential(nn.ReLU(inplace=True), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, 1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    @staticmethod
    def pose_code(keypoints: torch.Tensor, peak: torch.Tensor) -> torch.Tensor:
        """Scale-normalised pose ``[B,N,2K+3]``: (keypoints - centre)/s, log s, (centre - peak)/s."""
        centre = keypoints.mean(dim=2, keepdim=True)
        rel = keypoints - centre
        s = rel.pow(2).sum(-1).mean(-1, keepdim=True).clamp(min=1e-4).sqrt()  # [B,N,1]; clamp first: finite grad
        return torch.cat([(rel / s.unsqueeze(-1)).flatten(2), s.log(), (centre.squeeze(2) - peak) / s], dim=-1)

    def forward(self, keypoints, peak, inst_queries, pooled_queries) -> torch.Tensor:
        z = self.pose(self.pose_code(keypoints, peak)) + self.instance(inst_queries) + self.query(pooled_queries)
        return self.head(z).squeeze(-1)


class QEM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.kqe = KQE(cfg) if cfg.use_kqe else None
        self.keypoint_logit = None if cfg.use_kqe else nn.Linear(cfg.kpt_channels, 1)
        query_dim = cfg.qem_hidden if cfg.use_kqe else cfg.kpt_channels
        self.pqe = PQE(cfg, query_dim) if cfg.use_pqe else None
        self.labelled_logit = nn.Linear(query_dim, 1) if cfg.labelled_head else None

    def forward(self, score: torch.Tensor, cands: Candidates) -> SparseOutput:
        """``score [B,1,h,w]`` dense logits (for the peak logit), ``cands`` from the decode -> ``SparseOutput``."""
        w = score.shape[-1]
        dtype = cands.kpt_queries.dtype
        valid = cands.valid
        peak = peak_xy(cands.indices, w)
        coarse = cands.keypoints.float()
        peak_logit = torch.gather(score.detach().float().flatten(1), 1, cands.indices.clamp(min=0))
        if self.kqe is not None:
            delta, kpt_logits, h = self.kqe(cands.kpt_queries, (coarse - peak.unsqueeze(2)).to(dtype))
            refined = coarse + delta.float()
        else:
            refined = coarse
            h = cands.kpt_queries
            kpt_logits = self.keypoint_logit(h).squeeze(-1)
        pooled = h.mean(dim=2)
        score_logits = peak_logit
        if self.pqe is not None:
            score_logits = peak_logit + self.pqe(refined.to(dtype), peak.to(dtype), cands.inst_queries,
                                                 pooled).float()
        kpt_logits = kpt_logits.float()
        m = valid.unsqueeze(-1)
        labelled = None
        if self.labelled_logit is not None:
            labelled = torch.where(m, self.labelled_logit(h).squeeze(-1).float(), 0.0)
        return SparseOutput(keypoints=torch.where(m.unsqueeze(-1), refined, 0.0),
                            keypoint_scores=torch.where(m, torch.sigmoid(kpt_logits), 0.0),
                            score_logits=torch.where(valid, score_logits, 0.0),
                            keypoint_logits=torch.where(m, kpt_logits, 0.0), labelled_logits=labelled)

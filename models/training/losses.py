"""Training losses: ``training_losses(net, images, persons)`` -> ``{"loss": total, <term>: value, ...}``.

Terms (weights ``w_*`` in ``ModelConfig``; all in feature px, where the stride-4 map lives):

- ``score_map``: the dense score. ``score_mode="cir"``: target = OKS of the pose regressed at each positive pixel
  against its person (detached), 0 on background; ``"center_gaussian"``: the centre heatmap (DEKR baseline).
  Loss ``cir_loss``: ``"qfl"`` ``BCE(x, t) |t - sigmoid(x)|^beta``; ``"varifocal"`` BCE weighted by t on positives
  and ``0.75 sigmoid(x)^2`` on negatives; ``"mse"`` ``(sigmoid(x) - t)^2``. Sums over pixels / number of positives.
- ``offset``: L1 of coarse offsets at positive pixels, labelled keypoints, each divided by sqrt(person area)
  (DEKR's scale weighting), averaged over (pixel, keypoint) pairs; ``offset_oks``: mean ``1 - OKS`` there.
- Sparse stage on ``train_positives`` random positive pixels + ``train_negatives`` highest-scoring background
  pixels per image (coarse keypoints detached, features attached): ``refine`` / ``refine_oks`` as above on the
  refined keypoints (KQE on); ``final_score``: the final logit against the detached OKS of the refined pose (0
  for negatives), same loss kind as the map, per positive candidate (PQE on); ``kpt_score``: BCE of keypoint
  logits against the detached per-keypoint OKS term of the refined keypoint (labelled keypoints, positives).
- ``labelled`` (``labelled_head`` on): BCE of the labelled logits against whether the candidate's person has each
  keypoint labelled (v > 0), all K keypoints of the positive candidates.
- ``heatmap`` (``keypoint_heatmaps`` on): the same quality loss as the score map (``cir_loss``) of the keypoint
  heatmap logits against gaussians of ``heatmap_sigma`` around each labelled keypoint, summed over pixels and
  keypoint types, divided by the number of labelled keypoints.

Ignore regions (``DenseTargets.ignore``: crowds and unlabelled people) train no background: the score map has
weight 0 at ignored pixels outside the positive windows (a labelled person's own positives keep their loss), the
keypoint heatmaps have weight 0 at ignored pixels where the target is below ``HEATMAP_BACKGROUND`` (beyond about
3 sigma of every labelled keypoint of that type), and the sparse stage draws no background candidate there.
Without a mask (``--no-ignore-regions``, evaluation data) every pixel counts as before.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from models.config import STRIDE
from models.oks import keypoint_similarity
from models.data.persons import Persons
from models.modeling.qem import candidates_at
from models.training.targets import DenseTargets, build_targets, keypoint_heatmaps

VFL_ALPHA, VFL_GAMMA = 0.75, 2.0
HEATMAP_BACKGROUND = 0.01  # exp(-d^2 / 2 sigma^2) below this: d > 3.03 sigma


def quality_loss(logits: torch.Tensor, target: torch.Tensor, kind: str, beta: float = 2.0,
                 weight: torch.Tensor | None = None) -> torch.Tensor:
    """Summed quality loss of ``logits`` against soft targets in [0, 1] (``weight`` masks elements)."""
    logits, target = logits.float(), target.float()
    p = torch.sigmoid(logits)
    if kind == "qfl":
        loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none") * (p - target).abs().pow(beta)
    elif kind == "varifocal":
        focal = torch.where(target > 0, target, VFL_ALPHA * p.detach().pow(VFL_GAMMA))
        loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none") * focal
    elif kind == "mse":
        loss = (p - target) ** 2
    else:
        raise ValueError(f"unknown score loss {kind!r}; choose qfl, varifocal or mse")
    return (loss if weight is None else loss * weight).sum()


def pose_terms(pred: torch.Tensor, gt: torch.Tensor, areas: torch.Tensor, mask: torch.Tensor):
    """For poses ``pred [...,K,2]`` vs ``gt [...,K,3]`` with ``areas [...]``, over entries where ``mask [...]``:
    (mean scaled L1 per labelled keypoint, mean 1 - OKS, OKS [...] with grad, similarity [...,K], labelled)."""
    sim, labelled = keypoint_similarity(pred, gt, areas)
    labelled = labelled & mask.unsqueeze(-1)
    oks = (sim * labelled).sum(-1) / labelled.sum(-1).clamp(min=1)
    l1 = (pred - gt[..., :2]).abs().sum(-1) / areas.clamp(min=1.0).sqrt().unsqueeze(-1)
    l1 = (l1 * labelled).sum() / labelled.sum().clamp(min=1)
    oks_loss = ((1 - oks) * mask).sum() / mask.sum().clamp(min=1)
    return l1, oks_loss, oks, sim, labelled


def gather_people(t: DenseTargets, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground truth of the owners of flat pixel ``index [B,N]`` -> keypoints ``[B,N,K,3]``, areas ``[B,N]``."""
    owner = torch.gather(t.owner.flatten(1), 1, index.clamp(min=0)).clamp(min=0)
    b, _, k, _ = t.keypoints.shape
    kps = torch.gather(t.keypoints, 1, owner[..., None, None].expand(b, owner.shape[1], k, 3))
    return kps, torch.gather(t.areas, 1, owner)


def sample_candidates(t: DenseTargets, score: torch.Tensor, positives: int, negatives: int):
    """Flat indices ``[B,N]`` (-1 unused) of random positive pixels then top-scoring background pixels outside
    the ignore regions, and the positive mask ``[B,N]``."""
    pos = t.positive.flatten(1)
    not_background = pos if t.ignore is None else pos | t.ignore.flatten(1)
    n_pix = pos.shape[1]
    key = torch.where(pos, torch.rand(pos.shape, device=pos.device), -torch.inf)
    pk, pi = key.topk(min(positives, n_pix), dim=1)
    nkey = torch.where(not_background, -torch.inf, score.detach().float().flatten(1))
    nk, ni = nkey.topk(min(negatives, n_pix), dim=1)
    keys, idx = torch.cat([pk, nk], 1), torch.cat([pi, ni], 1)
    valid = keys > -torch.inf
    is_pos = torch.zeros_like(valid)
    is_pos[:, : pi.shape[1]] = True
    return torch.where(valid, idx, -1), is_pos & valid


def training_losses(net, images: torch.Tensor, persons: list[Persons]) -> dict[str, torch.Tensor]:
    """All loss terms for one batch: ``images [B,3,S,S]`` normalised, ``persons`` in input px (one per image)."""
    cfg = net.cfg
    if len(persons) != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {len(persons)} Persons")
    dense = net.dense(images)
    b, _, h, w = dense.score.shape
    if images.shape[-1] != STRIDE * w or images.shape[-2] != STRIDE * h:
        raise ValueError(f"map {h}x{w} is not input/{STRIDE} for input {tuple(images.shape[-2:])}")
    t = build_targets(persons, (h, w), tuple(images.shape[-2:]), cfg.num_keypoints, cfg.positive_radius,
                      cfg.center_sigma, device=images.device)
    k = cfg.num_keypoints
    grid_y, grid_x = torch.meshgrid(torch.arange(h, device=images.device), torch.arange(w, device=images.device),
                                    indexing="ij")
    pixel = torch.stack([grid_x, grid_y], -1).float().view(1, h * w, 1, 2)
    poses = pixel + dense.offsets.float().view(b, k, 2, h * w).permute(0, 3, 1, 2)  # [B, hw, K, 2]
    all_idx = torch.arange(h * w, device=images.device).expand(b, -1)
    gt, areas = gather_people(t, all_idx)
    pos = t.positive.flatten(1)
    n_pos = pos.sum().clamp(min=1)
    terms = {}
    terms["offset"], terms["offset_oks"], pixel_oks, _, _ = pose_terms(poses, gt, areas, pos)
    if cfg.score_mode == "cir":
        target = torch.where(pos, pixel_oks.detach(), 0.0)
    else:
        target = t.heatmap.flatten(1)
    ignored = None if t.ignore is None or not t.ignore.any() else t.ignore.flatten(1) & ~pos
    terms["score_map"] = quality_loss(dense.score.flatten(1), target, cfg.cir_loss, cfg.cir_beta,
                                      weight=None if ignored is None else (~ignored).float()) / n_pos

    index, is_pos = sample_candidates(t, dense.score, cfg.train_positives, cfg.train_negatives)
    cands = candidates_at(dense.score, dense.offsets, dense.kfeat, dense.ifeat, index)
    out = net.sparse(dense, cands)
    c_gt, c_areas = gather_people(t, index)
    refine, refine_oks, c_oks, sim, labelled = pose_terms(out.keypoints, c_gt, c_areas, is_pos)
    if cfg.use_kqe:
        terms["refine"], terms["refine_oks"] = refine, refine_oks
    n_cand = is_pos.sum().clamp(min=1)
    if cfg.use_pqe:
        c_target = torch.where(is_pos, c_oks.detach(), 0.0)
        terms["final_score"] = quality_loss(out.score_logits, c_target, cfg.cir_loss, cfg.cir_beta,
                                            weight=cands.valid.float()) / n_cand
    if dense.heatmaps is not None:
        hm_target = keypoint_heatmaps(t.keypoints, (h, w), cfg.heatmap_sigma)
        n_kpt = (t.keypoints[..., 2] > 0).sum().clamp(min=1)
        hm_weight = None
        if ignored is not None:
            hm_weight = (~(t.ignore.unsqueeze(1) & (hm_target < HEATMAP_BACKGROUND))).float()
        terms["heatmap"] = quality_loss(dense.heatmaps, hm_target, cfg.cir_loss, cfg.cir_beta,
                                        weight=hm_weight) / n_kpt
    kpt_bce = F.binary_cross_entropy_with_logits(out.keypoint_logits, sim.detach(), reduction="none")
    terms["kpt_score"] = (kpt_bce * labelled).sum() / labelled.sum().clamp(min=1)
    if out.labelled_logits is not None:
        is_labelled = (c_gt[..., 2] > 0).float()
        bce = F.binary_cross_entropy_with_logits(out.labelled_logits, is_labelled, reduction="none")
        terms["labelled"] = (bce * is_pos.unsqueeze(-1)).sum() / (n_cand * k)

    weights = {"score_map": cfg.w_score_map, "offset": cfg.w_offset, "offset_oks": cfg.w_offset_oks,
               "refine": cfg.w_refine, "refine_oks": cfg.w_refine_oks, "final_score": cfg.w_final_score,
               "kpt_score": cfg.w_kpt_score, "heatmap": cfg.w_heatmap, "labelled": cfg.w_labelled}
    total = sum(weights[name] * value for name, value in terms.items())
    return {"loss": total, **terms}

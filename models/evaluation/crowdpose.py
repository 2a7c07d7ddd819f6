"""CrowdPose evaluation: AP, AP50, AP75, AR and AP easy / medium / hard, as the CrowdPose toolkit computes them.

The toolkit (``crowdposetools``, in the CrowdPose repository, not on the package index) is pycocotools' COCOeval
with four changes, each reproduced here on top of pycocotools rather than copied:

- 14 keypoints in CrowdPose's order (``CROWDPOSE_NAMES``: left/right shoulder, elbow, wrist, hip, knee, ankle,
  then head (the top of the head) and neck) with its OKS sigmas ``CROWDPOSE_SIGMAS``: the COCO values of the 12
  limb points, and .079 for head and neck (``params.kpt_oks_sigmas``);
- the OKS scale of a ground-truth person is ``0.53 * bbox width * height`` (the files have no ``area``), so the
  ground truth is evaluated through a copy whose ``area`` is that;
- at most 20 poses per image and one area range, all sizes (COCOeval's keypoint default; stats[0:3] and AR);
- AP easy / medium / hard: COCOeval run again on the images of each crowd-index bucket (``crowdIndex`` per image in
  the file), the mean of its precision array. The buckets are those of the toolkit's ``summarize``
  (``get_type_result(first=0.2, second=0.8)``): easy ``crowdIndex < 0.2``, medium ``0.2 <= crowdIndex < 0.8``,
  hard ``crowdIndex >= 0.8``. The CrowdPose paper describes its data set with 0.1 as the first bound; published
  AP easy figures (DEKR, HigherHRNet) come from the toolkit, so its 0.2 is the default (``splits``). A bucket
  with no images or no labelled person is -1, as in the toolkit. Unrounded (the toolkit rounds to 4 digits).

Our networks predict the 17 COCO points. ``to_crowdpose`` maps them back: the 12 limb points by name, the neck as
the midpoint of the shoulders, the head top ``NOSE_TO_HEAD_TOP`` times the neck-to-nose vector above the neck.
Head and neck are an estimate (a model trained on CrowdPose here never sees them: the reader drops them), so they
cost some AP against a network that predicts all 14 points.
"""
from __future__ import annotations

import contextlib
import copy
import io
from dataclasses import asdict, dataclass

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from models.data.dataset import BOX_AREA_FACTOR
from models.evaluation.ranking import MATCHED_OKS, rank_correlation, true_oks
from models.keypoints import CROWDPOSE_NAMES, CROWDPOSE_SIGMAS, KEYPOINT_NAMES, NUM_KEYPOINTS

CROWD_INDEX_SPLITS = (0.2, 0.8)  # easy < 0.2 <= medium < 0.8 <= hard (the toolkit's summarize)
AREA_FACTOR = BOX_AREA_FACTOR  # the toolkit's OKS scale: bbox width * height * 0.53; training uses the same
NOSE_TO_HEAD_TOP = 1.75  # head top = neck + this * (nose - neck): nose ~57% of the way from neck to head top
LIMBS = [KEYPOINT_NAMES.index(n) for n in CROWDPOSE_NAMES[:12]]
NOSE, LEFT_SHOULDER, RIGHT_SHOULDER = (KEYPOINT_NAMES.index(n) for n in ("nose", "left_shoulder", "right_shoulder"))
METRIC_NAMES = ("AP", "AP50", "AP75", "AR", "AP easy", "AP medium", "AP hard")


def is_crowdpose(coco_gt) -> bool:
    """Whether the person category of ``coco_gt`` has CrowdPose's 14 keypoints (by name, or by count when unnamed)."""
    for cat in coco_gt.loadCats(coco_gt.getCatIds()):
        names = cat.get("keypoints")
        if names:
            return list(names) == list(CROWDPOSE_NAMES)
        first = coco_gt.loadAnns(coco_gt.getAnnIds(catIds=[cat["id"]]))[:1]
        if first and len(first[0].get("keypoints", [])) == 3 * len(CROWDPOSE_NAMES):
            return True
    return False


def to_crowdpose(keypoints: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCO poses ``keypoints [N,17,2]``, ``scores [N,17]`` -> CrowdPose ``[N,14,2]``, ``[N,14]``; a made-up
    point (neck, head) scores as the least of the points it is made from."""
    kps, sc = np.asarray(keypoints, np.float64), np.asarray(scores, np.float64)
    neck = (kps[:, LEFT_SHOULDER] + kps[:, RIGHT_SHOULDER]) / 2
    neck_score = np.minimum(sc[:, LEFT_SHOULDER], sc[:, RIGHT_SHOULDER])
    head = neck + NOSE_TO_HEAD_TOP * (kps[:, NOSE] - neck)
    head_score = np.minimum(sc[:, NOSE], neck_score)
    out = np.concatenate([kps[:, LIMBS], head[:, None], neck[:, None]], axis=1)
    return out, np.concatenate([sc[:, LIMBS], head_score[:, None], neck_score[:, None]], axis=1)


def crowdpose_results(results: list[dict]) -> list[dict]:
    """COCO keypoint results (17 points) -> CrowdPose results (14 points), ready for ``COCO.loadRes``."""
    out = []
    for r in results:
        flat = np.asarray(r["keypoints"], np.float64).reshape(1, NUM_KEYPOINTS, 3)
        kps, sc = to_crowdpose(flat[..., :2], flat[..., 2])
        values = np.concatenate([kps[0], sc[0][:, None]], axis=1).reshape(-1)
        out.append({**r, "keypoints": [round(float(v), 3) for v in values]})
    return out


def toolkit_ground_truth(coco_gt) -> COCO:
    """A copy of ``coco_gt`` as the toolkit sees it: ``area`` = 0.53 * bbox area, ``num_keypoints`` counted when
    missing."""
    data = dict(coco_gt.dataset)
    anns = []
    for a in data["annotations"]:
        a = copy.copy(a)
        a["area"] = float(a["bbox"][2] * a["bbox"][3] * AREA_FACTOR)
        a.setdefault("num_keypoints", int((np.asarray(a["keypoints"])[2::3] > 0).sum()))
        anns.append(a)
    data["annotations"] = anns
    gt = COCO()
    gt.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def crowd_buckets(coco_gt, image_ids, splits=CROWD_INDEX_SPLITS) -> tuple[list[int], list[int], list[int]]:
    """Image ids (of ``image_ids``) whose ``crowdIndex`` is easy, medium, hard; images without one are in none."""
    buckets: tuple[list[int], list[int], list[int]] = ([], [], [])
    for i in sorted(image_ids):
        index = coco_gt.imgs[i].get("crowdIndex")
        if index is not None:
            buckets[0 if index < splits[0] else 1 if index < splits[1] else 2].append(i)
    return buckets


@dataclass
class CrowdPoseReport:
    """CrowdPose metrics (fractions in [0, 1], -1 where a bucket has no labelled person; the table shows n/a), the
    score/OKS Spearman correlations as in ``EvalReport`` (OKS with CrowdPose's sigmas and scale)."""

    ap: float
    ap50: float
    ap75: float
    ar: float
    ap_easy: float
    ap_medium: float
    ap_hard: float
    spearman: float | None
    num_images: int
    num_poses: int
    spearman_matched: float | None = None
    pose_score: str | None = None

    def as_dict(self) -> dict:
        return {"dataset": "crowdpose", **asdict(self)}

    def table(self, title: str = "") -> str:
        rho = ["n/a" if v is None else f"{v:.3f}" for v in (self.spearman, self.spearman_matched)]
        head = [*METRIC_NAMES, "Spearman(score,OKS)", "Spearman matched", "images", "poses"]
        vals = [f"{v:.3f}" if v >= 0 else "n/a" for v in (self.ap, self.ap50, self.ap75, self.ar, self.ap_easy,
                                                            self.ap_medium, self.ap_hard)]
        vals += [*rho, str(self.num_images), str(self.num_poses)]
        widths = [max(len(h), len(v)) for h, v in zip(head, vals)]
        lines = [title] if title else []
        lines.append("  ".join(h.rjust(w) for h, w in zip(head, widths)))
        lines.append("  ".join(v.rjust(w) for v, w in zip(vals, widths)))
        return "\n".join(lines)


def _cocoeval(gt: COCO, dt: COCO, image_ids: list[int]) -> COCOeval:
    ev = COCOeval(gt, dt, iouType="keypoints")
    ev.params.kpt_oks_sigmas = np.array(CROWDPOSE_SIGMAS, np.float64)
    ev.params.imgIds = image_ids
    ev.evaluate()
    ev.accumulate()
    return ev


def crowdpose_eval(coco_gt, results: list[dict], image_ids: list[int] | None = None,
                   splits=CROWD_INDEX_SPLITS) -> CrowdPoseReport:
    """The toolkit's numbers for CrowdPose ``results`` (14 points, ``crowdpose_results``) over ``image_ids``
    (default: every image of ``coco_gt``); no results give 0 everywhere."""
    image_ids = sorted(coco_gt.getImgIds()) if image_ids is None else sorted(image_ids)
    keep = set(image_ids)
    results = [r for r in results if int(r["image_id"]) in keep]
    if not results:
        return CrowdPoseReport(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, None, len(image_ids), 0)
    gt = toolkit_ground_truth(coco_gt)
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(copy.deepcopy(results))
        ev = _cocoeval(gt, dt, image_ids)
        ev.summarize()  # stats: AP, AP50, AP75, APM, APL, AR, ...
        by_type = []
        for bucket in crowd_buckets(gt, image_ids, splits):
            by_type.append(float(np.mean(_cocoeval(gt, dt, bucket).eval["precision"][:, :, :, 0, :]))
                           if bucket else -1.0)
    s = [float(v) for v in ev.stats]
    scores, oks = np.array([r["score"] for r in results], np.float64), true_oks(gt, results, CROWDPOSE_SIGMAS)
    return CrowdPoseReport(s[0], s[1], s[2], s[5], *by_type, rank_correlation(scores, oks), len(image_ids),
                           len(results), rank_correlation(scores, oks, MATCHED_OKS))

"""Evaluate a checkpoint on a COCO-format keypoint set: COCO keypoint AP and how well scores rank pose quality.

    qem val --data DIR --out results.json            # bundled checkpoint, a synth folder
    qem val --ann person_keypoints_val2017.json --images val2017/ --checkpoint best.pt --no-flip

Metrics: pycocotools' COCOeval with iouType "keypoints" and the OKS sigmas of ``models.keypoints.SIGMAS``
(AP, AP50, AP75, APM, APL, AR over up to 20 poses per image), and the Spearman rank correlation between each
predicted pose's score and its true OKS, the OKS against the best-matching ground-truth person of its image
(0 when the image has none). The paper's claim is that a quality-aware score raises both. That correlation mixes
two things, telling people from background and ranking poses of people by quality; "Spearman matched" keeps
only poses with true OKS >= 0.5 (the ones AP50 counts as hits), so it measures the second alone.

A CrowdPose file (its person category has CrowdPose's 14 keypoints) is evaluated as the CrowdPose toolkit does
(``models.evaluation.crowdpose``): AP, AP50, AP75, AR and AP easy / medium / hard by crowd index, with the
predictions mapped back to its 14 points (the results file then holds 14 points per pose); a model with CrowdPose's
14 points (DEKR's CrowdPose weights, ``qem import dekr``) is evaluated on its own points.

The results file is a COCO keypoint results list (``image_id``, ``category_id`` 1, ``keypoints`` as
x1,y1,s1,... in image pixels with s the keypoint score, ``score``) that ``COCO.loadRes`` accepts.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tqdm import tqdm

from models.argtypes import OneLineParser
from models.provenance import SyntheticOnlyWarning
from models import DEFAULT_CHECKPOINT
from models.checkpoint import CheckpointError
from models.config import POSE_SCORES
from models.data.paths import DataPathError, read_rgb, resolve_data
from models.keypoints import NUM_KEYPOINTS, SIGMAS
from models.evaluation.crowdpose import CrowdPoseReport, crowdpose_eval, crowdpose_results, is_crowdpose
from models.evaluation.ranking import MATCHED_OKS, oks_matrix, rank_correlation, score_oks_spearman, true_oks
from models.inference.predictor import Predictor

__all__ = ["MATCHED_OKS", "EvalReport", "coco_keypoint_eval", "evaluate_checkpoint", "evaluate_model",
           "evaluate_predictor", "format_rho", "load_ground_truth", "main", "oks_matrix", "poses_to_results",
           "predict_results", "rank_correlation", "score_oks_spearman", "true_oks"]

METRIC_NAMES = ("AP", "AP50", "AP75", "APM", "APL", "AR")
MAX_POSES_PER_IMAGE = 20  # COCOeval's keypoint maxDets


def format_rho(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


@dataclass
class EvalReport:
    """COCO keypoint metrics (fractions in [0, 1]; -1 where COCOeval has no ground truth for a bucket, e.g. APL
    when nobody is larger than 96^2 px^2; the table shows n/a) and the
    Spearman correlation between pose score and true OKS over all poses and over poses with true OKS >= 0.5
    (None when fewer than two poses or constant input); ``pose_score``: how the predictor ranked its poses (None when
    the results came from elsewhere)."""

    ap: float
    ap50: float
    ap75: float
    apm: float
    apl: float
    ar: float
    spearman: float | None
    num_images: int
    num_poses: int
    spearman_matched: float | None = None
    pose_score: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    def table(self, title: str = "") -> str:
        head = [*METRIC_NAMES, "Spearman(score,OKS)", "Spearman matched", "images", "poses"]
        vals = [f"{v:.3f}" if v >= 0 else "n/a" for v in (self.ap, self.ap50, self.ap75, self.apm, self.apl, self.ar)]
        vals += [format_rho(self.spearman), format_rho(self.spearman_matched), str(self.num_images),
                 str(self.num_poses)]
        widths = [max(len(h), len(v)) for h, v in zip(head, vals)]
        lines = [title] if title else []
        lines.append("  ".join(h.rjust(w) for h, w in zip(head, widths)))
        lines.append("  ".join(v.rjust(w) for v, w in zip(vals, widths)))
        return "\n".join(lines)


def load_ground_truth(ann_file: str | Path):
    """A pycocotools COCO object for ``ann_file``, quietly; DataPathError when missing or not COCO JSON."""
    path = Path(ann_file)
    if not path.is_file():
        raise DataPathError(f"annotation file {path} does not exist; pass --ann or --data with a valid path")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(path))
    except (ValueError, KeyError, TypeError, AssertionError) as exc:  # json errors are ValueErrors
        raise DataPathError(f"annotation file {path} is not COCO keypoint JSON ({exc.__class__.__name__}: {exc})")
    if "images" not in coco.dataset or "annotations" not in coco.dataset:
        raise DataPathError(f"annotation file {path} lacks 'images' or 'annotations'; is it COCO keypoint JSON?")
    return coco


def poses_to_results(image_id: int, poses) -> list[dict]:
    """COCO keypoint results for one image's ``Poses`` (image pixels), keypoint score in the visibility slot."""
    out = []
    for kpts, kscores, score in zip(poses.keypoints, poses.keypoint_scores, poses.scores):
        flat = np.concatenate([kpts.astype(np.float64), kscores.astype(np.float64)[:, None]], axis=1).reshape(-1)
        out.append({"image_id": int(image_id), "category_id": 1,
                    "keypoints": [round(float(v), 3) for v in flat], "score": float(score)})
    return out


def coco_keypoint_eval(coco_gt, results: list[dict], image_ids: list[int] | None = None) -> EvalReport:
    """COCOeval (keypoints, our SIGMAS) on ``results`` over ``image_ids`` (default: every GT image)."""
    image_ids = sorted(coco_gt.getImgIds()) if image_ids is None else sorted(image_ids)
    keep = set(image_ids)
    results = [r for r in results if int(r["image_id"]) in keep]
    if not results:
        return EvalReport(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, None, len(image_ids), 0)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        ev.params.kpt_oks_sigmas = np.array(SIGMAS, np.float64)
        ev.params.imgIds = image_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = [float(v) for v in ev.stats]
    # stats: AP, AP50, AP75, APM, APL, AR, AR50, AR75, ARM, ARL
    scores, oks = np.array([r["score"] for r in results], np.float64), true_oks(coco_gt, results)
    return EvalReport(s[0], s[1], s[2], s[3], s[4], s[5], rank_correlation(scores, oks), len(image_ids), len(results),
                      rank_correlation(scores, oks, MATCHED_OKS))


def keep_top(results: list[dict], per_image: int = MAX_POSES_PER_IMAGE) -> list[dict]:
    """The ``per_image`` highest-scoring results of each image (COCOeval looks at no more)."""
    by_image: dict[int, list[dict]] = {}
    for r in results:
        by_image.setdefault(int(r["image_id"]), []).append(r)
    return [r for rs in by_image.values() for r in sorted(rs, key=lambda r: -r["score"])[:per_image]]


def predict_results(predictor, coco_gt, image_dir: Path, image_ids: list[int], batch_size: int = 8,
                    progress: bool = True) -> list[dict]:
    """Run ``predictor`` over ``image_ids`` (read from ``image_dir``); COCO results, top 20 per image."""
    results: list[dict] = []
    bar = tqdm(total=len(image_ids), desc="evaluate", disable=not progress, leave=False, dynamic_ncols=True)
    for start in range(0, len(image_ids), batch_size):
        ids = image_ids[start:start + batch_size]
        images = [read_rgb(image_dir / coco_gt.imgs[i]["file_name"], coco_gt.imgs[i]) for i in ids]
        with warnings.catch_warnings():  # the benchmark is synthetic: the weights' synthetic-only notice is noise
            warnings.simplefilter("ignore", SyntheticOnlyWarning)
            predicted = predictor.predict(images)
        for image_id, poses in zip(ids, predicted):
            results += poses_to_results(image_id, poses)
        bar.update(len(ids))
    bar.close()
    return keep_top(results)


def evaluate_predictor(predictor, ann_file: Path, image_dir: Path, max_images: int | None = None,
                       batch_size: int = 8, progress: bool = True) -> tuple[EvalReport | CrowdPoseReport, list[dict]]:
    """COCO keypoint metrics of ``predictor`` on an annotated image set (the first ``max_images`` by id); the
    CrowdPose metrics and 14-point results on a CrowdPose file."""
    coco_gt = load_ground_truth(ann_file)
    image_ids = sorted(coco_gt.getImgIds())[:max_images]
    crowdpose, points = is_crowdpose(coco_gt), predictor.cfg.num_keypoints
    if points != NUM_KEYPOINTS and not crowdpose:
        raise ValueError(f"{ann_file}: a COCO file, but the model predicts {points} keypoints (CrowdPose's); "
                         f"evaluate it on a CrowdPose file")
    if predictor.cfg.head == "dekr":
        batch_size = 1  # DEKR's own evaluation: one image at a time, each on its own canvas
    results = predict_results(predictor, coco_gt, Path(image_dir), image_ids, batch_size, progress)
    if crowdpose:
        results = crowdpose_results(results) if points == NUM_KEYPOINTS else results
        report = crowdpose_eval(coco_gt, results, image_ids)
    else:
        report = coco_keypoint_eval(coco_gt, results, image_ids)
    report.pose_score = predictor.pose_score
    return report, results


def evaluate_model(net, ann_file: Path, image_dir: Path, input_size: int | None = None, flip: bool = False,
                   device="cpu", max_images: int | None = None, progress: bool = True,
                   pose_score: str | None = None):
    """``evaluate_predictor`` for a live network (left in eval mode; callers training it switch back)."""
    was_training = net.training
    try:
        predictor = Predictor(net, device=str(device), input_size=input_size, flip_test=flip, pose_score=pose_score)
        return evaluate_predictor(predictor, ann_file, image_dir, max_images, progress=progress)
    finally:
        net.train(was_training)


def evaluate_checkpoint(checkpoint: str | Path | None, data: str | Path | None = None, ann: str | None = None,
                        images: str | None = None, split: str | None = None, flip: bool = True,
                        device: str = "cpu", input_size: int | None = None, max_images: int | None = None,
                        progress: bool = True, pose_score: str | None = None, snap_radius: int | None = None,
                        snap_threshold: float | None = None, snap_weight: float | None = None,
                        shift_test: tuple[int, ...] = (), backend: str | None = None,
                        precision: str | None = None, rect: bool = True):
    """Metrics and results of a checkpoint file (None: the bundled one), ONNX file or OpenVINO folder on a synth
    folder or --ann/--images; ``backend`` / ``precision``: ``models.export.runtime.load_runtime``'s."""
    ann_file, image_dir = resolve_data(None if data is None else str(data), ann, images, split)
    predictor = Predictor(checkpoint, device=device, input_size=input_size, flip_test=flip, pose_score=pose_score,
                          snap_radius=snap_radius, snap_threshold=snap_threshold, snap_weight=snap_weight,
                          shift_test=shift_test, backend=backend, precision=precision, rect=rect)
    if predictor.runtime is not None:
        print(f"backend: {predictor.runtime.backend} {predictor.runtime.precision}", file=sys.stderr)
    return evaluate_predictor(predictor, ann_file, image_dir, max_images, progress=progress)


def main(argv=None) -> None:
    p = OneLineParser(prog="qem val", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="a models.data.synth folder (annotations/person_keypoints_<split>.json + <split>/)")
    p.add_argument("--split", help="split of --data (default: val, then test, then the only one)")
    p.add_argument("--ann", help="COCO keypoint annotation JSON (with --images)")
    p.add_argument("--images", help="image folder (with --ann)")
    p.add_argument("--checkpoint", help="checkpoint file, ONNX file or OpenVINO folder (default: the bundled "
                                        "models/weights/tiny_synth.pt)")
    p.add_argument("--backend", choices=["auto", "torch", "onnxruntime", "openvino"], default="auto",
                   help="runtime (default auto: torch with the flip or shift test, else the fastest installed one "
                        "on a CPU, measured; an exported --checkpoint picks its own)")
    p.add_argument("--precision", choices=["fp32", "bf16"], help="compute precision (default: the backend's)")
    p.add_argument("--out", help="write the COCO keypoint results JSON here")
    p.add_argument("--metrics-out", help="write the metrics as JSON here")
    p.add_argument("--no-flip", action="store_true", help="no flip test (it is on by default)")
    p.add_argument("--shift-test", type=int, nargs="+", default=[], metavar="PX",
                   help="also run the network on the images placed PX input px right and down in a canvas 32 px "
                        "larger (each a multiple of 4, at most 32; with the flip test, mirrored too) and average "
                        "all views; each shift costs one more network pass per view (e.g. 16)")
    p.add_argument("--input-size", type=int, help="network input size (default: the checkpoint's)")
    p.add_argument("--no-rect", action="store_true",
                   help="square inputs (input size x input size) instead of the smallest multiples of 32 that hold "
                        "each batch of images at the input size")
    p.add_argument("--max-images", type=int, help="evaluate on the first N images only")
    p.add_argument("--pose-score", choices=POSE_SCORES,
                   help="how a pose is scored (default: the checkpoint's; see models.modeling.qem.pose_scores)")
    p.add_argument("--snap-radius", type=int, help="keypoint snapping window half-width in map pixels, 0: off "
                   "(default: the checkpoint's; needs a model trained with keypoint heatmaps)")
    p.add_argument("--snap-threshold", type=float, help="heatmap probability a peak needs to move a keypoint "
                   "(default: the checkpoint's)")
    p.add_argument("--snap-weight", type=float, help="fraction of the way to the peak a keypoint moves, 1: onto it "
                   "(default: the checkpoint's)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.data is None and (args.ann is None or args.images is None):
        p.error("give --data DIR (a synth folder) or both --ann FILE and --images DIR")
    try:
        ann_file, image_dir = resolve_data(args.data, args.ann, args.images, args.split)
        checkpoint = Path(args.checkpoint) if args.checkpoint else DEFAULT_CHECKPOINT
        if not checkpoint.exists():
            raise CheckpointError(f"{checkpoint}: checkpoint file not found; pass --checkpoint PATH "
                                  f"(train one with `qem train`)")
        report, results = evaluate_checkpoint(checkpoint, None, str(ann_file), str(image_dir), flip=not args.no_flip,
                                              device=args.device, input_size=args.input_size,
                                              max_images=args.max_images, progress=not args.no_progress,
                                              pose_score=args.pose_score, snap_radius=args.snap_radius,
                                              snap_threshold=args.snap_threshold, snap_weight=args.snap_weight,
                                              shift_test=tuple(args.shift_test),
                                              backend=None if args.device != "cpu" else args.backend,
                                              precision=args.precision, rect=not args.no_rect)
    except (DataPathError, CheckpointError, ValueError) as exc:
        sys.exit(f"error: {exc}")
    except KeyboardInterrupt:
        sys.exit("interrupted; nothing written")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results))
    if args.metrics_out:
        Path(args.metrics_out).write_text(json.dumps({"checkpoint": str(checkpoint), "data": str(ann_file),
                                                      "flip": not args.no_flip, "shift_test": args.shift_test,
                                                      "rect": not args.no_rect,
                                                      **report.as_dict()}, indent=1))
    views = ("flip" if not args.no_flip else "no flip") + "".join(f", shift {s}" for s in args.shift_test)
    views += "" if args.no_rect else ", rect"
    print(report.table(f"{checkpoint.name} on {ann_file} ({views})"))
    if args.out:
        print(f"results: {args.out}")


if __name__ == "__main__":
    main()

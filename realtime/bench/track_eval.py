"""How well a run's track ids follow the people of a clip with ground-truth identities (MOT metrics).

    qem track-eval runs/webcam/poses.jsonl --truth realtime/assets/synth_clip.json
    qem track-eval runs/webcam/poses.jsonl --truth realtime/assets/synth_clip.json --retrack \
        --track-score 0.7                 # the same poses, tracked again with other settings

Ground truth: the clip JSON of ``qem synth --video`` (COCO keypoints plus ``track_id`` per person and
``frame_index`` per image); people with no labelled keypoint are left out. Hypotheses: the run's JSONL (one line
per frame, see ``realtime.outputs.files``); a frame's index is ``round(pts * fps)``, and people with track id -1 (not
yet confirmed, or tracking off) are not hypotheses.

Matching uses pose similarity: the distance between a ground-truth person and a pose is 1 - OKS (COCO sigmas,
the person's area, labelled keypoints only), and pairs with OKS below ``min_oks`` cannot match. The metrics
(identity F1, MOTA, identity switches, ...) are py-motmetrics' own. Beside them, the detector's bound: the median,
over every labelled person of every frame, of the best OKS any pose of that frame reaches on it (tracked or not;
0 where a frame has no pose).

The figures cover the ground truth's frames from the first to the last one the run has (a run cut short with
``--max-frames`` is scored on the frames it saw; a frame missing in between counts as a frame with no poses). A run
that has under ``MIN_COVERAGE`` of the truth's frames, or whose ``source`` is not the truth's clip, gets one
``warning:`` line; one that shares no frame with the truth is an ``error:`` with exit status 1 (2: an unreadable
input). A figure with nothing to divide by (IDP without a predicted id) prints as ``n/a``
(``null`` in ``--json``).

``--retrack`` ignores the recorded ids and runs ``realtime.post.tracking.Tracker`` again over every pose of the JSONL
(confirmed or not), with the frame's pts as its clock, as the pipeline does for files: tuning the tracker then
needs no second pass of the network. The poses must be the tracker's input, so the run must not have smoothed
them (smoothing is off for files by default).
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from models.keypoints import SIGMAS
from models.poses import Poses
from models.argtypes import OneLineParser
from realtime.post.tracking import Tracker, TrackerSettings, add_tracker_arguments, tracker_settings

DEFAULT_MIN_OKS = 0.5
MIN_COVERAGE = 0.9


class TrackEvalError(Exception):
    """A missing or malformed input file, or a missing optional package."""


class DisjointRun(TrackEvalError):
    """The run shares no frame with the ground truth: both files are readable, and there is nothing to score."""


def _figure(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.3f}"


@dataclass
class TrackReport:
    idf1: float
    idp: float
    idr: float
    mota: float
    id_switches: int
    fragmentations: int
    truth_tracks: int
    predicted_ids: int
    mostly_tracked: int
    frames: int
    median_best_oks: float | None = None

    def table(self) -> str:
        rows = [("IDF1", _figure(self.idf1)), ("IDP", _figure(self.idp)), ("IDR", _figure(self.idr)),
                ("MOTA", _figure(self.mota)), ("ID switches", str(self.id_switches)),
                ("fragmentations", str(self.fragmentations)), ("truth tracks", str(self.truth_tracks)),
                ("predicted ids", str(self.predicted_ids)), ("mostly tracked", str(self.mostly_tracked)),
                ("frames", str(self.frames))]
        if self.median_best_oks is not None:
            rows.append(("median best-pose OKS", _figure(self.median_best_oks)))
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


@dataclass
class FramePeople:
    """The people of one frame: ids ``[P]``, keypoints ``[P,K,2]`` (image pixels), labelled ``[P,K]``, areas ``[P]``."""

    ids: np.ndarray
    keypoints: np.ndarray
    labelled: np.ndarray
    areas: np.ndarray


NO_PEOPLE = FramePeople(np.zeros(0, np.int64), np.zeros((0, len(SIGMAS), 2), np.float32),
                        np.zeros((0, len(SIGMAS)), bool), np.zeros(0, np.float32))


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise TrackEvalError(f"{path} does not exist; pass the clip's ground-truth JSON") from None
    except (OSError, ValueError) as exc:
        raise TrackEvalError(f"{path} is not readable JSON ({exc.__class__.__name__}: {exc})") from None


@dataclass
class Clip:
    """A clip's ground truth per frame index, its frame rate and its video's file name."""

    truth: dict[int, FramePeople]
    fps: float
    video: str


def load_truth(path: str | Path) -> tuple[dict[int, FramePeople], float]:
    """Ground truth per frame index, and the clip's frame rate."""
    clip = load_clip(path)
    return clip.truth, clip.fps


def load_clip(path: str | Path) -> Clip:
    """The clip ground truth at ``path`` (``qem synth --video``'s JSON)."""
    path = Path(path)
    clip = _read_json(path)
    try:
        fps = float(clip["videos"][0]["fps"])
        video = str(clip["videos"][0]["file_name"])
        frame_of_image = {im["id"]: int(im["frame_index"]) for im in clip["images"]}
        people: dict[int, list[dict]] = {f: [] for f in frame_of_image.values()}
        for ann in clip["annotations"]:
            if ann["num_keypoints"] > 0:
                people[frame_of_image[ann["image_id"]]].append(ann)
    except (KeyError, IndexError, TypeError) as exc:
        raise TrackEvalError(f"{path} is not a clip ground truth of qem synth --video (missing {exc})") from None
    truth = {}
    for frame, anns in people.items():
        kpts = np.array([a["keypoints"] for a in anns], np.float32).reshape(len(anns), len(SIGMAS), 3)
        truth[frame] = FramePeople(np.array([a["track_id"] for a in anns], np.int64), kpts[..., :2], kpts[..., 2] > 0,
                                   np.array([a["area"] for a in anns], np.float32))
    return Clip(truth, fps, video)


def read_run(path: str | Path) -> list[tuple[float, Poses, np.ndarray]]:
    """Every frame of a run's JSONL: ``(pts, all its poses, their track ids)``."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise TrackEvalError(f"{path} does not exist; run the pipeline with --jsonl first") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TrackEvalError(f"{path} is not a readable JSONL file ({exc.__class__.__name__}: {exc})") from None
    frames = []
    k = len(SIGMAS)
    for number, line in enumerate(lines, 1):
        try:
            rec = json.loads(line)
            if rec.get("type", "frame") != "frame":
                continue  # a track event (schema 1): the frames carry the ids
            people = rec["people"]
            poses = Poses(np.array([p["keypoints"] for p in people], np.float32).reshape(len(people), k, 2),
                          np.array([p["keypoint_scores"] for p in people], np.float32).reshape(len(people), k),
                          np.array([p["score"] for p in people], np.float32).reshape(len(people)))
            frames.append((float(rec["pts"]), poses, np.array([int(p["track_id"]) for p in people], np.int64)))
        except (ValueError, KeyError, TypeError) as exc:
            raise TrackEvalError(f"{path}:{number} is not a pipeline JSONL line ({exc.__class__.__name__}: {exc})") \
                from None
    return frames


def read_sources(path: str | Path) -> list[str]:
    """The ``source`` values of a run's frame messages, each once, in order of appearance (read after ``read_run``
    has checked the file)."""
    sources: dict[str, None] = {}
    for line in Path(path).read_text().splitlines():
        rec = json.loads(line)
        if rec.get("type", "frame") == "frame" and "source" in rec:
            sources[str(rec["source"])] = None
    return list(sources)


def common_frames(truth: dict[int, FramePeople], run_frames: Iterable[int], sources: list[str],
                  video: str) -> tuple[range, list[str]]:
    """The span of frame indices to score (the truth's frames from the first to the last the run has) and the
    warnings to print: the run has under ``MIN_COVERAGE`` of the truth's frames, or a ``source`` whose file name
    is not the clip's (``video``; the extension may differ). Raises ``DisjointRun`` when no frame is shared."""
    held = sorted(set(run_frames))
    shared = [f for f in held if f in truth]
    if not shared:
        has = f"frames {held[0]}-{held[-1]}" if held else "no frame message"
        raise DisjointRun(f"the run shares no frame with the truth: it has {has}, the truth {min(truth)}-{max(truth)} "
                          f"(a frame's index is round(pts x fps)); nothing to score")
    lo, hi = shared[0], shared[-1]
    warnings = []
    if len(shared) < MIN_COVERAGE * len(truth):
        has = f"the run has {len(shared)} of the truth's {len(truth)} frames"
        warnings.append(f"{has} ({lo}-{hi}); the figures cover those only" if len(shared) == hi - lo + 1 else
                        f"{has}, between {lo} and {hi}; the figures cover frames {lo}-{hi}, a missing one as a "
                        f"frame with no poses")
    others = [s for s in sources if Path(s).stem != Path(video).stem]
    if others:
        more = f" (and {len(others) - 1} more)" if len(others) > 1 else ""
        warnings.append(f"the run's source {others[0]}{more} is not the truth's clip {video}")
    return range(lo, hi + 1), warnings


def tracked_people(frames: list[tuple[float, Poses, np.ndarray]], fps: float,
                   every_pose: bool = False) -> dict[int, FramePeople]:
    """The people with a track id (>= 0) per frame index (``round(pts * fps)``); all of them if ``every_pose``."""
    out = {}
    for pts, poses, ids in frames:
        keep = np.ones(len(ids), bool) if every_pose else ids >= 0
        kpts = poses.keypoints[keep]
        out[int(round(pts * fps))] = FramePeople(ids[keep], kpts, np.ones(kpts.shape[:2], bool),
                                                 np.zeros(len(kpts), np.float32))
    return out


def load_run(path: str | Path, fps: float) -> dict[int, FramePeople]:
    """The tracked people of a run's JSONL per frame index (``round(pts * fps)``); id -1 people left out."""
    return tracked_people(read_run(path), fps)


def retrack(frames: list[tuple[float, Poses, np.ndarray]], settings: TrackerSettings | None = None):
    """``frames`` with the ids a fresh ``Tracker(settings)`` gives their poses (pts as the clock)."""
    tracker = Tracker(settings)
    return [(pts, poses, tracker.update(poses, pts)) for pts, poses, _ in frames]


def oks_truth_vs_poses(truth: FramePeople, poses: FramePeople) -> np.ndarray:
    """COCO OKS ``[G, P]`` of each pose against each ground-truth person (labelled keypoints, the person's area)."""
    if len(truth.ids) == 0 or len(poses.ids) == 0:
        return np.zeros((len(truth.ids), len(poses.ids)), np.float32)
    var = (2.0 * np.asarray(SIGMAS, np.float32)) ** 2
    d2 = ((truth.keypoints[:, None] - poses.keypoints[None]) ** 2).sum(-1)  # [G, P, K]
    e = np.exp(-d2 / (2.0 * var * (truth.areas[:, None, None] + np.spacing(1))))
    w = truth.labelled[:, None].astype(np.float32)
    return (e * w).sum(-1) / np.maximum(w.sum(-1), 1.0)


def median_best_oks(truth: dict[int, FramePeople], run: dict[int, FramePeople]) -> float:
    """Median over the ground-truth people of every frame of the best OKS a pose of ``run`` in that frame reaches
    on them (0 for a person whose frame has no pose); the ceiling the detector sets for any tracker."""
    best = [np.zeros(0, np.float32)]
    for frame, gt in truth.items():
        oks = oks_truth_vs_poses(gt, run.get(frame, NO_PEOPLE))
        best.append(oks.max(1) if oks.shape[1] else np.zeros(len(gt.ids), np.float32))
    best = np.concatenate(best)
    return float(np.median(best)) if len(best) else 0.0


def evaluate_tracks(truth: dict[int, FramePeople], run: dict[int, FramePeople],
                    min_oks: float = DEFAULT_MIN_OKS) -> TrackReport:
    """MOT metrics of ``run`` against ``truth`` over the frames of the ground truth (a frame missing from the run
    counts as a frame with no poses)."""
    try:
        import motmetrics as mm
    except ImportError:
        raise TrackEvalError("track evaluation needs py-motmetrics: pip install motmetrics") from None
    acc = mm.MOTAccumulator(auto_id=False)
    predicted = set()
    for frame in sorted(truth):
        gt, hyp = truth[frame], run.get(frame, NO_PEOPLE)
        predicted.update(hyp.ids.tolist())
        dist = 1.0 - oks_truth_vs_poses(gt, hyp)
        dist[dist > 1.0 - min_oks] = np.nan
        acc.update(gt.ids.tolist(), hyp.ids.tolist(), dist, frameid=frame)
    names = ["idf1", "idp", "idr", "mota", "num_switches", "num_fragmentations", "num_unique_objects",
             "mostly_tracked", "num_frames"]
    row = mm.metrics.create().compute(acc, metrics=names, name="run").iloc[0]
    return TrackReport(idf1=float(row["idf1"]), idp=float(row["idp"]), idr=float(row["idr"]),
                       mota=float(row["mota"]), id_switches=int(row["num_switches"]),
                       fragmentations=int(row["num_fragmentations"]), truth_tracks=int(row["num_unique_objects"]),
                       predicted_ids=len(predicted), mostly_tracked=int(row["mostly_tracked"]),
                       frames=int(row["num_frames"]))


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="qem track-eval", description=__doc__.split("\n\n")[0])
    p.add_argument("jsonl", help="the run's poses JSONL (realtime --jsonl)")
    p.add_argument("--truth", required=True, help="clip ground truth JSON with track ids (models.data.synth --video)")
    p.add_argument("--min-oks", type=float, default=DEFAULT_MIN_OKS, help="lowest OKS that counts as a match")
    p.add_argument("--json", help="also write the report here")
    p.add_argument("--retrack", action="store_true",
                   help="track the run's poses again with the --track-* settings instead of reading its ids")
    add_tracker_arguments(p)
    args = p.parse_args(argv)
    try:
        settings = tracker_settings(args)
        clip = load_clip(args.truth)
        frames = read_run(args.jsonl)
        run = tracked_people(frames, clip.fps)
        span, warnings = common_frames(clip.truth, run, read_sources(args.jsonl), clip.video)
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        truth = {f: people for f, people in clip.truth.items() if f in span}
        if args.retrack:
            frames = retrack(frames, settings)
            run = tracked_people(frames, clip.fps)
        report = replace(evaluate_tracks(truth, run, args.min_oks),
                         median_best_oks=median_best_oks(truth, tracked_people(frames, clip.fps, every_pose=True)))
    except (TrackEvalError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, TrackEvalError) else 2  # 1: a file it names; 2: settings that do not go
    if args.json:  # before the table: a closed stdout (| head) must not lose the file
        figures = {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in asdict(report).items()}
        Path(args.json).write_text(json.dumps(figures, indent=1, allow_nan=False) + "\n")  # n/a -> null
    try:
        print(report.table(), flush=True)
    except BrokenPipeError:  # stdout closed early (| head): the report is complete, quiet the final flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())

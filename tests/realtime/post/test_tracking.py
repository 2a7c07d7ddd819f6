"""realtime.post.tracking on hand-made motion, and on the bundled clip's ground truth scored by
realtime.bench.track_eval."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from models.poses import Poses
from realtime.bench.track_eval import FramePeople, evaluate_tracks, load_truth, median_best_oks
from realtime.post.tracking import Tracker, TrackerSettings, oks_matrix
from tests.cli import assert_one_error_line, run_module

CLIP_TRUTH = Path(__file__).resolve().parents[3] / "realtime" / "assets" / "synth_clip.json"
START = TrackerSettings().high_score  # the default start score; the hand-made scores below are placed around it


def _pose(x, y, scale=40.0):
    k = np.stack([np.linspace(0, 1, 17), np.linspace(0, 2, 17)], -1) * scale
    return (k + [x, y]).astype(np.float32)


def _poses(*centres, scores=None):
    kp = np.stack([_pose(x, y) for x, y in centres]) if centres else np.zeros((0, 17, 2), np.float32)
    scores = np.linspace(0.9, START, len(centres)) if scores is None else scores
    return Poses(kp, np.ones(kp.shape[:2], np.float32), np.asarray(scores, np.float32))


def test_ids_follow_people_through_motion_and_order_changes():
    tracker = Tracker()
    assert tracker.update(_poses((10, 10), (200, 10))).tolist() == [1, 2]  # first frame: confirmed at once
    # The people move a little and come in the other order: ids follow the people, not the rows.
    assert tracker.update(_poses((203, 12), (13, 11))).tolist() == [2, 1]


def test_a_new_person_is_confirmed_on_the_third_hit_and_a_one_frame_pose_takes_no_id():
    tracker = Tracker(min_hits=3)
    tracker.update(_poses((10, 10)))
    assert tracker.update(_poses((10, 10), (300, 300))).tolist() == [1, -1]
    assert tracker.update(_poses((10, 10))).tolist() == [1]  # the pose at (300, 300) was seen once: dropped
    assert tracker.update(_poses((10, 10), (200, 100))).tolist() == [1, -1]
    assert tracker.update(_poses((10, 10), (201, 100))).tolist() == [1, -1]
    assert tracker.update(_poses((10, 10), (202, 100))).tolist() == [1, 2]  # ids count confirmed people only


def test_a_confirmed_track_outlives_short_gaps_and_expires_after_max_age():
    tracker = Tracker(max_age=2, min_hits=1)
    tracker.update(_poses((10, 10)))
    tracker.update(_poses())
    tracker.update(_poses())
    assert tracker.update(_poses((10, 10))).tolist() == [1]  # unseen for 2 frames: still there
    for _ in range(3):
        tracker.update(_poses())
    assert tracker.update(_poses((10, 10))).tolist() == [2]  # unseen for 3 frames: aged out


def test_constant_velocity_prediction_bridges_a_gap_in_fast_motion():
    tracker = Tracker(min_hits=1)
    step = np.array([12.0, 0.0])
    for i in range(4):
        assert tracker.update(_poses(tuple(step * i + 50))).tolist() == [1]
    tracker.update(_poses())
    tracker.update(_poses())
    back = tuple(step * 6 + 50)
    # Without the prediction the person would be too far from where it was last seen to match.
    assert oks_matrix(_pose(*(step * 3 + 50))[None], _pose(*back)[None])[0, 0] < tracker.min_oks
    assert tracker.update(_poses(back)).tolist() == [1]


def test_with_a_clock_the_prediction_follows_time_not_frame_count():
    """A live source dropped frames: 50 px/s, seen at 0, 0.1, 0.2 s, then again at 0.6 s."""
    tracker = Tracker(min_hits=1)
    for t in (0.0, 0.1, 0.2):
        assert tracker.update(_poses((50 + 50 * t, 50)), t).tolist() == [1]
    back = (50 + 50 * 0.6, 50)
    # Counting frames instead, the person would be predicted 15 px short of where it is.
    assert oks_matrix(_pose(50 + 50 * 0.3, 50)[None], _pose(*back)[None])[0, 0] < tracker.min_oks
    assert tracker.update(_poses(back), 0.6).tolist() == [1]


def test_low_score_poses_continue_tracks_but_never_start_them():
    tracker = Tracker(high_score=0.5, min_hits=1)
    assert tracker.update(_poses((10, 10), scores=[0.9])).tolist() == [1]
    for _ in range(3):  # the person is partly hidden: low scores, same track
        assert tracker.update(_poses((10, 10), (300, 300), scores=[0.2, 0.2])).tolist() == [1, -1]
    assert [t.track_id for t in tracker.tracks] == [1]


def test_trackers_are_per_stream():
    a, b = Tracker(), Tracker()
    assert a.update(_poses((0, 0))).tolist() == [1]
    assert b.update(_poses((0, 0))).tolist() == [1]


def _noisy_detections(truth: FramePeople, rng: np.random.Generator) -> Poses:
    """The frame's people as a detector would give them: 2 px jitter, 10% missed, one false pose in five frames;
    3 in 5 true poses and no false one score at least the start score."""
    keep = rng.random(len(truth.ids)) >= 0.1
    labelled = truth.labelled[keep]
    mean = (truth.keypoints[keep] * labelled[..., None]).sum(1, keepdims=True) / labelled.sum(1)[:, None, None]
    kpts = np.where(labelled[..., None], truth.keypoints[keep], mean)  # unlabelled points: at the body's mean
    kpts = kpts + rng.normal(0.0, 2.0, kpts.shape)
    kscores = labelled.astype(np.float32)
    scores = rng.uniform(START - 0.2, START + 0.3, int(keep.sum()))
    if rng.random() < 0.2:
        kpts = np.concatenate([kpts, _pose(*rng.uniform(0, 500, 2))[None]])
        kscores = np.concatenate([kscores, np.ones((1, kpts.shape[1]), np.float32)])
        scores = np.append(scores, rng.uniform(0.3, START))
    return Poses(kpts.astype(np.float32), kscores, scores.astype(np.float32))


def test_tracks_on_the_bundled_clip_ground_truth_with_a_noisy_detector():
    truth, _ = load_truth(CLIP_TRUTH)
    rng = np.random.default_rng(0)
    tracker, run = Tracker(), {}
    for frame in sorted(truth):
        poses = _noisy_detections(truth[frame], rng)
        ids = tracker.update(poses)
        tracked = ids >= 0
        run[frame] = FramePeople(ids[tracked], poses.keypoints[tracked], poses.keypoint_scores[tracked] > 0,
                                 np.zeros(int(tracked.sum()), np.float32))
    report = evaluate_tracks(truth, run)
    assert report.truth_tracks == 8
    assert report.id_switches == 0, report
    assert report.idf1 > 0.9, report
    assert report.predicted_ids <= 10, report


def _write_jsonl(path: Path, frames) -> Path:
    """A pipeline-like JSONL from ``(frame index, pts, Poses, track ids)`` tuples."""
    with path.open("w") as f:
        for frame, pts, poses, ids in frames:
            people = [{"track_id": int(i), "score": float(s), "keypoints": k.tolist(), "keypoint_scores": ks.tolist()}
                      for i, s, k, ks in zip(ids, poses.scores, poses.keypoints, poses.keypoint_scores)]
            f.write(json.dumps({"seq": frame, "pts": pts, "people": people}) + "\n")
    return path


def _write_run(path: Path, truth: dict[int, FramePeople], fps: float, relabel=lambda frame, tid: tid) -> Path:
    """The ground truth itself as a run (score 0.9), its ids passed through ``relabel``."""
    def frames():
        for frame in sorted(truth):
            t = truth[frame]
            poses = Poses(t.keypoints, np.ones(t.keypoints.shape[:2], np.float32), np.full(len(t.ids), 0.9, np.float32))
            yield frame, frame / fps, poses, [relabel(frame, tid) for tid in t.ids.tolist()]
    return _write_jsonl(path, frames())


def test_track_eval_scores_the_truth_perfectly_and_counts_a_swap(tmp_path):
    truth, fps = load_truth(CLIP_TRUTH)
    proc = run_module("realtime.bench.track_eval", _write_run(tmp_path / "same.jsonl", truth, fps), "--truth",
                      CLIP_TRUTH, "--json", tmp_path / "same.json")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^IDF1 +1\.000$", proc.stdout, re.M) and re.search(r"^median best-pose OKS +1\.000$",
                                                                          proc.stdout, re.M), proc.stdout
    same = json.loads((tmp_path / "same.json").read_text())
    assert same["id_switches"] == 0 and same["median_best_oks"] == pytest.approx(1.0)
    a, b = sorted(set(truth[119].ids.tolist()) & set(truth[120].ids.tolist()))[:2]
    swap = {a: b, b: a}
    swapped = _write_run(tmp_path / "swap.jsonl", truth, fps,
                         lambda frame, tid: swap.get(tid, tid) if frame >= 120 else tid)
    proc = run_module("realtime.bench.track_eval", swapped, "--truth", CLIP_TRUTH, "--json", tmp_path / "swap.json")
    report = json.loads((tmp_path / "swap.json").read_text())
    assert report["id_switches"] >= 2 and report["idf1"] < 0.95, report


def test_median_best_oks_takes_each_persons_best_pose_and_zero_for_an_empty_frame():
    k = 17
    person = np.zeros((k, 2), np.float32) + np.arange(k, dtype=np.float32)[:, None] * 3.0
    truth = FramePeople(np.array([0, 1]), np.stack([person, person + 200.0]), np.ones((2, k), bool),
                        np.array([900.0, 900.0], np.float32))
    far = person + 400.0
    hit = FramePeople(np.array([5, 6, 7]), np.stack([far, person, far + 50.0]), np.ones((3, k), bool),
                      np.zeros(3, np.float32))
    # Frame 0: person 0 found exactly (1), person 1 by nothing (about 0); frame 1 has no poses (0, 0).
    assert median_best_oks({0: truth}, {0: hit}) == pytest.approx(0.5, abs=1e-6)
    assert median_best_oks({0: truth, 1: truth}, {0: hit}) == pytest.approx(0.0, abs=1e-6)
    both = FramePeople(np.array([5, 6]), truth.keypoints + 0.5, np.ones((2, k), bool), np.zeros(2, np.float32))
    assert 0.95 < median_best_oks({0: truth}, {0: both}) < 1.0


def test_settings_validate_and_keyword_overrides_replace_them():
    assert Tracker().settings == TrackerSettings()
    tracker = Tracker(TrackerSettings(high_score=0.7), min_hits=1)
    assert (tracker.high_score, tracker.min_hits, tracker.min_oks) == (0.7, 1, TrackerSettings().min_oks)
    with pytest.raises(ValueError, match="min_oks must lie in"):
        TrackerSettings(min_oks=-0.1)


def _write_detector_run(path: Path, truth: dict[int, FramePeople], fps: float) -> Path:
    """The noisy detector's poses with the ids ``Tracker()`` gave them (pts as the clock), as the pipeline writes."""
    rng, tracker = np.random.default_rng(1), Tracker()

    def frames():
        for frame in sorted(truth):
            poses = _noisy_detections(truth[frame], rng)
            yield frame, frame / fps, poses, tracker.update(poses, frame / fps)
    return _write_jsonl(path, frames())


def test_retrack_reproduces_the_recorded_ids_and_follows_new_settings(tmp_path):
    truth, fps = load_truth(CLIP_TRUTH)
    run_file = _write_detector_run(tmp_path / "run.jsonl", truth, fps)
    reports = {}
    settings = {"recorded": [], "again": ["--retrack"], "strict": ["--retrack", "--track-score", f"{START + 0.3:.2f}"],
                "eager": ["--retrack", "--track-score", "0.3"]}
    for name, extra in settings.items():
        proc = run_module("realtime.bench.track_eval", run_file, "--truth", CLIP_TRUTH, "--json",
                          tmp_path / f"{name}.json", *extra)
        assert proc.returncode == 0, proc.stderr
        reports[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert reports["again"] == reports["recorded"] and reports["recorded"]["idf1"] > 0.8
    assert reports["strict"]["predicted_ids"] == 0  # every score lies below START + 0.3: no track starts
    # At 0.3 the detector's false poses (scored 0.3 to the start score) start tentative tracks too: other ids.
    assert reports["eager"] != reports["recorded"]


def test_track_eval_bad_tracker_setting_is_one_line(tmp_path):
    run_file = tmp_path / "run.jsonl"
    run_file.write_text('{"pts": 0.0, "people": []}\n')
    proc = run_module("realtime.bench.track_eval", run_file, "--truth", CLIP_TRUTH, "--retrack", "--track-min-oks", "2")
    assert_one_error_line(proc, "argument --track-min-oks: must be a number in [0, 1], got '2'")
    assert proc.returncode == 2


@pytest.mark.parametrize("case", ["missing truth", "bad line", "run is a folder"])
def test_track_eval_bad_input_is_one_line(case, tmp_path):
    run_file = tmp_path / "run.jsonl"
    if case == "run is a folder":
        run_file.mkdir()
    else:
        run_file.write_text('{"pts": 0.0, "people": []}\n' + ("not json\n" if case == "bad line" else ""))
    truth = tmp_path / "nope.json" if case == "missing truth" else CLIP_TRUTH
    words = {"missing truth": "nope.json", "bad line": "run.jsonl:2", "run is a folder": "run.jsonl"}[case]
    assert_one_error_line(run_module("realtime.bench.track_eval", run_file, "--truth", truth), words)

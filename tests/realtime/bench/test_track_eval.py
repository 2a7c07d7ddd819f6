"""qem track-eval on runs that do not match the ground truth: a run cut short is scored on its frames with a
warning, a run of another source is named, a run with no frame in common is an error, and a figure with nothing to
divide by prints as n/a, never nan."""
import json
import re
from pathlib import Path

import pytest

from realtime import BUNDLED_CLIP
from realtime.bench.track_eval import load_truth, main
from tests.cli import assert_one_error_line, run_module

CLIP_TRUTH = BUNDLED_CLIP.with_suffix(".json")


def _write_run(path: Path, frames: range, source: str = str(BUNDLED_CLIP), pts_shift: float = 0.0,
               track: bool = True) -> Path:
    """The truth's own people on ``frames`` as a pipeline JSONL (ids -1 unless ``track``), each frame followed by a
    track event, as the pipeline writes them."""
    truth, fps = load_truth(CLIP_TRUTH)
    with path.open("w") as f:
        for frame in frames:
            t = truth[frame]
            people = [{"track_id": int(i) if track else -1, "score": 0.9, "keypoints": k.tolist(),
                       "keypoint_scores": [1.0] * len(k)} for i, k in zip(t.ids, t.keypoints)]
            f.write(json.dumps({"schema": 1, "type": "frame", "source": source, "seq": frame,
                                "pts": frame / fps + pts_shift, "people": people}) + "\n")
            f.write(json.dumps({"schema": 1, "type": "track_started", "seq": frame, "track_id": 1}) + "\n")
    return path


def _figures(out: str) -> dict[str, str]:
    return dict(re.match(r"(.+?)  +(\S+)$", line).groups() for line in out.splitlines())


def test_a_run_cut_short_is_scored_on_its_frames_with_one_warning(tmp_path, capsys):
    assert main([str(_write_run(tmp_path / "run.jsonl", range(30))), "--truth", str(CLIP_TRUTH)]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines() == ["warning: the run has 30 of the truth's 240 frames (0-29); the figures cover those "
                                "only"]
    figures = _figures(out)
    assert (figures["frames"], figures["IDF1"], figures["IDR"]) == ("30", "1.000", "1.000")


def test_a_run_with_gaps_names_the_span_its_figures_cover(tmp_path, capsys):
    frames = [*range(10), *range(100, 110)]
    assert main([str(_write_run(tmp_path / "run.jsonl", frames)), "--truth", str(CLIP_TRUTH)]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines() == ["warning: the run has 20 of the truth's 240 frames, between 0 and 109; the figures "
                                "cover frames 0-109, a missing one as a frame with no poses"]
    assert _figures(out)["frames"] == "110"


def test_most_of_the_clip_re_encoded_warns_nothing_and_is_scored_from_its_first_frame(tmp_path, capsys):
    run = _write_run(tmp_path / "run.jsonl", range(10, 240), source="/videos/synth_clip.mkv")
    assert main([str(run), "--truth", str(CLIP_TRUTH)]) == 0
    out, err = capsys.readouterr()
    assert err == "" and (_figures(out)["frames"], _figures(out)["IDF1"]) == ("230", "1.000")


def test_a_run_of_another_source_is_named(tmp_path, capsys):
    run = _write_run(tmp_path / "run.jsonl", range(240), source="rtsp://***@cam/live")
    assert main([str(run), "--truth", str(CLIP_TRUTH)]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "warning: the run's source rtsp://***@cam/live is not the truth's clip synth_clip.mp4"]


@pytest.mark.parametrize("pts_shift, has", [(100.0, "frames 3000-3004"), (None, "no frame message")])
def test_a_run_with_no_frame_in_common_is_one_error_line_and_status_1(pts_shift, has, tmp_path):
    run = tmp_path / "run.jsonl"
    if pts_shift is None:
        run.write_text("")
    else:
        _write_run(run, range(5), pts_shift=pts_shift)
    proc = run_module("realtime.bench.track_eval", run, "--truth", CLIP_TRUTH)
    assert_one_error_line(proc, f"the run shares no frame with the truth: it has {has}, the truth 0-239")
    assert proc.returncode == 1 and proc.stdout == ""


def test_a_figure_with_nothing_to_divide_by_prints_as_n_a(tmp_path, capsys):
    """No pose carries a track id (an image run, or tracking off): no predicted id, so IDP is 0/0."""
    run = _write_run(tmp_path / "run.jsonl", range(240), track=False)
    assert main([str(run), "--truth", str(CLIP_TRUTH), "--json", str(tmp_path / "report.json")]) == 0
    out = capsys.readouterr().out
    figures = _figures(out)
    assert (figures["IDP"], figures["IDF1"], figures["predicted ids"]) == ("n/a", "0.000", "0")
    assert "nan" not in out
    report = (tmp_path / "report.json").read_text()
    assert "NaN" not in report and json.loads(report)["idp"] is None  # valid JSON: n/a is null


def test_a_missing_run_is_one_error_line_and_status_1(tmp_path):
    proc = run_module("realtime.bench.track_eval", tmp_path / "missing.jsonl", "--truth", CLIP_TRUTH)
    assert_one_error_line(proc, "missing.jsonl does not exist; run the pipeline with --jsonl first")
    assert proc.returncode == 1

"""The synthetic generator: determinism, valid COCO annotations, visibility from occlusion, video with track ids."""
import contextlib
import io
import json
import subprocess
import sys
from dataclasses import replace

import av
import numpy as np
import pytest
from pycocotools.coco import COCO

from models.data import synth, synth_video
from models.keypoints import KEYPOINT_NAMES

SMALL = replace(synth.PRESETS["easy"], width=96, height=80)


def _load(path):
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        synth.write_split(tmp_path / name, "train", 3, seed, SMALL, progress=False)
    a, b, c = (_files(tmp_path / n) for n in "abc")
    assert len(a) == 4 and a == b
    assert a.keys() == c.keys() and all(a[k] != c[k] for k in a)


def test_several_workers_write_exactly_what_one_writes(tmp_path):
    synth.write_split(tmp_path / "one", "train", 5, 2, SMALL, progress=False)
    synth.write_split(tmp_path / "two", "train", 5, 2, SMALL, progress=False, workers=2)
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


def test_splits_are_independent_of_each_other(tmp_path):
    synth.write_split(tmp_path / "x", "val", 2, 0, SMALL, progress=False)
    synth.write_split(tmp_path / "y", "val", 2, 0, SMALL, progress=False)
    synth.write_split(tmp_path / "y", "train", 2, 0, SMALL, progress=False)
    assert (tmp_path / "x/val/000001.png").read_bytes() == (tmp_path / "y/val/000001.png").read_bytes()
    assert (tmp_path / "y/val/000001.png").read_bytes() != (tmp_path / "y/train/000001.png").read_bytes()


def test_annotations_are_valid_coco_person_keypoints(tmp_path):
    path = synth.write_split(tmp_path, "val", 6, 1, SMALL, progress=False)
    coco = _load(path)
    cat = coco.loadCats(1)[0]
    assert cat["keypoints"] == list(KEYPOINT_NAMES) and len(cat["skeleton"]) > 10
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(coco.getImgIds()) == 6 and len(anns) >= 6
    for ann in anns:
        kps = np.array(ann["keypoints"]).reshape(17, 3)
        assert ann["num_keypoints"] == (kps[:, 2] > 0).sum() and ann["iscrowd"] == 0
        assert (kps[kps[:, 2] == 0, :2] == 0).all()
        x, y, w, h = ann["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 96 and y + h <= 80 and 0 < ann["area"] <= w * h
        if ann["area"] >= 200:  # the outline runs through boundary pixel centres: a little less than the mask
            assert ann["segmentation"] and 0.7 * ann["area"] < coco.annToMask(ann).sum() <= ann["area"]


def test_visibility_flags_follow_the_rendered_masks():
    """v=2: on the figure's own pixel on top; v=1: in the image but a nearer figure covers it; v=0: x=y=0."""
    cfg = replace(synth.PRESETS["hard"], width=128, height=128, min_people=3, max_people=8)
    counts = np.zeros(3, int)
    for i in range(12):
        img, anns, owner, masks, projs = synth.make_scene(synth.split_rng(3, "occl", i), cfg)
        for label, (ann, mask, proj) in enumerate(zip(anns, masks, projs), start=1):
            if ann is None:
                assert mask.sum() == 0
                continue
            assert ann["area"] == mask.sum()
            kps = np.array(ann["keypoints"]).reshape(17, 3)
            for k, (x, y, v) in enumerate(kps):
                counts[int(v)] += 1
                px, py = (int(round(c)) for c in proj.keypoints[k])
                inside = 0 <= px < 128 and 0 <= py < 128
                if v == 0:
                    assert x == y == 0 and (not inside or proj.hidden[k])
                    continue
                assert inside and (x, y) == pytest.approx(tuple(proj.keypoints[k]), abs=0.01)
                assert mask[py, px] == 1  # every labelled keypoint lies on the figure's own silhouette
                if v == 2:
                    assert owner[py, px] == label
                else:
                    assert owner[py, px] > label  # covered by a figure painted later, i.e. nearer
    assert counts.min() > 10, counts  # all three cases occur


@pytest.mark.slow
def test_cli_writes_a_dataset_and_rejects_bad_sizes(tmp_path):
    cmd = [sys.executable, "-m", "models.data.synth", "--out", str(tmp_path), "--num-images", "2", "--seed", "3",
           "--size", "64", "48", "--split", "train", "val:1", "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "train").glob("*.png"))) == 2 and len(list((tmp_path / "val").glob("*.png"))) == 1
    doc = json.loads((tmp_path / "annotations/person_keypoints_val.json").read_text())
    assert doc["images"][0]["width"] == 64 and doc["images"][0]["height"] == 48
    bad = subprocess.run(cmd[:-5] + ["--size", "8"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and bad.stderr.strip().splitlines() == [bad.stderr.strip()]
    assert bad.stderr.startswith("error: --size")


def test_images_need_no_pyav(tmp_path):
    """Only --video needs PyAV: a training machine without it still draws its data."""
    code = ("import runpy, sys; sys.modules['av'] = None; sys.argv[0] = 'models.data.synth'; "
            "runpy.run_module('models.data.synth', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code, "--out", str(tmp_path), "--num-images", "1", "--size", "64", "48",
                           "--quiet"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "train").glob("*.png"))) == 1


def test_video_decodes_with_the_right_frames_and_persistent_track_ids(tmp_path):
    cfg = replace(SMALL, width=160, height=96, min_people=3, max_people=4)
    mp4, js = synth_video.write_clip(tmp_path, "clip", 45, 30, 11, cfg)
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert stream.codec_context.name == "h264"
    assert len(frames) == 45 and (frames[0].width, frames[0].height) == (160, 96)
    times = [f.time for f in frames]
    assert times == pytest.approx([i / 30 for i in range(45)], abs=1e-3)
    coco = _load(js)
    assert len(coco.getImgIds()) == 45
    tracks: dict[int, list] = {}
    for ann in coco.loadAnns(coco.getAnnIds()):
        frame = coco.loadImgs(ann["image_id"])[0]["frame_index"]
        kps = np.array(ann["keypoints"]).reshape(17, 3)
        tracks.setdefault(ann["track_id"], []).append((frame, ann["bbox"], kps))
    assert len(tracks) >= 3
    for track in tracks.values():
        track.sort(key=lambda t: t[0])
        frames_seen = [t[0] for t in track]
        assert frames_seen == list(range(frames_seen[0], frames_seen[0] + len(track)))  # no gaps, no repeats
        for (_, box0, _), (_, box1, _) in zip(track, track[1:]):  # the same person moves a little per frame
            c0 = np.array(box0[:2]) + np.array(box0[2:]) / 2
            c1 = np.array(box1[:2]) + np.array(box1[2:]) / 2
            assert np.linalg.norm(c1 - c0) < 0.1 * 160


def test_clip_is_deterministic(tmp_path):
    cfg = replace(SMALL, width=96, height=64)
    for name in ("a", "b"):
        synth_video.write_clip(tmp_path / name, "clip", 10, 30, 4, cfg)
    for suffix in (".mp4", ".json"):
        assert (tmp_path / "a" / f"clip{suffix}").read_bytes() == (tmp_path / "b" / f"clip{suffix}").read_bytes()

"""Image inputs (a file, a folder, a glob): one annotated image per input image, under its name and in its own
shape, a JSONL line naming the file, no tracks across images, a damaged image skipped with one warning line, and a
caption that fits."""
import json

import cv2
import numpy as np
import pytest

from realtime.provenance import CAPTION
from realtime.view.render import caption_layout, draw_caption
from realtime.outputs.files import ImageSink
from realtime.sources.readers import ImageReader, SourceError, parse_source
from tests.realtime.helpers import pattern, run_cli


def write_image(path, w, h, seed=0):
    image = pattern(seed, h, w)
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def test_file_folder_and_glob_are_image_sources(tmp_path):
    photo = write_image(tmp_path / "photo.jpg", 90, 160)
    write_image(tmp_path / "b.png", 160, 90)
    assert parse_source(str(photo)).kind == "images"
    assert parse_source(str(tmp_path)).kind == "images"
    assert parse_source(str(tmp_path / "*.png")).kind == "images"
    with pytest.raises(SourceError, match="no image matches"):
        parse_source(str(tmp_path / "*.webp"))


def test_a_damaged_image_is_one_warning_and_the_others_are_read(tmp_path):
    for i in range(3):
        write_image(tmp_path / f"{i:03d}.png", 30, 20, seed=i)
    (tmp_path / "001b.jpg").write_bytes(b"not an image")
    warnings = []
    reader = ImageReader(parse_source(str(tmp_path)), warn=warnings.append)
    reader.open()
    names = []
    while reader.read() is not None:
        names.append(reader.path.rsplit("/", 1)[-1])
    assert names == ["000.png", "001.png", "002.png"]
    assert len(warnings) == 1 and "001b.jpg" in warnings[0] and "not a readable image" in warnings[0]


def test_a_single_damaged_image_and_a_folder_of_them_are_errors(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 broken")
    reader = ImageReader(parse_source(str(bad)))
    reader.open()
    with pytest.raises(SourceError, match="bad.jpg: not a readable image") as err:
        reader.read()
    assert err.value.permanent
    (tmp_path / "worse.png").write_bytes(b"")
    reader = ImageReader(parse_source(str(tmp_path)), warn=lambda line: None)
    reader.open()
    with pytest.raises(SourceError, match="none of its 2 images could be read"):
        reader.read()


def test_image_sink_keeps_names_and_never_overwrites_within_a_run(tmp_path):
    sink = ImageSink(tmp_path / "run")
    image = pattern(0, 20, 30)
    first, second = sink.write(image, "img1.jpg"), sink.write(image, "img1.jpg")
    assert (first.name, second.name) == ("img1.jpg", "img1_2.jpg")
    assert cv2.imread(str(second)).shape == (20, 30, 3)


@pytest.mark.parametrize("w, h", [(48, 48), (90, 160), (120, 200), (360, 640), (810, 1080), (1920, 1080)])
def test_caption_fits_the_frame_at_any_size(w, h):
    lines, scale, thick, pad = caption_layout(CAPTION, w, h)
    assert " ".join(lines) == CAPTION
    for line in lines:
        assert pad + cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0][0] <= w - pad
    image = np.zeros((h, w, 3), np.uint8)
    draw_caption(image, CAPTION)
    assert image[-1:].any() or image[-pad - 1:].any()  # drawn along the bottom
    assert not image[: h // 2].any() or len(lines) > 2  # and nowhere near the top unless it wraps a lot


def test_two_folders_with_the_same_names_overwrite_nothing(tmp_path, engine):
    from realtime.pipeline import Pipeline, PipelineConfig

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_image(tmp_path / folder / "img1.jpg", 64, 48)
    specs = [parse_source(str(tmp_path / "a")), parse_source(str(tmp_path / "b"))]
    config = PipelineConfig(specs=specs, out_dir=tmp_path / "run", progress=False)
    assert Pipeline(config, engine, log=lambda line: None).run().frames_out == 2
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["img1.jpg", "img1_2.jpg", "poses_0.jsonl",
                                                                    "poses_1.jsonl"]


@pytest.mark.slow
def test_predict_on_a_folder_writes_one_image_per_input(tmp_path, tiny_checkpoint):
    photos = tmp_path / "photos"
    photos.mkdir()
    write_image(photos / "portrait.jpg", 90, 160)
    write_image(photos / "landscape.png", 160, 90, seed=3)
    (photos / "damaged.jpg").write_bytes(b"\xff\xd8\xff truncated")
    proc = run_cli(["--source", str(photos), "--weights", str(tiny_checkpoint), "--imgsz", "128", "--no-show"],
                   tmp_path, script="-m")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "runs" / "exp"
    assert sorted(p.name for p in out.iterdir()) == ["landscape.png", "portrait.jpg", "poses.jsonl"]
    assert cv2.imread(str(out / "portrait.jpg")).shape == (160, 90, 3)
    assert cv2.imread(str(out / "landscape.png")).shape == (90, 160, 3)
    records = [json.loads(line) for line in (out / "poses.jsonl").read_text().splitlines()]
    assert [r["source"] for r in records] == [str(photos / "landscape.png"), str(photos / "portrait.jpg")]
    assert [(r["width"], r["height"]) for r in records] == [(160, 90), (90, 160)]
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: skipped {photos / 'damaged.jpg'}: not a readable image (damaged, or not an image)"]
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_predict_on_one_photo_and_on_a_glob(tmp_path, tiny_checkpoint):
    photo = write_image(tmp_path / "photo.jpg", 120, 200)
    write_image(tmp_path / "other.jpg", 200, 120)
    base = ["--weights", str(tiny_checkpoint), "--imgsz", "128", "--no-show"]
    one = run_cli(["--source", str(photo), *base, "--name", "one"], tmp_path, script="-m")
    assert one.returncode == 0, one.stderr
    assert sorted(p.name for p in (tmp_path / "runs" / "one").iterdir()) == ["photo.jpg", "poses.jsonl"]
    annotated = cv2.imread(str(tmp_path / "runs" / "one" / "photo.jpg"))
    assert annotated.shape == (200, 120, 3)
    both = run_cli(["--source", str(tmp_path / "*.jpg"), *base, "--name", "both"], tmp_path, script="-m")
    assert both.returncode == 0, both.stderr
    assert sorted(p.name for p in (tmp_path / "runs" / "both").iterdir()) == ["other.jpg", "photo.jpg", "poses.jsonl"]


@pytest.mark.slow
def test_images_are_each_on_their_own_no_tracks_across_them(tmp_path, tiny_checkpoint):
    """Three consecutive frames of the bundled clip as pictures: a video would track its people across them; images
    are unrelated pictures, so every person is untracked (-1) and no track event is written."""
    import av

    from realtime import BUNDLED_CLIP

    photos = tmp_path / "photos"
    photos.mkdir()
    with av.open(str(BUNDLED_CLIP)) as container:
        for i, frame in zip(range(3), container.decode(video=0)):
            cv2.imwrite(str(photos / f"{i}.png"), frame.to_ndarray(format="bgr24"))
    proc = run_cli(["--source", str(photos), "--weights", str(tiny_checkpoint), "--no-show"], tmp_path, script="-m")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (tmp_path / "runs" / "exp" / "poses.jsonl").read_text().splitlines()]
    assert [r["type"] for r in records] == ["frame"] * 3
    people = [p for r in records for p in r["people"]]
    assert people and {p["track_id"] for p in people} == {-1}

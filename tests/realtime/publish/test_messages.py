"""The message schema (realtime/publish/message.schema.json), checked with jsonschema: every line a run writes to
its JSONL is a valid message of schema 1, track events agree with the frames, and the schema refuses what is not a
message."""
import copy
import json

import jsonschema
import pytest

from realtime.pipeline import Pipeline, PipelineConfig
from realtime.publish.messages import SCHEMA_PATH
from realtime.sources.readers import parse_source

SCHEMA = json.loads(SCHEMA_PATH.read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def test_the_schema_file_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.fixture(scope="module")
def bundled_engine():
    """The bundled checkpoint (trained on the synthetic people of the bundled clip): real people, real tracks."""
    import models
    from realtime.engine.stage import Engine

    if not models.DEFAULT_CHECKPOINT.is_file():
        pytest.skip("bundled checkpoint missing")
    predictor = models.Predictor(models.load_checkpoint(models.DEFAULT_CHECKPOINT), device="cpu", input_size=256)
    return Engine(predictor, 256, "cpu")


def messages_of_a_run(tmp_path, engine, frames=40):
    from realtime import BUNDLED_CLIP

    config = PipelineConfig(specs=[parse_source(str(BUNDLED_CLIP))], out_dir=tmp_path, save_mp4=False,
                            progress=False, max_frames=frames, stream_names=["hall"])
    Pipeline(config, engine, log=lambda line: None).run()
    return [json.loads(line) for line in (tmp_path / "poses.jsonl").read_text().splitlines()]


def test_every_jsonl_line_is_a_schema_1_message_and_track_events_agree_with_the_frames(tmp_path, bundled_engine):
    lines = messages_of_a_run(tmp_path, bundled_engine)
    for m in lines:
        VALIDATOR.validate(m)
    frames = [m for m in lines if m["type"] == "frame"]
    started = {m["track_id"]: m for m in lines if m["type"] == "track_started"}
    ended = {m["track_id"]: m for m in lines if m["type"] == "track_ended"}
    assert len(frames) == 40 and all(m["stream"] == "hall" for m in lines)
    assert started and set(started) == set(ended)  # the run's end closes every open track
    for track_id, end in ended.items():
        seen = [(f["seq"], p["score"]) for f in frames for p in f["people"] if p["track_id"] == track_id]
        assert started[track_id]["seq"] == end["first_seq"] == seen[0][0] and end["last_seq"] == seen[-1][0]
        assert end["frames"] == len(seen) and end["best_score"] == max(s for _, s in seen)
        first = next(f for f in frames if f["seq"] == end["first_seq"])
        last = next(f for f in frames if f["seq"] == end["last_seq"])
        assert end["duration_s"] == pytest.approx(last["pts"] - first["pts"], abs=1e-6)
    # each event follows the frame that caused it
    for i, m in enumerate(lines):
        if m["type"] == "track_started":
            assert lines[i - 1]["type"] != "frame" or lines[i - 1]["seq"] == m["seq"]


@pytest.mark.parametrize("change, where", [
    (lambda m: m.update(schema=2), "schema"),
    (lambda m: m.update(type="pose"), "type"),
    (lambda m: m.pop("people"), "people"),
    (lambda m: m.update(extra=1), "extra"),
    (lambda m: m["people"][0].update(score=1.5), "score"),
    (lambda m: m["people"][0].update(box=[1, 2, 3]), "box"),
    (lambda m: m.update(stream="a/b"), "stream"),
])
def test_the_schema_refuses_what_is_not_a_message(change, where):
    good = {"schema": 1, "type": "frame", "stream": "door", "index": 0, "source": "rtsp://***@cam/live", "seq": 3,
            "pts": None, "wall_time": 1.5, "latency_ms": 20.0, "width": 64, "height": 48,
            "people": [{"track_id": -1, "score": 0.5, "box": [0, 0, 1, 1], "keypoints": [[0, 0], [1, 1]],
                        "keypoint_scores": [0.5, 0.5]}]}
    VALIDATOR.validate(good)
    bad = copy.deepcopy(good)
    change(bad)
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(bad)

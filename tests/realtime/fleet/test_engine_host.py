"""One engine of the fleet without Ray, as the coordinator drives it: cameras that join or leave its running pipeline
change nothing for the others (the same pipeline, no pause), each joined camera gets its files, stats and counters,
and one that comes back writes new files beside those of its first visit; a camera that records joining a pipeline
that writes no files starts a new one."""
from __future__ import annotations

import time

from realtime import BUNDLED_CLIP
from realtime.cameras import Camera
from realtime.fleet.engine_host import EngineHost, EngineOptions


def wait(what, check, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def camera(name: str, record: bool = True) -> Camera:
    return Camera(name, str(BUNDLED_CLIP), record=record, as_live=True, fps=10)


def frames(host) -> dict[str, int]:
    return {name: v["frames"] for name, v in host.counters().items()}


def test_cameras_join_and_leave_the_running_pipeline(tmp_path, tiny_checkpoint):
    host = EngineHost("e0", EngineOptions(weights=str(tiny_checkpoint), imgsz=128, capacity=1e9,
                                          record_root=str(tmp_path), extra={"loop": True}))
    try:
        generation = host.assign([camera("a")])
        wait("a's frames", lambda: frames(host).get("a", 0) >= 10)
        thread = host.thread
        assert host.assign([camera("a"), camera("b")]) == generation
        wait("b's frames", lambda: frames(host).get("b", 0) >= 10)
        before = frames(host)["a"]
        assert host.assign([camera("b")]) == generation  # a leaves
        wait("more of b", lambda: frames(host)["b"] >= 20)
        status = host.status()
        assert host.thread is thread and [c["name"] for c in status["cameras"]] == ["b"]
        assert status["cameras"][0]["state"] == "running" and status["cameras"][0]["fps"] > 0
        assert frames(host)["a"] - before <= 3  # the few on their way when it left
        assert host.assign([camera("b"), camera("a")]) == generation  # a comes back: new files, the old ones kept
        wait("a's frames again", lambda: frames(host)["a"] >= before + 10)
        recorded = {p.name: p for p in tmp_path.glob("*/*")}
        assert sorted(recorded) == ["annotated_a.2.mp4", "annotated_a.mp4", "annotated_b.mp4", "poses_a.2.jsonl",
                                    "poses_a.jsonl", "poses_b.jsonl"], sorted(recorded)
        assert len(recorded["poses_a.jsonl"].read_text().splitlines()) >= 10  # the first visit's, not overwritten
    finally:
        host.stop()


def test_a_recording_camera_joining_a_pipeline_without_files_starts_a_new_one(tmp_path, tiny_checkpoint):
    host = EngineHost("e0", EngineOptions(weights=str(tiny_checkpoint), imgsz=128, capacity=1e9,
                                          record_root=str(tmp_path), extra={"loop": True}))
    try:
        generation = host.assign([camera("a", record=False)])
        wait("a's frames", lambda: frames(host).get("a", 0) >= 5)
        assert host.assign([camera("a", record=False), camera("b")]) == generation + 1
        wait("b's frames", lambda: frames(host).get("b", 0) >= 5)
        assert sorted(p.name for p in tmp_path.glob("*/*")) == ["annotated_b.mp4", "poses_b.jsonl"]
    finally:
        host.stop()


def test_synth_is_the_bundled_clip_of_the_engine_node(tiny_checkpoint):
    """``qem serve --source synth`` hands the engines the word: each opens the clip of its own installation."""
    host = EngineHost("e0", EngineOptions(weights=str(tiny_checkpoint), imgsz=128, capacity=1e9,
                                          extra={"loop": True}))
    try:
        host.assign([Camera("a", "synth", record=False, as_live=True, fps=10)])
        wait("a's frames", lambda: frames(host).get("a", 0) >= 5)
        host.assign([Camera("a", "synth", record=False, as_live=True, fps=10),
                     Camera("b", "synth", record=False, as_live=True, fps=10)])  # b joins the running pipeline
        wait("b's frames", lambda: frames(host).get("b", 0) >= 5)
    finally:
        host.stop()

"""The command line with sinks and a camera file, in subprocesses: messages on standard output (logs on standard
error), a broker that is not there at start (the run goes on, nothing lost from the files), a camera file whose
names reach the files and the messages, and one clear line for every bad input."""
import json
import textwrap

import jsonschema
import pytest

from realtime.cameras import CameraFileError, load_cameras
from realtime.publish.messages import SCHEMA_PATH
from tests.cli import assert_one_error_line
from tests.realtime.helpers import free_port, run_cli, write_video

VALIDATOR = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))


def cli(tmp_path, *args, script="-m"):
    return run_cli([*args, "--no-show", "--imgsz", "128", "--no-progress"], tmp_path, timeout=120, script=script)


def test_sink_stdout_gives_one_message_a_line_and_leaves_the_logs_on_stderr(tmp_path, tiny_checkpoint):
    clip = write_video(tmp_path / "clip.mp4", frames=8, size=(96, 64))
    proc = cli(tmp_path, "--source", str(clip), "--weights", str(tiny_checkpoint), "--sink", "stdout", "--no-save",
               "--no-jsonl")
    assert proc.returncode == 0, proc.stderr
    messages = [json.loads(line) for line in proc.stdout.splitlines()]  # every line is JSON: `| jq` works
    for m in messages:
        VALIDATOR.validate(m)
    assert [m["seq"] for m in messages if m["type"] == "frame"] == list(range(8))
    assert "summary: 8 frames out" in proc.stderr and "sink stdout: closed, sent" in proc.stderr


def test_a_broker_down_at_start_is_retried_and_the_files_lose_nothing(tmp_path, tiny_checkpoint):
    clip = write_video(tmp_path / "clip.mp4", frames=20, size=(96, 64))
    url = f"mqtt://viewer:hunter2@127.0.0.1:{free_port()}/qem"  # nobody listens there
    proc = cli(tmp_path, "--source", str(clip), "--weights", str(tiny_checkpoint), "--sink", url, "--save",
               "--name", "down")
    assert proc.returncode == 0, proc.stderr
    lines = (tmp_path / "runs" / "down" / "poses.jsonl").read_text().splitlines()
    assert [m["seq"] for m in map(json.loads, lines) if m["type"] == "frame"] == list(range(20))
    assert "connecting -> reconnecting (" in proc.stderr and "next try in" in proc.stderr
    assert f"dropped {len(lines)}" in proc.stderr  # nothing reached the broker: every message is counted
    assert "hunter2" not in proc.stderr and "mqtt://***@127.0.0.1" in proc.stderr


@pytest.mark.parametrize("args, words", [
    (["--sink", "kafka://127.0.0.1:9092/x"], "unknown scheme 'kafka'"),
    (["--sink", "redis://127.0.0.1:99999/0"], "port out of range"),
    (["--sink", "mqtt://127.0.0.1/qem?qos=3"], "qos='3' out of range"),
    (["--sink", "ws"], "--http-port"),
])
def test_a_bad_sink_is_one_error_line(tmp_path, args, words):
    """A sink URI the command line refuses is a usage error (exit status 2), as any bad value is."""
    proc = cli(tmp_path, "--source", "synth", *args)
    assert_one_error_line(proc, words)
    assert proc.returncode == 2


def camera_file(tmp_path, text: str):
    path = tmp_path / "cameras.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_camera_file_names_the_files_and_messages_and_sets_each_camera(tmp_path, tiny_checkpoint, monkeypatch):
    clips = tmp_path / "clips"
    clips.mkdir()
    write_video(clips / "door.mp4", frames=12, size=(96, 64), fps=10)
    write_video(clips / "yard.mp4", frames=12, size=(96, 64), fps=10)
    monkeypatch.setenv("CLIPS", str(clips))
    cams = camera_file(tmp_path, """\
        sinks: [stdout]
        cameras:
          door:
            url: ${CLIPS}/door.mp4
            fps: 5
          yard:
            url: ${CLIPS}/yard.mp4
            record: false
        """)
    proc = run_cli(["--cameras", str(cams), "--weights", str(tiny_checkpoint), "--no-show", "--imgsz", "128",
                    "--no-progress", "--name", "cams"], tmp_path, script="demos/rtsp.py")  # the demo takes it too
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "runs" / "cams"
    assert sorted(p.name for p in out.iterdir()) == ["annotated_door.mp4", "poses_door.jsonl"]
    frames = [m for m in map(json.loads, proc.stdout.splitlines()) if m["type"] == "frame"]
    assert [m["seq"] for m in frames if m["stream"] == "door"] == [0, 2, 4, 6, 8, 10]  # 10 FPS capped at 5
    assert [m["seq"] for m in frames if m["stream"] == "yard"] == list(range(12))


def test_a_camera_of_the_file_may_loop_its_clip(tmp_path, tiny_checkpoint):
    clip = write_video(tmp_path / "door.mp4", frames=12, size=(96, 64), fps=10)
    cams = camera_file(tmp_path, f"cameras:\n  door: {{url: {clip}, loop: true}}\n")
    proc = run_cli(["--cameras", str(cams), "--weights", str(tiny_checkpoint), "--no-show", "--imgsz", "128",
                    "--no-progress", "--no-save", "--no-jsonl", "--sink", "stdout", "--max-frames", "30"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    frames = [m for m in map(json.loads, proc.stdout.splitlines()) if m["type"] == "frame"]
    assert len(frames) >= 30 and len({m["pts"] for m in frames}) == len(frames)  # past its 12 frames, time going on


@pytest.mark.parametrize("text, words", [
    ("cameras: [door, yard\n", "cameras.yaml: not valid YAML (line 2)"),
    ("cameras:\n  door: {url: a.mp4, recrod: true}\n", "cameras.yaml: camera 'door': unknown key 'recrod'"),
    ("cameras:\n  door: a.mp4\n  door: b.mp4\n", "cameras.yaml: camera 'door' appears twice (line 3)"),
])
def test_a_bad_camera_file_is_one_error_line(tmp_path, text, words):
    proc = cli(tmp_path, "--cameras", str(camera_file(tmp_path, text)))
    assert_one_error_line(proc, words)


@pytest.mark.parametrize("text, words", [
    ("cameras:\n  door: rtsp://${CAM_PASSWORD_UNSET}@cam/live\n",
     "camera 'door': the environment variable 'CAM_PASSWORD_UNSET' of its url is not set"),
    ("cameras:\n  door: {url: a.mp4, fps: 0}\n", "camera 'door': fps must be > 0"),
    ("cameras:\n  door: {url: a.mp4, record: yes please}\n", "camera 'door': record must be true or false"),
    ("cameras:\n  door: {url: a.mp4, keep: 3}\n", "camera 'door': keep must be >= 1 and needs segment"),
    ("cameras:\n  front/door: a.mp4\n", "camera 'front/door': a name is 1-64 letters"),
    ("cameras:\n  door: {url: a.mp4, sinks: ['mqtt://h:0x/q']}\n", "camera 'door': 'mqtt://h:0x/q': port out of"),
    ("camera:\n  door: a.mp4\n", "needs a 'cameras:' mapping"),
    ("sinks: [stdout]\nstreams: {}\ncameras: {door: a.mp4}\n", "unknown key 'streams' at the top"),
])
def test_camera_file_mistakes_name_the_file_and_the_camera(tmp_path, text, words):
    path = camera_file(tmp_path, text)
    with pytest.raises(CameraFileError) as info:
        load_cameras(path, environ={})
    assert str(info.value).startswith(str(path)) and words in str(info.value) and "\n" not in str(info.value)


def test_a_url_from_the_environment_keeps_its_password_out_of_everything_printed(tmp_path):
    path = camera_file(tmp_path, "cameras:\n  door: rtsp://${CAM_USER}:${CAM_PASS}@127.0.0.1:9/live\n")
    cams = load_cameras(path, environ={"CAM_USER": "admin", "CAM_PASS": "hunter2"})
    assert cams.cameras[0].url == "rtsp://admin:hunter2@127.0.0.1:9/live" and "hunter2" not in repr(cams)

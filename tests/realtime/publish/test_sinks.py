"""Message sinks: URIs (one clear line for a bad one, credentials masked), the per-sink options, a broker that
stops answering (the pipeline does not wait for it; drops are counted), and the live view's WebSocket."""
import asyncio
import io
import json
import os
import signal
import threading
import time

import jsonschema
import pytest

from realtime.pipeline import Pipeline, PipelineConfig
from realtime.publish import SinkUriError, parse_sink
from realtime.publish.base import Message, QueuedSink
from realtime.publish.messages import SCHEMA_PATH
from realtime.publish.stdout import StdoutTransport
from realtime.sources.readers import parse_source
from tests.realtime.brokers import Mosquitto, missing
from tests.realtime.helpers import Running, write_video

VALIDATOR = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))


@pytest.mark.parametrize("uri, words", [
    ("kafka://127.0.0.1:9092/poses", "unknown scheme 'kafka'"),
    ("mqtt://127.0.0.1:70000/qem", "port out of range"),
    ("mqtt://127.0.0.1:1883/qem?qos=3", "qos='3' out of range"),
    ("mqtt://127.0.0.1/a/+/b", "may not hold '+'"),
    ("redis://127.0.0.1:6379/zero", "database 'zero' is not a number"),
    ("redis://127.0.0.1?every=0", "every='0' out of range"),
    ("stdout?rate=5", "unknown option 'rate'"),
    ("mqtt://user:hunter2@127.0.0.1/qem?events=some", "events='some'"),
    ("mqtt:///qem", "no host name"),
])
def test_a_bad_sink_uri_is_one_line_naming_it_without_its_password(uri, words):
    with pytest.raises(SinkUriError) as info:
        parse_sink(uri)
    text = str(info.value)
    assert words in text and "\n" not in text and "hunter2" not in text


def test_sink_uris_give_their_defaults_and_options():
    m = parse_sink("mqtt://cam:s3cret@broker.local/home/poses?qos=0&every=2&queue=50")
    assert (m.host, m.port, m.path, m.username, m.password, m.extra["qos"]) == \
        ("broker.local", 1883, "home/poses", "cam", "s3cret", 0)
    assert (m.options.every, m.options.queue) == (2, 50)
    assert m.name == "mqtt://***@broker.local/home/poses?qos=0&every=2&queue=50"
    r = parse_sink("redis://127.0.0.1?stream=poses&maxlen=500&fps=5&events=only")
    assert (r.port, r.path, r.extra, r.options.fps, r.options.events_only) == \
        (6379, "0", {"key": "poses", "maxlen": 500}, 5.0, True)
    assert parse_sink("mqtt://127.0.0.1").path == "qem" and parse_sink("ws?every=3").options.every == 3
    assert "s3cret" not in repr(m)


def test_a_sink_given_twice_is_one_sink_for_the_streams_of_both():
    from realtime.publish.uri import merge_sinks

    run_wide, again = parse_sink("mqtt://127.0.0.1/qem"), parse_sink("mqtt://127.0.0.1/qem")
    door, yard = (parse_sink("redis://127.0.0.1/0").for_streams([name]) for name in ("door", "yard"))
    every_other = parse_sink("mqtt://127.0.0.1/qem?every=2")  # other options: a sink of its own
    warned = []
    sinks = merge_sinks([run_wide, door, again, yard, every_other], warn=warned.append)
    assert [s.uri for s in sinks] == ["mqtt://127.0.0.1/qem", "redis://127.0.0.1/0", "mqtt://127.0.0.1/qem?every=2"]
    assert sinks[0].options.streams is None and sinks[1].options.streams == {"door", "yard"}
    assert warned == ["warning: sink mqtt://127.0.0.1/qem is given more than once; each message goes there once"]
    warned.clear()  # above: door's and yard's redis are no repeat, each message went there once anyway
    both = merge_sinks([door, parse_sink("redis://127.0.0.1/0")], warn=warned.append)  # one camera's and the run's
    assert len(both) == 1 and both[0].options.streams is None
    assert warned == ["warning: sink redis://127.0.0.1/0 is given more than once; each message goes there once"]


def offer_frames(sink: QueuedSink, streams: int, frames: int, step: float = 0.1) -> None:
    for i in range(frames):
        for s in range(streams):
            sink.offer(Message("frame", f"s{s}", json.dumps({"stream": f"s{s}", "seq": i})), now=i * step)
        if i % 4 == 0:
            sink.offer(Message("track_started", "s0", json.dumps({"seq": i})), now=i * step)


@pytest.mark.parametrize("query, frames_per_stream, events", [
    ("", 12, 3), ("every=3", 4, 3), ("fps=5", 6, 3), ("events=only", 0, 3)])
def test_every_nth_frame_a_rate_cap_or_events_only(query, frames_per_stream, events):
    out = io.StringIO()
    spec = parse_sink("stdout" + (f"?{query}" if query else ""))
    sink = QueuedSink(StdoutTransport(out), spec.options, log=lambda line: None).start()
    offer_frames(sink, streams=2, frames=12)  # 10 frames a second of the streams' clock
    sink.close()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert sum(1 for m in lines if m.get("stream") == "s1") == frames_per_stream
    assert sum(1 for m in lines if "stream" not in m) == events
    assert sink.stats()["sent"] == sink.stats()["delivered"] == len(lines) and sink.stats()["dropped"] == 0


def test_a_reader_that_goes_away_stops_the_stdout_sink_in_one_line():
    class ClosedPipe(io.StringIO):  # what `| head` leaves once it has read its lines
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    logs = []
    sink = QueuedSink(StdoutTransport(ClosedPipe()), parse_sink("stdout").options, log=logs.append).start()
    for i in range(5):
        sink.offer(Message("frame", "s0", json.dumps({"seq": i})))
    deadline = time.monotonic() + 10
    while sink.state != "stopped":
        assert time.monotonic() < deadline, logs
        time.sleep(0.01)
    for i in range(3):
        sink.offer(Message("frame", "s0", json.dumps({"seq": 5 + i})))
    sink.close()
    assert logs == ["sink stdout: connecting -> connected",
                    "sink stdout: connected -> stopped (standard output was closed by its reader; what follows is "
                    "dropped)"]
    stats = sink.stats()
    assert (stats["sent"], stats["delivered"], stats["dropped"]) == (8, 0, 8)


def test_a_broker_that_stops_answering_does_not_slow_the_pipeline_and_its_drops_are_counted(tmp_path, engine):
    reason = missing("mosquitto")
    if reason:
        pytest.skip(reason)
    broker = Mosquitto(tmp_path / "mosquitto").start()
    clips = [parse_source(str(write_video(tmp_path / f"c{i}.mp4", frames=60, size=(96, 64)))) for i in range(4)]
    run = Running(clips, engine, tmp_path / "out", save_mp4=False,
                  sinks=[parse_sink(broker.url(query="queue=20"))], sink_flush=0.5)
    try:
        run.wait_for(lambda: any("-> connected" in line for line in run.logs), 10, "the sink connected")
        os.kill(broker.proc.pid, signal.SIGSTOP)  # alive, but reads nothing: a stuck broker
        t0 = time.monotonic()
        run.thread.join(60)
        elapsed = time.monotonic() - t0
    finally:
        os.kill(broker.proc.pid, signal.SIGCONT)
        broker.stop()
    assert run.error is None and run.frames_out == 240 and elapsed < 30
    stats, = run.pipeline.metrics.sink_stats()
    assert stats["dropped"] > 0 and stats["sent"] == stats["delivered"] + stats["dropped"]
    for i in range(4):  # the files lost nothing
        lines = (tmp_path / "out" / f"poses_{i}.jsonl").read_text().splitlines()
        assert [m["seq"] for m in map(json.loads, lines) if m["type"] == "frame"] == list(range(60))


def test_the_live_views_websocket_pushes_status_and_every_nth_frame_message(tmp_path, engine):
    import aiohttp

    clip = write_video(tmp_path / "clip.mp4", frames=30, size=(96, 64), fps=30)
    config = PipelineConfig(specs=[parse_source(str(clip))], out_dir=None, http_port=0, pace=True, progress=False,
                            sinks=[parse_sink("ws?every=2")], stream_names=["lobby"])
    pipeline = Pipeline(config, engine, log=lambda line: None)
    got: list[dict] = []

    async def listen():
        while pipeline.view_url is None:
            await asyncio.sleep(0.02)
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(pipeline.view_url + "ws") as ws:
                async for msg in ws:
                    got.append(json.loads(msg.data))

    runner = threading.Thread(target=pipeline.run)
    runner.start()
    asyncio.run(asyncio.wait_for(listen(), 30))  # ends when the view closes the connection at the end of the run
    runner.join(10)
    frames = [m for m in got if m["type"] == "frame"]
    status = [m for m in got if m["type"] == "status"]
    for m in got:
        VALIDATOR.validate(m)
    assert status and status[0]["streams"][0]["name"].endswith("clip.mp4")
    assert [s["name"] for s in status[-1]["sinks"]] == ["ws?every=2"]
    assert frames and all(m["stream"] == "lobby" and m["seq"] % 2 == 0 for m in frames)
    assert len(frames) >= 10  # the client joined within the first few frames of 30


def test_an_idle_mqtt_sink_notices_its_broker_going_and_coming_back_without_a_message_sent(tmp_path):
    """The MQTT sink does paho's network work in its own thread, so it polls while idle: a broker stopped while nothing
    is sent shows as reconnecting at once, and a broker started again is reconnected to."""
    reason = missing("mosquitto")
    if reason:
        pytest.skip(reason)
    from realtime.publish import open_sink

    broker = Mosquitto(tmp_path / "mosquitto").start()
    lines: list[str] = []
    sink = open_sink(parse_sink(broker.url()), log=lines.append, backoff_max=0.5)
    try:
        deadline = time.monotonic() + 10
        while sink.state != "connected" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sink.state == "connected"
        broker.stop()
        deadline = time.monotonic() + 5
        while sink.state == "connected" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sink.state == "reconnecting" and any("connected -> reconnecting (connection lost)" in x for x in lines)
        broker.start()
        deadline = time.monotonic() + 10
        while sink.state != "connected" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sink.state == "connected" and sink.stats()["sent"] == 0
    finally:
        sink.close(1.0)
        broker.stop()

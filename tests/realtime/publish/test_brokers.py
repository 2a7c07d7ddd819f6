"""Messages through real brokers (mosquitto, redis-server on loopback): 4 streams published through MQTT (QoS 1)
and Redis Streams at once; nothing is lost while the brokers are up, and when both are stopped for 10 s mid-run and
started again, every message sent is either received or reported dropped, exactly."""
import json
import time

import jsonschema
import pytest

from realtime.publish import parse_sink
from realtime.publish.messages import SCHEMA_PATH
from realtime.sources.readers import parse_source
from tests.realtime.brokers import MqttCounter, Mosquitto, RedisServer, missing, redis_entries
from tests.realtime.helpers import Running, write_video

VALIDATOR = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))


@pytest.fixture
def brokers(tmp_path):
    reason = missing("mosquitto") or missing("redis-server")
    if reason:
        pytest.skip(reason)
    mqtt, redis = Mosquitto(tmp_path / "mosquitto").start(), RedisServer(tmp_path / "redis").start()
    yield mqtt, redis
    mqtt.stop()
    redis.stop()


def four_streams(tmp_path, frames: int, fps: int = 10):
    return [parse_source(str(write_video(tmp_path / f"cam{i}.mp4", frames=frames, size=(96, 64), fps=fps)))
            for i in range(4)]


def unique(messages: list[dict]) -> set:
    """A message's identity: at least once means a reconnection may bring one twice."""
    return {(m["stream"], m["type"], m["seq"], m.get("track_id")) for m in messages}


def sink_stats(run, scheme: str) -> dict:
    stats, = [s for s in run.pipeline.metrics.sink_stats() if s["name"].startswith(scheme)]
    return stats


def wait_until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_four_streams_through_mqtt_and_redis_lose_nothing_while_the_brokers_are_up(tmp_path, engine, brokers):
    mqtt, redis = brokers
    counter = MqttCounter(mqtt.port)
    run = Running(four_streams(tmp_path, 30), engine, None, stream_names=["a", "b", "c", "d"],
                  sinks=[parse_sink(mqtt.url()), parse_sink(redis.url())])
    run.thread.join(60)
    assert not run.thread.is_alive() and run.error is None and run.frames_out == 120
    m, r = sink_stats(run, "mqtt"), sink_stats(run, "redis")
    assert m["sent"] == m["delivered"] >= 120 and m["dropped"] == 0
    assert r["sent"] == r["delivered"] == m["sent"] and r["dropped"] == 0
    wait_until(lambda: len(counter.json("/poses")) + len(counter.json("/events")) >= m["sent"], 10)
    got = counter.json("/poses") + counter.json("/events")
    counter.close()
    assert len(got) == len(unique(got)) == m["sent"]
    for name in "abcd":
        assert sorted(x["seq"] for x in got if x["stream"] == name and x["type"] == "frame") == list(range(30))
        assert counter.last(f"qem/{name}/state") == "ended"
    assert counter.last("qem/available") == "offline"
    for message in got[:50]:
        VALIDATOR.validate(message)
    stored = redis_entries(redis.port)
    assert len(stored) == r["sent"] and unique(stored) == unique(got)


@pytest.mark.slow
def test_brokers_stopped_for_10_s_and_started_again_sent_equals_received_plus_dropped(tmp_path, engine, brokers):
    mqtt, redis = brokers
    counter = MqttCounter(mqtt.port)
    run = Running(four_streams(tmp_path, 150), engine, None, pace=True, stream_names=["a", "b", "c", "d"],
                  sinks=[parse_sink(mqtt.url(query="queue=100")), parse_sink(redis.url("queue=100"))],
                  backoff_max=1.0, report_every=0.5)
    try:
        run.wait_for(lambda: run.frames_out >= 60, 30, "60 results")
        assert sink_stats(run, "mqtt")["dropped"] == sink_stats(run, "redis")["dropped"] == 0
        mqtt.stop()
        redis.stop()
        down_at = run.frames_out
        time.sleep(10)
        assert run.frames_out >= down_at + 200  # the pipeline went on at its pace (4 x 10 FPS)
        mqtt.start()
        redis.start()
        run.thread.join(60)
    finally:
        run.stop()
    assert run.frames_out == 600
    m, r = sink_stats(run, "mqtt"), sink_stats(run, "redis")
    assert m["dropped"] > 0 and r["dropped"] > 0  # 400 messages of the outage into a queue of 100
    wait_until(lambda: len(unique(counter.json("/poses") + counter.json("/events"))) >= m["sent"] - m["dropped"], 10)
    received = unique(counter.json("/poses") + counter.json("/events"))
    counter.close()
    assert m["sent"] == len(received) + m["dropped"]
    assert r["sent"] == len(unique(redis_entries(redis.port))) + r["dropped"]
    assert any("reconnecting" in line and "mqtt://" in line for line in run.logs)
    assert any("-> connected" in line and "redis://" in line for line in run.logs[-200:])
    line = run.pipeline.metrics.line()  # the periodic metrics line (live sources print it)
    assert f"sink {mqtt.url()}?queue=100 closed, dropped {m['dropped']}" in line, line
    assert f"sink {redis.url('queue=100')} closed, dropped {r['dropped']}" in line, line

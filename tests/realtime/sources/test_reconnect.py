"""Live sources that never give up once they delivered: the real GStreamer RTSP server on loopback goes away for
longer than the whole backoff schedule and comes back; a source never reached still fails fast; the exit status
says when every source failed."""
import re
import threading
import time

import pytest

from realtime.sources.capture import backoff_delay
from realtime.cli import main
from realtime.sources.readers import parse_source
from tests.realtime.helpers import Running, free_port, write_video


def test_backoff_doubles_up_to_its_cap_and_never_overflows():
    assert [backoff_delay(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 10, 10, 10]
    assert backoff_delay(0) == 0.5 and backoff_delay(100_000) == 10.0  # days of retries at the cap
    assert [backoff_delay(n, base=0.2, cap=0.8) for n in (1, 2, 3, 4)] == [0.2, 0.4, 0.8, 0.8]


def backoff_waits(logs: list[str]) -> list[float]:
    """The waits announced by the reconnecting events (not the metrics lines' countdowns)."""
    found = [re.search(r"next try in ([\d.]+)s", line) for line in logs if "-> reconnecting" in line]
    return [float(m[1]) for m in found if m]


@pytest.mark.slow
def test_a_camera_that_ran_is_retried_through_an_outage_longer_than_the_schedule(engine, gst_server):
    # Schedule 0.2, 0.4, 0.8, 0.8, ... s; max_attempts=2 bounds only sources never reached.
    base, cap, max_attempts = 0.2, 0.8, 2
    server = gst_server()
    run = Running([parse_source(server.url())], engine, None, open_timeout=2.0, read_timeout=2.0,
                  stall_timeout=1.0, backoff_base=base, backoff_max=cap, max_attempts=max_attempts)
    capture = run.pipeline.captures[0]
    try:
        run.wait_for(lambda: run.frames_out >= 5, 20, "first frames")
        server.stop()
        down = time.monotonic()
        run.wait_for(lambda: capture.state == "reconnecting", 10, "reconnecting")
        seen = []  # what the metrics said while the server was away

        def outage_done():
            source = run.pipeline.metrics.as_dict()["sources"][0]
            if source["state"] == "reconnecting":
                seen.append(source)
            waits = backoff_waits(run.logs)
            # longer than the whole schedule: it reached the cap, waited it out twice and failed again, with
            # more failed attempts than max_attempts allows a source that was never reached
            return waits.count(cap) >= 3 and capture.attempts > max_attempts + 1
        run.wait_for(outage_done, 30, "the backoff schedule to run out")
        schedule = [backoff_delay(max(n, 1), base, cap) for n in range(5)]  # 0.2 0.2 0.4 0.8 0.8: a break counts 1
        assert time.monotonic() - down > sum(schedule)
        assert capture.state in ("reconnecting", "connecting")
        assert any(0 < s["next_try_s"] <= cap and s["failed_attempts"] >= 1 and "cannot open" in s["error"]
                   for s in seen if s["next_try_s"] is not None)
        assert any("| source 0 reconnecting (next try in" in line for line in run.logs)  # the metrics line
        before = run.frames_out
        gst_server(port=server.port)
        run.wait_for(lambda: run.frames_out >= before + 5, 30, "frames after the server came back")
        outage = time.monotonic() - down
    finally:
        run.stop()
    source = run.pipeline.metrics.as_dict()["sources"][0]
    elapsed = run.pipeline.metrics.as_dict()["elapsed_s"]
    assert 0 < source["running_s"] < elapsed - outage + 1.0  # the outage is not time the camera ran
    assert f"fps in while running {source['running_s']:.1f} s)" in run.pipeline.metrics.summary()
    states = [e[2] for e in run.pipeline.events]
    assert "failed" not in states and states[-2:] == ["running", "ended"]
    waits = backoff_waits(run.logs)
    assert waits[:3] == [base, base, 2 * base] and max(waits) == cap  # a break counts as the first failure
    assert not any("attempt " in line and " of 2" in line for line in run.logs)  # unbounded once it ran
    assert capture.attempts == 0 and capture.error is None


def test_a_source_never_reached_fails_fast_with_one_line(engine):
    url = f"rtsp://user:pw@127.0.0.1:{free_port()}/live"
    run = Running([parse_source(url)], engine, None, open_timeout=1.0, read_timeout=1.0, backoff_base=0.1,
                  max_attempts=3)
    run.wait_for(lambda: not run.thread.is_alive(), 20, "the pipeline to give up")
    failure = [line for line in run.logs if "-> failed" in line]
    assert len(failure) == 1 and "gave up after 3 failed connection attempts" in failure[0]
    assert "attempt 2 of 3" in "\n".join(run.logs) and ":pw@" not in "\n".join(run.logs)


def error_of(args, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["--no-show", "--no-save", "--imgsz", "128", "--max-attempts", "1", "--open-timeout", "1", *args])
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and "\n" not in message
    assert "Traceback" not in capsys.readouterr().err
    return message


def test_exit_status_is_an_error_when_every_source_failed(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    weights = ["--weights", str(tiny_checkpoint)]
    urls = [f"rtsp://127.0.0.1:{free_port()}/live" for _ in range(2)]
    both = error_of(["--source", urls[0], "--source", urls[1], "--no-jsonl", *weights], capsys)
    assert "2 sources failed" in both and "cannot open" in both and all(url in both for url in urls)
    # Failing after frames were processed is an error too: a looped file replaced by garbage mid-run.
    clip = write_video(tmp_path / "clip.mp4", frames=10)
    jsonl = tmp_path / "runs" / "exp" / "poses.jsonl"

    def spoil_after_first_frame():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (jsonl.exists() and jsonl.read_text()):
            time.sleep(0.02)
        clip.write_text("not a video any more\n")
    spoiler = threading.Thread(target=spoil_after_first_frame)
    spoiler.start()
    message = error_of(["--source", str(clip), "--loop", "--max-frames", "5000", "--no-progress", *weights], capsys)
    spoiler.join()
    assert message.startswith(f"error: every source failed: {clip}: ") and "not a video file" in message
    assert jsonl.read_text().count("\n") >= 1


def test_a_long_outage_logs_every_10th_retry_and_keeps_every_event(engine):
    url = f"rtsp://127.0.0.1:{free_port()}/live"
    run = Running([parse_source(url)], engine, None, open_timeout=1.0, read_timeout=1.0, backoff_base=0.01,
                  backoff_max=0.01, max_attempts=0, report_every=1e9)
    capture = run.pipeline.captures[0]
    run.wait_for(lambda: capture.attempts >= 25, 30, "25 failed attempts")
    run.stop()
    retries = [line for line in run.logs if "-> reconnecting" in line]
    thinned = [int(n) for n in re.findall(r"; (\d+) failed attempts in a row, logging every 10th", "\n".join(retries))]
    assert len(retries) == 9 + len(thinned) and thinned[:2] == [10, 20]
    assert "attempt 2 of" not in retries[0] and "next try in 0.0s" in retries[0]  # max_attempts 0: unbounded
    events = [e for e in run.pipeline.events if e[2] == "reconnecting"]
    assert len(events) >= 25 and capture.state == "ended"

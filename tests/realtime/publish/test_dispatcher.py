"""The fan-out's streams that leave and join: a stream that leaves closes the sinks that carry it alone (their
figures stay in the stats), so that a stream of the same name joining later is delivered once, by its own sinks,
while the sinks of every stream carry both."""
from __future__ import annotations

import io
import json

import numpy as np

from models.poses import Poses
from realtime.frames import Frame, Result
from realtime.publish import parse_sink
from realtime.publish.base import QueuedSink
from realtime.publish.dispatcher import Dispatcher
from realtime.publish.stdout import StdoutTransport


def stdout_sink(out: io.StringIO, streams=None) -> QueuedSink:
    spec = parse_sink("stdout")
    spec = spec.for_streams(streams) if streams else spec
    return QueuedSink(StdoutTransport(out), spec.options, log=lambda line: None).start()


def result(stream: int, seq: int) -> Result:
    image = np.zeros((4, 4, 3), np.uint8)
    return Result(frame=Frame(source=stream, seq=seq, pts=seq / 10, wall_time=seq / 10, recv_time=0.0, image=image),
                  poses=Poses.empty())


def frames(out: io.StringIO) -> list[tuple[str, int]]:
    return [(m["stream"], m["seq"]) for m in map(json.loads, out.getvalue().splitlines()) if m["type"] == "frame"]


def test_a_stream_that_leaves_closes_its_own_sinks_and_one_of_its_name_joining_gets_new_ones():
    own_out, new_out, all_out = io.StringIO(), io.StringIO(), io.StringIO()
    own, everyone = stdout_sink(own_out, ["door"]), stdout_sink(all_out)
    dispatcher = Dispatcher(["door", "yard"], ["a.mp4", "b.mp4"], [True, True], [own, everyone])
    for seq in range(3):
        dispatcher.messages(result(0, seq))
        dispatcher.messages(result(1, seq))
    dispatcher.end(0)
    dispatcher.retire(0, flush_timeout=2.0)
    assert dispatcher.sinks == [everyone] and dispatcher.retired == [own]
    assert dispatcher.add("door", "c.mp4", True) == 2  # the camera comes back
    dispatcher.sinks.append(stdout_sink(new_out, ["door"]))
    for seq in range(2):
        dispatcher.messages(result(2, seq))
    dispatcher.close(2.0)
    assert frames(own_out) == [("door", 0), ("door", 1), ("door", 2)]  # nothing after it left
    assert frames(new_out) == [("door", 0), ("door", 1)]
    assert sorted(frames(all_out)) == sorted([("door", s) for s in (0, 1, 2, 0, 1)] + [("yard", s) for s in range(3)])
    assert [s["delivered"] for s in dispatcher.stats()] == [8, 2, 3]  # every stream, the new door's, the old door's
    assert own.stats()["state"] == "closed"

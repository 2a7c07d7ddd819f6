"""Counters that outlive their process (``realtime.counters``): what a process wrote before a SIGKILL is read back by
another, exactly; a sink given a row of a counter file counts there."""
import json
import os
import signal
import subprocess
import sys
import textwrap

from realtime.counters import CounterFile, open_row, read_counters
from realtime.publish.base import Message, QueuedSink, SinkOptions, Transport
from tests.realtime.helpers import ROOT

WRITER = textwrap.dedent("""
    import sys, time
    from realtime.counters import CounterFile
    file = CounterFile(sys.argv[1], rows=2, width=3)
    a, b = file.row(0), file.row(1)
    for i in range(100_000):
        a[0] += 1
        if i % 3 == 0:
            b[2] += 1
    a[1] = -7
    print("counted", flush=True)
    while True:
        b[1] += 1   # still counting when the SIGKILL comes
        if b[1] == 1000:
            print("busy", flush=True)
""")


def test_a_killed_process_leaves_its_last_counts_for_another_to_read(tmp_path):
    path = tmp_path / "c.counts"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "counted"
    assert proc.stdout.readline().strip() == "busy"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    rows = read_counters(path, 3)
    assert rows[0] == [100_000, -7, 0]
    assert rows[1][0] == 0 and rows[1][1] >= 1000 and rows[1][2] == 33_334


def test_a_row_mapped_twice_is_one_counter_and_rows_do_not_overlap(tmp_path):
    file = CounterFile(tmp_path / "c.counts", rows=3, width=3)
    again = open_row((str(file.path), 1, 3))
    again[2] += 5
    file.row(2)[0] += 1
    assert file.values() == [[0, 0, 0], [0, 0, 5], [1, 0, 0]]
    memory = open_row(None)
    memory[0] += 2
    assert list(memory) == [2, 0, 0, 0]


class Collect(Transport):
    """A receiver in this process: confirms every message it gets."""

    name = "collect"

    def __init__(self):
        self.got = []

    def connect(self):
        pass

    def send(self, batch):
        self.got += batch


def test_a_sink_given_a_counter_row_counts_there(tmp_path):
    file = CounterFile(tmp_path / "sinks.counts", rows=2, width=4)
    transport = Collect()
    sink = QueuedSink(transport, SinkOptions(counters=(str(file.path), 1, 4), queue=5), log=lambda _: None)
    for i in range(8):  # not started yet: the queue keeps the newest 5, 3 dropped
        sink.offer(Message("frame", "s0", json.dumps({"seq": i})))
    sink.start()
    sink.close(flush_timeout=5.0)
    assert len(transport.got) == 5
    assert read_counters(file.path, 4) == [[0, 0, 0, 0], [8, 5, 3, 0]]  # nothing left unconfirmed
    assert (sink.sent, sink.delivered, sink.dropped) == (8, 5, 3)

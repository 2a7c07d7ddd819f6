"""The counter files of the fleet's engines (``realtime.fleet.counter_files``): a process that is gone is read, summed
over its pipelines; one that runs is not; a pid used again by a later process does not hide the dead one's files."""
import json
import subprocess
import sys

from realtime.fleet.counter_files import read_incarnations, write_counter_file


def test_the_files_of_a_process_that_is_gone_are_read_and_those_of_a_running_one_are_not(tmp_path):
    rows = [("cam0", None), ("cam0", "redis://127.0.0.1:6379/0"), ("cam1", None)]
    first = write_counter_file(tmp_path, "qem-engine-0", "gone", 1, rows)
    second = write_counter_file(tmp_path, "qem-engine-0", "gone", 2, rows[:2])
    first.row(0)[0] += 10
    first.row(1)[0], first.row(1)[1], first.row(1)[2], first.row(1)[3] = 12, 9, 1, 2
    first.row(2)[0] += 4
    second.row(0)[0] += 5
    second.row(1)[0], second.row(1)[1] = 6, 6
    write_counter_file(tmp_path, "qem-engine-1", "running", 1, rows)  # this process: alive
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    for name in ("gone.1.json", "gone.2.json"):  # as if written by that process, which has exited since
        manifest = json.loads((tmp_path / name).read_text())
        (tmp_path / name).write_text(json.dumps({**manifest, "pid": int(dead.stdout), "started": None}))
    found = read_incarnations(tmp_path, skip="")
    assert list(found) == ["gone"]
    assert found["gone"]["engine"] == "qem-engine-0"
    assert found["gone"]["totals"] == {
        "cam0": {"frames": 15, "sinks": {"redis://127.0.0.1:6379/0": {"sent": 18, "delivered": 15, "dropped": 1,
                                                                       "unconfirmed": 2}}},
        "cam1": {"frames": 4, "sinks": {}}}


def test_a_pid_used_again_by_a_later_process_does_not_count_as_the_dead_one(tmp_path):
    write_counter_file(tmp_path, "qem-engine-0", "before", 1, [("cam0", None)]).row(0)[0] += 3
    manifest = json.loads((tmp_path / "before.1.json").read_text())
    assert manifest["started"] is not None  # this process's start, from /proc
    (tmp_path / "before.1.json").write_text(json.dumps({**manifest, "started": "1"}))  # same pid, another start
    assert read_incarnations(tmp_path)["before"]["totals"] == {"cam0": {"frames": 3, "sinks": {}}}


def test_a_half_written_description_is_passed_over(tmp_path):
    (tmp_path / "x.1.json").write_text('{"engine": "qem-engine-0", "pid"')
    assert read_incarnations(tmp_path) == {}

"""The fleet's counter files: what each engine process counted (per camera its frames, per sink its messages), kept
in memory-mapped files (``realtime.counters``) under ``<temp>/qem-fleet/<fleet id>/`` on its node, so that the
figures of a process killed by a signal can be read after it died. Per pipeline of a process, and per set of
cameras that joined a running one: ``<incarnation>.<part>.counts`` (the rows) and ``<incarnation>.<part>.json``
(whose they are: engine, pid, the process's start time, and what each row holds); the ``.json`` is written after
the rows exist, whole (a rename), so a file of a process killed while it wrote is passed over.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from realtime.counters import CounterFile, read_counters

SINK_KEYS = ("sent", "delivered", "dropped", "unconfirmed")   # a sink's counters (realtime.publish.base)
WIDTH = len(SINK_KEYS)         # counters a row


def counter_folder(fleet_id: str) -> Path:
    return Path(tempfile.gettempdir()) / "qem-fleet" / (fleet_id or f"engine-{os.getpid()}")


def _start_ticks(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from ``/proc``; None where there is no ``/proc``)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: str | None) -> bool:
    """Whether the process ``pid`` that started at ``started`` still runs (a pid used again by a later process does
    not count as it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return started is None or _start_ticks(pid) in (None, started)


def read_incarnations(folder: Path, skip: str = "") -> dict[str, dict]:
    """Per incarnation (but ``skip``) whose process is gone: its engine, pid and counters (``counters()``'s form),
    summed over its pipelines' counter files in ``folder``."""
    out: dict[str, dict] = {}
    for manifest in sorted(folder.glob("*.json")):
        try:
            m = json.loads(manifest.read_text())
            if m["incarnation"] == skip or _alive(m["pid"], m.get("started")):
                continue
            rows = read_counters(manifest.with_suffix(".counts"), m["width"])
        except (OSError, ValueError, KeyError):
            continue  # written half by a process killed while it wrote: nothing was counted in it yet
        entry = out.setdefault(m["incarnation"], {"engine": m["engine"], "pid": m["pid"], "totals": {}})
        add_rows(entry["totals"], m["rows"], rows)
    return out


def write_counter_file(folder: Path, engine: str, incarnation: str, part: int,
                       described: list) -> CounterFile:
    """``<incarnation>.<part>.counts`` in ``folder``, zeroed, one row of ``WIDTH`` per ``(camera, sink name
    or None for its frames)`` of ``described`` (a sink's row: ``SINK_KEYS``; a camera's: its frames first); then
    the ``.json`` beside it that says whose it is and what each row holds."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{incarnation}.{part}"
    file = CounterFile(folder / f"{stem}.counts", len(described), WIDTH)
    manifest = {"engine": engine, "pid": os.getpid(), "started": _start_ticks(os.getpid()),
                "incarnation": incarnation, "part": part, "width": WIDTH, "rows": described}
    part = folder / f"{stem}.json.part"
    part.write_text(json.dumps(manifest))
    os.replace(part, folder / f"{stem}.json")
    return file


def add_rows(totals: dict, described: list, rows: list[list[int]]) -> None:
    """Adds counter rows (described as ``(camera, sink name or None)``) into ``totals``: per camera, its frames and
    per sink its ``SINK_KEYS``."""
    for (camera, sink), values in zip(described, rows):
        entry = totals.setdefault(camera, {"frames": 0, "sinks": {}})
        if sink is None:
            entry["frames"] += values[0]
            continue
        counts = entry["sinks"].setdefault(sink, dict.fromkeys(SINK_KEYS, 0))
        for key, value in zip(SINK_KEYS, values):
            counts[key] += value

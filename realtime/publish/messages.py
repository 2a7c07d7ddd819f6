"""The messages every output carries (schema 1, ``message.schema.json`` beside this file).

A frame's message (``type: frame``) per result; a track event when a stream's tracker confirms a new person
(``track_started``, on the frame that took the id) and when it lets one go (``track_ended``: on the first frame
after ``max_age`` frames without that person, the tracker's own rule, or when the run stops). Keypoints are image
pixels rounded to 0.01, scores to 1e-4; ``box`` is the keypoints' extent ``[x0, y0, x1, y1]``. Time of a track
(``duration_s``): the frame's ``pts`` for files, the receive wall time for live sources, as the tracker counts it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from realtime.frames import Result

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("message.schema.json")


def dumps(message: dict) -> str:
    """The wire form of a message: compact JSON, one line."""
    return json.dumps(message, separators=(",", ":"))


def frame_message(result: Result, index: int, stream: str, source: str) -> dict:
    f, poses = result.frame, result.poses
    people = []
    for p in range(len(poses)):
        kpts = np.round(poses.keypoints[p].astype(np.float64), 2)
        box = [*kpts.min(axis=0).tolist(), *kpts.max(axis=0).tolist()] if len(kpts) else [0.0, 0.0, 0.0, 0.0]
        people.append({
            "track_id": int(result.track_ids[p]) if p < len(result.track_ids) else -1,
            "score": round(float(poses.scores[p]), 4),
            "box": box,
            "keypoints": kpts.tolist(),
            "keypoint_scores": np.round(poses.keypoint_scores[p].astype(np.float64), 4).tolist(),
        })
    return {"schema": SCHEMA_VERSION, "type": "frame", "stream": stream, "index": index, "source": source,
            "seq": f.seq, "pts": f.pts, "wall_time": round(f.wall_time, 6), "latency_ms": round(result.latency_ms, 3),
            "width": f.width, "height": f.height, "people": people}


@dataclass
class _Open:
    first_seq: int
    first_time: float
    last_seq: int
    last_time: float
    last_frame: int      # the ledger's frame count at the last sighting
    frames: int = 1
    best_score: float = 0.0


@dataclass
class TrackLedger:
    """Turns one stream's results into track events. ``max_age`` is the tracker's: a track unseen for more than
    that many frames is gone."""

    index: int
    stream: str
    max_age: int = 30
    live: bool = False
    open: dict[int, _Open] = field(default_factory=dict)
    frame: int = 0

    def update(self, result: Result) -> list[dict]:
        f = result.frame
        self.frame += 1
        clock = f.wall_time if (self.live or f.pts is None) else f.pts
        events = []
        for track_id, track in list(self.open.items()):
            if self.frame - track.last_frame - 1 > self.max_age:
                events.append(self._ended(track_id, f.seq, f.pts, f.wall_time))
        for p, track_id in enumerate(int(t) for t in result.track_ids):
            if track_id < 1:
                continue
            score = round(float(result.poses.scores[p]), 4)
            track = self.open.get(track_id)
            if track is None:
                self.open[track_id] = _Open(f.seq, clock, f.seq, clock, self.frame, best_score=score)
                events.append(self._base("track_started", track_id, f.seq, f.pts, f.wall_time) | {"score": score})
            else:
                track.last_seq, track.last_time, track.last_frame = f.seq, clock, self.frame
                track.frames += 1
                track.best_score = max(track.best_score, score)
        return events

    def close(self, seq: int, pts: float | None, wall_time: float) -> list[dict]:
        """Every open track ends (the run stops): their events, reported at the stream's last frame."""
        return [self._ended(track_id, seq, pts, wall_time) for track_id in list(self.open)]

    def _base(self, kind: str, track_id: int, seq: int, pts: float | None, wall_time: float) -> dict:
        return {"schema": SCHEMA_VERSION, "type": kind, "stream": self.stream, "index": self.index,
                "track_id": track_id, "seq": seq, "pts": pts, "wall_time": round(wall_time, 6)}

    def _ended(self, track_id: int, seq: int, pts: float | None, wall_time: float) -> dict:
        t = self.open.pop(track_id)
        return self._base("track_ended", track_id, seq, pts, wall_time) | {
            "first_seq": t.first_seq, "last_seq": t.last_seq, "duration_s": round(t.last_time - t.first_time, 6),
            "frames": t.frames, "best_score": t.best_score}

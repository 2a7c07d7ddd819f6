"""Synthetic video: people walk (limb swing), turn, enter and leave; per-frame COCO annotations with track ids.

Scene model: a static textured background and a ground plane seen from about hip height, so a person of height
h px stands with the feet at ``horizon + 0.8 h`` (nearer = taller = lower feet = painted later). Each walker has a
heading (its yaw: 0 walks at the camera, +-pi/2 across); it moves ``speed`` of its height per second, its gait
phase advances with the distance walked, it sometimes stops to turn, and it leaves through the side it walks to.
The MP4 is H.264 (yuv420p) written with PyAV, one frame every 1/fps s (pts = frame index, time base 1/fps). The
JSON is COCO person_keypoints with one image per frame (``frame_index``, ``timestamp``) and ``track_id`` on every
annotation; a person wholly outside the frame has no annotation in that frame.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from models.data import figures, synth

HORIZON = 0.3  # of the frame height
FEET_BELOW_HORIZON = 0.8  # of the person's height
TURN_RATE = np.pi  # rad/s
TURN_PROBABILITY = 0.12  # per second


@dataclass
class Walker:
    track_id: int
    x: float  # pelvis x, px
    height: float  # px
    heading: float  # target yaw
    yaw: float
    speed: float  # heights per second
    phase: float
    appearance: figures.Appearance


def _spawn(rng: np.random.Generator, track_id: int, cfg: synth.SceneConfig, inside: bool) -> Walker:
    h = float(rng.uniform(0.35, 0.75) * cfg.height)
    if inside:
        x = float(rng.uniform(0.1, 0.9) * cfg.width)
        heading = float(rng.choice([-1, 1]) * np.pi / 2 + rng.uniform(-0.4, 0.4))
        if rng.random() < 0.2:  # walking towards or away from the camera
            heading = float(rng.choice([0.0, np.pi]) + rng.uniform(-0.3, 0.3))
    else:
        side = float(rng.choice([-1, 1]))
        x = cfg.width / 2 + side * (cfg.width / 2 + 0.1 * h)
        heading = float(-side * np.pi / 2 + rng.uniform(-0.3, 0.3))
    return Walker(track_id, x, h, heading, heading, float(rng.uniform(0.3, 0.6)), float(rng.uniform(0, 2 * np.pi)),
                  figures.sample_appearance(rng))


def _step(w: Walker, rng: np.random.Generator, dt: float, cfg: synth.SceneConfig) -> None:
    """Advance one walker by ``dt`` seconds: turn towards its heading, or walk along it."""
    diff = (w.heading - w.yaw + np.pi) % (2 * np.pi) - np.pi
    turning = abs(diff) > 1e-3
    w.yaw += float(np.clip(diff, -TURN_RATE * dt, TURN_RATE * dt))
    speed = w.speed * (0.3 if turning else 1.0)
    dist = speed * w.height * dt
    w.x += np.sin(w.yaw) * dist
    w.height *= float(np.exp(np.cos(w.yaw) * speed * dt * 0.3))
    w.phase += dist / w.height * 2 * np.pi / 1.4  # one full stride per 1.4 body heights
    too_near, too_far = w.height > 0.95 * cfg.height, w.height < 0.3 * cfg.height
    if not turning and (rng.random() < TURN_PROBABILITY * dt or (too_near and np.cos(w.yaw) > 0)
                        or (too_far and np.cos(w.yaw) < 0)):
        w.heading = float(w.yaw + np.pi + rng.uniform(-0.5, 0.5)) if (too_near or too_far or rng.random() < 0.6) \
            else float(rng.choice([-1, 1]) * np.pi / 2)


def _left(w: Walker, cfg: synth.SceneConfig) -> bool:
    margin = 0.5 * w.height
    return (w.x < -margin and np.sin(w.yaw) < 0) or (w.x > cfg.width + margin and np.sin(w.yaw) > 0)


def _figure(w: Walker, cfg: synth.SceneConfig) -> figures.Figure:
    fig = figures.Figure(figures.walk_pose(w.phase, w.yaw), w.appearance, w.height, (w.x, 0.0))
    return synth.place(fig, HORIZON * cfg.height + FEET_BELOW_HORIZON * w.height)


def render_clip(num_frames: int, fps: int, seed: int, cfg: synth.SceneConfig):
    """Yield ``(RGB frame, annotations with track_id)`` for each frame; deterministic by ``seed``."""
    rng = np.random.default_rng([seed, 0x71D])
    bg = synth.relight(synth.background(rng, replace(cfg, limb_clutter=False)), rng, 0.0)
    target = int(rng.integers(cfg.min_people, cfg.max_people + 1))
    walkers = [_spawn(rng, i + 1, cfg, inside=True) for i in range(target)]
    next_id, dt = target + 1, 1.0 / fps
    for _ in range(num_frames):
        walkers.sort(key=lambda w: w.height)
        frame = bg.copy()
        projs, owner, masks = synth.compose(frame, [_figure(w, cfg) for w in walkers])
        anns = []
        for i, (w, proj, mask) in enumerate(zip(walkers, projs, masks)):
            ann = synth.annotate(proj, owner, mask, i + 1, polygons=False)
            if ann is not None:
                anns.append({**ann, "track_id": w.track_id})
        yield frame, anns
        for w in walkers:
            _step(w, rng, dt, cfg)
        walkers = [w for w in walkers if not _left(w, cfg)]
        if rng.random() < 0.2 * dt:  # the crowd size drifts
            target = int(rng.integers(cfg.min_people, cfg.max_people + 1))
        if len(walkers) < cfg.min_people or (len(walkers) < target and rng.random() < 1.0 * dt):
            walkers.append(_spawn(rng, next_id, cfg, inside=False))
            next_id += 1


def write_clip(out: Path, name: str, num_frames: int, fps: int, seed: int, cfg: synth.SceneConfig,
               crf: int = 23) -> tuple[Path, Path]:
    """Write ``out/name.mp4`` (H.264) and ``out/name.json``; returns both paths."""
    if num_frames < 1 or fps < 1:
        raise ValueError(f"need --frames >= 1 and --fps >= 1, got {num_frames} and {fps}")
    if cfg.width % 2 or cfg.height % 2:
        raise ValueError(f"H.264 (yuv420p) needs an even frame size, got {cfg.width}x{cfg.height}")
    out.mkdir(parents=True, exist_ok=True)
    mp4, js = out / f"{name}.mp4", out / f"{name}.json"
    images, annotations = [], []
    with av.open(str(mp4), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = cfg.width, cfg.height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.codec_context.thread_count = 1  # one thread: the same bytes on every run
        stream.options = {"crf": str(crf), "preset": "medium"}
        for i, (frame, anns) in enumerate(render_clip(num_frames, fps, seed, cfg)):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(vf))
            images.append({"id": i + 1, "file_name": mp4.name, "frame_index": i, "timestamp": i / fps,
                           "width": cfg.width, "height": cfg.height})
            for ann in anns:
                annotations.append({"id": len(annotations) + 1, "image_id": i + 1, **ann})
        container.mux(stream.encode(None))
    doc = {"info": {"description": "synthetic walking people", "seed": seed, "fps": fps, "num_frames": num_frames,
                    "video": mp4.name},
           "licenses": [], "videos": [{"file_name": mp4.name, "fps": fps, "num_frames": num_frames,
                                      "width": cfg.width, "height": cfg.height}],
           "images": images, "annotations": annotations, "categories": synth.categories()}
    js.write_text(json.dumps(doc))
    return mp4, js

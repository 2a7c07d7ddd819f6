"""Synthetic multi-person keypoint data: images + COCO person_keypoints JSON, or a video clip with track ids.

    qem synth --out DIR --num-images N --seed S [--split train val] [--preset easy|hard]
    qem synth --video --out DIR --name synth_clip --frames 240 --fps 30 --size 640 360 --seed S

Images go to DIR/<split>/NNNNNN.png, annotations to DIR/annotations/person_keypoints_<split>.json (COCO's layout).
Output is a pure function of the seed and options: image i of split s draws from the generator
``numpy.random.default_rng([seed, crc32(s), i])``. Visibility: v=0 outside the image (x = y = 0) or a face point
turned away from the camera, v=1 inside but covered by a nearer figure, v=2 visible. ``area`` is the pixel count
of the figure's whole silhouette inside the image (not reduced by occluders: it is the person's OKS scale).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from models.argtypes import OneLineParser
from models.data import figures
from models.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS, SKELETON


@dataclass(frozen=True)
class SceneConfig:
    """How a scene is composed. Heights are fractions of the image height (log-uniform between the bounds)."""

    width: int = 256
    height: int = 256
    min_people: int = 1
    max_people: int = 5
    min_height: float = 0.3
    max_height: float = 0.85
    min_spacing: float = 0.3  # pelvis distance between people, in heights of the taller one (0: anything goes)
    border: float = -0.05  # how far past the side borders a pelvis may be, fraction of the width (<0: inside)
    max_roll: float = 0.0
    free_pose: float = 0.05  # share of poses sampled uniformly within the joint limits
    clutter: tuple[int, int] = (4, 12)
    limb_clutter: bool = False  # stick-like distractors
    noise: float = 3.0


PRESETS = {
    "easy": SceneConfig(),
    "hard": SceneConfig(min_people=0, max_people=12, min_height=0.06, max_height=1.4, min_spacing=0.0, border=0.1,
                        max_roll=0.6, free_pose=0.3, clutter=(10, 40), limb_clutter=True, noise=8.0),
}


def background(rng: np.random.Generator, cfg: SceneConfig) -> np.ndarray:
    """Gradient + low-frequency texture + grain + random shapes, RGB uint8."""
    w, h = cfg.width, cfg.height
    c0, c1 = rng.uniform(30, 225, (2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = ((xx / w - 0.5) * np.cos(angle) + (yy / h - 0.5) * np.sin(angle) + 0.5).clip(0, 1)[..., None]
    img = c0 * (1 - t) + c1 * t
    cells = int(rng.integers(4, 24))
    tex = rng.uniform(-1, 1, (cells, cells, 3)).astype(np.float32)
    img += cv2.resize(tex, (w, h), interpolation=cv2.INTER_CUBIC) * np.float32(rng.uniform(10, 45))
    img += rng.standard_normal((h, w, 3), dtype=np.float32) * np.float32(rng.uniform(2, 8))
    img = img.clip(0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(cfg.clutter[0], cfg.clutter[1] + 1))):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        size = int(rng.uniform(0.03, 0.3) * min(w, h)) + 1
        kind = rng.integers(5 if cfg.limb_clutter else 4)
        if kind == 0:
            cv2.rectangle(img, (x, y), (x + size, y + int(size * rng.uniform(0.3, 2))), colour, -1)
        elif kind == 1:
            cv2.ellipse(img, (x, y), (size, int(size * rng.uniform(0.3, 1))), float(rng.uniform(0, 180)), 0, 360,
                        colour, -1)
        elif kind == 2:
            pts = (np.array([x, y]) + rng.uniform(-size, size, (int(rng.integers(3, 7)), 2))).astype(np.int32)
            cv2.fillPoly(img, [pts], colour)
        elif kind == 3:  # a patch of stripes
            step = max(2, size // int(rng.integers(2, 6)))
            for k in range(0, size, 2 * step):
                cv2.rectangle(img, (x + k, y), (x + k + step - 1, y + size), colour, -1)
        else:  # limb-like stick with a round end
            end = (x + int(rng.uniform(-size, size)), y + int(rng.uniform(-size, size)))
            cv2.line(img, (x, y), end, colour, max(1, size // 6))
            cv2.circle(img, end, max(1, size // 8), colour, -1)
    return img


def relight(img: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Uneven illumination, a colour cast, sensor noise and a slight blur over the whole image."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gain = np.float32(rng.uniform(0.7, 1.2)) + np.float32(rng.uniform(-0.3, 0.3)) * (xx / w - 0.5) \
        + np.float32(rng.uniform(-0.3, 0.3)) * (yy / h - 0.5)
    out = img.astype(np.float32) * gain[..., None] * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(rng.uniform(0, noise))
    sigma = rng.uniform(0, 0.8)
    if sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    return out.clip(0, 255).astype(np.uint8)


def place(fig: figures.Figure, foot_y: float) -> figures.Figure:
    """Move the figure vertically so that its lowest foot point lands on ``foot_y``."""
    lowest = figures.lowest_point(figures.project(replace(fig, anchor=(0.0, 0.0))))
    return replace(fig, anchor=(fig.anchor[0], foot_y - lowest))


def sample_figures(rng: np.random.Generator, cfg: SceneConfig) -> list[figures.Figure]:
    """People for one image, far to near (painter's order: a taller figure is nearer)."""
    n = int(rng.integers(cfg.min_people, cfg.max_people + 1))
    heights = np.sort(np.exp(rng.uniform(np.log(cfg.min_height), np.log(cfg.max_height), n))) * cfg.height
    out: list[figures.Figure] = []
    for h in heights:
        family = "free" if rng.random() < cfg.free_pose else None
        pose = figures.sample_pose(rng, family, cfg.max_roll)
        for _ in range(20):
            x = rng.uniform(-cfg.border, 1 + cfg.border) * cfg.width
            foot_y = rng.uniform(min(0.75 * h, cfg.height * 0.9), cfg.height + 0.15 * h)
            fig = place(figures.Figure(pose, figures.sample_appearance(rng), float(h), (x, 0.0)), foot_y)
            if all(np.hypot(fig.anchor[0] - o.anchor[0], fig.anchor[1] - o.anchor[1]) >= cfg.min_spacing * h
                   for o in out):
                break
        out.append(fig)
    return out


def compose(img: np.ndarray, figs: list[figures.Figure]):
    """Paint ``figs`` (far to near) on ``img`` in place; returns their projections, the owner map (0 = background,
    i+1 = figure i on top) and each figure's whole silhouette."""
    h, w = img.shape[:2]
    owner = np.zeros((h, w), dtype=np.int32)
    projs, masks = [], []
    for i, fig in enumerate(figs):
        proj = figures.project(fig)
        mask = np.zeros((h, w), dtype=np.uint8)
        figures.render(img, owner, mask, proj, i + 1)
        projs.append(proj)
        masks.append(mask)
    return projs, owner, masks


def visibility(proj: figures.Projected, owner: np.ndarray, label: int) -> np.ndarray:
    """COCO flags per keypoint from the final owner map (the same rounding the renderer uses)."""
    h, w = owner.shape
    v = np.zeros(NUM_KEYPOINTS, dtype=np.int64)
    for k, (x, y) in enumerate(proj.keypoints):
        xi, yi = int(round(x)), int(round(y))
        if proj.hidden[k] or not (0 <= xi < w and 0 <= yi < h):
            continue
        v[k] = 2 if owner[yi, xi] == label else 1
    return v


def annotate(proj: figures.Projected, owner: np.ndarray, mask: np.ndarray, label: int,
             polygons: bool = True) -> dict | None:
    """One COCO person annotation (without ids), or None when the figure is wholly outside the image.
    ``segmentation`` holds the silhouette's outer polygons, or [] when ``polygons`` is False."""
    area = int(mask.sum())
    if area == 0:
        return None
    v = visibility(proj, owner, label)
    kps = np.where(v[:, None] > 0, np.round(proj.keypoints, 2), 0.0)
    contours = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0] if polygons else []
    x, y, bw, bh = cv2.boundingRect(mask)
    return {"keypoints": [float(c) for kv in zip(kps[:, 0], kps[:, 1], v) for c in kv],
            "num_keypoints": int((v > 0).sum()), "bbox": [float(x), float(y), float(bw), float(bh)],
            "area": float(area), "iscrowd": 0, "category_id": 1,
            "segmentation": [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]}


def make_scene(rng: np.random.Generator, cfg: SceneConfig):
    """One synthetic image: (RGB image, annotations, owner map, silhouettes, projections)."""
    img = background(rng, cfg)
    projs, owner, masks = compose(img, sample_figures(rng, cfg))
    anns = [annotate(p, owner, m, i + 1) for i, (p, m) in enumerate(zip(projs, masks))]
    return relight(img, rng, cfg.noise), anns, owner, masks, projs


def categories() -> list[dict]:
    return [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(KEYPOINT_NAMES),
             "skeleton": [[a + 1, b + 1] for a, b in SKELETON]}]


def split_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(split.encode()), index])


def render_image(job: tuple) -> list[dict]:
    """Render and write image ``index`` of a split; returns its annotations (a pure function of the job)."""
    image_dir, split, index, seed, cfg = job
    img, anns, *_ = make_scene(split_rng(seed, split, index), cfg)
    cv2.imwrite(str(image_dir / f"{index + 1:06d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return [ann for ann in anns if ann is not None]


def write_split(out: Path, split: str, num_images: int, seed: int, cfg: SceneConfig, progress: bool = True,
                workers: int = 1) -> Path:
    """Render ``num_images`` images of one split and its COCO JSON; returns the JSON's path. Each image depends
    only on (seed, split, index), so ``workers`` processes write exactly what one does."""
    image_dir, ann_dir = out / split, out / "annotations"
    image_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(image_dir, split, i, seed, cfg) for i in range(num_images)]
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    try:
        results = pool.imap(render_image, jobs, chunksize=8) if pool else map(render_image, jobs)
        images, annotations = [], []
        for i, anns in enumerate(tqdm(results, total=num_images, desc=split, disable=not progress)):
            images.append({"id": i + 1, "file_name": f"{i + 1:06d}.png", "width": cfg.width, "height": cfg.height})
            annotations += [{"id": len(annotations) + k + 1, "image_id": i + 1, **ann} for k, ann in enumerate(anns)]
    finally:
        if pool:
            pool.terminate()
    doc = {"info": {"description": f"synthetic people, split {split}", "seed": seed, "config": cfg.__dict__},
           "licenses": [], "images": images, "annotations": annotations, "categories": categories()}
    path = ann_dir / f"person_keypoints_{split}.json"
    path.write_text(json.dumps(doc))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="qem synth", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--num-images", type=int, default=100, help="images per split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", nargs="+", default=["train"], help="split names, each NAME or NAME:COUNT")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="easy",
                        help="easy: learnable by a tiny CNN (default); hard: 0-12 people, tiny to frame-filling")
    parser.add_argument("--size", type=int, nargs="+", help="S or W H (default 256, video 640 360)")
    parser.add_argument("--min-people", type=int)
    parser.add_argument("--max-people", type=int)
    parser.add_argument("--video", action="store_true", help="write a clip (MP4 + JSON with track ids) instead")
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--name", default="synth_clip", help="video file stem")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--workers", type=int, default=1, help="processes rendering images (same output for any)")
    args = parser.parse_args(argv)
    size = args.size or ([640, 360] if args.video else [256])
    if len(size) not in (1, 2) or min(size) < 32:
        sys.exit(f"error: --size takes S or W H, each >= 32, got {size}")
    cfg = replace(PRESETS[args.preset], width=size[0], height=size[-1])
    if args.video:
        cfg = replace(cfg, min_people=2, max_people=6)
    if args.min_people is not None:
        cfg = replace(cfg, min_people=args.min_people)
    if args.max_people is not None:
        cfg = replace(cfg, max_people=args.max_people)
    if not 0 <= cfg.min_people <= cfg.max_people:
        sys.exit(f"error: need 0 <= --min-people <= --max-people, got {cfg.min_people} and {cfg.max_people}")
    if args.workers < 1:
        sys.exit(f"error: --workers must be >= 1, got {args.workers}")
    splits = []
    for item in args.split:
        name, _, count = item.partition(":")
        if not name or (count and not count.isdigit()):
            sys.exit(f"error: --split takes NAME or NAME:COUNT, got {item!r}")
        splits.append((name, int(count) if count else args.num_images))
    try:
        start = time.perf_counter()
        if args.video:
            from models.data import synth_video  # noqa: PLC0415  (video needs PyAV; images do not)

            mp4, js = synth_video.write_clip(args.out, args.name, args.frames, args.fps, args.seed, cfg)
            print(f"wrote {mp4} and {js} in {time.perf_counter() - start:.1f} s")
            return
        total = 0
        for name, n in splits:
            path = write_split(args.out, name, n, args.seed, cfg, progress=not args.quiet, workers=args.workers)
            total += n
            print(f"wrote {n} images to {args.out / name} and {path}")
        elapsed = time.perf_counter() - start
        print(f"{total} images in {elapsed:.1f} s ({total / max(elapsed, 1e-9):.1f} images/s)")
    except (OSError, ValueError) as exc:
        sys.exit(f"error: {exc}")
    except KeyboardInterrupt:
        sys.exit(f"error: interrupted; the files written so far are in {args.out} (a clip's MP4 is closed, its "
                 f"JSON is not written)")


if __name__ == "__main__":
    main()

"""An articulated human-like figure: proportions, joint angles and limits, pose sampling, and rendering.

Body frame (units of standing height, origin at the pelvis centre): +x is the person's LEFT, +y up, +z the way the
person faces. ``yaw`` turns the body about +y; yaw 0 faces the camera (the person's left then appears on the image's
right), yaw +pi/2 faces image right. Projection is orthographic: image x = anchor_x + X * height_px,
image y = anchor_y - Y * height_px, and world +z points at the camera (larger z = nearer).
Image coordinates put pixel centres at integers (the project's convention).

Learnable left/right: the person's left limbs are drawn darker and the right limbs lighter than the clothing
colour, and the face (eyes, nose, skin patch) shows which way the head faces; the back of the head is hair.
Real people carry that asymmetry only through context; a tiny CNN trained on synthetic data needs it in the pixels.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from models.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS

K = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

# Proportions (fractions of standing height) and limb thickness.
PELVIS_HEIGHT = 0.53
SPINE, NECK = 0.29, 0.11
SHOULDER_HALF, HIP_HALF = 0.125, 0.085
UPPER_ARM, FOREARM, THIGH, SHIN, FOOT = 0.17, 0.155, 0.245, 0.245, 0.10
HEAD_RADIUS = 0.062
CHEST_DEPTH = 0.055
THICK = {"upper_arm": 0.055, "forearm": 0.045, "thigh": 0.08, "shin": 0.06, "neck": 0.05, "foot": 0.035,
         "hand": 0.03}
FACE_HIDDEN_DEPTH = -0.2  # a face point more than this (x head radius) behind the head centre is hidden
LEFT_SHADE, RIGHT_TINT = 0.6, 0.4

# Joint limits in radians: (low, high).
LIMITS = {"shoulder_flex": (-0.8, 2.9), "shoulder_abd": (0.0, 2.7), "elbow": (0.0, 2.6),
          "hip_flex": (-0.5, 2.0), "hip_abd": (0.0, 0.8), "knee": (0.0, 2.4),
          "lean": (-0.2, 0.6), "side_bend": (-0.3, 0.3), "head_yaw": (-0.8, 0.8), "head_pitch": (-0.3, 0.4)}


@dataclass
class Pose:
    """Joint angles (radians). Per-side tuples are (left, right)."""

    shoulder_flex: tuple[float, float] = (0.0, 0.0)
    shoulder_abd: tuple[float, float] = (0.1, 0.1)
    elbow: tuple[float, float] = (0.1, 0.1)
    hip_flex: tuple[float, float] = (0.0, 0.0)
    hip_abd: tuple[float, float] = (0.05, 0.05)
    knee: tuple[float, float] = (0.05, 0.05)
    lean: float = 0.0
    side_bend: float = 0.0
    head_yaw: float = 0.0
    head_pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0  # in-image rotation of the whole figure about the pelvis

    def clipped(self) -> "Pose":
        out = {}
        for name, (lo, hi) in LIMITS.items():
            value = getattr(self, name)
            out[name] = tuple(float(np.clip(v, lo, hi)) for v in value) if isinstance(value, tuple) \
                else float(np.clip(value, lo, hi))
        return replace(self, **out)


@dataclass
class Appearance:
    """RGB colours (0..255) of one figure."""

    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    shirt: tuple[int, int, int]
    trousers: tuple[int, int, int]
    shoes: tuple[int, int, int]
    long_sleeves: bool = True


@dataclass
class Figure:
    pose: Pose
    appearance: Appearance
    height_px: float
    anchor: tuple[float, float]  # image position of the pelvis centre


@dataclass
class Projected:
    """A figure in image space: ``keypoints [17,2]`` image px, ``hidden [17]`` face points turned away from the
    camera, and the drawing ``parts`` (depth, kind, points, thickness px, colour), far to near."""

    keypoints: np.ndarray
    hidden: np.ndarray
    parts: list = field(default_factory=list)


def _rot_x(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_z(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])


def _limb_direction(side: float, flex: float, abd: float) -> np.ndarray:
    """Unit direction of a limb hanging down, swung forward by ``flex`` and out sideways by ``abd``."""
    return np.array([side * np.cos(flex) * np.sin(abd), -np.cos(flex) * np.cos(abd), np.sin(flex)])


def _bend(d: np.ndarray, angle: float, forward: bool) -> np.ndarray:
    """Rotate direction ``d`` by ``angle`` towards the body's front (elbow) or back (knee)."""
    ref = np.array([0.0, 0.0, 1.0])
    p = ref - (ref @ d) * d
    if np.linalg.norm(p) < 1e-6:
        ref = np.array([0.0, 1.0, 0.0])
        p = ref - (ref @ d) * d
    p /= np.linalg.norm(p)
    return d * np.cos(angle) + (p if forward else -p) * np.sin(angle)


def skeleton_3d(pose: Pose) -> dict[str, np.ndarray]:
    """Joint positions in the body frame (height units), plus head centre, neck base and toes."""
    torso = _rot_x(pose.lean) @ _rot_z(pose.side_bend)
    head = torso @ _rot_y(pose.head_yaw) @ _rot_x(-pose.head_pitch)
    shoulder_c = torso @ np.array([0.0, SPINE, 0.0])
    pts = {"neck": shoulder_c, "head": shoulder_c + torso @ np.array([0.0, NECK, 0.0])}
    r = HEAD_RADIUS
    face = {"nose": (0, -0.15, 0.95), "left_eye": (0.35, 0.1, 0.85), "right_eye": (-0.35, 0.1, 0.85),
            "left_ear": (0.95, 0.0, -0.05), "right_ear": (-0.95, 0.0, -0.05)}
    for name, offset in face.items():
        pts[name] = pts["head"] + head @ (r * np.array(offset, dtype=float))
    for i, (side, name) in enumerate(((1.0, "left"), (-1.0, "right"))):
        sh = shoulder_c + torso @ np.array([side * SHOULDER_HALF, 0.0, 0.0])
        upper = _limb_direction(side, pose.shoulder_flex[i], pose.shoulder_abd[i])
        elbow = sh + UPPER_ARM * (torso @ upper)
        wrist = elbow + FOREARM * (torso @ _bend(upper, pose.elbow[i], forward=True))
        hip = np.array([side * HIP_HALF, 0.0, 0.0])
        thigh = _limb_direction(side, pose.hip_flex[i], pose.hip_abd[i])
        knee = hip + THIGH * thigh
        ankle = knee + SHIN * _bend(thigh, pose.knee[i], forward=False)
        pts.update({f"{name}_shoulder": sh, f"{name}_elbow": elbow, f"{name}_wrist": wrist,
                    f"{name}_hip": hip, f"{name}_knee": knee, f"{name}_ankle": ankle,
                    f"{name}_toe": ankle + np.array([0.0, -0.015, FOOT])})
    return pts


def _shade(colour, side: str) -> tuple[int, int, int]:
    c = np.asarray(colour, dtype=float)
    c = c * LEFT_SHADE if side == "left" else c + (255.0 - c) * RIGHT_TINT
    return tuple(int(v) for v in np.clip(c, 0, 255))


def project(fig: Figure) -> Projected:
    """Place the figure in the image: keypoints, hidden face points and the parts to draw."""
    pose, app, h = fig.pose, fig.appearance, fig.height_px
    world = {n: _rot_y(pose.yaw) @ p for n, p in skeleton_3d(pose).items()}
    c, s = np.cos(pose.roll), np.sin(pose.roll)

    def xy(p):
        x, y = p[0] * h, -p[1] * h
        return np.array([fig.anchor[0] + c * x - s * y, fig.anchor[1] + s * x + c * y])

    keypoints = np.stack([xy(world[n]) for n in KEYPOINT_NAMES])
    hidden = np.zeros(NUM_KEYPOINTS, dtype=bool)
    for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"):
        hidden[K[n]] = (world[n][2] - world["head"][2]) < FACE_HIDDEN_DEPTH * HEAD_RADIUS
    parts = []

    def line(kind, a, b, colour, side=None):
        col = _shade(colour, side) if side else tuple(colour)
        parts.append(((world[a][2] + world[b][2]) / 2, "line", [xy(world[a]), xy(world[b])],
                      max(1.0, THICK[kind] * h), col))

    # Torso: convex hull of the shoulder-hip quad given some chest depth.
    forward = _rot_y(pose.yaw) @ (_rot_x(pose.lean) @ np.array([0.0, 0.0, CHEST_DEPTH]))
    quad = [world[n] for n in ("left_shoulder", "right_shoulder", "right_hip", "left_hip")]
    hull = [xy(p + sgn * forward) for p in quad for sgn in (-1, 1)]
    parts.append((0.0, "poly", hull, 0.0, app.shirt))
    if forward[2] > 0:  # a V-neck on the chest: front and back differ, a cue that survives mirroring
        top = (world["left_shoulder"] + world["right_shoulder"]) / 2 + forward
        half = (world["left_shoulder"] - world["right_shoulder"]) * 0.25
        down = ((world["left_hip"] + world["right_hip"]) / 2 - top) * 0.3
        parts.append((1e-6, "poly", [xy(top + half), xy(top - half), xy(top + down)], 0.0, app.skin))
    line("neck", "neck", "head", app.skin)
    for side in ("left", "right"):
        line("thigh", f"{side}_hip", f"{side}_knee", app.trousers, side)
        line("shin", f"{side}_knee", f"{side}_ankle", app.trousers, side)
        line("foot", f"{side}_ankle", f"{side}_toe", app.shoes, side)
        line("upper_arm", f"{side}_shoulder", f"{side}_elbow", app.shirt, side)
        line("forearm", f"{side}_elbow", f"{side}_wrist", app.shirt if app.long_sleeves else app.skin, side)
    face_dir = world["nose"] - world["head"]
    hz = world["head"][2]
    parts.append((hz, "head", [xy(world["head"]), xy(world["head"] + face_dir * 0.35)],
                  HEAD_RADIUS * h, (app.hair, app.skin, face_dir[2] > -0.3 * HEAD_RADIUS)))
    # Round caps on every body joint (their centre pixel is the keypoint's, so a keypoint always lies on its
    # figure), then the visible face points as dots.
    caps = {"shoulder": ("upper_arm", app.shirt), "elbow": ("forearm", app.shirt), "hip": ("thigh", app.trousers),
            "knee": ("shin", app.trousers), "ankle": ("shin", app.trousers)}
    for side in ("left", "right"):
        for joint, (kind, colour) in caps.items():
            n = f"{side}_{joint}"
            parts.append((world[n][2] - 1e-6, "dot", [xy(world[n])], max(0.0, THICK[kind] * h / 2),
                          _shade(colour, side)))
        parts.append((world[f"{side}_wrist"][2], "dot", [xy(world[f"{side}_wrist"])],
                      max(1.0, THICK["hand"] * h), _shade(app.skin, side)))
    face_colours = {"nose": (170, 70, 60), "left_eye": (30, 25, 25), "right_eye": (30, 25, 25),
                    "left_ear": _darker(app.skin), "right_ear": _darker(app.skin)}
    for n, colour in face_colours.items():
        if not hidden[K[n]]:
            parts.append((hz + 1e-6, "dot", [xy(world[n])], 0.1 * HEAD_RADIUS * h, colour))
    parts.sort(key=lambda p: p[0])
    return Projected(keypoints=keypoints, hidden=hidden, parts=parts)


SHIFT = 4
_ONE = 1 << SHIFT


def _fx(p) -> tuple[int, int]:
    return int(round(p[0] * _ONE)), int(round(p[1] * _ONE))


def _darker(colour) -> tuple[int, int, int]:
    return tuple(int(v * 0.8) for v in colour)


def _draw(canvas: np.ndarray, proj: Projected, colour_of) -> None:
    """Draw all parts on ``canvas``; ``colour_of(part_colour)`` gives the value written (colour or a label)."""
    for _, kind, pts, thick, col in proj.parts:
        if kind == "line":
            cv2.line(canvas, _fx(pts[0]), _fx(pts[1]), colour_of(col), int(round(thick)), cv2.LINE_8, SHIFT)
        elif kind == "dot":  # integer centre: the keypoint's own pixel is always painted
            centre = (int(round(pts[0][0])), int(round(pts[0][1])))
            cv2.circle(canvas, centre, int(round(thick)), colour_of(col), -1, cv2.LINE_8)
        elif kind == "poly":
            hull = cv2.convexHull(np.array([_fx(p) for p in pts], dtype=np.int32))
            cv2.fillConvexPoly(canvas, hull, colour_of(col), cv2.LINE_8, SHIFT)
        else:  # head: hair-coloured disc, the face patch towards where the head looks
            hair, skin, facing = col
            r = max(_ONE, int(round(thick * _ONE)))
            cv2.circle(canvas, _fx(pts[0]), r, colour_of(hair), -1, cv2.LINE_8, SHIFT)
            if facing:
                centre = (pts[0] + pts[1]) / 2 + np.array([0.0, 0.12 * thick])
                cv2.circle(canvas, _fx(centre), int(r * 0.8), colour_of(skin), -1, cv2.LINE_8, SHIFT)


def render(image: np.ndarray, owner: np.ndarray, mask: np.ndarray, proj: Projected, label: int) -> None:
    """Paint one figure (painter's order: call far to near). ``image`` RGB uint8 gets colours, ``owner`` int32
    gets ``label`` wherever this figure is now on top, ``mask`` uint8 (this figure alone, zeroed by the caller)
    gets 1."""
    _draw(image, proj, lambda col: col)
    _draw(mask, proj, lambda col: 1)
    owner[mask.astype(bool)] = label


SKINS = ((255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 56, 30))
HAIRS = ((20, 15, 10), (60, 40, 20), (110, 70, 30), (180, 140, 80), (130, 130, 130), (200, 60, 20))
POSE_FAMILIES = ("stand", "walk", "arms_up", "reach", "crouch", "free")


def sample_appearance(rng: np.random.Generator) -> Appearance:
    def cloth():
        hsv = np.uint8([[[rng.integers(0, 180), rng.integers(60, 256), rng.integers(70, 250)]]])
        return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])
    return Appearance(skin=SKINS[rng.integers(len(SKINS))], hair=HAIRS[rng.integers(len(HAIRS))], shirt=cloth(),
                      trousers=cloth(), shoes=tuple(int(v) for v in rng.integers(10, 90, 3)),
                      long_sleeves=bool(rng.random() < 0.6))


def walk_pose(phase: float, yaw: float, stride: float = 0.45) -> Pose:
    """A walking pose at gait ``phase`` (radians; 2*pi is one full stride of both legs)."""
    s, c = np.sin(phase), np.cos(phase)
    swing = lambda v: 0.1 + 0.9 * max(0.0, v) ** 1.5  # knee bends while the leg swings forward
    return Pose(shoulder_flex=(-stride * s, stride * s), shoulder_abd=(0.08, 0.08),
                elbow=(0.25 + 0.35 * max(0.0, -s), 0.25 + 0.35 * max(0.0, s)),
                hip_flex=(0.05 + stride * s, 0.05 - stride * s), hip_abd=(0.03, 0.03),
                knee=(swing(c), swing(-c)), lean=0.05, yaw=yaw).clipped()


def sample_pose(rng: np.random.Generator, family: str | None = None, max_roll: float = 0.0) -> Pose:
    """A random pose from one of ``POSE_FAMILIES`` (or the named one), within the joint limits."""
    family = family or POSE_FAMILIES[rng.choice(len(POSE_FAMILIES), p=(0.25, 0.3, 0.15, 0.15, 0.1, 0.05))]
    u = lambda lo, hi, n=None: rng.uniform(lo, hi, n)
    pair = lambda lo, hi: tuple(float(v) for v in u(lo, hi, 2))
    yaw = float(u(-np.pi, np.pi))
    if family == "walk":
        pose = walk_pose(float(u(0, 2 * np.pi)), yaw, stride=float(u(0.2, 0.6)))
    elif family == "stand":
        pose = Pose(shoulder_flex=pair(-0.3, 0.4), shoulder_abd=pair(0.0, 0.4), elbow=pair(0.0, 0.8),
                    hip_flex=pair(-0.15, 0.2), hip_abd=pair(0.0, 0.2), knee=pair(0.0, 0.2), yaw=yaw)
    elif family == "arms_up":
        pose = Pose(shoulder_flex=pair(0.0, 2.9), shoulder_abd=pair(1.0, 2.7), elbow=pair(0.0, 1.6),
                    hip_flex=pair(-0.1, 0.2), hip_abd=pair(0.0, 0.35), knee=pair(0.0, 0.3), yaw=yaw)
    elif family == "reach":
        pose = Pose(shoulder_flex=pair(0.6, 2.0), shoulder_abd=pair(0.0, 0.8), elbow=pair(0.0, 1.2),
                    hip_flex=pair(-0.2, 0.6), hip_abd=pair(0.0, 0.3), knee=pair(0.0, 0.6), lean=float(u(0, 0.4)),
                    yaw=yaw)
    elif family == "crouch":
        pose = Pose(shoulder_flex=pair(-0.2, 1.4), shoulder_abd=pair(0.0, 0.6), elbow=pair(0.2, 1.8),
                    hip_flex=pair(0.9, 1.9), hip_abd=pair(0.0, 0.5), knee=pair(1.3, 2.3), lean=float(u(0.2, 0.6)),
                    yaw=yaw)
    else:
        pose = Pose(**{name: (float(u(lo, hi)) if name in ("lean", "side_bend", "head_yaw", "head_pitch")
                              else pair(lo, hi)) for name, (lo, hi) in LIMITS.items()}, yaw=yaw)
    pose = replace(pose, head_yaw=float(u(-0.6, 0.6)), head_pitch=float(u(-0.2, 0.3)),
                   side_bend=float(u(-0.12, 0.12)) if family != "free" else pose.side_bend,
                   roll=float(u(-max_roll, max_roll)))
    return pose.clipped()


def lowest_point(proj: Projected) -> float:
    """Largest image y of the figure's feet and ankles (where it stands)."""
    ys = [p[1] for _, kind, pts, _, _ in proj.parts if kind == "line" for p in pts]
    return float(max(ys))

"""One-Euro smoothing of keypoints per track (Casiez et al., CHI 2012).

Per coordinate: ``alpha(cutoff) = 1 / (1 + 1 / (2 pi cutoff dt))``; the speed ``dx`` is filtered with
``d_cutoff``; the position with ``cutoff = min_cutoff + beta * |dx|`` (Hz, pixels per second).
Defaults (``min_cutoff`` 1.0 Hz, ``beta`` 0.02 s/px, ``d_cutoff`` 1.0 Hz) hold a still person steady to a
fraction of a pixel while a limb moving at 500 px/s gets a 11 Hz cutoff (little lag). ``dt`` comes from
the frames' timestamps; a track that is not updated for a frame simply resumes with a longer ``dt``.
"""
from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuro:
    """One-Euro filter over an array of any shape (all entries share ``t``)."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.02, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.t: float | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if self.x is None or self.t is None:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), t
            return x.copy()
        if t <= self.t:  # no time has passed (or a timestamp went back): keep the current estimate
            return self.x.copy()
        dt = t - self.t
        dx = (x - self.x) / dt
        self.dx = self.dx + _alpha(self.d_cutoff, dt) * (dx - self.dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self.dx)
        self.x = self.x + _alpha(cutoff, dt) * (x - self.x)
        self.t = t
        return self.x.copy()


class PoseSmoother:
    """One One-Euro filter per track id of one stream; filters of tracks gone for ``max_age_s`` are dropped."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.02, d_cutoff: float = 1.0, max_age_s: float = 2.0):
        self.params = dict(min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff)
        self.max_age_s = max_age_s
        self.filters: dict[int, OneEuro] = {}

    def __call__(self, keypoints: np.ndarray, track_ids: np.ndarray, t: float) -> np.ndarray:
        """Smoothed copy of ``keypoints [P,K,2]``; rows with track id -1 pass through."""
        out = np.array(keypoints, np.float32, copy=True)
        for row, tid in enumerate(track_ids.tolist()):
            if tid < 0:
                continue
            f = self.filters.get(tid)
            if f is None:
                f = self.filters[tid] = OneEuro(**self.params)
            out[row] = f(out[row], t)
        self.filters = {k: f for k, f in self.filters.items() if f.t is not None and t - f.t <= self.max_age_s}
        return out

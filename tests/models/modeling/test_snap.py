"""Keypoint snapping on hand-made heatmaps (sub-pixel gaussian peaks, thresholds, windows, borders, ties) and
against a per-keypoint loop on random maps."""
import math

import pytest
import torch

from models.modeling.snap import snap_keypoints


def gaussian_logits(h: int, w: int, peaks: list[tuple[float, float, float]], sigma: float = 1.0) -> torch.Tensor:
    """Logits whose probabilities are ``max_i a_i exp(-d_i^2 / 2 sigma^2)`` for peaks (x, y, a)."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")
    p = torch.zeros(h, w, dtype=torch.float64)
    for x, y, a in peaks:
        p = torch.maximum(p, a * torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma ** 2)))
    return torch.logit(p.clamp(1e-12, 1 - 1e-12)).float()


def one(x: float, y: float) -> torch.Tensor:
    return torch.tensor([[[[x, y]]]])


def test_a_gaussian_peak_is_found_to_sub_pixel_precision():
    heat = gaussian_logits(12, 14, [(5.3, 7.6, 0.9)])[None, None]
    snapped, moved = snap_keypoints(one(6.4, 8.4), heat, radius=2, threshold=0.3)
    assert moved.item()
    assert torch.allclose(snapped[0, 0, 0], torch.tensor([5.3, 7.6]), atol=1e-3)
    halfway, _ = snap_keypoints(one(6.4, 8.4), heat, radius=2, threshold=0.3, weight=0.5)
    assert torch.allclose(halfway[0, 0, 0], torch.tensor([5.85, 8.0]), atol=1e-3)


def test_weak_peaks_far_peaks_and_slopes_leave_the_keypoint_alone():
    heat = gaussian_logits(12, 20, [(3.0, 5.0, 0.9), (14.0, 5.0, 0.2)])[None, None]
    # the strong peak lies outside a radius-1 window; the window's best pixel (x = 4) is on its slope
    snapped, moved = snap_keypoints(one(5.2, 5.0), heat, radius=1, threshold=0.3)
    assert not moved.item() and torch.equal(snapped, one(5.2, 5.0))
    # radius 2 reaches it
    snapped, moved = snap_keypoints(one(5.2, 5.0), heat, radius=2, threshold=0.3)
    assert moved.item() and torch.allclose(snapped, one(3.0, 5.0), atol=1e-3)
    # the weak peak is below the threshold
    snapped, moved = snap_keypoints(one(14.4, 5.0), heat, radius=2, threshold=0.3)
    assert not moved.item() and torch.equal(snapped, one(14.4, 5.0))
    assert snap_keypoints(one(14.4, 5.0), heat, radius=2, threshold=0.1)[1].item()


def test_border_peaks_and_keypoints_outside_the_map():
    heat = gaussian_logits(8, 8, [(0.0, 3.4, 0.8)])[None, None]
    snapped, moved = snap_keypoints(one(-0.4, 3.0), heat, radius=1, threshold=0.3)
    assert moved.item()
    # no neighbour left of x = 0: no refinement on x; y refined as usual
    assert torch.allclose(snapped, one(0.0, 3.4), atol=1e-3)
    # a keypoint off the map (its nearest pixel is outside) stays, however strong the border peak
    snapped, moved = snap_keypoints(one(-0.6, 3.0), heat, radius=3, threshold=0.3)
    assert not moved.item() and torch.equal(snapped, one(-0.6, 3.0))


def test_ties_take_the_first_pixel_in_row_major_order():
    heat = torch.full((1, 1, 6, 6), -5.0)
    heat[0, 0, 3, 1] = heat[0, 0, 2, 4] = 2.0  # (x=1, y=3) and (x=4, y=2): row 2 comes first
    snapped, moved = snap_keypoints(one(2.5, 2.5), heat, radius=2, threshold=0.5)
    assert moved.item()
    assert torch.allclose(snapped, one(4.0, 2.0))  # equal neighbours on both sides: no sub-pixel shift


def snap_loop(keypoints, heatmaps, radius, threshold):
    """One keypoint at a time, in plain Python: the reference of the vectorised version."""
    out = keypoints.clone().float()
    b, n, k, _ = keypoints.shape
    h, w = heatmaps.shape[-2:]
    logp = torch.nn.functional.logsigmoid(heatmaps.float())
    for i in range(b):
        for j in range(n):
            for q in range(k):
                x, y = keypoints[i, j, q].tolist()
                cx, cy = int(torch.tensor(x).round()), int(torch.tensor(y).round())
                if not (0 <= cx < w and 0 <= cy < h):
                    continue
                best, bx, by = -math.inf, None, None
                for yy in range(cy - radius, cy + radius + 1):
                    for xx in range(cx - radius, cx + radius + 1):
                        if 0 <= xx < w and 0 <= yy < h and logp[i, q, yy, xx] > best:
                            best, bx, by = logp[i, q, yy, xx].item(), xx, yy
                m = logp[i, q]
                around = [m[by, bx - 1] if bx > 0 else best, m[by, bx + 1] if bx < w - 1 else best,
                          m[by - 1, bx] if by > 0 else best, m[by + 1, bx] if by < h - 1 else best]
                if best <= math.log(threshold) or any(best < a for a in around):
                    continue
                shifts = []
                for lo, hi, inside in ((around[0], around[1], 0 < bx < w - 1), (around[2], around[3], 0 < by < h - 1)):
                    curv = float(lo) - 2 * best + float(hi)
                    shifts.append(min(max(0.5 * (float(lo) - float(hi)) / curv, -0.5), 0.5)
                                  if inside and curv < 0 else 0.0)
                out[i, j, q] = torch.tensor([bx + shifts[0], by + shifts[1]])
    return out


@pytest.mark.parametrize("radius", [0, 1, 3])
def test_matches_the_loop_on_random_maps(radius):
    g = torch.Generator().manual_seed(radius)
    heat = torch.randn(2, 3, 9, 11, generator=g) * 2
    kp = torch.rand(2, 4, 3, 2, generator=g) * torch.tensor([14.0, 12.0]) - 1.5
    snapped, moved = snap_keypoints(kp, heat, radius, threshold=0.4)
    expected = snap_loop(kp, heat, radius, 0.4)
    assert torch.allclose(snapped, expected, atol=1e-5)
    assert torch.equal(moved, (expected != kp).any(-1))
    assert moved.any() and not moved.all()


def test_shapes_must_agree():
    with pytest.raises(ValueError, match="do not match"):
        snap_keypoints(torch.zeros(1, 2, 17, 2), torch.zeros(1, 16, 8, 8), 2, 0.3)

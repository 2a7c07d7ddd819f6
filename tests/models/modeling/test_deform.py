"""The grid_sample deformable convolution against a hand-written one (torchvision's convention, one loop per tap and
pixel), on hand-made and random offsets, taps far outside the map included."""
from __future__ import annotations

import math

import pytest
import torch

from models.modeling.deform import deform_conv2d


def bilinear_zero(img: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """torchvision's deformable sampling: 0 outside (-1, H) x (-1, W), else the four corners, each 0 outside."""
    c, h, w = img.shape
    if y <= -1 or y >= h or x <= -1 or x >= w:
        return torch.zeros(c, dtype=torch.float64)
    y0, x0 = math.floor(y), math.floor(x)
    out = torch.zeros(c, dtype=torch.float64)
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                out += wy * wx * img[:, yy, xx].double()
    return out


def deform_by_hand(x, offset, weight, groups):
    b, c, h, w = x.shape
    o, cg = weight.shape[0], c // groups
    out = torch.zeros(b, o, h, w, dtype=torch.float64)
    for n in range(b):
        for g in range(groups):
            img = x[n, g * cg:(g + 1) * cg]
            for t in range(9):
                ky, kx = t // 3 - 1, t % 3 - 1
                for yy in range(h):
                    for xx in range(w):
                        dy = offset[n, (g * 9 + t) * 2, yy, xx].item()
                        dx = offset[n, (g * 9 + t) * 2 + 1, yy, xx].item()
                        v = bilinear_zero(img, yy + ky + dy, xx + kx + dx)
                        rows = slice(g * (o // groups), (g + 1) * (o // groups))
                        out[n, rows, yy, xx] += weight[rows, :, ky + 1, kx + 1].double() @ v
    return out


def test_one_tap_moved_half_a_pixel_reads_between_two_pixels():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    weight = torch.zeros(1, 1, 3, 3)
    weight[0, 0, 1, 1] = 1.0  # the centre tap only
    offset = torch.zeros(1, 18, 3, 4)
    offset[:, 8] = 0.5  # centre tap (t = 4): dy = +0.5
    out = deform_conv2d(x, offset, weight)
    # row y reads halfway to row y + 1; the last row reads half of itself and half of the zeros below
    expected = torch.tensor([[2.0, 3.0, 4.0, 5.0], [6.0, 7.0, 8.0, 9.0], [4.0, 4.5, 5.0, 5.5]])
    assert torch.allclose(out[0, 0], expected, atol=1e-6)


def test_zero_offsets_are_a_plain_convolution():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 5, 7, generator=gen)
    weight = torch.randn(4, 3, 3, 3, generator=gen)
    out = deform_conv2d(x, torch.zeros(2, 36, 5, 7), weight, groups=2)
    assert torch.allclose(out, torch.nn.functional.conv2d(x, weight, padding=1, groups=2), atol=1e-5)


@pytest.mark.parametrize("groups", [1, 3])
def test_random_offsets_match_the_hand_written_convolution(groups):
    gen = torch.Generator().manual_seed(groups)
    x = torch.randn(2, 2 * groups, 5, 6, generator=gen)
    offset = torch.randn(2, 18 * groups, 5, 6, generator=gen) * 2.5  # many taps land outside the map
    weight = torch.randn(2 * groups, 2, 3, 3, generator=gen)
    ours = deform_conv2d(x, offset, weight, groups=groups)
    assert torch.allclose(ours.double(), deform_by_hand(x, offset, weight, groups), atol=1e-5)


def test_torchvision_agrees_where_it_is_installed():
    ops = pytest.importorskip("torchvision.ops")
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(1, 34, 16, 20, generator=gen)
    offset = torch.randn(1, 18 * 17, 16, 20, generator=gen) * 3
    weight = torch.randn(34, 2, 3, 3, generator=gen)
    assert torch.allclose(deform_conv2d(x, offset, weight, groups=17), ops.deform_conv2d(x, offset, weight, padding=1),
                          atol=1e-4)

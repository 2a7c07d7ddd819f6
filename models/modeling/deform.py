"""3x3 deformable convolution in plain PyTorch ops (``F.grid_sample`` + a grouped 1x1 convolution).

torchvision's ``deform_conv2d`` is the usual implementation, but its compiled extension has no build for the CPU
torch this project pins, and it exports to ONNX only through a custom symbolic that OpenVINO's ONNX reader cannot
convert. Written with ``grid_sample`` the operation runs on any device and exports as standard ONNX (GridSample,
opset 16+) that ONNX Runtime and OpenVINO both run.

Convention (torchvision's, which DEKR's weights were trained with): a 3x3 kernel, stride 1, ``padding =
dilation``. Tap t = 3 i + j (row-major) sits at ``(dy, dx) = ((i - 1) d, (j - 1) d)`` from the output pixel.
``offset [B, 2 G 9, H, W]`` holds, per offset group g and tap t, ``(dy, dx)`` at channels ``(g 9 + t) 2`` and
``(g 9 + t) 2 + 1``; output pixel (y, x) reads tap t at ``(y + dy_t + offset_y, x + dx_t + offset_x)``, bilinearly
between the four pixel centres around it (pixel centres at integers); a corner outside the map reads 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

TAP_DY = (-1, -1, -1, 0, 0, 0, 1, 1, 1)
TAP_DX = (-1, 0, 1, -1, 0, 1, -1, 0, 1)


def tap_grid(h: int, w: int, device, dtype=torch.float32, dilation: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each tap of each output pixel sits without deformation: ``(y, x)``, each ``[9, H, W]``."""
    ys = torch.arange(h, device=device, dtype=dtype).view(1, h, 1)
    xs = torch.arange(w, device=device, dtype=dtype).view(1, 1, w)
    dy = torch.tensor(TAP_DY, device=device, dtype=dtype).view(9, 1, 1) * dilation
    dx = torch.tensor(TAP_DX, device=device, dtype=dtype).view(9, 1, 1) * dilation
    return (ys + dy).expand(9, h, w), (xs + dx).expand(9, h, w)


def sample_taps(x: torch.Tensor, py: torch.Tensor, px: torch.Tensor, groups: int) -> torch.Tensor:
    """``x [B, C, H, W]`` read at ``(py, px)`` (each ``[B, G, 9, H, W]``, map pixels, channel group g at its own
    points) -> ``[B, C 9, H, W]``, channels ordered (group, channel, tap): the input of a grouped 1x1 convolution whose
    weights are a 3x3 kernel's flattened."""
    b, c, h, w = x.shape
    if h < 2 or w < 2:
        raise ValueError(f"deformable convolution needs maps of at least 2x2 pixels, got {h}x{w}")
    gx = px.float() * (2.0 / (w - 1)) - 1.0
    gy = py.float() * (2.0 / (h - 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1).reshape(b * groups, 9 * h, w, 2)
    taps = F.grid_sample(x.reshape(b * groups, c // groups, h, w).float(), grid, mode="bilinear",
                         padding_mode="zeros", align_corners=True)  # [B G, C/G, 9 H, W]
    return taps.to(x.dtype).reshape(b, c * 9, h, w)


def deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, groups: int = 1,
                  dilation: int = 1) -> torch.Tensor:
    """torchvision's ``deform_conv2d(x, offset, weight, padding=dilation, dilation=dilation)`` for 3x3 kernels
    whose offset groups are its convolution groups. ``x [B, C, H, W]``, ``offset [B, 18 G, H, W]``, ``weight
    [O, C / G, 3, 3]`` -> ``[B, O, H, W]``."""
    b, c, h, w = x.shape
    if weight.shape[-2:] != (3, 3) or offset.shape[1] != 18 * groups or c % groups or weight.shape[0] % groups:
        raise ValueError(f"deform_conv2d: x {tuple(x.shape)}, offset {tuple(offset.shape)}, weight "
                         f"{tuple(weight.shape)} do not fit a 3x3 kernel in {groups} groups")
    base_y, base_x = tap_grid(h, w, x.device, torch.float32, dilation)
    off = offset.float().view(b, groups, 9, 2, h, w)
    taps = sample_taps(x, base_y + off[:, :, :, 0], base_x + off[:, :, :, 1], groups)
    return F.conv2d(taps, weight.reshape(weight.shape[0], -1, 1, 1), groups=groups)

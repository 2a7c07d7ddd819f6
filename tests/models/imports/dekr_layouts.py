"""DEKR weights in both published layouts, made up for the tests: seeded random tensors with the names and shapes of
the authors' release (``fixtures/dekr_release_w32_*.json``, written from DEKR's own model by ``dekr_parity.py
names``), and the same weights rewritten in MMPose 1.x's layout by MMPose's module structure
(``mmpose/models/heads/regression_heads/dekr_head.py``: ``heatmap_conv_layers`` = ConvModule, BasicBlock, 1x1 conv
(centre last); ``displacement_conv_layers`` = ConvModule, two AdaptiveActivationBlocks with grouped 2x3 affines
that land taps at r + A (r, 1), a grouped 1x1 conv whose displacements point from the pixel to the keypoint)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

FIXTURES = Path(__file__).with_name("fixtures")


def fixture(name: str) -> dict[str, list[int]]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def random_state(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random tensors for every name and shape of the fixture ``name``, batch-norm statistics included."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in fixture(name).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(100, dtype=torch.long)
        elif key.endswith("regular_matrix"):
            state[key] = torch.tensor([[-1, -1, -1, 0, 0, 0, 1, 1, 1], [-1, 0, 1, -1, 0, 1, -1, 0, 1]]).float()
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 1.0
        elif key.endswith(("running_mean", "bias")):
            state[key] = torch.randn(shape, generator=gen) * 0.1
        elif len(shape) == 1:
            state[key] = torch.rand(shape, generator=gen) * 0.5 + 0.25
        else:
            fan_in = torch.tensor(shape[1:]).prod().item()
            state[key] = torch.randn(shape, generator=gen) / fan_in ** 0.5
    return state


def to_mmpose(release: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """The authors' state dict in MMPose 1.x's names and conventions, under ``state_dict`` like MMPose's files."""
    heads = ("transition_heatmap", "head_heatmap", "transition_offset", "offset_feature_layers",
             "offset_final_layer")
    out = {f"backbone.{n}": v for n, v in release.items() if not n.startswith(heads)}
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    h, d = "head.heatmap_conv_layers", "head.displacement_conv_layers"
    out[f"{h}.0.conv.weight"] = release["transition_heatmap.0.weight"]
    out[f"{d}.0.conv.weight"] = release["transition_offset.0.weight"]
    for p in bn:
        out[f"{h}.0.bn.{p}"] = release[f"transition_heatmap.1.{p}"]
        out[f"{d}.0.bn.{p}"] = release[f"transition_offset.1.{p}"]
        for norm in ("bn1", "bn2"):
            out[f"{h}.1.{norm}.{p}"] = release[f"head_heatmap.0.0.{norm}.{p}"]
    out[f"{h}.1.conv1.weight"] = release["head_heatmap.0.0.conv1.weight"]
    out[f"{h}.1.conv2.weight"] = release["head_heatmap.0.0.conv2.weight"]
    out[f"{h}.2.weight"], out[f"{h}.2.bias"] = release["head_heatmap.1.weight"], release["head_heatmap.1.bias"]
    for block in (0, 1):
        dst = f"{d}.{block + 1}"
        layers = [f"offset_feature_layers.{j}.{block}" for j in range(k)]
        for p in ("weight", "bias"):
            rows = []
            for layer in layers:
                t = release[f"{layer}.transform_matrix_conv.{p}"].clone()
                u = release[f"{layer}.translation_conv.{p}"]
                if p == "bias":  # MMPose's A is DEKR's T minus the identity
                    t[0] -= 1.0
                    t[3] -= 1.0
                rows.append(torch.stack([t[0], t[1], u[0], t[2], t[3], u[1]]))
            out[f"{dst}.transform_matrix_conv.{p}"] = torch.cat(rows)
        out[f"{dst}.adapt_conv.weight"] = torch.cat([release[f"{layer}.adapt_conv.weight"] for layer in layers])
        for p in bn[:4]:
            out[f"{dst}.norm.{p}"] = torch.cat([release[f"{layer}.bn.{p}"] for layer in layers])
        out[f"{dst}.norm.num_batches_tracked"] = release[f"{layers[0]}.bn.num_batches_tracked"]
        out[f"{dst}.regular_matrix"] = torch.tensor([[-1, -1, -1, 0, 0, 0, 1, 1, 1], [-1, 0, 1, -1, 0, 1, -1, 0, 1],
                                                     [1, 1, 1, 1, 1, 1, 1, 1, 1]]).float()
    out[f"{d}.3.weight"] = -torch.cat([release[f"offset_final_layer.{j}.weight"] for j in range(k)])
    out[f"{d}.3.bias"] = -torch.cat([release[f"offset_final_layer.{j}.bias"] for j in range(k)])
    return out

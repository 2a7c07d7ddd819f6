"""DEKR's own code against our import of its weights: the maps to 1e-4 and the single-scale poses to 0.5 px.

DEKR's code (its repository's ``lib/``) needs torchvision, which has no build for this project's pinned CPU torch, so
the check runs in two steps, each in its own environment, and nothing of DEKR's is part of this project:

    # 1. in a venv with torch + torchvision + yacs + opencv + scipy, and a checkout of DEKR (HRNet/DEKR):
    python tests/models/imports/dekr_parity.py reference --dekr-root <DEKR> --out /tmp/parity
    # 2. in the project's venv:
    python tests/models/imports/dekr_parity.py compare /tmp/parity

``reference`` builds DEKR's HRNet-W32 (COCO and CrowdPose configs) with seeded random weights (BatchNorm statistics
included), saves them in the authors' layout, runs DEKR's single-scale inference (no flip) on seeded random images and
saves its heatmaps, offsets and poses after its pose NMS. ``compare`` imports the saved weights with ``qem import
dekr``, runs our network and decode on the same images and prints the largest differences. ``names`` writes the
fixtures of ``test_dekr_import.py`` (every tensor's name and shape in the authors' layout, from DEKR's own model).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CONFIGS = {"coco": "experiments/coco/w32/w32_4x_reg03_bs10_512_adam_lr1e-3_coco_x140.yaml",
           "crowdpose": "experiments/crowdpose/w32/w32_4x_reg03_bs10_512_adam_lr1e-3_crowdpose_x300.yaml"}
SHAPES = ((256, 320), (192, 256))  # (H, W) of the random input images


def dekr_model(root: Path, data: str):
    import types

    # DEKR's dataset package imports the CrowdPose toolkit (not on the package index) for evaluation only
    for name in ("crowdposetools", "crowdposetools.coco", "crowdposetools.cocoeval"):
        stand_in = sys.modules.setdefault(name, types.ModuleType(name))
        stand_in.COCO = stand_in.COCOeval = object
    sys.path.insert(0, str(root / "lib"))
    from config import cfg  # DEKR's yacs config
    import models as dekr_models  # DEKR's lib/models

    cfg.defrost()
    cfg.merge_from_file(str(root / CONFIGS[data]))
    cfg.freeze()
    return cfg, dekr_models.hrnet_dekr.get_pose_net(cfg, is_train=False)


def randomise(model, seed: int) -> None:
    """Seeded random weights that keep activations near 1: random convolutions and BatchNorm affines, then the
    BatchNorm statistics measured on random images (a network with random statistics blows up to 1e9)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith(("num_batches_tracked", "regular_matrix", "running_mean", "running_var")):
                continue
            if name.endswith("bias"):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
            elif t.dim() == 1:  # BatchNorm weights
                t.copy_(torch.rand(t.shape, generator=gen) * 0.5 + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=gen) * (2.0 / t[0].numel()) ** 0.5)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = None  # a plain average over the batches below
        model.train()
        for _ in range(4):
            model(torch.randn(2, 3, 128, 128, generator=gen))
    model.eval()


def reference(args) -> None:
    import numpy as np
    import torch

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for data in CONFIGS:
        cfg, model = dekr_model(Path(args.dekr_root), data)
        from core.inference import aggregate_results, get_multi_stage_outputs
        from core.nms import pose_nms

        randomise(model, seed=1 if data == "coco" else 2)
        model.eval()
        torch.save(model.state_dict(), out / f"dekr_w32_{data}_random.pth")
        gen = torch.Generator().manual_seed(7)
        for i, (h, w) in enumerate(SHAPES):
            image = torch.randn(1, 3, h, w, generator=gen)
            with torch.no_grad():
                heatmap, offset = model(image)
                maps, posemap = get_multi_stage_outputs(cfg, model, image.clone(), with_flip=False)
                heatmap_sum, poses = aggregate_results(cfg, 0, [], maps, posemap, 1)
                kept, _ = pose_nms(cfg, heatmap_sum, poses)
                maps, posemap = get_multi_stage_outputs(cfg, model, image.clone(), with_flip=True)
                heatmap_sum, poses = aggregate_results(cfg, 0, [], maps, posemap, 1)
                kept_flip, _ = pose_nms(cfg, heatmap_sum, poses)
            empty = np.zeros((0, cfg.DATASET.NUM_JOINTS, 3))
            np.savez(out / f"{data}_{i}.npz", image=image.numpy(), heatmap=heatmap.numpy(), offset=offset.numpy(),
                     poses=np.asarray(kept[0]) if len(kept) else empty,
                     poses_flip=np.asarray(kept_flip[0]) if len(kept_flip) else empty)
        sys.path.pop(0)
        for mod in [m for m in sys.modules if m.split(".")[0] in ("config", "models", "core", "dataset", "utils")]:
            del sys.modules[mod]
    print(f"wrote {out}")


def names(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for data in CONFIGS:
        _, model = dekr_model(Path(args.dekr_root), data)
        table = {n: list(t.shape) for n, t in model.state_dict().items()}
        (out / f"dekr_release_w32_{data}.json").write_text(json.dumps(table, indent=0) + "\n")
        sys.path.pop(0)
        for mod in [m for m in sys.modules if m.split(".")[0] in ("config", "models", "core", "dataset", "utils")]:
            del sys.modules[mod]
    print(f"wrote {out}")


def compare(args) -> int:
    import numpy as np
    import torch

    from models.checkpoint import load_checkpoint
    from models.imports.dekr import import_dekr
    from models.inference.dekr import dekr_poses
    from models.inference.predictor import Predictor

    folder, worst = Path(args.folder), {"maps": 0.0, "poses": 0.0, "scores": 0.0}
    for data in CONFIGS:
        net = load_checkpoint(import_dekr(folder / f"dekr_w32_{data}_random.pth", folder / f"ours_{data}.pt"))
        for i in range(len(SHAPES)):
            ref = np.load(folder / f"{data}_{i}.npz")
            x = torch.from_numpy(ref["image"])
            with torch.no_grad():
                dense = net.dense(x)
            heat = torch.cat([dense.heatmaps, dense.score], 1).numpy()
            worst["maps"] = max(worst["maps"], float(np.abs(heat - ref["heatmap"]).max()),
                                float(np.abs(-dense.offsets.numpy() - ref["offset"]).max()))
            for flip, key in ((False, "poses"), (True, "poses_flip")):
                poses = dekr_poses(net, *Predictor(net, flip_test=flip, decode_backend="torch").forward(x))[0]
                ours = np.concatenate([poses.keypoints, poses.keypoint_scores[..., None]], -1)
                theirs = ref[key]
                if len(ours) != len(theirs):
                    print(f"{data} image {i}, flip {flip}: {len(ours)} poses against DEKR's {len(theirs)}")
                    worst["poses"] = float("inf")
                    continue
                if len(ours):  # the same poses in another order: match each of DEKR's to our nearest
                    d = np.abs(theirs[:, None, :, :2] - ours[None, :, :, :2]).max(axis=(2, 3))
                    match = d.argmin(1)
                    worst["poses"] = max(worst["poses"], float(d[np.arange(len(theirs)), match].max()))
                    worst["scores"] = max(worst["scores"], float(np.abs(theirs[:, :, 2] - ours[match, :, 2]).max()))
                print(f"{data} image {i} ({x.shape[2]}x{x.shape[3]}), flip {flip}: {len(ours)} poses")
    print(f"largest difference: maps {worst['maps']:.2e}, keypoints {worst['poses']:.2e} input px, "
          f"joint scores {worst['scores']:.2e}")
    return 0 if worst["maps"] <= 1e-4 and worst["poses"] <= 0.5 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    for step in ("reference", "names"):
        p = sub.add_parser(step)
        p.add_argument("--dekr-root", required=True, help="a checkout of DEKR's repository")
        p.add_argument("--out", required=True)
    sub.add_parser("compare").add_argument("folder")
    args = parser.parse_args()
    if args.step == "reference":
        reference(args)
    elif args.step == "names":
        names(args)
    else:
        return compare(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

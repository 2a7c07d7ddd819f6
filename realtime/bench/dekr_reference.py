"""DEKR's own single-scale inference, timed per frame: run by ``realtime/bench/dekr.py`` in an interpreter that has
torch, torchvision, yacs and OpenCV, with a checkout of DEKR's repository (``--dekr-root``). It imports DEKR's code from
there; none of it is part of this project. Prints one JSON line: ``{"ms": [per-frame milliseconds]}``."""
from __future__ import annotations

import argparse
import json
import sys
import time
import types
from pathlib import Path

CONFIGS = {"coco": "experiments/coco/w32/w32_4x_reg03_bs10_512_adam_lr1e-3_coco_x140.yaml",
           "crowdpose": "experiments/crowdpose/w32/w32_4x_reg03_bs10_512_adam_lr1e-3_crowdpose_x300.yaml"}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--dekr-root", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--frame", required=True, help="an RGB HxWx3 uint8 array (.npy)")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", choices=tuple(CONFIGS), default="coco")
    args = p.parse_args()

    import numpy as np
    import torch
    import torchvision

    torch.set_num_threads(args.threads)
    for name in ("crowdposetools", "crowdposetools.coco", "crowdposetools.cocoeval"):  # evaluation only
        stand_in = sys.modules.setdefault(name, types.ModuleType(name))
        stand_in.COCO = stand_in.COCOeval = object
    root = Path(args.dekr_root)
    sys.path.insert(0, str(root / "lib"))
    import models as dekr_models
    from config import cfg
    from core.inference import aggregate_results, get_multi_stage_outputs
    from core.nms import pose_nms
    from utils.transforms import resize_align_multi_scale

    cfg.defrost()
    cfg.merge_from_file(str(root / CONFIGS[args.data]))
    cfg.DATASET.INPUT_SIZE = args.size
    cfg.freeze()
    model = dekr_models.hrnet_dekr.get_pose_net(cfg, is_train=False)
    model.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True), strict=True)
    model.eval()
    transform = torchvision.transforms.Compose([
        torchvision.transforms.ToTensor(),
        torchvision.transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    frame = np.load(args.frame)
    times = []
    for i in range(args.repeats + 1):  # the first is a warm-up
        t0 = time.perf_counter()
        with torch.no_grad():
            resized, _, _ = resize_align_multi_scale(frame, cfg.DATASET.INPUT_SIZE, 1.0, 1.0)
            image = transform(resized).unsqueeze(0)
            heatmap, posemap = get_multi_stage_outputs(cfg, model, image, False)
            heatmap_sum, poses = aggregate_results(cfg, 0, [], heatmap, posemap, 1.0)
            pose_nms(cfg, heatmap_sum, poses)
        if i:
            times.append((time.perf_counter() - t0) * 1e3)
    print(json.dumps({"ms": times}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

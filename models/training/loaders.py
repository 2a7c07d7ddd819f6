"""The training data: which annotation file and image folder to read, and the (distributed) data loader."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from models.data.augment import AugmentConfig
from models.data.dataset import KeypointDataset, collate_samples
from models.data.paths import DataPathError, resolve_data, synth_splits
from models.training.distributed import DistInfo
from models.training.state import TrainError


def _light_augment():
    return AugmentConfig(max_rotation=10.0, scale_range=(0.85, 1.2), max_translate=0.05, brightness=0.15,
                         contrast=0.15, saturation=0.15, hue=2.0)


def data_paths(args) -> tuple[tuple[Path, Path], tuple[Path, Path] | None]:
    """((train ann, train images), (val ann, val images) or None). A --synth folder gives its "train" split (or
    its only one) for training and, unless other validation data is named, its "val" split when it has one."""
    try:
        if args.synth is not None:
            train = resolve_data(args.synth, None, None, prefer=("train",))
        else:
            train = resolve_data(None, args.train_ann, args.train_images)
        val = None
        if args.val_synth is not None:
            val = resolve_data(args.val_synth, None, None)
        elif args.val_ann is not None or args.val_images is not None:
            val = resolve_data(None, args.val_ann, args.val_images)
        elif args.synth is not None and "val" in synth_splits(Path(args.synth)):
            val = resolve_data(args.synth, None, None, split="val")
    except DataPathError as exc:
        raise TrainError(str(exc)) from None
    return train, val


def make_loader(ann: Path, images: Path, args, info: DistInfo, seed: int, num_keypoints: int):
    augment = {"dekr": AugmentConfig(), "off": AugmentConfig.off(), "light": _light_augment()}[args.augment]
    try:
        dataset = KeypointDataset(str(ann), str(images), args.input_size, train=True, augment=augment,
                                  ignore_regions=not getattr(args, "no_ignore_regions", False),
                                  num_keypoints=num_keypoints)
    except ValueError as exc:
        raise TrainError(str(exc)) from None
    if len(dataset) == 0:
        raise TrainError(f"no training images in {ann}")
    sampler = (DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed,
                                  drop_last=False) if info.distributed else None)
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=sampler is None, sampler=sampler,
                        num_workers=args.workers, collate_fn=collate_samples, drop_last=len(dataset) > args.batch_size,
                        generator=gen, pin_memory=info.device.type == "cuda",
                        persistent_workers=args.workers > 0, worker_init_fn=_seed_worker)
    return loader, sampler


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


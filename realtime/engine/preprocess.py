"""Letterbox + normalisation of a batch of frames, on the engine's device.

Same geometry as ``models.preprocess`` (``Letterbox.fit``, content centred, gray padding, ImageNet mean/std); with
``rect`` (the default) the batch's canvas is the smallest multiples of 32 holding its frames (``batch_canvas``).
CPU: OpenCV resizes each frame (the fastest resampler on a CPU) and NumPy normalises the batch; with ``uint8`` the
batch stays the letterboxed uint8 canvases ``[B,H,W,3]``, for a runtime that normalises inside its own graph
(OpenVINO: ``models.export.runtime``).
A frame already shrunk while decoding (``full_sizes[i]`` set: ``realtime.sources.frontend``, CPU only) is only padded
into the canvas; its Letterbox is the full frame's.
CUDA: the uint8 frames go up through pinned host memory (non-blocking copies), and the resize (bilinear, with
antialiasing when shrinking), padding and normalisation run on the GPU (``torch_letterbox``, which also runs on
a CPU tensor, so it is tested here against the OpenCV path).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from models.preprocess import (MEAN_RGB, PAD_VALUE, STD_RGB, Letterbox, batch_canvas, check_fixed_canvas, letterbox,
                               long_side)
from realtime.sources.frontend import place


class DevicePreprocess:
    def __init__(self, size: int, device: torch.device, dtype: torch.dtype = torch.float32, rect: bool = True,
                 fixed_canvas: tuple[int, int] | None = None, uint8: bool = False, source: str = "the model",
                 resize: str = "long"):
        self.size, self.device, self.dtype, self.rect = size, torch.device(device), dtype, rect
        self.resize = resize  # the model's ModelConfig.resize: "short" scales the short side to ``size`` (DEKR)
        self.uint8 = uint8 and self.device.type == "cpu"
        self.fixed_canvas = fixed_canvas  # (W, H) of a model exported for one input shape
        self.source = source  # the model's file, named when an image does not fit its fixed canvas
        self.mean = torch.tensor(MEAN_RGB, device=self.device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(STD_RGB, device=self.device).view(1, 3, 1, 1) * 255.0
        self.scale, self.shift = 1.0 / self.std, -self.mean / self.std
        self._scale_np = self.scale.cpu().numpy().astype(np.float32)
        self._shift_np = self.shift.cpu().numpy().astype(np.float32)
        self._pinned: dict[tuple[int, ...], torch.Tensor] = {}

    def __call__(self, images: Sequence[np.ndarray], pad_to: int = 0,
                 full_sizes: Sequence[tuple[int, int] | None] | None = None) -> tuple[torch.Tensor, list[Letterbox]]:
        """RGB uint8 HxWx3 images -> (``[B,3,H,W]`` normalised on the device, or with ``uint8`` the canvases
        ``[B,H,W,3]``; one Letterbox each).

        ``pad_to`` > len(images) appends zero images so that the batch shape stays static (CUDA graphs).
        ``full_sizes[i]`` (H, W), when given and not None: image i is a frame of that size already shrunk to its
        content size (``realtime.sources.frontend.shrink``)."""
        full_sizes = list(full_sizes) if full_sizes is not None else [None] * len(images)
        shapes = [im.shape if full is None else full for im, full in zip(images, full_sizes)]
        size = long_side(shapes, self.size, self.resize)
        if self.fixed_canvas is not None:
            check_fixed_canvas(shapes, size, self.fixed_canvas, self.source)
        canvas = self.fixed_canvas or batch_canvas(shapes, size, self.rect)
        if any(full is not None for full in full_sizes) and self.device.type != "cpu":
            raise ValueError("frames shrunk while decoding go to a CPU engine only (realtime.sources.frontend)")
        if self.device.type == "cuda":
            batch, boxes = self.torch_letterbox([self._upload(i, im) for i, im in enumerate(images)], canvas)
            # Pinned buffers are reused: the copies must be done before the next call writes into them.
            torch.cuda.current_stream(self.device).synchronize()
        else:
            canvases, boxes = zip(*(letterbox(im, size, canvas) if full is None else place(im, full, size, canvas)
                                    for im, full in zip(images, full_sizes)))
            if self.uint8:
                return torch.from_numpy(np.stack(canvases)), list(boxes)
            # NumPy, single-threaded: on a busy CPU, torch's intra-op threads make these small element-wise ops
            # up to 10x slower. uint8 goes channels-first before the one float pass (scale), then the shift.
            x = np.ascontiguousarray(np.stack(canvases).transpose(0, 3, 1, 2))
            out = np.multiply(x, self._scale_np, dtype=np.float32)
            out += self._shift_np
            batch = torch.from_numpy(out)
            boxes = list(boxes)
        if pad_to > batch.shape[0]:
            batch = F.pad(batch, (0, 0, 0, 0, 0, 0, 0, pad_to - batch.shape[0]))
        return batch.to(self.dtype), boxes

    def _upload(self, slot: int, image: np.ndarray) -> torch.Tensor:
        key = (slot, *image.shape)  # one buffer per batch slot: a copy in flight is never overwritten
        host = self._pinned.get(key)
        if host is None:
            host = self._pinned[key] = torch.empty(image.shape, dtype=torch.uint8).pin_memory()
        host.numpy()[...] = image
        return host.to(self.device, non_blocking=True)

    def torch_letterbox(self, images: Sequence[torch.Tensor], canvas: tuple[int, int] | None = None
                        ) -> tuple[torch.Tensor, list[Letterbox]]:
        """uint8 HxWx3 tensors (on the device) -> normalised ``[B,3,H,W]`` float32 and their Letterboxes;
        ``canvas`` = (W, H), default the batch's (``batch_canvas``)."""
        size = long_side([im.shape for im in images], self.size, self.resize)
        canvas = canvas or self.fixed_canvas or batch_canvas([im.shape for im in images], size, self.rect)
        out = torch.full((len(images), 3, canvas[1], canvas[0]), float(PAD_VALUE), device=self.device)
        boxes = []
        for i, image in enumerate(images):
            h, w = image.shape[:2]
            box = Letterbox.fit(h, w, size, canvas)
            new_w, new_h = box.content_size(h, w)
            x = image.permute(2, 0, 1).unsqueeze(0).float()
            x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False,
                              antialias=box.scale < 1)
            out[i, :, int(box.pad_y):int(box.pad_y) + new_h, int(box.pad_x):int(box.pad_x) + new_w] = x[0]
            boxes.append(box)
        return (out - self.mean) / self.std, boxes

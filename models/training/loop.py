"""One training step and one epoch: the network and its losses in one module (for DDP), autocast, loss scaling,
memory layout."""
from __future__ import annotations

import contextlib
import functools
import time

import torch
from tqdm import tqdm

from models.training.distributed import DistInfo
from models.training.losses import training_losses
from models.training.state import TrainError


class LossModule(torch.nn.Module):
    """The network plus its training losses in one forward, so that DDP sees every parameter the loss uses.
    ``train_only``: parameter-name prefixes; every other parameter is frozen (no gradient) and every module outside
    them stays in eval mode, so frozen BatchNorm layers keep normalising with, and keeping, their running statistics."""

    def __init__(self, net: torch.nn.Module, train_only: tuple[str, ...] = ()):
        super().__init__()
        self.net = net
        self.train_only = tuple(train_only)
        if self.train_only:
            names = [name for name, _ in net.named_parameters()]
            unmatched = [p for p in self.train_only if not any(n.startswith(p) for n in names)]
            if unmatched:
                raise TrainError(f"--train-only {unmatched[0]}: no parameter of the network starts with it")
            for name, param in net.named_parameters():
                param.requires_grad_(name.startswith(self.train_only))

    def train(self, mode: bool = True):
        super().train(mode)
        if self.train_only and mode:
            for name, module in self.net.named_modules():
                module.training = (name + ".").startswith(self.train_only)
        return self

    def forward(self, images, persons):
        return training_losses(self.net, images, persons)


def amp_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """The autocast dtype for ``--amp`` on ``device`` (None: fp32). "auto" is fp16 on CUDA and fp32 on the CPU."""
    if amp == "auto":
        amp = "fp16" if device.type == "cuda" else "off"
    if amp == "fp16" and device.type != "cuda":
        raise TrainError("--amp fp16 needs a CUDA device; on the CPU use --amp bf16 or --amp off")
    return {"fp16": torch.float16, "bf16": torch.bfloat16, "off": None}[amp]


def make_scaler(amp: torch.dtype | None):
    """A GradScaler for fp16 autocast; None otherwise (bf16 has fp32's range and needs no loss scaling)."""
    return torch.amp.GradScaler("cuda") if amp == torch.float16 else None


def dilated_conv_weight_grad_error(memory_format) -> float:
    """Relative error of a bf16-autocast weight gradient of a dilated grouped conv (the keypoint branches') in
    ``memory_format``, against fp32, on the CPU. Seeds its own draws: the caller's random state is left as it is."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        conv = torch.nn.Conv2d(136, 136, 3, padding=2, dilation=2, groups=17, bias=False)
        x = torch.randn(1, 136, 40, 40)
    exact = torch.autograd.grad(conv(x).square().sum(), conv.weight)[0]
    conv = conv.to(memory_format=memory_format)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x.contiguous(memory_format=memory_format))
    grad = torch.autograd.grad(y.float().square().sum(), conv.weight)[0]
    return float((grad - exact).abs().max() / exact.abs().max())


@functools.lru_cache(maxsize=None)
def channels_last_bf16_grads_ok() -> bool:
    """Whether this CPU's oneDNN computes bf16 weight gradients of dilated convolutions right in channels-last:
    on CPUs without AMX (seen on an AMD EPYC) they come out wrong (inf, nan, or off by orders of magnitude), with
    AMX (an Intel Xeon) right. Measured once per process (about 50 ms); "not close" rather than "far", since the
    wrong gradient is sometimes NaN."""
    return dilated_conv_weight_grad_error(torch.channels_last) < 0.02


def place_network(net: torch.nn.Module, device: torch.device, args) -> torch.dtype | None:
    """Move ``net`` to ``device`` in ``--channels-last``'s layout; returns the ``--amp`` autocast dtype."""
    amp = amp_dtype(device, args.amp)
    if args.channels_last and amp == torch.bfloat16 and device.type == "cpu" and not channels_last_bf16_grads_ok():
        raise TrainError("--channels-last with --amp bf16 on this CPU: oneDNN computes wrong weight gradients (inf, "
                         "nan) for dilated convolutions in that layout; drop --channels-last")
    net.to(device, memory_format=torch.channels_last if args.channels_last else torch.preserve_format)
    return amp


def to_device(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    images = images.to(device, non_blocking=True)
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def train_step(loss_module, images, persons, optimizer, scaler, amp: torch.dtype | None = None) -> dict:
    """One optimiser step (autocast to ``amp`` if given; loss scaling when ``scaler`` is given); returns the loss
    terms. A non-finite loss takes no step (the caller decides what to do)."""
    autocast = (torch.autocast(device_type=images.device.type, dtype=amp) if amp is not None
                else contextlib.nullcontext())
    with autocast:
        losses = loss_module(images, persons)
    if not torch.isfinite(losses["loss"]):
        return losses
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(losses["loss"]).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        losses["loss"].backward()
        optimizer.step()
    return losses


def train_one_epoch(loss_module, loader, optimizer, scaler, info: DistInfo, epoch: int, max_steps: int | None,
                    progress: bool, amp: torch.dtype | None = None, channels_last: bool = False) -> dict:
    """One pass over ``loader``; returns mean losses, step count and images/s (this process's images). ``epoch``
    counts from 0, as the run's loop does; the progress bar and errors show it counted from 1, as the log does."""
    loss_module.train()
    sums: dict[str, float] = {}
    steps, images_seen = 0, 0
    start = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, disable=not (progress and info.is_main),
               dynamic_ncols=True)
    for images, persons, _ids, _boxes in bar:
        images = to_device(images, info.device, channels_last)
        losses = train_step(loss_module, images, [p.to(info.device) for p in persons], optimizer, scaler, amp)
        loss = losses["loss"]
        if not torch.isfinite(loss):
            raise TrainError(f"loss became {loss.item()} at epoch {epoch + 1} step {steps}; lower --lr or check the "
                             "data")
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        steps += 1
        images_seen += images.shape[0]
        bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        if max_steps is not None and steps >= max_steps:
            break
    seconds = time.perf_counter() - start
    out = {k: v / max(steps, 1) for k, v in sums.items()}
    out.update(steps=steps, images=images_seen, seconds=seconds, images_per_s=images_seen / max(seconds, 1e-9))
    return out

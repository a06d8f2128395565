"""One optimiser step (paper §4.3): forward and backward of each of its batches, then the
update. Gradients of ``accumulate`` batches are summed into one step."""

from __future__ import annotations

import contextlib
import itertools
import math

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..device import autocast
from ..errors import FcnsegError
from .config import TrainConfig
from .distributed import Processes
from .setup import Run

__all__ = ["backward", "update", "weights_finite"]


def backward(
    run: Run,
    config: TrainConfig,
    procs: Processes,
    images: Tensor,
    masks: Tensor,
    *,
    generator: torch.Generator,
    scale: float,
    sync: bool,
) -> float:
    """Forward and backward of one batch, its loss scaled by ``scale`` into the gradients
    (synchronised across processes when ``sync``). Returns the loss, the same on every
    process; a non-finite one is returned before any gradient is touched."""
    device = procs.device
    memory = torch.channels_last if config.channels_last else torch.contiguous_format
    x = run.model.normalization(images.to(device, non_blocking=True))
    target = masks.to(device, non_blocking=True)
    sync = sync or not isinstance(run.net, DistributedDataParallel)
    with contextlib.nullcontext() if sync else run.net.no_sync():
        with autocast(device, run.amp):
            logits = _forward(run.net, x.contiguous(memory_format=memory))
        # A compiled net hands its logits back channels-last (eager ones are contiguous), but
        # the losses read each class's pixels in a row: the CamVid recipe's CE + Lovász took
        # 0.73 s a batch on channels-last logits, 0.51 s with this one copy first.
        loss = run.loss(logits.contiguous(), target, generator)
        value = procs.sum(loss.detach().float().reshape(1)).item() / procs.world
        if math.isfinite(value):
            run.scaler.scale(loss * scale).backward()
    return value


def _forward(net: nn.Module, x: Tensor) -> Tensor:
    try:
        return net(x)
    except ValueError as exc:
        if "more than 1 value per channel" not in str(exc):
            raise
        raise FcnsegError(
            f"batch norm needs more than one value per channel, but batches of {x.shape[0]} "
            f"image(s) of {x.shape[-2]}×{x.shape[-1]} px leave the deepest layer a single "
            "position; use a larger --crop or --batch-size, or --freeze-backbone"
        ) from None


def update(run: Run) -> None:
    """Apply the summed gradients, clear them, advance the schedule and move the average of
    the weights (``--ema``) towards them."""
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    run.scheduler.step()
    if run.average is not None:
        run.average.update_parameters(run.model)


def weights_finite(model: nn.Module, procs: Processes) -> bool:
    """Whether every weight and buffer is finite on every process (collective): one huge step
    can leave inf in them while the loss it was computed from was finite."""
    tensors = [
        t for t in itertools.chain(model.parameters(), model.buffers()) if t.is_floating_point()
    ]
    finite = torch.stack([torch.isfinite(t).all() for t in tensors]).all()
    return not procs.sum((~finite).float().reshape(1)).item()

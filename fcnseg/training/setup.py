"""Building a run from its settings: data, model, loss, optimiser, schedule, loader.

:func:`build_run` does everything a run needs before its first step, and checks everything a
user can get wrong there, so that a mistake is one line before any training time is spent.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from ..data import (
    MaskStats,
    SegmentationDataset,
    build_dataset,
    channel_stats,
    collate_pad,
    drop_samples,
    find_bad_samples,
    label_space_problems,
    mask_stats,
    median_frequency_weights,
    reader_options,
    train_transform,
)
from ..errors import ConfigError, DataError, FcnsegError
from ..models import FCN, Normalization, build_fcn
from .config import TrainConfig
from .distributed import EpochSampler, Processes, Repeated, SeededItems, mix
from .loss import HeadsLoss, build_loss
from .optim import build_optimizer, lr_factor
from .transfer import init_from

__all__ = ["Run", "build_run"]


@dataclass
class Run:
    """Everything a run trains with, built once."""

    train_set: SegmentationDataset
    val_set: SegmentationDataset
    model: FCN
    net: nn.Module  # the model, or its DistributedDataParallel wrapper
    loss: nn.Module  # (logits, target, generator) → the loss
    optimizer: torch.optim.Optimizer
    sampler: EpochSampler
    loader: DataLoader
    batches: int  # per epoch, for this process
    steps_per_epoch: int
    lr_factor: Callable[[int], float]
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    skipped: list[str]  # --skip-bad's messages
    # The step's mixed precision: --amp, or what auto chose (.fastest); fp32 until it chooses.
    amp: str = "off"
    # --ema: the moving average of the weights (batch-norm statistics too), or None.
    average: AveragedModel | None = None

    @property
    def scored(self) -> FCN:
        """The model that validation scores and ``best.safetensors`` keeps: the average of
        the weights under ``--ema``, else the trained weights themselves."""
        return self.average.module if self.average is not None else self.model

    def use_schedule(self, factor: Callable[[int], float]) -> None:
        """Follow the learning-rate ``factor`` from the current step on (a time budget's
        re-drawn schedule, :mod:`.budget`)."""
        self.lr_factor = factor
        self.scheduler.lr_lambdas = [factor] * len(self.optimizer.param_groups)
        step = self.scheduler.last_epoch
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
            group["lr"] = base * factor(step)


def _model(config: TrainConfig, dataset: SegmentationDataset, say: Callable[[str], None]) -> FCN:
    # A resumed run takes its weights from its checkpoint: neither the ImageNet weights nor
    # --init-from's file are read (or need to exist) again.
    start = not config.resume
    try:
        heads = dataset.heads
        model = build_fcn(
            config.model,
            num_classes={n: d.num_classes for n, d in heads.items()}
            if heads
            else dataset.num_classes,
            backbone=config.backbone,
            geometry=config.geometry,
            at_once=config.at_once,
            pretrained_backbone=config.pretrained_backbone if start else False,
            in_channels=dataset.in_channels,
        )
    except OSError as exc:
        if config.pretrained_backbone is not True or isinstance(exc, FileNotFoundError):
            raise
        raise FcnsegError(
            f"could not fetch the ImageNet weights of {config.backbone} ({exc}); "
            "download them once, or pass a weight file: --pretrained-backbone "
            "PATH"
        ) from None
    model.meta = model.meta.with_(
        classes=dataset.classes,
        palette=dataset.palette,
        ignore_index=dataset.ignore_index,
        magnify=config.magnify if config.inference_magnify is None else config.inference_magnify,
    )
    if start:
        model.normalization = _measured_normalization(model, dataset, say)
    if config.init_from and start:
        for line in init_from(model, config.init_from, config.class_map).lines():
            say(line)
    model.backbone.checkpointing = config.checkpoint_activations
    if config.freeze_backbone:
        # Transfer learning: the backbone's features and statistics stay as they are.
        model.backbone.requires_grad_(False)
    return model


# Images the statistics of input channels are measured on, spread over the training set.
STATS_IMAGES = 64


def _measured_normalization(
    model: FCN, dataset: SegmentationDataset, say: Callable[[str], None]
) -> Normalization:
    """The normalisation for the training images, where the backbone's cannot know them.

    The pretrained statistics are in 8-bit RGB units: 8-bit images keep them for their first
    three channels and have only the channels past RGB (depth, infrared) measured; images of
    wider samples (16-bit, float rasters) have every channel measured.
    """
    norm, channels = model.normalization, dataset.in_channels
    if not len(dataset):
        return norm
    picks = np.linspace(0, len(dataset) - 1, min(STATS_IMAGES, len(dataset))).round()
    images = [dataset.read_image(dataset.samples[int(i)][0]) for i in picks]
    eight_bit = all(image.dtype == torch.uint8 for image in images)
    if eight_bit and channels <= 3:
        return norm
    first = 3 if eight_bit else 0
    mean, std = channel_stats(images, range(first, channels))
    shown = ", ".join(f"{m:.4g}±{s:.3g}" for m, s in zip(mean, std, strict=True))
    say(f"channels {first + 1}–{channels} normalised by {shown} (measured on {len(picks)} images)")
    if eight_bit:
        return norm.for_channels(channels, (mean, std))
    return Normalization(mean, std, norm.bgr and channels >= 3)


def _class_weights(
    config: TrainConfig, dataset: SegmentationDataset, stats: MaskStats
) -> Tensor | None:
    spec = config.class_weights
    if not spec:
        return None
    if spec == "median-frequency":
        return median_frequency_weights(dataset, stats)
    try:  # "1,2,3" from the command line, or a list from a config file
        values = spec.split(",") if isinstance(spec, str) else spec
        weights = torch.tensor([float(w) for w in values])
    except (ValueError, TypeError):
        raise ConfigError(
            f"class weights {spec!r}: expected 'median-frequency' or comma-separated numbers"
        ) from None
    if len(weights) != dataset.num_classes:
        raise ConfigError(
            f"class weights: {len(weights)} given but the dataset has {dataset.num_classes} classes"
        )
    if not torch.isfinite(weights).all() or (weights < 0).any():
        raise ConfigError(f"class weights {spec!r}: every weight must be a finite number ≥ 0")
    return weights


def _skip_bad(
    datasets: tuple[SegmentationDataset, ...], procs: Processes, workers: int
) -> list[str]:
    """Check every sample of the datasets once (each process its share), drop the bad ones;
    their messages."""
    skipped: list[str] = []
    for dataset in datasets:
        mine = range(procs.rank, len(dataset), procs.world)
        parts = procs.gather_objects(find_bad_samples(dataset, mine, workers=workers))
        bad = {i: message for part in parts for i, message in part.items()}
        drop_samples(dataset, bad)
        skipped += [bad[i] for i in sorted(bad)]
    return skipped


def _decoded_budget(setting: str, procs: Processes) -> int:
    """Bytes ``--keep-decoded`` lets the datasets keep decoded on this process."""
    if setting == "off":
        return 0
    if setting == "on":
        return sys.maxsize
    return _available_memory() // (4 * procs.world)  # every process keeps its own copy


def _available_memory() -> int:
    """Bytes of memory available now: Linux's MemAvailable within the container's limit;
    elsewhere half the physical memory; 0 where neither is known."""
    try:
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) * 1024 for line in f if "MemAvailable" in line)
    except (OSError, StopIteration, ValueError):
        try:
            return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
        except (AttributeError, OSError, ValueError):
            return 0
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        return min(available, int(limit) - used) if limit != "max" else available
    except (OSError, ValueError):
        return available


def check_label_space(
    dataset: SegmentationDataset, stats: MaskStats, say: Callable[[str], None]
) -> None:
    """Refuse a training set that cannot teach anything, and say which classes it never shows,
    before the first step: nothing is ever silently wrong with the labels."""
    where = str(dataset.samples[0][1].parent) if dataset.samples else "the training set"
    errors, warnings = label_space_problems(dataset, stats.class_pixels, stats.ignored, where)
    if errors:
        raise DataError(errors[0])
    for line in warnings:
        say(f"warning: {line}")


def check_held_out(
    train_set: SegmentationDataset,
    val_set: SegmentationDataset,
    config: TrainConfig,
    say: Callable[[str], None],
) -> None:
    """Say before the first step how many validation images are trained on too: validating on
    them (a final model fit on every labelled image, say) measures a fit, not new images."""
    trained = {image for image, _ in train_set.samples}
    if shared := sum(image in trained for image, _ in val_set.samples):
        say(
            f"note: {shared} of the {len(val_set)} validation images are trained on too "
            f"(splits {config.train_split} and {config.val_split}): validation scores are a "
            "fit, not an estimate of new images"
        )


def build_run(config: TrainConfig, procs: Processes, say: Callable[[str], None]) -> Run:
    """Build the run ``config`` describes on this process (``config`` already resolved)."""
    device = procs.device
    build_loss(config.loss, ignore_index=255, reduction=config.reduction)  # refused now, not later
    if config.sync_bn and procs.world > 1 and device.type != "cuda":
        # PyTorch's SyncBatchNorm is CUDA-only: say so now, not in the first forward pass.
        raise ConfigError(
            "--sync-bn needs GPUs: PyTorch's SyncBatchNorm runs on CUDA only; "
            "drop the flag to train on CPUs"
        )
    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(config.seed)  # the same initial weights on every process
    np.random.seed(config.seed % 2**32)
    reading: dict[str, Any] = {"max_pixels": config.max_pixels} if config.max_pixels else {}
    reading.update(reader_options(config))
    train_set = build_dataset(config.dataset, config.root, config.train_split, **reading)
    if config.jitter > 0 and train_set.in_channels != 3:
        raise ConfigError(
            f"--jitter changes colours and needs RGB images, but these have "
            f"{train_set.in_channels} channels; drop --jitter"
        )
    train_set.transform = train_transform(
        crop=config.crop,
        # The working scale enlarges every image; the random scale varies around it.
        scale=(config.scale[0] * config.magnify, config.scale[1] * config.magnify),
        hflip=config.hflip,
        vflip=config.vflip,
        rot90=config.rot90,
        rotate=config.rotate,
        jitter=config.jitter,
        ignore_index=train_set.ignore_index,
    )
    val_set = build_dataset(config.dataset, config.root, config.val_split, **reading)
    check_held_out(train_set, val_set, config, say)
    skipped = _skip_bad((train_set, val_set), procs, config.workers) if config.skip_bad else []
    budget = _decoded_budget(config.keep_decoded, procs)
    for dataset, split in ((train_set, "training"), (val_set, "validation")):
        start = time.perf_counter()
        if budget > 0 and (kept := dataset.keep_decoded(budget)):
            budget -= kept
            say(
                f"{len(dataset)} {split} images decoded once and kept in memory "
                f"({kept / 2**20:.0f} MiB, {time.perf_counter() - start:.0f} s)"
            )
    # Every training mask read once (per label set), for the check and the weights.
    label_sets = train_set.heads or {"": train_set}
    stats = {name: mask_stats(labels) for name, labels in label_sets.items()}
    for name, labels in label_sets.items():
        check_label_space(labels, stats[name], say)
    model = _model(config, train_set, say)
    if config.sync_bn and procs.world > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    memory = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(device, memory_format=memory)
    net: nn.Module = model
    if procs.world > 1:
        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    losses = [
        (
            part,
            build_loss(
                config.loss,
                ignore_index=train_set.ignore_index,
                reduction=config.reduction,
                weight=_class_weights(config, label_sets[name], stats[name]),
                sampling=config.loss_sampling,
            ),
        )
        for name, part in model.meta.head_slices()
    ]
    loss = (losses[0][1] if len(losses) == 1 else HeadsLoss(losses)).to(device)
    optimizer = build_optimizer(model, config)
    passes = Repeated(train_set, config.repeat)
    sampler = EpochSampler(passes, world=procs.world, rank=procs.rank, seed=config.seed)
    loader = DataLoader(
        SeededItems(passes, config.seed),
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.workers,
        persistent_workers=config.workers > 0,
        pin_memory=device.type == "cuda",
        # Its own generator: creating an iterator then leaves the global one untouched.
        generator=torch.Generator().manual_seed(config.seed),
        collate_fn=functools.partial(collate_pad, ignore_index=train_set.ignore_index),
    )
    batches = math.ceil(sampler.num_samples / config.batch_size)
    steps_per_epoch = math.ceil(batches / config.accumulate)
    factor = lr_factor(config, config.epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16")
    # Each process its own dropout masks, once the shared initial weights are drawn.
    torch.manual_seed(mix(config.seed, procs.rank, 1))
    return Run(
        train_set,
        val_set,
        model,
        net,
        loss,
        optimizer,
        sampler,
        loader,
        batches,
        steps_per_epoch,
        factor,
        scheduler,
        scaler,
        skipped,
        amp="off" if config.amp == "auto" else config.amp,
        average=_average(model, config.ema),
    )


def _average(model: FCN, decay: float | None) -> AveragedModel | None:
    """The exponential moving average of ``model``'s weights and buffers (Polyak averaging),
    which :func:`~.step.update` moves after each step; it starts as a copy of the weights."""
    if decay is None:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

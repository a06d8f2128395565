"""Training settings: one dataclass for the command line, YAML files and the Python API.

Every setting is declared once, here, with its help text; ``fcnseg train`` builds its flags from
these declarations, ``--config FILE.yaml`` reads the same names, and :func:`fcnseg.train` takes
the dataclass itself. Settings left at ``None`` are chosen by the *recipe*:

``paper`` (PAMI §4.3, "heavy learning")
    SGD, momentum 0.99, a fixed learning rate of 1e-10 on the summed loss (1e-4 on the mean
    loss), weight decay 5e-4, biases at twice the learning rate without decay, one whole image
    per batch, no augmentation. The CVPR paper's minibatch of 20 images at momentum 0.9 is
    ``--accumulate 20 --momentum 0.9``: gradients of 20 single-image batches summed per step.
``modern``
    AdamW at 1e-3 on the mean loss, weight decay 1e-4, poly decay (power 0.9) after a linear
    warm-up, batches of 8 with random scaling and flips. A pretrained backbone learns at a tenth
    of the rate of the new layers: its features are already good, the new score layers start
    from zero (§4.2) and must move fast.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
import yaml

from ..errors import ConfigError, FcnsegError
from .checks import check_setting

__all__ = ["TrainConfig", "add_config_arguments"]


def _setting(default: Any, help: str, **cli: Any) -> Any:
    """A dataclass field carrying its help text and argparse options."""
    return field(default=default, metadata={"help": help, "cli": cli})


@dataclass
class TrainConfig:
    """Everything one training run needs. ``None`` means "as the recipe says" (see module)."""

    # -- data
    dataset: str | None = _setting(
        None,
        "dataset reader: folder, camvid, chase_db1, coco... (all: fcnseg.list_datasets())",
        metavar="NAME",
    )
    root: str | None = _setting(None, "dataset root directory", metavar="DIR")
    train_split: str = _setting("train", "split to train on", metavar="SPLIT")
    val_split: str = _setting("val", "split to validate on after every epoch", metavar="SPLIT")
    crop: tuple[int, int] | None = _setting(
        None,
        "random crops of H×W pixels (default: whole images, padded into batches)",
        nargs=2,
        type=int,
        metavar=("H", "W"),
    )
    scale: tuple[float, float] | None = _setting(
        None,
        "random rescaling range (paper: 1 1, modern: 0.5 2)",
        nargs=2,
        type=float,
        metavar=("MIN", "MAX"),
    )
    magnify: float = _setting(
        1.0,
        "working scale: every image is enlarged by this factor before the net sees it, in "
        "training (times --scale; --crop is of the enlarged image) and, recorded in the model "
        "file, at inference, where the scores are resized back: for structures a pixel or two "
        "wide (retinal vessels) that the backbone's first strides blur",
        type=float,
        metavar="M",
    )
    inference_magnify: float | None = _setting(
        None,
        "the working scale recorded in the model file, for validation and inference "
        "(default: --magnify): a net trained at one scale may see thin structures better a "
        "little larger, as `fcnseg eval --magnify` measures",
        type=float,
        metavar="M",
    )
    hflip: bool | None = _setting(None, "random horizontal flips (paper: off, modern: on)")
    vflip: bool = _setting(
        False, "random vertical flips, for images with no up (fundus, microscopy, aerial)"
    )
    rot90: bool = _setting(
        False,
        "random quarter turns, for images with no up; with both flips, all eight orientations "
        "(needs a square --crop, or none)",
    )
    rotate: float = _setting(
        0.0,
        "random rotation by up to ±DEG degrees, interpolated, for images with no up; with "
        "--rot90, 45 reaches every angle",
        type=float,
        metavar="DEG",
    )
    jitter: float = _setting(0.0, "colour jitter strength, 0 for none", type=float, metavar="X")
    workers: int | None = _setting(
        None,
        "data loader processes (default: none when training on the CPU, whose cores the step "
        "already uses; else min(2, CPUs))",
        type=int,
        metavar="N",
    )
    keep_decoded: str = _setting(
        "auto",
        "decode the images once and keep them in memory: auto (when they take at most a "
        "quarter of the memory available), on, off",
        choices=["auto", "on", "off"],
    )
    label_map: str | dict | None = _setting(
        None,
        'mask value → class, overriding classes.json\'s "map": 255:1 (binary 0/255 masks), '
        "0:ignore,*:-1 (0 unlabelled, the rest shifted down)",
        metavar="V:C,...",
    )
    mask_pattern: str | None = _setting(
        None,
        "masks named after their image by a pattern, e.g. '{stem}_1stHO.png' (folder reader)",
        metavar="PATTERN",
    )
    categories: str | None = _setting(
        None,
        "COCO category names to train on, comma-separated, in class order (coco reader)",
        metavar="NAMES",
    )
    in_channels: int | None = _setting(
        None,
        "channels of the images: 1 grey, 4 RGB-D or RGB+NIR, any number of raster bands "
        "(folder reader; default 3, RGB)",
        type=int,
        metavar="C",
    )
    modality: str | None = _setting(
        None,
        "NYUDv2 input: rgb, rgbd (the paper's early fusion, 4 channels) or hha (nyud reader)",
        choices=["rgb", "rgbd", "hha"],
    )
    labels: str | None = _setting(
        None,
        "SIFT Flow label set: semantic, geometric, or both for the paper's two-headed net "
        "(siftflow reader)",
        choices=["semantic", "geometric", "both"],
    )
    max_pixels: int | None = _setting(
        None,
        "refuse images of more pixels than N, a decompression-bomb guard (default: "
        "Pillow's 178,956,970)",
        type=int,
        metavar="N",
    )
    skip_bad: bool = _setting(
        False,
        "check every sample first; skip and list the unreadable "
        "or inconsistent ones instead of stopping at the first",
    )
    # -- model
    model: str = _setting(
        "fcn8s", "FCN variant", choices=["fcn32s", "fcn16s", "fcn8s", "fcn4s", "fcn2s", "fcn1s"]
    )
    backbone: str = _setting(
        "vgg16",
        "vgg16, alexnet, googlenet, resnet50, efficientnet_lite0 or timm:<name>",
        metavar="NAME",
    )
    pretrained_backbone: bool | str = _setting(
        False,
        "start the backbone from ImageNet weights, or from the weight file PATH",
        nargs="?",
        const=True,
        metavar="PATH",
    )
    geometry: str = _setting("modern", "layer geometry", choices=["modern", "caffe"])
    at_once: bool = _setting(False, "train FCN-16s/8s all at once, skips scaled (PAMI §4.3)")
    init_from: str | None = _setting(
        None,
        "start from the weights of CKPT (a file or hf://OWNER/REPO) whose names and shapes "
        "match: staged training (§4.2), or fine-tuning a model of other classes, whose score "
        "layers then start afresh",
        metavar="CKPT",
    )
    class_map: str | None = _setting(
        None,
        "with --init-from a model of other classes: carry the score rows of shared classes "
        "over, by name: auto (same names), NEW=OLD,NEW=OLD, or a .json/.yaml file",
        metavar="MAP",
    )
    freeze_backbone: bool = _setting(False, "train only the score and upsampling layers")
    checkpoint_activations: bool = _setting(
        False,
        "keep only each backbone stage's output and recompute the rest in the backward "
        "pass: large images or crops in less memory, for more time per step "
        "(benchmarks/memory.py measures the trade)",
    )
    sync_bn: bool = _setting(False, "synchronise batch norm across processes (torchrun)")
    # -- optimisation
    recipe: str = _setting("modern", "defaults for the settings below", choices=["modern", "paper"])
    epochs: int = _setting(50, "epochs", type=int, metavar="N")
    val_every: int = _setting(
        1,
        "validate after every N-th epoch and after the last: scoring large validation images "
        "at full resolution takes time that --max-minutes would give to training",
        type=int,
        metavar="N",
    )
    max_minutes: float | None = _setting(
        None,
        "a time budget: after each epoch, keep only as many of --epochs as fit in M minutes "
        "of training at the pace measured, the learning rate annealing to the last of them "
        "(the same budget on a slower machine gives fewer epochs)",
        type=float,
        metavar="M",
    )
    repeat: int = _setting(
        1,
        "passes over the training set per epoch: a small set (CHASE_DB1's 16 images) is "
        "validated every N passes, not after each",
        type=int,
        metavar="N",
    )
    batch_size: int | None = _setting(
        None, "images per batch (paper: 1, modern: 8)", type=int, metavar="N"
    )
    accumulate: int = _setting(
        1, "batches whose gradients are summed per optimiser step", type=int, metavar="K"
    )
    optimizer: str | None = _setting(None, "paper: sgd, modern: adamw", choices=["sgd", "adamw"])
    lr: float | None = _setting(None, "learning rate of the new layers", type=float)
    momentum: float | None = _setting(
        None, "SGD momentum or AdamW β1 (paper: 0.99, else 0.9)", type=float, metavar="M"
    )
    weight_decay: float | None = _setting(
        None, "paper: 5e-4, modern: 1e-4", type=float, metavar="WD"
    )
    backbone_lr_mult: float | None = _setting(
        None,
        "backbone learning rate ÷ lr (modern: 0.1 if pretrained, else 1)",
        type=float,
        metavar="X",
    )
    bias_lr_mult: float | None = _setting(
        None, "bias learning rate ÷ lr (paper: 2, modern: 1)", type=float, metavar="X"
    )
    schedule: str | None = _setting(
        None, "learning-rate schedule (paper: constant, modern: poly)", choices=["constant", "poly"]
    )
    poly_power: float = _setting(0.9, "exponent of the poly decay", type=float, metavar="P")
    warmup_steps: int | None = _setting(
        None, "linear warm-up steps (modern: 5%% of training, at most 1000)", type=int, metavar="N"
    )
    ema: float | None = _setting(
        None,
        "keep an exponential moving average of the weights, this much of it kept at each "
        "step (0.998 averages over about the last 500 steps): validation, best.safetensors "
        "and the log score the average, which smooths the last steps' noise",
        type=float,
        metavar="DECAY",
    )
    # -- loss
    reduction: str | None = _setting(
        None, "per-pixel losses summed (paper) or averaged", choices=["sum", "mean"]
    )
    class_weights: str | tuple[float, ...] | None = _setting(
        None, "'median-frequency' or one comma-separated weight per class", metavar="WEIGHTS"
    )
    loss: str = _setting(
        "ce",
        "the loss: ce (the paper's), dice, focal, lovasz, or a weighted sum such as ce+dice "
        "or ce+0.5*lovasz (dice, focal: pip install 'fcnseg[losses]')",
        metavar="SPEC",
    )
    loss_sampling: float = _setting(
        1.0, "keep each pixel's loss with probability P (§3.4)", type=float, metavar="P"
    )
    # -- machinery
    out: str = _setting(
        "runs/fcn", "run directory for checkpoints, logs and plots", metavar="RUN_DIR"
    )
    logger: str = _setting(
        "csv",
        "where the epochs are logged besides RUN_DIR/metrics.jsonl (csv): tensorboard writes "
        "RUN_DIR/tensorboard (scores, per-class IU, validation images, confusion matrix)",
        choices=["csv", "tensorboard"],
    )
    resume: bool = _setting(False, "continue from RUN_DIR/last.safetensors")
    overwrite: bool = _setting(
        False, "start afresh in a RUN_DIR that holds another run, replacing its files"
    )
    checkpoint_every: int = _setting(
        0, "also checkpoint every N optimiser steps (0: epochs only)", type=int, metavar="N"
    )
    val_batch_size: int = _setting(
        1, "images per validation batch, padded with the ignore label", type=int, metavar="N"
    )
    device: str = _setting("auto", "where to train", choices=["auto", "cpu", "cuda"])
    amp: str = _setting(
        "auto",
        "mixed precision: auto (bf16 tried where the device computes it natively, kept only if "
        "measured faster), off, bf16, fp16",
        choices=["auto", "off", "bf16", "fp16"],
    )
    channels_last: bool = _setting(
        False, "NHWC memory layout (faster convolutions on many devices)"
    )
    compile: str = _setting(
        "auto",
        "torch.compile the training step: auto (tried when the run is long enough to repay "
        "it, kept only if measured faster), on, off",
        choices=["auto", "on", "off"],
    )
    deterministic: bool = _setting(False, "deterministic algorithms, for bit-exact reruns")
    seed: int = _setting(
        0, "seed of initialisation, sampling and augmentation", type=int, metavar="N"
    )

    # ------------------------------------------------------------------ recipes

    def resolved(self) -> TrainConfig:
        """A copy with every recipe-dependent setting filled in, after checking all values."""
        c = replace(self)
        c._check()
        paper = c.recipe == "paper"
        c.reduction = c.reduction or ("sum" if paper else "mean")
        c.optimizer = c.optimizer or ("sgd" if paper else "adamw")
        if c.lr is None:
            c.lr = (1e-10 if c.reduction == "sum" else 1e-4) if paper else 1e-3
        if c.momentum is None:
            c.momentum = 0.99 if paper else 0.9
        if c.weight_decay is None:
            c.weight_decay = 5e-4 if paper else 1e-4
        if c.backbone_lr_mult is None:
            c.backbone_lr_mult = 0.1 if not paper and c.pretrained_backbone else 1.0
        if c.bias_lr_mult is None:
            c.bias_lr_mult = 2.0 if paper else 1.0
        c.schedule = c.schedule or ("constant" if paper else "poly")
        c.batch_size = c.batch_size or (1 if paper else 8)
        c.scale = tuple(c.scale) if c.scale else ((1.0, 1.0) if paper else (0.5, 2.0))
        c.hflip = (not paper) if c.hflip is None else c.hflip
        c.crop = tuple(c.crop) if c.crop else None
        if c.workers is None:
            # On the CPU the step's threads take every core and a parallel step waits for its
            # slowest thread, so loader processes slow it more than they save (CamVid recipe,
            # 2 cores, images kept decoded: 5.18 images/s without workers, 3.81 with two).
            # Beside a GPU the main process mostly waits for the device and workers overlap.
            on_cpu = c.device == "cpu" or (c.device == "auto" and not torch.cuda.is_available())
            c.workers = 0 if on_cpu else min(2, os.cpu_count() or 1)
        return c

    def _check(self) -> None:
        """Every setting's type and range (:mod:`.checks`), its choices, and the dataset."""
        for f in fields(self):
            choices = f.metadata["cli"].get("choices")
            value = getattr(self, f.name)
            if isinstance(value, bool) and choices and "off" in choices:
                value = "on" if value else "off"  # YAML 1.1 reads a bare on/off as a boolean
            value = check_setting(f.name, str(f.type), value)
            if choices and value is not None and value not in choices:
                raise ConfigError(
                    f"--{f.name.replace('_', '-')} ({f.name}): must be one of "
                    f"{', '.join(choices)}, not {value!r}"
                )
            setattr(self, f.name, value)
        if self.rot90 and self.crop and self.crop[0] != self.crop[1]:
            raise ConfigError(
                f"--rot90: a quarter turn swaps height and width, so it needs a square --crop, "
                f"not {self.crop[0]} {self.crop[1]}; give --crop {max(self.crop)} "
                f"{max(self.crop)} or drop --rot90"
            )
        if self.class_map and not self.init_from:
            raise ConfigError(
                "--class-map: maps the classes of an --init-from model; give --init-from CKPT"
            )
        if not self.dataset or not self.root:
            raise ConfigError(
                "no dataset given; pass --dataset NAME --root DIR "
                "(or set dataset and root in the config file)"
            )

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict[str, Any]:
        """Plain values (tuples as lists), as written to ``config.yaml``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "settings") -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise FcnsegError(
                f"{source}: unknown setting(s) {', '.join(unknown)}; "
                "see `fcnseg train --help` for the names (with _ for -)"
            )
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """Settings from a YAML mapping of setting names (``batch_size: 4``) to values."""
        return cls.from_dict(cls.read_yaml(path), source=str(path))

    @classmethod
    def read_yaml(cls, path: str | Path) -> dict[str, Any]:
        """The settings a YAML file sets, by name, unknown names refused."""
        path = Path(path)
        if not path.is_file():
            raise FcnsegError(f"{path}: no such config file; check the path")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise FcnsegError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(values, dict):
            raise FcnsegError(f"{path}: expected a mapping of setting names to values")
        values = {str(k).replace("-", "_"): v for k, v in values.items()}
        cls.from_dict(values, source=str(path))  # refuses unknown names
        return values


# The first setting of each section of --help.
SECTIONS = {
    "dataset": "data",
    "model": "model",
    "recipe": "optimisation",
    "reduction": "loss",
    "out": "run",
}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per :class:`TrainConfig` setting, absent from the namespace unless given,
    so that flags override a ``--config`` file and nothing else does."""
    group: Any = parser
    for f in fields(TrainConfig):
        if f.name in SECTIONS:
            group = parser.add_argument_group(SECTIONS[f.name])
        flag = "--" + f.name.replace("_", "-")
        options = {
            "dest": f.name,
            "default": argparse.SUPPRESS,
            "help": f.metadata["help"],
            **f.metadata["cli"],
        }
        if isinstance(f.default, bool) and "nargs" not in options or f.name == "hflip":
            options["action"] = argparse.BooleanOptionalAction
        group.add_argument(flag, **options)

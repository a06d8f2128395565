"""The optimiser and the learning-rate schedule (paper §4.3): SGD with momentum as the reference
solvers, or AdamW; biases at their own rate without decay; a constant or poly schedule."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..models import FCN
from .config import TrainConfig

__all__ = ["build_optimizer", "lr_factor", "param_groups"]


def param_groups(model: FCN, config: TrainConfig) -> list[dict]:
    """The parameters in groups by learning rate and decay.

    Backbone parameters learn at ``backbone_lr_mult`` times the rate of the new layers (score
    layers and learned upsamplings). As in the reference solvers, biases learn at
    ``bias_lr_mult`` times the rate and without weight decay; other one-dimensional
    parameters (normalisation scales) are not decayed either.
    """
    groups: dict[tuple[bool, str], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        kind = "bias" if name.endswith("bias") else "norm" if p.ndim <= 1 else "weight"
        groups.setdefault((name.startswith("backbone."), kind), []).append(p)
    out = []
    for (in_backbone, kind), params in sorted(groups.items()):
        lr = config.lr * (config.backbone_lr_mult if in_backbone else 1.0)
        out.append(
            {
                "params": params,
                "lr": lr * (config.bias_lr_mult if kind == "bias" else 1.0),
                "weight_decay": config.weight_decay if kind == "weight" else 0.0,
                "name": f"{'backbone' if in_backbone else 'head'}.{kind}",
            }
        )
    return out


def build_optimizer(model: FCN, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum (the paper's) or AdamW, over :func:`param_groups`."""
    groups = param_groups(model, config)
    if not groups:
        raise ValueError("no parameter to train")
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    return torch.optim.AdamW(groups, lr=config.lr, betas=(config.momentum, 0.999))


def lr_factor(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """The multiplier of every group's learning rate at optimiser step ``step``.

    ``constant`` is the paper's fixed rate. ``poly`` is ``(1 − step/total)^power`` after a
    linear warm-up, which keeps the first updates small while the zero-initialised score
    layers (§4.2) and the adaptive moments settle.
    """
    warmup = config.warmup_steps
    if warmup is None:
        warmup = 0 if config.schedule == "constant" else min(1000, total_steps // 20)
    power = config.poly_power

    def factor(step: int) -> float:
        ramp = (step + 1) / warmup if step < warmup else 1.0
        if config.schedule == "constant":
            return ramp
        return ramp * max(0.0, 1 - step / max(total_steps, 1)) ** power

    return factor

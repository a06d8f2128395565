"""The loss, the optimiser and the learning-rate schedule (paper §3.4, §4.3).

The loss is the per-pixel multinomial logistic loss, summed (the paper's) or averaged over the
pixels that count: the dataset's ignore label never does (§4.3, the ambiguous VOC borders).
*Loss sampling* (§3.4) keeps each pixel's term with probability ``p`` — the fully convolutional
equivalent of patchwise training, which samples the loss's spatial terms. Both reductions stay
on the scale of the whole-image loss: the sum is divided by ``p`` (an unbiased estimate of the
full sum, so the paper's learning rate keeps its meaning) and the mean runs over the kept
pixels only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import TrainConfig
from .models import FCN

__all__ = ["SegmentationLoss", "build_optimizer", "lr_factor", "param_groups"]


class SegmentationLoss(nn.Module):
    """Per-pixel cross-entropy with an ignore label, class weights and loss sampling.

    Args:
        ignore_index: label of pixels that never count.
        reduction: ``"sum"`` of the pixels' losses, or ``"mean"``: their weighted mean,
            ``Σ w_y ℓ / Σ w_y`` over the counted pixels (PyTorch's convention for weights).
        weight: one loss weight per class, or ``None``.
        sampling: probability ``p`` of keeping each pixel's loss term (§3.4).
    """

    def __init__(self, *, ignore_index: int, reduction: str = "mean",
                 weight: Tensor | None = None, sampling: float = 1.0) -> None:
        super().__init__()
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', not {reduction!r}")
        if not 0 < sampling <= 1:
            raise ValueError(f"sampling must lie in (0, 1], not {sampling}")
        self.ignore_index, self.reduction, self.sampling = ignore_index, reduction, sampling
        self.register_buffer("weight", weight.float() if weight is not None else None)

    def forward(self, logits: Tensor, target: Tensor,
                generator: torch.Generator | None = None) -> Tensor:
        """The loss of N×C×H×W ``logits`` against N×H×W ``target``; ``generator`` draws the
        sampled pixels."""
        logits = logits.float()  # the loss in full precision, whatever the autocast
        losses = F.cross_entropy(logits, target, weight=self.weight,
                                 ignore_index=self.ignore_index, reduction="none")
        counted = target != self.ignore_index
        if self.sampling < 1:
            draw = torch.rand(target.shape, generator=generator, device="cpu")
            counted &= (draw < self.sampling).to(target.device)
        losses = losses * counted
        if self.reduction == "sum":
            return losses.sum() / self.sampling
        safe = torch.where(counted, target, 0)
        weights = self.weight[safe] if self.weight is not None else torch.ones_like(losses)
        # An all-ignored batch gives zero loss (and zero gradient), not 0/0.
        return losses.sum() / (weights * counted).sum().clamp(min=torch.finfo(losses.dtype).tiny)


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
        out.append({
            "params": params,
            "lr": lr * (config.bias_lr_mult if kind == "bias" else 1.0),
            "weight_decay": config.weight_decay if kind == "weight" else 0.0,
            "name": f"{'backbone' if in_backbone else 'head'}.{kind}",
        })
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

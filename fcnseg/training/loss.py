"""The loss (paper §3.4, §4.3), and losses for imbalance and overlap beside it.

The loss is the per-pixel multinomial logistic loss, summed (the paper's) or averaged over the
pixels that count: the dataset's ignore label never does (§4.3, the ambiguous VOC borders).
*Loss sampling* (§3.4) keeps each pixel's term with probability ``p`` — the fully convolutional
equivalent of patchwise training, which samples the loss's spatial terms. Both reductions stay
on the scale of the whole-image loss: the sum is divided by ``p`` (an unbiased estimate of the
full sum, so the paper's learning rate keeps its meaning) and the mean runs over the kept
pixels only.

For thin structures and small classes, ``--loss`` also takes Dice, focal and Lovász-softmax,
alone or summed with the cross-entropy (``ce+dice``, ``ce+0.5*lovasz``). Dice and focal come
from ``segmentation_models_pytorch.losses`` (the ``losses`` extra); Lovász-softmax is written
here (:class:`LovaszSoftmax`, the reason is there). The same ignore label applies
to every term; class weights to the terms that have them (cross-entropy, Dice, focal); loss
sampling to all, by ignoring the pixels not drawn.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import Registry

__all__ = [
    "LOSSES",
    "HeadsLoss",
    "LovaszSoftmax",
    "SegmentationLoss",
    "SumLoss",
    "build_loss",
    "parse_loss",
]


class SegmentationLoss(nn.Module):
    """Per-pixel cross-entropy with an ignore label, class weights and loss sampling.

    Args:
        ignore_index: label of pixels that never count.
        reduction: ``"sum"`` of the pixels' losses, or ``"mean"``: their weighted mean,
            ``Σ w_y ℓ / Σ w_y`` over the counted pixels (PyTorch's convention for weights).
        weight: one loss weight per class, or ``None``.
        sampling: probability ``p`` of keeping each pixel's loss term (§3.4).
    """

    def __init__(
        self,
        *,
        ignore_index: int,
        reduction: str = "mean",
        weight: Tensor | None = None,
        sampling: float = 1.0,
    ) -> None:
        super().__init__()
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', not {reduction!r}")
        if not 0 < sampling <= 1:
            raise ValueError(f"sampling must lie in (0, 1], not {sampling}")
        self.ignore_index, self.reduction, self.sampling = ignore_index, reduction, sampling
        self.register_buffer("weight", weight.float() if weight is not None else None)

    def forward(
        self, logits: Tensor, target: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """The loss of N×C×H×W ``logits`` against N×H×W ``target``; ``generator`` draws the
        sampled pixels."""
        logits = logits.float()  # the loss in full precision, whatever the autocast
        losses = F.cross_entropy(
            logits, target, weight=self.weight, ignore_index=self.ignore_index, reduction="none"
        )
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


class HeadsLoss(nn.Module):
    """The loss of a net of several heads: each head's loss on its own label set, summed, as
    the paper trains its two-headed SIFT Flow net (§5)."""

    def __init__(self, losses: list[tuple[slice, nn.Module]]) -> None:
        super().__init__()
        self.parts = [part for part, _ in losses]
        self.losses = nn.ModuleList(loss for _, loss in losses)

    def forward(
        self, logits: Tensor, target: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """The summed loss of N×C×H×W ``logits`` against N×K×H×W ``target`` (K heads)."""
        return sum(
            (
                loss(logits[:, part], target[:, k], generator)
                for k, (part, loss) in enumerate(zip(self.parts, self.losses, strict=True))
            ),
            start=logits.new_zeros(()),
        )


#: Loss terms by name: ``term(ignore_index, weight) -> module(logits, target)``, means over
#: the pixels that count. ``ce`` is built by :func:`build_loss` itself, with its reductions.
LOSSES: Registry[Callable[[int, Tensor | None], nn.Module]] = Registry("loss", error=ConfigError)


def _smp() -> Any:
    try:
        import segmentation_models_pytorch.losses as losses
    except ImportError:
        raise ConfigError(
            "the Dice and focal losses come from segmentation_models_pytorch: "
            "pip install 'fcnseg[losses]'"
        ) from None
    return losses


def _weights(weight: Tensor | None) -> list[float] | None:
    return None if weight is None else weight.tolist()


@LOSSES.register("dice")
def dice(ignore_index: int, weight: Tensor | None) -> nn.Module:
    """1 − soft Dice per class over the batch; classes absent from the batch's truth add 0,
    and the sum is divided by the number of classes (smp's convention)."""
    return _smp().DiceLoss("multiclass", ignore_index=ignore_index, class_weights=_weights(weight))


@LOSSES.register("focal")
def focal(ignore_index: int, weight: Tensor | None) -> nn.Module:
    """Focal loss (γ = 2): cross-entropy down-weighted where the net is already sure."""
    return _smp().FocalLoss("multiclass", ignore_index=ignore_index, class_weights=_weights(weight))


class LovaszSoftmax(nn.Module):
    """Lovász-softmax (Berman et al., CVPR 2018): a convex surrogate of 1 − IU, per class
    present in the batch's truth, averaged over them; the whole batch's pixels pooled.

    For each class the pixels' errors ``|[y = c] − p_c|`` are sorted in decreasing order and
    dotted with the increments of the Jaccard loss along that order (their Alg. 1). Written
    here, not taken from segmentation_models_pytorch, for two measured reasons. Speed: on the
    CamVid recipe's batches (8 × 288×384, 11 classes, 2 cores) smp's loss took 1.6 s forward
    and backward, this one 0.47 s (medians of five, interleaved). Precision: smp takes each
    increment as the difference of two Jaccard losses near 1, which cancels most of a
    float32's digits; its gradients were 1.2% off a float64 evaluation (relative L1), these
    0.003%.
    """

    def __init__(self, ignore_index: int) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        classes = logits.shape[1]
        # C×P: one row per class over the batch's pixels, in the order of target's.
        probs = logits.float().softmax(1).transpose(0, 1).reshape(classes, -1)
        labels = target.reshape(-1)
        counted = labels != self.ignore_index
        present = torch.bincount(labels[counted], minlength=classes).nonzero().squeeze(1)
        if not len(present):  # nothing counts: zero loss and zero gradient
            return logits.sum() * 0.0
        if len(present) < classes:
            probs = probs[present]
        return _Lovasz.apply(probs, labels == present[:, None], counted)


#: Errors in [0, 1] are sorted as multiples of 1/_LEVELS, int16 keys: PyTorch sorts 1-D integer
#: tensors by a parallel radix sort whose passes follow the key's width, and two passes took
#: 0.08 s a CamVid batch against 0.25 s for the four of a float's bits (0.88 s as floats).
#: Errors closer than 1/_LEVELS may come in either order; the loss then moves by at most
#: 1/_LEVELS (its Lipschitz constant in the largest error is the Jaccard loss of all, ≤ 1).
_LEVELS = 32766


class _Lovasz(torch.autograd.Function):
    """The loss of K×P ``probs`` given K×P ``truth`` (the class of each row), ``counted``
    pixels only; its gradient written out, so that autograd keeps no sorted copies."""

    @staticmethod
    def forward(ctx: Any, probs: Tensor, truth: Tensor, counted: Tensor) -> Tensor:
        errors = torch.where(truth, 1 - probs, probs)
        keys = (_LEVELS - (errors * _LEVELS).round_()).to(torch.int16)  # largest error first
        keys.masked_fill_(~counted, _LEVELS + 1)  # uncounted pixels last, after every error
        order = torch.empty(keys.shape, dtype=torch.int64)
        sorted_keys = torch.empty_like(keys[0])
        for row, row_order in zip(keys, order, strict=True):
            torch.sort(row, stable=True, out=(sorted_keys, row_order))
        increments = _jaccard_increments(truth.gather(1, order))
        slopes = torch.empty_like(errors).scatter_(1, order, increments).mul_(counted)
        ctx.save_for_backward(slopes, truth)
        return (errors * slopes).sum() / len(truth)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        slopes, truth = ctx.saved_tensors
        slopes = slopes * (grad / len(truth))
        return torch.where(truth, -slopes, slopes), None, None


def _jaccard_increments(truth: Tensor) -> Tensor:
    """J(i) − J(i−1) along each row of sorted ``truth``, J(i) the Jaccard loss when the first
    i pixels are predicted as the row's class, in closed form: with g truth pixels, h of them
    among the first i and u = g + i − h the union, J(i) = i/u, so the increment is 1/u at a
    truth pixel and (g − h)/(u(u − 1)) at any other; no difference of nearby numbers."""
    # Counts of 0/1 stay exact in float32 up to 2^24 pixels a batch, in float64 beyond.
    dtype = torch.float32 if truth.shape[1] <= 2**24 else torch.float64
    hits = truth.to(dtype).cumsum(1)
    positives = hits[:, -1:]
    union = torch.arange(1, truth.shape[1] + 1, dtype=dtype).sub(hits).add_(positives)
    # At a truth pixel u − 1 may be 0; that branch is not taken there.
    other = (positives - hits).div_((union - 1).clamp_(min=1))
    return torch.where(truth, 1.0, other).div_(union).float()


@LOSSES.register("lovasz")
def lovasz(ignore_index: int, weight: Tensor | None) -> nn.Module:
    """Lovász-softmax: a convex surrogate of the IU itself, over the batch."""
    if weight is not None:
        raise ConfigError("the Lovász loss takes no class weights; drop --class-weights")
    return LovaszSoftmax(ignore_index)


@LOSSES.register("ce")
def ce(ignore_index: int, weight: Tensor | None) -> nn.Module:
    """The paper's per-pixel cross-entropy, as a mean (its sum is :func:`build_loss`'s)."""
    return SegmentationLoss(ignore_index=ignore_index, weight=weight)


_TERM = re.compile(r"(?:(\d+(?:\.\d*)?|\.\d+)\*)?([a-z]+)")


def parse_loss(spec: str) -> list[tuple[float, str]]:
    """``"ce+0.5*dice"`` → ``[(1.0, "ce"), (0.5, "dice")]``, or one line on what is wrong."""
    terms = []
    for part in str(spec).replace(" ", "").split("+"):
        match = _TERM.fullmatch(part)
        if not match or match.group(2) not in LOSSES:
            raise ConfigError(
                f"--loss {spec!r}: {part!r} is not a loss term; use {', '.join(LOSSES.names())} "
                "or a sum such as ce+dice or ce+0.5*lovasz"
            )
        terms.append((float(match.group(1) or 1.0), match.group(2)))
    if len({name for _, name in terms}) != len(terms):
        raise ConfigError(f"--loss {spec!r}: a term appears twice; give it one weight")
    return terms


class SumLoss(nn.Module):
    """A weighted sum of loss terms over the same pixels: loss sampling (§3.4) draws the
    pixels once and the terms ignore the others."""

    def __init__(
        self, terms: list[tuple[float, nn.Module]], *, ignore_index: int, sampling: float = 1.0
    ) -> None:
        super().__init__()
        self.weights = [w for w, _ in terms]
        self.terms = nn.ModuleList(term for _, term in terms)
        self.ignore_index, self.sampling = ignore_index, sampling

    def forward(
        self, logits: Tensor, target: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        logits = logits.float()
        if self.sampling < 1:
            draw = torch.rand(target.shape, generator=generator, device="cpu")
            kept = (draw < self.sampling).to(target.device)
            target = torch.where(kept, target, self.ignore_index)
        return sum(
            (w * term(logits, target) for w, term in zip(self.weights, self.terms, strict=True)),
            start=logits.new_zeros(()),
        )


def build_loss(
    spec: str,
    *,
    ignore_index: int,
    reduction: str = "mean",
    weight: Tensor | None = None,
    sampling: float = 1.0,
) -> nn.Module:
    """The loss ``spec`` names (:func:`parse_loss`): the paper's cross-entropy alone, or a
    weighted sum of terms, each a mean over the pixels that count."""
    terms = parse_loss(spec)
    if terms == [(1.0, "ce")]:
        return SegmentationLoss(
            ignore_index=ignore_index, reduction=reduction, weight=weight, sampling=sampling
        )
    if reduction != "mean":
        raise ConfigError(
            f"--loss {spec}: Dice, focal and Lovász are means over the pixels; use "
            "--reduction mean (the paper recipe sums the cross-entropy alone)"
        )
    built = [(w, LOSSES[name](ignore_index, weight)) for w, name in terms]
    return SumLoss(built, ignore_index=ignore_index, sampling=sampling)

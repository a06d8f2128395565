"""The loss (paper §3.4, §4.3).

The loss is the per-pixel multinomial logistic loss, summed (the paper's) or averaged over the
pixels that count: the dataset's ignore label never does (§4.3, the ambiguous VOC borders).
*Loss sampling* (§3.4) keeps each pixel's term with probability ``p`` — the fully convolutional
equivalent of patchwise training, which samples the loss's spatial terms. Both reductions stay
on the scale of the whole-image loss: the sum is divided by ``p`` (an unbiased estimate of the
full sum, so the paper's learning rate keeps its meaning) and the mean runs over the kept
pixels only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["HeadsLoss", "SegmentationLoss"]


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

    def __init__(self, losses: list[tuple[slice, SegmentationLoss]]) -> None:
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

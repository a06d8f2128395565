"""Losses for imbalance and overlap (``--loss``): Dice, focal (segmentation_models_pytorch's)
and Lovász-softmax (ours, checked against theirs) summed with the paper's cross-entropy, over
the same counted pixels, and refused where they cannot apply."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fcnseg.errors import ConfigError
from fcnseg.training.loss import LovaszSoftmax, SegmentationLoss, build_loss, parse_loss

pytest.importorskip("segmentation_models_pytorch", reason="the losses extra")


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 9, 11, generator=generator)
    target = torch.randint(0, 3, (2, 9, 11), generator=generator)
    target[0, :2] = 255
    return logits, target


def soft_dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − Dice per class over the batch (counted pixels only), averaged over the classes
    present: the definition, written out."""
    probs = logits.softmax(1)
    counted = target != 255
    losses = []
    for c in range(logits.shape[1]):
        p = probs[:, c][counted]
        g = (target[counted] == c).float()
        if g.sum() > 0:
            losses.append(1 - 2 * (p * g).sum() / (p.sum() + g.sum()))
    return torch.stack(losses).sum() / logits.shape[1]


def test_parse_loss() -> None:
    assert parse_loss("ce") == [(1.0, "ce")]
    assert parse_loss("ce + 0.5*dice") == [(1.0, "ce"), (0.5, "dice")]
    for bad, words in (("dice+dice", "twice"), ("ce+hinge", "not a loss term"), ("2*", "not")):
        with pytest.raises(ConfigError, match=words):
            parse_loss(bad)


def test_ce_alone_is_the_papers_loss() -> None:
    assert type(build_loss("ce", ignore_index=255)) is SegmentationLoss


def test_ce_plus_dice_is_their_sum_over_the_counted_pixels() -> None:
    logits, target = _batch()
    loss = build_loss("ce+0.5*dice", ignore_index=255)(logits, target)
    expected = F.cross_entropy(logits, target, ignore_index=255) + 0.5 * soft_dice(logits, target)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize(
    ("absent", "size"), [(False, (17, 13)), (True, (17, 13)), (True, (96, 128))]
)
def test_lovasz_equals_segmentation_models_pytorch(absent: bool, size: tuple[int, int]) -> None:
    """Values and gradients of our radix-sorted loss equal smp's float sorts, a class absent
    from the truth included (it counts in neither). The larger size gives over 32768 pixels a
    class, where PyTorch sorts integers by its parallel radix sort."""
    from segmentation_models_pytorch.losses import LovaszLoss

    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 5, *size, generator=generator)
    target = torch.randint(0, 4 if absent else 5, (3, *size), generator=generator)
    target[1, 3:9] = 255
    grads = []
    for loss in (LovaszSoftmax(255), LovaszLoss("multiclass", ignore_index=255)):
        x = logits.clone().requires_grad_()
        value = loss(x, target)
        value.backward()
        grads.append((value.detach(), x.grad))
    (ours, our_grad), (theirs, their_grad) = grads
    # Sums of float32 terms of size ≤ 1, in other orders: a few units in the last place.
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(our_grad, their_grad, rtol=1e-5, atol=1e-6)


def test_lovasz_of_nothing_counted_is_zero_with_zero_gradient() -> None:
    x = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss = LovaszSoftmax(255)(x, torch.full((1, 4, 4), 255))
    loss.backward()
    assert loss.item() == 0 and x.grad.abs().max() == 0


def test_loss_sampling_ignores_the_pixels_not_drawn() -> None:
    logits, target = _batch(1)
    sampled = build_loss("dice+lovasz", ignore_index=255, sampling=0.5)
    loss = sampled(logits, target, torch.Generator().manual_seed(3))
    kept = torch.rand(target.shape, generator=torch.Generator().manual_seed(3)) < 0.5
    full = build_loss("dice+lovasz", ignore_index=255)
    assert loss.item() == pytest.approx(full(logits, torch.where(kept, target, 255)).item())


def test_every_term_has_a_gradient_and_ignores_the_ignored() -> None:
    logits, target = _batch(2)
    for spec in ("dice", "focal", "lovasz", "ce+dice"):
        x = logits.clone().requires_grad_()
        build_loss(spec, ignore_index=255)(x, target).backward()
        assert x.grad.abs().sum() > 0
        assert x.grad[0, :, :2].abs().max() == 0  # the ignored rows


def test_impossible_combinations_are_one_line() -> None:
    with pytest.raises(ConfigError, match="no class weights"):
        build_loss("ce+lovasz", ignore_index=255, weight=torch.ones(3))
    with pytest.raises(ConfigError, match="--reduction mean"):
        build_loss("ce+dice", ignore_index=255, reduction="sum")

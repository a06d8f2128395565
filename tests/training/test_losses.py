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


def lovasz64(logits: torch.Tensor, target: torch.Tensor, levels: int = 0) -> torch.Tensor:
    """Lovász-softmax in float64 as Berman et al.'s Alg. 1 writes it: per class present, the
    errors sorted in decreasing order dotted with the Jaccard loss's differences. With
    ``levels``, the order is that of the float32 errors rounded to multiples of 1/levels."""
    classes = logits.shape[1]
    labels = target.reshape(-1)
    counted = labels != 255
    probs = logits.double().softmax(1).transpose(0, 1).reshape(classes, -1)[:, counted]
    probs32 = logits.detach().softmax(1).transpose(0, 1).reshape(classes, -1)[:, counted]
    labels = labels[counted]
    losses = []
    for c in labels.unique():
        truth = labels == c
        errors = torch.where(truth, 1 - probs[c], probs[c])
        keys = torch.where(truth, 1 - probs32[c], probs32[c]) if levels else errors
        order = (-(keys * levels).round() if levels else -keys).sort(stable=True).indices
        errors, truth = errors[order], truth[order].double()
        jaccard = 1 - (truth.sum() - truth.cumsum(0)) / (truth.sum() + (1 - truth).cumsum(0))
        losses.append((errors * torch.cat([jaccard[:1], jaccard.diff()])).sum())
    return torch.stack(losses).mean()


@pytest.mark.parametrize(
    ("absent", "size"), [(False, (17, 13)), (True, (17, 13)), (True, (96, 128))]
)
def test_lovasz_equals_its_definition(absent: bool, size: tuple[int, int]) -> None:
    """Value and gradient equal Alg. 1 in float64 and smp's value, a class absent from the
    truth included (it counts in neither). The larger size gives over 32768 pixels a class,
    where PyTorch sorts the integer keys by its parallel radix sort."""
    from segmentation_models_pytorch.losses import LovaszLoss

    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 5, *size, generator=generator)
    target = torch.randint(0, 4 if absent else 5, (3, *size), generator=generator)
    target[1, 3:9] = 255
    x, x64 = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    ours = LovaszSoftmax(255)(x, target)
    ours.backward()
    # Errors are sorted to 1/32766: the value moves by at most that (its Lipschitz constant
    # is the Jaccard loss of all pixels, ≤ 1); float32 sums of terms ≤ 1 add a few ulps.
    exact = lovasz64(logits, target)
    torch.testing.assert_close(ours.double(), exact, rtol=0, atol=1 / 32766 + 1e-6)
    theirs = LovaszLoss("multiclass", ignore_index=255)(logits, target)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1 / 32766 + 1e-6)
    # In the same order, the slopes in closed form agree with float64 to a few ulps, and so
    # does the softmax's backward, up to its cancellation near the largest gradients.
    same_order = lovasz64(x64, target, levels=32766)
    same_order.backward()
    torch.testing.assert_close(ours.double(), same_order, rtol=1e-5, atol=1e-6)
    scale = x64.grad.abs().max().item()
    torch.testing.assert_close(x.grad, x64.grad, rtol=1e-4, atol=1e-6 * scale)


def test_lovasz_gradients_are_closer_to_exact_than_smps() -> None:
    """The reason it is written here: smp differences nearby Jaccard losses in float32."""
    from segmentation_models_pytorch.losses import LovaszLoss

    generator = torch.Generator().manual_seed(5)
    logits = 3 * torch.randn(2, 4, 96, 128, generator=generator)
    target = torch.randint(0, 4, (2, 96, 128), generator=generator)
    grads = []
    for loss in (LovaszSoftmax(255), LovaszLoss("multiclass", ignore_index=255), lovasz64):
        x = logits.clone().requires_grad_()
        loss(x.double() if loss is lovasz64 else x, target).backward()
        grads.append(x.grad)
    ours, smp, exact = grads
    assert (ours - exact).abs().sum() < (smp - exact).abs().sum() / 10


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

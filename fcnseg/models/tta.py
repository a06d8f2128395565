"""Test-time augmentation: a model's class probabilities averaged over horizontal flips and
several scales, the image resized to each scale and the probabilities resized back; and the
same resizing for a model with a working scale (``ModelMeta.magnify``), which sees every image
enlarged, in training and at inference.

Probabilities, not scores, are averaged (a confident view should not be outvoted by the
scale of another's logits), each head's on its own. The result is returned as log
probabilities, so that whatever reads scores (an argmax, a softmax) reads it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError

__all__ = ["TTA_SCALES", "tta_scales", "tta_scores", "viewed_scores", "views"]

# The scales ``tta=True`` averages over, each with and without a horizontal flip.
TTA_SCALES = (0.75, 1.0, 1.25)


def tta_scales(tta: bool | Sequence[float] | None) -> tuple[float, ...] | None:
    """The scales a ``tta`` setting names: ``True`` for :data:`TTA_SCALES`, a list of
    positive factors, or ``False``/``None`` for none (no augmentation)."""
    if tta is None or tta is False:
        return None
    if tta is True:
        return TTA_SCALES
    try:
        scales = tuple(float(s) for s in tta)
    except (TypeError, ValueError):
        scales = ()
    if not scales or not all(0.1 <= s <= 4 for s in scales):
        raise ConfigError(f"tta must be True or a list of scales in 0.1–4, not {tta!r}")
    return scales


def views(tta: tuple[float, ...] | None, magnify: float) -> tuple[tuple[float, ...], bool] | None:
    """The scales an image is scored at, and whether each also flipped, for :func:`tta_scores`:
    the TTA scales times the model's working scale, flipped; the working scale alone, not
    flipped, without TTA; ``None`` when the image is scored as it is."""
    if tta is None:
        return None if magnify == 1 else ((magnify,), False)
    return tuple(scale * magnify for scale in tta), True


def tta_scores(
    score: Callable[[Tensor], Tensor],
    images: Tensor,
    *,
    scales: Sequence[float],
    parts: Sequence[slice],
    flips: bool = True,
) -> Tensor:
    """Log of the class probabilities of ``images`` (N×C×H×W) averaged over ``scales`` × {as
    is, flipped} (as is only, without ``flips``); ``score(x)`` gives the N×K×h×w scores of a
    batch ``x`` at its own size, and ``parts`` are the heads' channels of them."""
    height, width = images.shape[-2:]
    total: Tensor | None = None
    orientations = (False, True) if flips else (False,)
    for scale in scales:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        x = images
        if size != (height, width):
            # Resized in float, not rounded back: resizing commutes with the per-channel
            # normalisation, so raw and normalised images give the same views.
            x = F.interpolate(images.float(), size=size, mode="bilinear", antialias=scale < 1)
        for flip in orientations:
            view = x.flip(-1) if flip else x
            scores = score(view).float()
            probs = torch.cat([scores[:, part].softmax(1) for part in parts], 1)
            if flip:
                probs = probs.flip(-1)
            if probs.shape[-2:] != (height, width):
                probs = F.interpolate(probs, size=(height, width), mode="bilinear")
            total = probs if total is None else total + probs
    assert total is not None
    return (total / (len(orientations) * len(scales))).clamp_min(1e-12).log()


def viewed_scores(
    score: Callable[[Tensor], Tensor],
    images: Tensor,
    *,
    tta: tuple[float, ...] | None,
    magnify: float,
    parts: Sequence[slice],
) -> Tensor:
    """The scores of ``images`` as a model of working scale ``magnify`` gives them under
    ``tta``: ``score(images)`` itself when neither applies, else :func:`tta_scores` of the
    :func:`views`."""
    plan = views(tta, magnify)
    if plan is None:
        return score(images)
    return tta_scores(score, images, scales=plan[0], flips=plan[1], parts=parts)

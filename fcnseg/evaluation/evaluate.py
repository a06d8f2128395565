"""Scoring a model on a dataset with the four metrics of §5, at each image's full resolution.

FCNs take whole images of any size (§3), so evaluation neither crops nor resizes: images go
one at a time, or in batches padded with the ignore label so that padding never counts.
Optionally the scores are also taken within a band of ``boundary`` pixels around the
ground-truth label boundaries, where the coarse FCN-32s and the fine FCN-8s differ most
(§4.2, Figure 4).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..data import SegmentationDataset, collate_pad
from ..device import autocast, freed_memory_kept, resolve_device
from ..errors import FcnsegError
from ..files.atomic import atomic_write
from ..models import FCN, HeadView
from ..models.decision import check_threshold, labels
from ..models.tta import tta_scales, viewed_scores
from .metrics import METRICS, ConfusionMatrix, RocHistogram, binary_scores

__all__ = ["as_json", "boundary_band", "confusion", "evaluate", "write_json"]


def boundary_band(target: Tensor, width: int) -> Tensor:
    """Pixels within ``width`` pixels of a label change in N×H×W ``target`` (ignore labels
    included: a void outline marks a boundary too).

    A pixel lies on a boundary where its 3×3 neighbourhood holds two labels (max ≠ min); the
    band is that set dilated by max pooling with a (2·width+1)² window.
    """
    x = target[:, None].float()
    high = F.max_pool2d(x, 3, stride=1, padding=1)
    low = -F.max_pool2d(-x, 3, stride=1, padding=1)
    edge = (high != low).float()
    if width > 0:
        edge = F.max_pool2d(edge, 2 * width + 1, stride=1, padding=width)
    return edge[:, 0] > 0


def _collate(
    batch: list[tuple[Tensor, Tensor]], ignore_index: int
) -> tuple[Tensor, Tensor, list[tuple[int, int]]]:
    """:func:`collate_pad`, and each image's own height and width."""
    images, masks = collate_pad(batch, ignore_index)
    return images, masks, [tuple(image.shape[-2:]) for image, _ in batch]


def _batches(
    model: FCN,
    dataset: Dataset,
    *,
    ignore_index: int,
    batch_size: int,
    workers: int,
    device: torch.device,
    amp: str,
    channels_last: bool,
    tta: tuple[float, ...] | None = None,
) -> Iterator[tuple[Tensor, Tensor]]:
    """(scores, target) per batch, on ``device``; with ``tta`` scales, log probabilities
    averaged over them and flips, and for a model with a working scale, those of the enlarged
    images (:mod:`fcnseg.models.tta`)."""
    parts = [part for _, part in model.meta.head_slices()]
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=functools.partial(_collate, ignore_index=ignore_index),
        pin_memory=device.type == "cuda",
    )
    memory = torch.channels_last if channels_last else torch.contiguous_format
    was_training = model.training
    model.eval()
    try:
        with freed_memory_kept():  # each batch reuses the last one's memory
            for images, masks, sizes in loader:
                # Inference mode around the model only: a ``with`` block held open across the
                # ``yield`` would run the caller's code in inference mode too, turning its running
                # counts into inference tensors that cannot be all-reduced in place.
                with torch.inference_mode():
                    x = model.normalization(images.to(device, non_blocking=True))
                    for i, (h, w) in enumerate(sizes):
                        # Pad with the mean colour (0 after normalisation), as the FCN pads its
                        # input itself, so a padded batch predicts as the images one by one would.
                        x[i, :, h:] = 0
                        x[i, :, :, w:] = 0
                    with autocast(device, amp):
                        logits = viewed_scores(
                            lambda v: model(v.contiguous(memory_format=memory)),
                            x,
                            tta=tta,
                            magnify=model.meta.magnify,
                            parts=parts,
                        )
                yield logits.float(), masks.to(device, non_blocking=True)
    finally:
        model.train(was_training)


@dataclass
class Counts:
    """What a pass over a set counts: the confusion matrix, that of the boundary band, and
    for two classes the histogram of foreground probabilities."""

    whole: ConfusionMatrix
    band: ConfusionMatrix | None = None
    roc: RocHistogram | None = None


def confusion(
    model: FCN | HeadView,
    dataset: Dataset,
    *,
    num_classes: int,
    ignore_index: int,
    batch_size: int = 1,
    workers: int = 0,
    device: torch.device | None = None,
    amp: str = "off",
    channels_last: bool = False,
    boundary: int | None = None,
    threshold: float | None = None,
    tta: tuple[float, ...] | None = None,
    roc: bool = False,
) -> Counts:
    """The counts of ``model`` over ``dataset``: its confusion matrix (and its boundary band's),
    and with ``roc`` (two classes only) the foreground probabilities. ``threshold``: for two
    classes, a pixel is foreground when its probability reaches it (default: the larger
    score, i.e. 0.5).

    Counts are exact sums over pixels, so those of shards of a dataset add up to those of the
    whole (what distributed validation all-reduces).
    """
    device = device or next(model.parameters()).device
    counts = Counts(ConfusionMatrix(num_classes, ignore_index=ignore_index))
    if boundary is not None:
        counts.band = ConfusionMatrix(num_classes, ignore_index=ignore_index)
    if roc and num_classes == 2:
        counts.roc = RocHistogram(ignore_index=ignore_index)
    for logits, target in _batches(
        model,
        dataset,
        ignore_index=ignore_index,
        batch_size=batch_size,
        workers=workers,
        device=device,
        amp=amp,
        channels_last=channels_last,
        tta=tta,
    ):
        if counts.roc is not None:
            counts.roc.update(logits.softmax(1)[:, 1], target)
        pred = labels(logits, threshold)  # a threshold takes its own softmax
        counts.whole.update(pred, target)
        if counts.band is not None:
            near = boundary_band(target, boundary)
            counts.band.update(pred, torch.where(near, target, ignore_index))
    return counts


def summarize(matrix: ConfusionMatrix, classes: list[str]) -> dict[str, Any]:
    """Scores of a confusion matrix with the class names and the counts."""
    return {**matrix.scores(), "classes": list(classes), "confusion": matrix.matrix.tolist()}


def evaluate(
    model: FCN | HeadView,
    dataset: SegmentationDataset,
    *,
    batch_size: int = 1,
    workers: int = 0,
    device: str | torch.device = "auto",
    amp: str = "off",
    channels_last: bool = False,
    boundary: int | None = None,
    threshold: float | None = None,
    tta: bool | Sequence[float] = False,
) -> dict[str, Any]:
    """Score ``model`` on ``dataset`` at full resolution.

    Args:
        model: the FCN; moved to ``device``.
        dataset: a segmentation dataset (its transform should leave images whole).
        batch_size: images per forward pass, padded with the ignore label.
        workers: data-loading processes.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or a device.
        amp: ``"off"``, ``"bf16"`` or ``"fp16"``.
        channels_last: run in NHWC layout.
        boundary: also score pixels within this many pixels of a label boundary.
        threshold: for two classes, the foreground probability from which a pixel is
            foreground (default: the larger score).
        tta: test-time augmentation, as :class:`fcnseg.Predictor`'s: probabilities averaged
            over flips and scales (``True``: 0.75, 1, 1.25).

    Returns:
        ``pixel_acc``, ``mean_acc``, ``mean_iu``, ``fw_iu``, ``per_class_iu``,
        ``per_class_acc``, ``classes``, ``confusion`` (rows truth, columns prediction),
        ``images``, and with ``boundary`` a ``boundary`` dict of the same scores plus ``width``.
        For two classes, ``binary``: the foreground's F1, sensitivity, specificity, precision,
        accuracy and ROC AUC (pixels pooled), and the ``threshold``. For a net of several
        heads, ``heads`` holds each head's result, and the top level
        repeats the first head's.

    Raises:
        FcnsegError: the model scores another number of classes than the dataset has.
    """
    options: dict[str, Any] = dict(
        batch_size=batch_size, workers=workers, amp=amp, channels_last=channels_last
    )
    scales = tta_scales(tta)
    heads = [name for name, _ in model.meta.head_slices()]
    if model.meta.heads or dataset.heads:
        mine = {n: d.num_classes for n, d in (dataset.heads or {}).items()}
        if dict(model.meta.heads or {}) != mine:
            raise FcnsegError(
                f"the model's heads {dict(model.meta.heads or {}) or 'none'} differ from the "
                f"dataset's label sets {mine or 'none'}; read the dataset as in training "
                "(for siftflow, --labels both)"
            )
        # Each head scored on its own label set, as the paper reports SIFT Flow's (Table 6).
        results = {
            name: evaluate(
                model.head(name),
                dataset.heads[name],
                device=device,
                boundary=boundary,
                threshold=threshold,
                tta=tta,
                **options,
            )
            for name in heads
        }
        return {**results[heads[0]], "heads": results}
    if model.num_classes != dataset.num_classes:
        raise FcnsegError(
            f"the model scores {model.num_classes} classes but the dataset has "
            f"{dataset.num_classes}; evaluate it on the dataset it was trained for"
        )
    if model.meta.in_channels != dataset.in_channels:
        raise FcnsegError(
            f"the model takes {model.meta.in_channels}-channel images but the dataset gives "
            f"{dataset.in_channels}; read it as in training (--modality, --in-channels)"
        )
    device = resolve_device(device) if isinstance(device, str) else device
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    check_threshold(threshold, dataset.num_classes)
    counts = confusion(
        model.to(device),
        dataset,
        num_classes=dataset.num_classes,
        ignore_index=dataset.ignore_index,
        device=device,
        boundary=boundary,
        threshold=threshold,
        tta=scales,
        roc=True,
        **options,
    )
    result = {**summarize(counts.whole, dataset.classes), "images": len(dataset)}
    if scales is not None:
        result["tta"] = list(scales)
    if model.meta.magnify != 1:  # the scales the images were scored at are these times it
        result["magnify"] = model.meta.magnify
    if counts.roc is not None:
        result["binary"] = {
            "threshold": 0.5 if threshold is None else threshold,
            **binary_scores(counts.whole, counts.roc),
        }
    if counts.band is not None:
        result["boundary"] = {"width": boundary, **counts.band.scores()}
    return result


def _finite(value: Any) -> Any:
    """NaN (a class absent from truth and prediction) as JSON null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def as_json(result: dict[str, Any]) -> dict[str, Any]:
    """An :func:`evaluate` result for JSON: the per-class scores named, NaN as null."""
    columns = {"iu": "per_class_iu", "acc": "per_class_acc", "precision": "per_class_precision"}
    columns["f1"] = "per_class_f1"
    per_class = [
        {"class": name, **{k: result[c][i] for k, c in columns.items()}}
        for i, name in enumerate(result["classes"])
    ]
    out = {
        **{k: result[k] for k in METRICS},
        "per_class": per_class,
        **{k: v for k, v in result.items() if k not in (*METRICS, *columns.values())},
    }
    if "heads" in result:
        out["heads"] = {name: as_json(r) for name, r in result["heads"].items()}
    return _finite(out)


def write_json(result: dict[str, Any], path: str | Path) -> None:
    """Write an :func:`evaluate` result as JSON (:func:`as_json`), atomically."""
    text = json.dumps(as_json(result), indent=2) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))

"""What the masks hold, counted once: the class pixels and ignored pixels of a dataset, SegNet's
median frequency weights from them, and the label-space rules that say whether a set can train.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .datasets import SegmentationDataset

__all__ = [
    "MaskStats",
    "class_frequencies",
    "label_space_problems",
    "mask_stats",
    "median_frequency_weights",
]


@dataclass(frozen=True)
class MaskStats:
    """Pixel counts over a dataset's masks: per class (``class_pixels``), of the images each
    class appears in (``image_pixels``, ignored pixels included as SegNet counts), and of the
    ignore label (``ignored``)."""

    class_pixels: np.ndarray
    image_pixels: np.ndarray
    ignored: int


def mask_stats(dataset: SegmentationDataset) -> MaskStats:
    """Read every mask of ``dataset`` once and count."""
    n = dataset.num_classes
    class_pixels = np.zeros(n, dtype=np.int64)
    image_pixels = np.zeros(n, dtype=np.int64)
    ignored = 0
    for index in range(len(dataset)):
        labels = dataset.load_mask(index).numpy()
        # Labels are checked: classes or the ignore label, which gets the spare bin n.
        counts = np.bincount(
            np.where(labels == dataset.ignore_index, n, labels).ravel(), minlength=n + 1
        )
        class_pixels += counts[:n]
        image_pixels += (counts[:n] > 0) * labels.size
        ignored += int(counts[n])
    return MaskStats(class_pixels, image_pixels, ignored)


def class_frequencies(dataset: SegmentationDataset, stats: MaskStats | None = None) -> torch.Tensor:
    """SegNet's class frequencies (float64, one per class), from the masks alone.

    ``freq_c`` = pixels of class c / all pixels of the images in which c appears (ignored ones
    included, as SegNet counts); 0 for a class that never appears. ``stats``: the counts, if
    already taken.
    """
    stats = stats or mask_stats(dataset)
    freq = np.divide(
        stats.class_pixels,
        stats.image_pixels,
        out=np.zeros(dataset.num_classes),
        where=stats.image_pixels > 0,
    )
    return torch.from_numpy(freq)


def median_frequency_weights(
    dataset: SegmentationDataset, stats: MaskStats | None = None
) -> torch.Tensor:
    """Median frequency balancing (Eigen & Fergus; used by SegNet): ``median(freq) / freq_c``.

    Loss weights (float32) that lift rare classes; a class absent from the data gets 0.
    """
    freq = class_frequencies(dataset, stats)
    median = torch.quantile(freq[freq > 0], 0.5)
    return torch.where(freq > 0, median / freq.clamp(min=1e-12), 0.0).float()


def label_space_problems(
    dataset: SegmentationDataset, class_pixels: np.ndarray, ignored: int, where: str
) -> tuple[list[str], list[str]]:
    """What the pixel counts of a split say about its label space: the errors that make
    training pointless (nothing but the ignore label; 0/255 masks whose 255 is ignored), and
    the warnings (classes never seen), each a line with its fix."""
    errors, warnings = [], []
    if not class_pixels.any():
        errors.append(
            f"{where}: every labelled pixel of the masks is the ignore label "
            f"{dataset.ignore_index} ({ignored:,} pixels); nothing can be learned: check that "
            "the masks hold class indices and that ignore_index is right"
        )
    elif dataset.ignore_index == 255 and not class_pixels[1:].any() and ignored:
        errors.append(
            f"{where}: the masks hold only 0 ({int(class_pixels[0]):,} pixels) and 255 "
            f"({ignored:,}), and 255 is the ignore label, so only class 0 would be learned; "
            'map it to class 1: "map": {"255": 1} in classes.json, or --label-map 255:1'
        )
    never = [name for name, n in zip(dataset.classes, class_pixels, strict=True) if not n]
    if never:
        counts = ", ".join(f"{c}: {int(n):,}" for c, n in enumerate(class_pixels) if n)
        warnings.append(
            f"{where}: class(es) {', '.join(never)} never occur in the training masks (pixels "
            f"per class: {counts}); add images of them, drop them from classes.json, or map "
            "their values"
        )
    return errors, warnings

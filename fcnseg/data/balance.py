"""Class balancing for losses: SegNet's median frequency weights, from the masks alone."""

from __future__ import annotations

import numpy as np
import torch

from .datasets import SegmentationDataset

__all__ = ["class_frequencies", "label_counts", "median_frequency_weights"]


def class_frequencies(dataset: SegmentationDataset) -> torch.Tensor:
    """SegNet's class frequencies (float64, one per class), from the masks alone.

    ``freq_c`` = pixels of class c / all pixels of the images in which c appears (ignored ones
    included, as SegNet counts); 0 for a class that never appears.
    """
    n = dataset.num_classes
    class_pixels = np.zeros(n, dtype=np.int64)
    image_pixels = np.zeros(n, dtype=np.int64)
    for index in range(len(dataset)):
        labels = dataset.load_mask(index).numpy()
        # Labels are checked: classes or the ignore label, which gets the spare bin n.
        counts = np.bincount(
            np.where(labels == dataset.ignore_index, n, labels).ravel(), minlength=n + 1
        )[:n]
        class_pixels += counts
        image_pixels += (counts > 0) * labels.size
    freq = np.divide(class_pixels, image_pixels, out=np.zeros(n), where=image_pixels > 0)
    return torch.from_numpy(freq)


def median_frequency_weights(dataset: SegmentationDataset) -> torch.Tensor:
    """Median frequency balancing (Eigen & Fergus; used by SegNet): ``median(freq) / freq_c``.

    Loss weights (float32) that lift rare classes; a class absent from the data gets 0.
    """
    freq = class_frequencies(dataset)
    median = torch.quantile(freq[freq > 0], 0.5)
    return torch.where(freq > 0, median / freq.clamp(min=1e-12), 0.0).float()


def label_counts(dataset: SegmentationDataset) -> np.ndarray:
    """Pixels of each class in the masks (int64, one per class), then of the ignore label."""
    n = dataset.num_classes
    counts = np.zeros(n + 1, dtype=np.int64)
    for index in range(len(dataset)):
        labels = dataset.load_mask(index).numpy()
        counts += np.bincount(
            np.where(labels == dataset.ignore_index, n, labels).ravel(), minlength=n + 1
        )
    return counts

"""Segmentation datasets: the common base that reads and checks samples, the registry that lets
configs and the CLI name a layout (the layouts are in :mod:`fcnseg.data.readers`), and SegNet's
class balancing.

Every dataset yields ``(tv_tensors.Image uint8 3×H×W RGB, tv_tensors.Mask int64 H×W)`` as
docs/CONTRACTS.md fixes; problems in the files surface as one-line ``DataError``s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors

from fcnseg.data.reading import (
    MAX_PIXELS,
    Color,
    check_labels,
    check_same_size,
    open_image,
    to_labels,
    to_rgb_tensor,
)
from fcnseg.data.transforms import JointTransform
from fcnseg.errors import DataError


def voc_palette(n: int) -> list[Color]:
    """The PASCAL VOC colour map: the bits of the index interleaved over R, G and B.

    Deterministic and distinct for all 256 indices; index 255 is VOC's cream border colour.
    """
    palette = []
    for index in range(n):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette.append((r, g, b))
    return palette


class SegmentationDataset(Dataset):
    """Pairs of (image, mask) files read into the contract's tensors.

    Subclasses fill ``samples`` and the class description; this class reads, checks and
    transforms. ``transform(image, mask)`` is a joint transform returning the pair
    (``None``: the tensors as read).
    """

    classes: list[str]
    palette: list[Color]
    ignore_index: int
    ignore_color: Color | None  # the RGB of ignored pixels in colour-coded masks
    samples: list[tuple[Path, Path]]

    def __init__(
        self,
        samples: list[tuple[Path, Path]],
        *,
        classes: Sequence[str],
        palette: Sequence[Color] | None = None,
        ignore_index: int = 255,
        ignore_color: Color | None = None,
        transform: JointTransform | None = None,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        self.samples = samples
        self.classes = list(classes)
        self.palette = list(palette) if palette is not None else voc_palette(len(self.classes))
        self.ignore_index = ignore_index
        self.ignore_color = ignore_color
        self.transform = transform
        self.max_pixels = max_pixels

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image_path, mask_path = self.samples[index]
        image = to_rgb_tensor(open_image(image_path, max_pixels=self.max_pixels))
        mask = self.load_mask(index)
        check_same_size(image, mask, mask_path)
        image, mask = tv_tensors.Image(image), tv_tensors.Mask(mask)
        if self.transform is None:
            return image, mask
        return self.transform(image, mask)

    def load_mask(self, index: int) -> torch.Tensor:
        """The checked int64 H×W labels of sample ``index``, without reading its image."""
        mask_path = self.samples[index][1]
        labels = self.read_labels(mask_path)
        check_labels(labels, mask_path, self.num_classes, self.ignore_index)
        return torch.from_numpy(labels)

    def read_labels(self, path: Path) -> np.ndarray:
        """Decode one mask file to int64 H×W labels; formats other than images override this."""
        return to_labels(
            open_image(path, max_pixels=self.max_pixels),
            path,
            palette=self.palette,
            ignore_index=self.ignore_index,
            ignore_color=self.ignore_color,
        )


DATASETS: dict[str, type[SegmentationDataset]] = {}


def register(name: str) -> Callable[[type[SegmentationDataset]], type[SegmentationDataset]]:
    """Class decorator adding a reader to :data:`DATASETS` under ``name``."""

    def add(cls: type[SegmentationDataset]) -> type[SegmentationDataset]:
        DATASETS[name] = cls
        return cls

    return add


def build_dataset(
    name: str,
    root: str | Path,
    split: str,
    *,
    transform: JointTransform | None = None,
    **kwargs: Any,
) -> SegmentationDataset:
    """The dataset reader registered as ``name`` over ``root``/``split``."""
    if name not in DATASETS:
        known = ", ".join(sorted(DATASETS))
        raise DataError(f"unknown dataset {name!r}; use one of: {known}")
    return DATASETS[name](Path(root), split, transform=transform, **kwargs)


# --- class balance ---------------------------------------------------------------------------


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
        counts = np.bincount(np.where(labels == dataset.ignore_index, n, labels).ravel(),
                             minlength=n + 1)[:n]
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


# --- bad samples -----------------------------------------------------------------------------


class _Checked(Dataset):
    """``(index, None)`` for a sample that reads and checks cleanly, else ``(index, message)``."""

    def __init__(self, dataset: SegmentationDataset, indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[int, str | None]:
        index = self.indices[position]
        try:
            # What __getitem__ reads and checks, before any transform.
            image = to_rgb_tensor(open_image(self.dataset.samples[index][0],
                                             max_pixels=self.dataset.max_pixels))
            check_same_size(image, self.dataset.load_mask(index), self.dataset.samples[index][1])
        except DataError as error:
            return index, str(error)
        return index, None


def find_bad_samples(dataset: SegmentationDataset, indices: Sequence[int] | None = None, *,
                     workers: int = 0) -> dict[int, str]:
    """Read and check every sample (or those of ``indices``) once; the bad ones' messages.

    A sample is bad when its image or mask is unreadable or over the pixel limit, the mask's
    size differs from the image's, or a label is neither a class nor the ignore label. This is
    what ``--skip-bad`` runs up front, ``workers`` processes reading in parallel.
    """
    checked = _Checked(dataset, range(len(dataset)) if indices is None else indices)
    loader = DataLoader(checked, batch_size=None, num_workers=workers)
    return {index: message for index, message in loader if message is not None}


def drop_samples(dataset: SegmentationDataset, bad: dict[int, str]) -> None:
    """Remove the samples ``bad`` names from ``dataset``; refuse to leave it empty."""
    if bad and len(bad) == len(dataset):
        raise DataError(f"{dataset.samples[0][0].parent}: all {len(dataset)} samples are bad "
                        f"(first: {bad[min(bad)]})")
    dataset.samples = [s for i, s in enumerate(dataset.samples) if i not in bad]

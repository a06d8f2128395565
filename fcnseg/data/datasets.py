"""Segmentation datasets: the common base that reads and checks samples, and the registry that
lets configs and the CLI name a layout (the layouts are in :mod:`fcnseg.data.readers`).

Every dataset yields ``(tv_tensors.Image C×H×W, tv_tensors.Mask int64 H×W)`` as
docs/CONTRACTS.md fixes (uint8 RGB for the usual C = 3); problems in the files surface as
one-line ``DataError``s.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from ..errors import ConfigError, DataError
from ..registry import Registry
from .bands import read_bands
from .decode import MAX_PIXELS, Color, check_labels, check_same_size, open_image, to_labels
from .labelmap import LabelMap
from .transforms import JointTransform

__all__ = [
    "DATASETS",
    "READER_OPTIONS",
    "reader_options",
    "reader_takes",
    "SegmentationDataset",
    "build_dataset",
    "list_datasets",
    "voc_palette",
]


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
    (``None``: the tensors as read). Images are read with ``in_channels`` channels
    (:func:`~.bands.read_bands`).

    A dataset of several label sets for one image (the paper's SIFT Flow: semantic and
    geometric) has ``heads``, each label set as a dataset of its own over the same images in
    the same order; its masks are theirs stacked, K×H×W, and its classes theirs in turn.
    """

    classes: list[str]
    palette: list[Color]
    ignore_index: int
    ignore_color: Color | None  # the RGB of ignored pixels in colour-coded masks
    samples: list[tuple[Path, Path]]
    heads: dict[str, SegmentationDataset] | None = None
    #: Every sample's (image, mask) as read, once :meth:`keep_decoded` has kept them.
    decoded: list[tuple[torch.Tensor, torch.Tensor]] | None = None

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
        label_map: LabelMap | None = None,
        in_channels: int = 3,
    ) -> None:
        self.samples = samples
        self.in_channels = in_channels
        self.label_map = label_map
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
        if self.decoded:  # copies: a transform working in place must not change the kept ones
            image, mask = self.decoded[index]
            image, mask = image.clone(), mask.to(torch.int64, copy=True)
        else:
            image, mask = self.read_pair(index)
        image, mask = tv_tensors.Image(image), tv_tensors.Mask(mask)
        if self.transform is None:
            return image, mask
        return self.transform(image, mask)

    def read_pair(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample ``index``'s image and mask, decoded from their files and checked."""
        image_path, mask_path = self.samples[index]
        image = self.read_image(image_path)
        mask = self.load_mask(index)
        check_same_size(image, mask, mask_path)
        return image, mask

    def keep_decoded(self, budget: int) -> int:
        """Decode every sample once and keep it in memory if all of them fit in ``budget``
        bytes; the bytes they take (0: not kept).

        Training reads each image once per epoch, and decoding a PNG costs about twice the
        augmentation of its crop: kept, it is done once. Masks are kept as uint8 where their
        values allow (8× less memory than the contract's int64). Decoded in the main process,
        the samples are shared with forked loader workers, not copied.
        """
        if not self.samples:
            return 0
        first = _compact(self.read_pair(0))
        if _size(first) * len(self) > budget:  # the first sample's size stands for the rest
            return 0
        kept, size = [first], _size(first)
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # decoders release the GIL
            for pair in pool.map(lambda i: _compact(self.read_pair(i)), range(1, len(self))):
                size += _size(pair)
                if size > budget:  # larger images further on: stop before memory runs out
                    pool.shutdown(cancel_futures=True)
                    return 0
                kept.append(pair)
        self.decoded = kept
        return size

    def read_image(self, path: Path) -> torch.Tensor:
        """Decode one image file to a C×H×W tensor; readers of several files per image
        (RGB-D) override this."""
        return read_bands(path, self.in_channels, max_pixels=self.max_pixels)

    def load_mask(self, index: int) -> torch.Tensor:
        """The checked int64 H×W labels of sample ``index`` (K×H×W for K heads), without
        reading its image."""
        if self.decoded:
            return self.decoded[index][1].to(torch.int64, copy=True)
        if self.heads:
            return torch.stack([head.load_mask(index) for head in self.heads.values()])
        mask_path = self.samples[index][1]
        labels = self.read_labels(mask_path)
        if self.label_map is not None:
            labels = self.label_map.apply(labels, self.ignore_index)
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


def _compact(pair: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    image, mask = pair
    if mask.numel() and int(mask.min()) >= 0 and int(mask.max()) <= 255:
        mask = mask.to(torch.uint8)
    return image, mask


def _size(pair: tuple[torch.Tensor, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in pair)


#: The reader options a user may set by name (flags, YAML): passed to the readers that have them.
READER_OPTIONS = (
    "label_map",
    "mask_pattern",
    "categories",
    "in_channels",
    "modality",
    "labels",
)


def reader_options(values: object) -> dict[str, Any]:
    """The :data:`READER_OPTIONS` that ``values`` (settings or parsed flags) set."""
    return {k: v for k in READER_OPTIONS if (v := getattr(values, k, None)) is not None}


#: Dataset readers by name: ``reader(root, split, *, transform, max_pixels, ...)``.
DATASETS: Registry[type[SegmentationDataset]] = Registry("dataset", error=DataError)


def reader_takes(name: str, option: str) -> bool:
    """Whether the reader registered as ``name`` has the option ``option``."""
    return option in inspect.signature(DATASETS[name]).parameters


def build_dataset(
    name: str,
    root: str | Path,
    split: str,
    *,
    transform: JointTransform | None = None,
    **kwargs: Any,
) -> SegmentationDataset:
    """The dataset reader registered as ``name`` over ``root``/``split``; ``kwargs`` are the
    reader's options (``max_pixels``, ``label_map``…), refused by name if it has none such."""
    reader = DATASETS[name]
    accepted = inspect.signature(reader).parameters
    for option in kwargs:
        if option not in accepted:
            flag = option.replace("_", "-")
            raise ConfigError(
                f"--{flag} is not an option of the {name} reader; drop it, or use "
                "a reader that has it (e.g. folder)"
            )
    return reader(Path(root), split, transform=transform, **kwargs)


def list_datasets() -> list[str]:
    """The dataset reader names :func:`build_dataset` knows."""
    return DATASETS.names()

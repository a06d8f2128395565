"""Data: reading images and masks into the tensors of docs/CONTRACTS.md, dataset layouts by
name, joint transforms and batching, class balance, and the synthetic set of the demo.

* :mod:`.decode`: one image or mask file → tensors, with one-line errors;
* :mod:`.bands`: images beyond RGB (grey, RGB-D, multi-band rasters, ``.npy``);
* :mod:`.datasets`: the base reader and the :data:`DATASETS` registry;
* :mod:`.readers`: the layouts (``folder``, ``camvid``, ``voc``, ``sbd``);
* :mod:`.transforms`, :mod:`.balance`, :mod:`.checks`, :mod:`.synthetic`.

Owns: everything between files on disk and (image, mask) tensors. May import: the registry
and errors; never models, training or inference.
"""

from .balance import (
    MaskStats,
    class_frequencies,
    label_space_problems,
    mask_stats,
    median_frequency_weights,
)
from .bands import Raster, as_bands, channel_stats, read_bands
from .checks import drop_samples, find_bad_samples
from .datasets import (
    DATASETS,
    SegmentationDataset,
    build_dataset,
    list_datasets,
    reader_options,
    reader_takes,
    voc_palette,
)
from .readers import CamVidDataset, FolderDataset, SBDDataset, VOCDataset
from .synthetic import SyntheticDataset, make_synthetic
from .transforms import collate_pad, eval_transform, train_transform

__all__ = [
    "MaskStats",
    "DATASETS",
    "Raster",
    "CamVidDataset",
    "FolderDataset",
    "SBDDataset",
    "SegmentationDataset",
    "SyntheticDataset",
    "VOCDataset",
    "as_bands",
    "build_dataset",
    "channel_stats",
    "class_frequencies",
    "collate_pad",
    "drop_samples",
    "eval_transform",
    "find_bad_samples",
    "label_space_problems",
    "mask_stats",
    "list_datasets",
    "make_synthetic",
    "median_frequency_weights",
    "read_bands",
    "reader_options",
    "reader_takes",
    "train_transform",
    "voc_palette",
]

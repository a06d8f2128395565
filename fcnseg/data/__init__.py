"""Datasets, joint transforms and synthetic data for semantic segmentation."""

from fcnseg.data.datasets import (
    DATASETS,
    SegmentationDataset,
    build_dataset,
    class_frequencies,
    median_frequency_weights,
)
from fcnseg.data.readers import CamVidDataset, FolderDataset, SBDDataset, VOCDataset
from fcnseg.data.synthetic import SyntheticDataset, make_synthetic
from fcnseg.data.transforms import collate_pad, eval_transform, train_transform

__all__ = [
    "DATASETS",
    "CamVidDataset",
    "FolderDataset",
    "SBDDataset",
    "SegmentationDataset",
    "SyntheticDataset",
    "VOCDataset",
    "build_dataset",
    "class_frequencies",
    "collate_pad",
    "eval_transform",
    "make_synthetic",
    "median_frequency_weights",
    "train_transform",
]

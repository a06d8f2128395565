"""``camvid``: CamVid as SegNet distributes it (11 classes, void ignored)."""

from __future__ import annotations

from pathlib import Path

from ..datasets import DATASETS, SegmentationDataset
from ..decode import MAX_PIXELS, Color
from ..transforms import JointTransform
from .pairing import pair_by_stem

__all__ = ["CAMVID_CLASSES", "CAMVID_PALETTE", "CamVidDataset"]

CAMVID_CLASSES = [
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree",
    "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
]  # fmt: skip
CAMVID_PALETTE: list[Color] = [
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
    (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
]  # fmt: skip


@DATASETS.register("camvid")
class CamVidDataset(SegmentationDataset):
    """CamVid as distributed with SegNet: split ``S`` is ``ROOT/S/*.png`` with class-index
    masks of the same names in ``ROOT/Sannot/``; 11 classes, label 11 (void) ignored."""

    def __init__(
        self,
        root: Path,
        split: str,
        *,
        transform: JointTransform | None = None,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        root = Path(root)
        super().__init__(
            pair_by_stem(root / split, root / f"{split}annot"),
            classes=CAMVID_CLASSES,
            palette=CAMVID_PALETTE,
            ignore_index=11,
            transform=transform,
            max_pixels=max_pixels,
        )

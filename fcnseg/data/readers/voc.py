"""``voc`` and ``sbd``: PASCAL VOC 2011/2012 and the Semantic Boundaries Dataset, the data of
the paper's main results (VOC's 21 classes, object borders ignored)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from ...errors import DataError
from ..datasets import DATASETS, SegmentationDataset, voc_palette
from ..decode import MAX_PIXELS, Color
from ..transforms import JointTransform
from .pairing import pair_by_list

__all__ = ["SBDDataset", "VOCDataset", "VOC_CLASSES"]

VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
]  # fmt: skip
VOC_VOID_COLOR: Color = voc_palette(256)[255]


@DATASETS.register("voc")
class VOCDataset(SegmentationDataset):
    """PASCAL VOC 2011/2012 segmentation: ``ROOT/JPEGImages/<id>.jpg`` with palette PNGs
    ``ROOT/SegmentationClass/<id>.png`` (255 marks the ignored object borders).

    The ids come from ``ROOT/ImageSets/Segmentation/<split>.txt``, or from ``list_file`` when
    given (e.g. FCN's ``seg11valid.txt``, the VOC2011 val images not in SBD train).
    """

    def __init__(
        self,
        root: Path,
        split: str,
        *,
        transform: JointTransform | None = None,
        list_file: str | Path | None = None,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        root = Path(root)
        listing = (
            Path(list_file)
            if list_file is not None
            else (root / "ImageSets" / "Segmentation" / f"{split}.txt")
        )
        super().__init__(
            pair_by_list(listing, root / "JPEGImages", ".jpg", root / "SegmentationClass", ".png"),
            classes=VOC_CLASSES,
            palette=voc_palette(len(VOC_CLASSES)),
            ignore_index=255,
            ignore_color=VOC_VOID_COLOR,
            transform=transform,
            max_pixels=max_pixels,
        )


@DATASETS.register("sbd")
class SBDDataset(SegmentationDataset):
    """Semantic Boundaries Dataset (Hariharan et al.): ``ROOT/img/<id>.jpg`` with MATLAB files
    ``ROOT/cls/<id>.mat`` whose struct ``GTcls`` holds the label image in ``Segmentation``;
    ids from ``ROOT/<split>.txt``. VOC's 21 classes."""

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
            pair_by_list(root / f"{split}.txt", root / "img", ".jpg", root / "cls", ".mat"),
            classes=VOC_CLASSES,
            palette=voc_palette(len(VOC_CLASSES)),
            ignore_index=255,
            transform=transform,
            max_pixels=max_pixels,
        )

    def read_labels(self, path: Path) -> np.ndarray:
        try:
            mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
        except Exception:  # scipy reports a damaged file with many types (MatReadError…)
            raise DataError(
                f"{path}: cannot read MATLAB file (truncated or not a .mat); "
                "re-extract it from the SBD archive"
            ) from None
        segmentation = getattr(mat.get("GTcls"), "Segmentation", None)
        if not isinstance(segmentation, np.ndarray) or segmentation.ndim != 2:
            raise DataError(
                f"{path}: no GTcls.Segmentation label image; use the files from SBD's cls/ folder"
            )
        return segmentation.astype(np.int64)

"""The FCN paper's other datasets (its Tables 4–6) in their released layouts: ``nyud``
(NYUDv2, Gupta et al.'s 40 classes), ``siftflow`` (33 semantic or 3 geometric classes) and
``pascal_context`` (the 59-class task). Their labels are MATLAB files; 0 is void in each, so
the stored classes shift down by one and 0 is ignored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
import torch

from ...errors import ConfigError, DataError
from ..bands import read_bands
from ..datasets import DATASETS, SegmentationDataset
from ..decode import MAX_PIXELS, check_same_size, read_text
from ..labelmap import LabelMap
from ..transforms import JointTransform
from .pairing import pair_by_list

__all__ = [
    "CONTEXT_CLASSES",
    "NYUD_CLASSES",
    "SIFTFLOW_CLASSES",
    "NYUDDataset",
    "PascalContextDataset",
    "SIFTFlowDataset",
    "read_mat",
]

VOID_FIRST = LabelMap({0: None}, others=-1)  # stored 0 is void, 1… the classes

NYUD_CLASSES = [
    "wall",
    "floor",
    "cabinet",
    "bed",
    "chair",
    "sofa",
    "table",
    "door",
    "window",
    "bookshelf",
    "picture",
    "counter",
    "blinds",
    "desk",
    "shelves",
    "curtain",
    "dresser",
    "pillow",
    "mirror",
    "floor mat",
    "clothes",
    "ceiling",
    "books",
    "refridgerator",
    "television",
    "paper",
    "towel",
    "shower curtain",
    "box",
    "whiteboard",
    "person",
    "night stand",
    "toilet",
    "sink",
    "lamp",
    "bathtub",
    "bag",
    "otherstructure",
    "otherfurniture",
    "otherprop",
]
SIFTFLOW_CLASSES = {
    "semantic": [
        "awning",
        "balcony",
        "bird",
        "boat",
        "bridge",
        "building",
        "bus",
        "car",
        "cow",
        "crosswalk",
        "desert",
        "door",
        "fence",
        "field",
        "grass",
        "moon",
        "mountain",
        "person",
        "plant",
        "pole",
        "river",
        "road",
        "rock",
        "sand",
        "sea",
        "sidewalk",
        "sign",
        "sky",
        "staircase",
        "streetlight",
        "sun",
        "tree",
        "window",
    ],
    "geometric": ["sky", "horizontal", "vertical"],
}


# PASCAL-Context's 59 classes in the authors' nets' output order (after background, 0): the
# 20 VOC classes first (their data/pascal-context/classes-59.txt), spelled as 59_labels.txt.
CONTEXT_CLASSES = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
    "bag",
    "bed",
    "bench",
    "book",
    "building",
    "cabinet",
    "ceiling",
    "clothes",
    "computer",
    "cup",
    "door",
    "fence",
    "floor",
    "flower",
    "food",
    "grass",
    "ground",
    "keyboard",
    "light",
    "mountain",
    "mouse",
    "curtain",
    "platform",
    "sign",
    "plate",
    "road",
    "rock",
    "shelves",
    "sidewalk",
    "sky",
    "snow",
    "bedcloth",
    "track",
    "tree",
    "truck",
    "wall",
    "water",
    "window",
    "wood",
]


def read_mat(path: Path, key: str) -> np.ndarray:
    """The 2-D array ``key`` of MATLAB file ``path`` as int64, or a one-line error."""
    try:
        value = scipy.io.loadmat(path).get(key)
    except Exception:  # scipy reports a damaged file with many types (MatReadError…)
        raise DataError(
            f"{path}: cannot read MATLAB file (truncated or not a .mat); "
            "extract it again from the release"
        ) from None
    if not isinstance(value, np.ndarray) or value.ndim != 2:
        raise DataError(f"{path}: no 2-D '{key}' label array; use the file from the release")
    return value.astype(np.int64)


class _MatLabels(SegmentationDataset):
    """Masks read from one array of a MATLAB file."""

    mat_key = ""

    def read_labels(self, path: Path) -> np.ndarray:
        return read_mat(path, self.mat_key)


@DATASETS.register("nyud")
class NYUDDataset(_MatLabels):
    """NYUDv2 as the FCN paper uses it (Gupta et al.'s 40 classes, 795 train / 654 test):
    ``ROOT/<split>.txt`` ids, images ``ROOT/data/images/img_<id>.png``, labels
    ``ROOT/segmentation/img_<id>.mat`` (array ``segmentation``; 0 void, 1–40).

    ``modality`` picks the input of the paper's Table 5: ``rgb``; ``rgbd``, the early fusion
    of colour and depth into 4 channels, depth ``ROOT/data/depth/img_<id>.png`` (16-bit) taken
    as its logarithm as the authors' data layer does; or ``hha``, Gupta et al.'s depth
    encoding ``ROOT/data/hha/img_<id>.png`` in place of colour.
    """

    mat_key = "segmentation"
    MODALITIES = {"rgb": 3, "rgbd": 4, "hha": 3}

    def __init__(
        self,
        root: Path,
        split: str,
        *,
        transform: JointTransform | None = None,
        max_pixels: int = MAX_PIXELS,
        modality: str = "rgb",
    ) -> None:
        if modality not in self.MODALITIES:
            raise ConfigError(f"nyud modality must be rgb, rgbd or hha, not {modality!r}")
        self.modality = modality
        root = Path(root)
        samples = pair_by_list(
            root / f"{split}.txt",
            root / "data" / "images",
            ".png",
            root / "segmentation",
            ".mat",
            prefix="img_",
        )
        super().__init__(
            samples,
            classes=NYUD_CLASSES,
            ignore_index=255,
            transform=transform,
            max_pixels=max_pixels,
            label_map=VOID_FIRST,
            in_channels=self.MODALITIES[modality],
        )

    def read_image(self, path: Path) -> torch.Tensor:
        data = path.parent.parent  # ROOT/data/images/img_<id>.png
        if self.modality == "hha":
            return read_bands(data / "hha" / path.name, 3, max_pixels=self.max_pixels)
        rgb = read_bands(path, 3, max_pixels=self.max_pixels)
        if self.modality == "rgb":
            return rgb
        depth = read_bands(data / "depth" / path.name, 1, max_pixels=self.max_pixels).float()
        check_same_size(rgb, depth[0], data / "depth" / path.name)
        # Depth spans two orders of magnitude; its logarithm, as the authors' layer feeds it.
        # Missing readings (0) are taken as the nearest measurable depth, 1.
        return torch.cat([rgb.float(), depth.clamp_min(1).log()])


@DATASETS.register("siftflow")
class SIFTFlowDataset(_MatLabels):
    """SIFT Flow as released: ``ROOT/<split>.txt`` ids, images
    ``ROOT/Images/spatial_envelope_256x256_static_8outdoorcategories/<id>.jpg`` and labels of
    the same names under ``SemanticLabels/`` (33 classes) or ``GeoLabels/`` (3 classes:
    sky, horizontal, vertical), array ``S``, 0 (or -1) void. ``labels`` picks the set, or
    ``both`` for the paper's two-headed net: heads ``sem`` and ``geo``, masks 2×H×W."""

    mat_key = "S"
    FOLDER = "spatial_envelope_256x256_static_8outdoorcategories"
    HEADS = {"sem": "semantic", "geo": "geometric"}

    def __init__(
        self,
        root: Path,
        split: str,
        *,
        transform: JointTransform | None = None,
        max_pixels: int = MAX_PIXELS,
        labels: str = "semantic",
    ) -> None:
        if labels not in (*SIFTFLOW_CLASSES, "both"):
            raise ConfigError(
                f"siftflow labels are 'semantic', 'geometric' or 'both', not {labels!r}"
            )
        root = Path(root)
        if labels == "both":
            self.heads = {
                head: SIFTFlowDataset(root, split, max_pixels=max_pixels, labels=kind)
                for head, kind in self.HEADS.items()
            }
            sets = list(self.heads.values())
            super().__init__(
                sets[0].samples,
                classes=[c for s in sets for c in s.classes],
                palette=[c for s in sets for c in s.palette],
                ignore_index=255,
                transform=transform,
                max_pixels=max_pixels,
            )
            return
        folder = "SemanticLabels" if labels == "semantic" else "GeoLabels"
        samples = pair_by_list(
            root / f"{split}.txt",
            root / "Images" / self.FOLDER,
            ".jpg",
            root / folder / self.FOLDER,
            ".mat",
        )
        super().__init__(
            samples,
            classes=SIFTFLOW_CLASSES[labels],
            ignore_index=255,
            transform=transform,
            max_pixels=max_pixels,
            label_map=VOID_FIRST,
        )

    def read_labels(self, path: Path) -> np.ndarray:
        labels = super().read_labels(path)
        return np.where(labels < 0, 0, labels)  # the geometric labels mark void as -1


@DATASETS.register("pascal_context")
class PascalContextDataset(_MatLabels):
    """PASCAL-Context's 59-class task: the annotations (``ROOT/trainval/<id>.mat``, array
    ``LabelMap`` over the full label list ``ROOT/labels.txt``) beside VOC 2010
    (``ROOT/VOC2010/JPEGImages``, ids from ``ROOT/VOC2010/ImageSets/Main/<split>.txt``); the
    59 classes are those of ``ROOT/59_labels.txt`` (``index: name`` lines), every other label
    is background (0)."""

    mat_key = "LabelMap"
    # The task's names that the full list spells differently.
    SPELLING = {"diningtable": "table", "bedcloth": "bedclothes", "clothes": "cloth"}

    def __init__(
        self,
        root: Path,
        split: str,
        *,
        transform: JointTransform | None = None,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        root = Path(root)
        voc = root / "VOC2010"
        samples = pair_by_list(
            voc / "ImageSets" / "Main" / f"{split}.txt",
            voc / "JPEGImages",
            ".jpg",
            root / "trainval",
            ".mat",
        )
        full = _names(root / "labels.txt")
        task = _names(root / "59_labels.txt")
        index = {name: i for i, name in enumerate(full, start=1)}
        missing = [n for n in task if self.SPELLING.get(n, n) not in index]
        if missing:
            raise DataError(f"{root / '59_labels.txt'}: {', '.join(missing)} not in labels.txt")
        # Full label → task class; every label not in the task is background.
        self.lookup = np.zeros(len(full) + 1, dtype=np.int64)
        for i, name in enumerate(task, start=1):
            self.lookup[index[self.SPELLING.get(name, name)]] = i
        super().__init__(
            samples,
            classes=["background", *task],
            ignore_index=255,
            transform=transform,
            max_pixels=max_pixels,
        )

    def read_labels(self, path: Path) -> np.ndarray:
        full = super().read_labels(path)
        if full.min(initial=0) < 0 or full.max(initial=0) >= len(self.lookup):
            raise DataError(f"{path}: labels outside 0–{len(self.lookup) - 1} of labels.txt")
        return self.lookup[full]


def _names(path: Path) -> list[str]:
    """``index: name`` lines, as the Context release writes them."""
    if not path.is_file():
        raise DataError(f"{path}: missing; it comes with the PASCAL-Context annotations")
    names = []
    for line in read_text(path).splitlines():
        if line.strip():
            names.append(line.partition(":")[2].strip().replace(" ", ""))
    return names

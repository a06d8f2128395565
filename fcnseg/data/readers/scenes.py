"""Scene-parsing benchmarks in their released layouts: ``cityscapes`` (``gtFine`` /
``leftImg8bit``, label ids mapped to the 19 train ids) and ``ade20k`` (SceneParsing's
ADEChallengeData2016, 150 classes, 0 unlabelled)."""

from __future__ import annotations

from pathlib import Path

from ...errors import DataError
from ..datasets import DATASETS, SegmentationDataset
from ..decode import MAX_PIXELS, Color, read_text
from ..labelmap import LabelMap
from ..transforms import JointTransform
from .pairing import pair_by_stem

__all__ = ["CITYSCAPES_CLASSES", "ADE20KDataset", "CityscapesDataset"]

# Cityscapes' 19 evaluated classes: (name, label id, colour); every other id is ignored.
CITYSCAPES = [
    ("road", 7, (128, 64, 128)),
    ("sidewalk", 8, (244, 35, 232)),
    ("building", 11, (70, 70, 70)),
    ("wall", 12, (102, 102, 156)),
    ("fence", 13, (190, 153, 153)),
    ("pole", 17, (153, 153, 153)),
    ("traffic light", 19, (250, 170, 30)),
    ("traffic sign", 20, (220, 220, 0)),
    ("vegetation", 21, (107, 142, 35)),
    ("terrain", 22, (152, 251, 152)),
    ("sky", 23, (70, 130, 180)),
    ("person", 24, (220, 20, 60)),
    ("rider", 25, (255, 0, 0)),
    ("car", 26, (0, 0, 142)),
    ("truck", 27, (0, 0, 70)),
    ("bus", 28, (0, 60, 100)),
    ("train", 31, (0, 80, 100)),
    ("motorcycle", 32, (0, 0, 230)),
    ("bicycle", 33, (119, 11, 32)),
]
CITYSCAPES_CLASSES = [name for name, _, _ in CITYSCAPES]
CITYSCAPES_MAP = LabelMap(
    {label: train for train, (_, label, _) in enumerate(CITYSCAPES)}, others="ignore"
)


@DATASETS.register("cityscapes")
class CityscapesDataset(SegmentationDataset):
    """Cityscapes as released: ``ROOT/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png`` with
    ``ROOT/gtFine/<split>/<city>/<name>_gtFine_labelIds.png``; label ids become the 19 train
    ids, every other id the ignore label 255."""

    def __init__(
        self,
        root: Path,
        split: str,
        *,
        transform: JointTransform | None = None,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        images_root, masks_root = Path(root) / "leftImg8bit" / split, Path(root) / "gtFine" / split
        if not images_root.is_dir():
            raise DataError(
                f"{images_root}: no such directory; point --root at the folder "
                "holding leftImg8bit/ and gtFine/"
            )
        samples = []
        for image in sorted(images_root.glob("*/*_leftImg8bit.png")):
            stem = image.name.removesuffix("_leftImg8bit.png")
            mask = masks_root / image.parent.name / f"{stem}_gtFine_labelIds.png"
            if not mask.is_file():
                raise DataError(
                    f"{mask}: missing for {image.name}; restore gtFine from the "
                    "release (gtFine_trainvaltest.zip)"
                )
            samples.append((image, mask))
        if not samples:
            raise DataError(f"{images_root}: no *_leftImg8bit.png images found")
        palette: list[Color] = [colour for _, _, colour in CITYSCAPES]
        super().__init__(
            samples,
            classes=CITYSCAPES_CLASSES,
            palette=palette,
            ignore_index=255,
            transform=transform,
            max_pixels=max_pixels,
            label_map=CITYSCAPES_MAP,
        )


@DATASETS.register("ade20k")
class ADE20KDataset(SegmentationDataset):
    """ADE20K SceneParsing (ADEChallengeData2016): ``ROOT/images/<training|validation>/*.jpg``
    with ``ROOT/annotations/<…>/*.png`` of the same names; 150 classes stored as 1–150, 0
    unlabelled (ignored), so stored values shift down by one. ``train``/``val`` name the
    release's ``training``/``validation``. Class names come from ``ROOT/objectInfo150.txt``
    (or ``.csv``) when present."""

    SPLITS = {"train": "training", "val": "validation"}

    def __init__(
        self,
        root: Path,
        split: str,
        *,
        transform: JointTransform | None = None,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        root = Path(root)
        folder = self.SPLITS.get(split, split)
        samples = pair_by_stem(root / "images" / folder, root / "annotations" / folder)
        super().__init__(
            samples,
            classes=_ade_classes(root),
            ignore_index=255,
            transform=transform,
            max_pixels=max_pixels,
            label_map=LabelMap({0: None}, others=-1),
        )


def _ade_classes(root: Path) -> list[str]:
    """The 150 names of objectInfo150 (its last column, first synonym), else class_1…150."""
    for name in ("objectInfo150.txt", "objectInfo150.csv"):
        path = root / name
        if path.is_file():
            rows = [line for line in read_text(path).splitlines()[1:] if line.strip()]
            sep = "\t" if name.endswith(".txt") else ","
            names = [row.split(sep)[-1].strip().strip('"').split(";")[0] for row in rows]
            if len(names) == 150:
                return names
            raise DataError(
                f"{path}: expected 150 classes, found {len(names)}; use the file "
                "from the SceneParsing release"
            )
    return [f"class_{i}" for i in range(1, 151)]

"""``cvat``: CVAT's "Segmentation mask 1.1" export: ``ROOT/labelmap.txt`` (one
``name:r,g,b:parts:actions`` line per label), colour masks ``ROOT/SegmentationClass/<id>.png``,
images ``ROOT/JPEGImages/<id>.*`` and the ids of each subset in
``ROOT/ImageSets/Segmentation/<split>.txt`` (CVAT names its one subset ``default``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataError
from ..datasets import DATASETS, SegmentationDataset
from ..decode import IMAGE_SUFFIXES, MAX_PIXELS, Color, decode_colors, open_image, read_text
from ..transforms import JointTransform

__all__ = ["CVATDataset", "read_labelmap"]


def read_labelmap(path: Path) -> tuple[list[str], list[Color]]:
    """Class names and colours from CVAT's ``labelmap.txt``, in file order."""
    if not path.is_file():
        raise DataError(f"{path}: missing; export the task as 'Segmentation mask 1.1' from CVAT")
    names, colours = [], []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, rest = line.partition(":")
        try:
            colour = tuple(int(v) for v in rest.split(":")[0].split(","))
        except ValueError:
            colour = ()
        if len(colour) != 3 or not all(0 <= v <= 255 for v in colour):
            raise DataError(f"{path}:{number}: expected name:r,g,b:parts:actions, not {line!r}")
        names.append(name.strip())
        colours.append(colour)
    if not names:
        raise DataError(f"{path}: no labels listed")
    return names, colours


@DATASETS.register("cvat")
class CVATDataset(SegmentationDataset):
    """A CVAT segmentation-mask export (see the module); every colour of the label map is its
    class, the first (CVAT's ``background``) class 0; another colour is an error."""

    def __init__(
        self,
        root: Path,
        split: str,
        *,
        transform: JointTransform | None = None,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        root = Path(root)
        classes, palette = read_labelmap(root / "labelmap.txt")
        listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not listing.is_file():
            raise DataError(f"{listing}: no such subset list; CVAT names its subset 'default'")
        ids = [line.strip() for line in read_text(listing).splitlines() if line.strip()]
        samples = [
            (_image(root / "JPEGImages", i), root / "SegmentationClass" / f"{i}.png") for i in ids
        ]
        if missing := [m.name for _, m in samples if not m.is_file()]:
            raise DataError(
                f"{root / 'SegmentationClass'}: {len(missing)} mask(s) listed in "
                f"{listing.name} missing (first: {missing[0]})"
            )
        super().__init__(
            samples,
            classes=classes,
            palette=palette,
            ignore_index=255,
            transform=transform,
            max_pixels=max_pixels,
        )

    def read_labels(self, path: Path) -> np.ndarray:
        # Colour-coded whatever the PNG's mode: a palette PNG's colours, not its indices.
        rgb = np.asarray(open_image(path, max_pixels=self.max_pixels).convert("RGB"))
        return decode_colors(rgb, path, self.palette, self.ignore_index, None)


def _image(folder: Path, name: str) -> Path:
    found = [p for p in sorted(folder.glob(f"{name}.*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not found:
        raise DataError(f"{folder}: no image for {name}; export the task with its images")
    return found[0]

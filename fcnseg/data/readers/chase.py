"""``chase_db1``: the CHASE_DB1 retinal-vessel release in its own flat layout.

``ROOT/Image_<NN><S>.jpg`` beside ``ROOT/Image_<NN><S>_1stHO.png`` (and ``_2ndHO``): child
``NN``, eye ``S`` (L or R), 1-bit vessel masks. The splits are by child, so that no child's
two eyes fall on both sides: ``train`` children 01–08 (16 images), ``val`` 09–10 (4), ``all``
01–10 (the 20 of the usual training set), ``test`` 11–14 (the usual 8 test images, where a
tree has them).
"""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import ConfigError, DataError
from ..datasets import DATASETS, SegmentationDataset
from ..decode import MAX_PIXELS
from ..transforms import JointTransform

__all__ = ["CHASE_SPLITS", "ChaseDB1Dataset"]

CHASE_SPLITS = {
    "train": range(1, 9),
    "val": range(9, 11),
    "all": range(1, 11),
    "test": range(11, 15),
}
_NAME = re.compile(r"Image_(\d\d)([LR])\.jpg")


@DATASETS.register("chase_db1")
class ChaseDB1Dataset(SegmentationDataset):
    """CHASE_DB1 (Fraz et al. 2012): two classes, background and vessel; ``observer`` picks
    the first (``1stHO``, the usual reference) or second (``2ndHO``) human observer's masks."""

    def __init__(
        self,
        root: Path,
        split: str,
        *,
        transform: JointTransform | None = None,
        max_pixels: int = MAX_PIXELS,
        observer: str = "1stHO",
    ) -> None:
        if split not in CHASE_SPLITS:
            raise ConfigError(
                f"chase_db1 splits are {', '.join(CHASE_SPLITS)} (by child), not {split!r}"
            )
        if observer not in ("1stHO", "2ndHO"):
            raise ConfigError(f"chase_db1 observer is 1stHO or 2ndHO, not {observer!r}")
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"{root}: no such directory; it should hold CHASE_DB1's files")
        samples = []
        for image in sorted(root.glob("Image_*.jpg")):
            match = _NAME.fullmatch(image.name)
            if match and int(match.group(1)) in CHASE_SPLITS[split]:
                mask = image.with_name(f"{image.stem}_{observer}.png")
                if not mask.is_file():
                    raise DataError(f"{image}: no {mask.name} beside it; restore it")
                samples.append((image, mask))
        if not samples:
            children = f"{CHASE_SPLITS[split].start:02d}–{CHASE_SPLITS[split].stop - 1:02d}"
            raise DataError(
                f"{root}: no such split here: {split} is the images Image_NNS.jpg of "
                f"children {children}"
            )
        super().__init__(
            samples,
            classes=["background", "vessel"],
            palette=[(0, 0, 0), (255, 0, 0)],
            ignore_index=255,
            transform=transform,
            max_pixels=max_pixels,
        )

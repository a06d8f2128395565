"""``coco``: COCO-format instance and stuff annotations (polygons and RLE) as semantic masks.

The layout as released: ``ROOT/annotations/instances_<split>.json`` with the images in
``ROOT/<split>/`` (``split`` as in the file name, e.g. ``val2017``); any file of that format
exported by an annotation tool works the same. Decoding uses ``pycocotools``, an optional
extra: ``pip install fcnseg[coco]``.

Classes are ``background`` then the categories, in id order, or the ``categories`` given
(names, comma-separated or a list: a subset and its order; the others become background).
Each image's annotations are drawn largest first, so that smaller objects stay visible over
larger ones; crowd regions (``iscrowd``) are ignored.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, DataError
from ..datasets import DATASETS, SegmentationDataset
from ..decode import MAX_PIXELS
from ..transforms import JointTransform

__all__ = ["COCODataset"]


def _coco(path: Path) -> Any:
    try:
        from pycocotools.coco import COCO
    except ImportError:
        raise ConfigError("the coco reader needs pycocotools: pip install 'fcnseg[coco]'") from None
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
            return COCO(str(path))
    except Exception as error:  # noqa: BLE001  (json and pycocotools report many types)
        raise DataError(f"{path}: not a readable COCO annotation file ({error})") from None


def _malformed(path: Path, what: str) -> DataError:
    return DataError(f"{path}: not in COCO format ({what}); export it again")


@DATASETS.register("coco")
class COCODataset(SegmentationDataset):
    """COCO annotations as semantic masks (see the module)."""

    def __init__(
        self,
        root: Path,
        split: str,
        *,
        transform: JointTransform | None = None,
        max_pixels: int = MAX_PIXELS,
        categories: str | list[str] | None = None,
    ) -> None:
        root = Path(root)
        path = root / "annotations" / f"instances_{split}.json"
        if not path.is_file():
            raise DataError(
                f"{path}: no such annotation file; the COCO layout is "
                "ROOT/annotations/instances_<split>.json with images in ROOT/<split>/"
            )
        self.coco = _coco(path)
        try:
            known = {
                c["name"]: c["id"]
                for c in sorted(self.coco.loadCats(self.coco.getCatIds()), key=lambda c: c["id"])
            }
            files = {i: self.coco.loadImgs(i)[0]["file_name"] for i in self.coco.getImgIds()}
        except (KeyError, TypeError, IndexError):
            raise _malformed(
                path, "a category without name and id, or an image without file_name"
            ) from None
        names = categories.split(",") if isinstance(categories, str) else categories
        names = [n.strip() for n in names] if names else list(known)
        if unknown := [n for n in names if n not in known]:
            raise ConfigError(
                f"categories {', '.join(unknown)} are not in {path} (it has {', '.join(known)})"
            )
        self.class_of = {known[n]: i + 1 for i, n in enumerate(names)}
        samples = [(root / split / str(files[i]), Path(f"{path}#{i}")) for i in sorted(files)]
        if not samples:
            raise DataError(f"{path}: no images listed")
        super().__init__(
            samples,
            classes=["background", *names],
            ignore_index=255,
            transform=transform,
            max_pixels=max_pixels,
        )

    def read_labels(self, path: Path) -> np.ndarray:
        image_id = int(str(path).rpartition("#")[2])
        info = self.coco.loadImgs(image_id)[0]
        try:
            height, width = int(info["height"]), int(info["width"])
            annotations = sorted(
                self.coco.loadAnns(self.coco.getAnnIds(imgIds=image_id)),
                key=lambda a: -float(a.get("area", 0)),
            )
            kinds = [(bool(a.get("iscrowd")), a["category_id"]) for a in annotations]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise _malformed(
                path, "an image without height and width, or an annotation without category_id"
            ) from None
        if not 0 < height * width <= self.max_pixels:
            raise DataError(f"{path}: image size {width}×{height} is out of range")
        labels = np.zeros((height, width), dtype=np.int64)
        for ann, (crowd, category) in zip(annotations, kinds, strict=True):
            if category not in self.class_of and not crowd:
                continue
            try:
                mask = self.coco.annToMask(ann).astype(bool)
            except Exception as error:  # noqa: BLE001  (malformed polygons or RLE)
                raise DataError(
                    f"{path}: annotation {ann.get('id')} cannot be decoded "
                    f"({error}); fix or remove it"
                ) from None
            labels[mask] = self.ignore_index if crowd else self.class_of[category]
        return labels

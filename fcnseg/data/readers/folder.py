"""``folder``: the generic layout for a user's own data, ``ROOT/<split>/{images,masks}``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import DataError
from ..datasets import DATASETS, SegmentationDataset
from ..decode import MAX_PIXELS, Color, open_image, to_labels
from ..labelmap import LabelMap
from ..transforms import JointTransform
from .pairing import pair_by_pattern, pair_by_stem

__all__ = ["ClassesJson", "FolderDataset", "read_classes_json"]


@DATASETS.register("folder")
class FolderDataset(SegmentationDataset):
    """``ROOT/<split>/images/*`` with ``ROOT/<split>/masks/*`` of the same file stem.

    Masks are class-index PNGs (``L``/``P``/``I``: the pixel value is the class) or RGB
    colour-coded with the palette. ``ROOT/classes.json`` describes the classes::

        {"classes": ["background", "cat"], "palette": [[0, 0, 0], [128, 0, 0]],
         "ignore_index": 255, "ignore_color": [224, 224, 192]}

    where ``palette``, ``ignore_index`` (default 255) and ``ignore_color`` (the RGB of ignored
    pixels in colour-coded masks; default none) are optional, and so are ``"map"`` (stored mask
    values → classes, :mod:`fcnseg.data.labelmap`) and ``"mask_pattern"`` (masks named after
    their image by a pattern, ``"{stem}_1stHO.png"``, instead of by the same stem); the
    options ``label_map`` and ``mask_pattern`` override them. Without classes.json, pass
    ``num_classes``; failing that it is inferred as one more than the largest label in the
    masks of every split under ``ROOT`` (ignore label 255 aside), so that a validation split
    lacking a class still agrees with the training split; this reads every mask once and needs
    index masks. Images have ``in_channels`` channels: 3 (RGB, the default), or any other count
    for grey, RGB-D or multi-band images (PNG, TIFF, ``.npy``; :mod:`fcnseg.data.bands`).
    Classes then are named ``class_0``, ``class_1``, … and coloured with the VOC palette, which
    is also how colour-coded masks are then decoded.
    """

    def __init__(
        self,
        root: Path,
        split: str,
        *,
        transform: JointTransform | None = None,
        num_classes: int | None = None,
        max_pixels: int = MAX_PIXELS,
        label_map: str | dict | None = None,
        mask_pattern: str | None = None,
        in_channels: int = 3,
    ) -> None:
        root = Path(root)
        description = root / "classes.json"
        spec = read_classes_json(description) if description.is_file() else None
        classes = spec.classes if spec else []
        palette, ignore_color = (spec.palette, spec.ignore_color) if spec else (None, None)
        ignore_index = spec.ignore_index if spec else 255
        mapping = spec.label_map if spec else None
        pattern = (
            mask_pattern if mask_pattern is not None else (spec.mask_pattern if spec else None)
        )
        samples = _pairs(root / split, pattern)
        if label_map is not None:  # the flag overrides the file
            mapping = LabelMap.parse(label_map, source="--label-map")
        if spec is None:
            if num_classes is None:
                # From every split's masks, so that all splits agree on the classes.
                everything = [
                    pair
                    for other in sorted(p.parent for p in root.glob("*/masks") if p.is_dir())
                    for pair in (samples if other.name == split else _pairs(other, pattern))
                ]
                num_classes = _infer_num_classes(everything, ignore_index, max_pixels, mapping)
            classes = [f"class_{i}" for i in range(num_classes)]
        super().__init__(
            samples,
            classes=classes,
            palette=palette,
            ignore_index=ignore_index,
            ignore_color=ignore_color,
            transform=transform,
            max_pixels=max_pixels,
            label_map=mapping,
            in_channels=in_channels,
        )


@dataclass(frozen=True)
class ClassesJson:
    """What ``classes.json`` says (see :class:`FolderDataset`)."""

    classes: list[str]
    palette: list[Color] | None
    ignore_index: int
    ignore_color: Color | None
    label_map: LabelMap | None
    mask_pattern: str | None


def read_classes_json(path: Path) -> ClassesJson:
    """Read and check ``classes.json``; every problem is one line naming the key."""
    try:
        spec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({error}); fix the file") from None
    classes = spec.get("classes") if isinstance(spec, dict) else None
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        raise DataError(f'{path}: needs "classes": a non-empty list of class names')
    palette = spec.get("palette")
    if palette is not None:
        if not (
            isinstance(palette, list)
            and len(palette) == len(classes)
            and all(_is_color(c) for c in palette)
        ):
            raise DataError(
                f'{path}: "palette" must list one [r, g, b] (0–255) per class '
                f"({len(classes)} classes)"
            )
        palette = [tuple(c) for c in palette]
        if len(set(palette)) != len(palette):
            raise DataError(f'{path}: "palette" repeats a colour; give every class its own')
    ignore_index = spec.get("ignore_index", 255)
    if not isinstance(ignore_index, int) or 0 <= ignore_index < len(classes):
        raise DataError(
            f'{path}: "ignore_index" must be an integer outside the classes 0–{len(classes) - 1}'
        )
    ignore_color = spec.get("ignore_color")
    if ignore_color is not None:
        if not _is_color(ignore_color):
            raise DataError(f'{path}: "ignore_color" must be [r, g, b] with values 0–255')
        ignore_color = tuple(ignore_color)
    mapping = LabelMap.parse(spec["map"], source=str(path)) if "map" in spec else None
    pattern = spec.get("mask_pattern")
    if pattern is not None and not isinstance(pattern, str):
        raise DataError(f'{path}: "mask_pattern" must be text such as "{{stem}}_mask.png"')
    return ClassesJson(classes, palette, ignore_index, ignore_color, mapping, pattern)


def _is_color(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, int) and 0 <= v <= 255 for v in value)
    )


def _pairs(split_dir: Path, pattern: str | None) -> list[tuple[Path, Path]]:
    images, masks = split_dir / "images", split_dir / "masks"
    return (
        pair_by_stem(images, masks) if pattern is None else pair_by_pattern(images, masks, pattern)
    )


def _infer_num_classes(
    samples: list[tuple[Path, Path]],
    ignore_index: int,
    max_pixels: int,
    mapping: LabelMap | None = None,
) -> int:
    largest = -1
    for _, mask_path in samples:
        # No palette yet: a colour-coded mask is refused, asking for classes.json.
        labels = to_labels(
            open_image(mask_path, max_pixels=max_pixels),
            mask_path,
            palette=None,
            ignore_index=ignore_index,
            ignore_color=None,
        )
        if mapping is not None:
            labels = mapping.apply(labels, ignore_index)
        labels = labels[labels != ignore_index]
        if labels.size:
            largest = max(largest, int(labels.max()))
    if largest < 0:
        raise DataError(
            f"{samples[0][1].parent}: masks hold no labels besides ignore ({ignore_index}); "
            "pass num_classes or write classes.json"
        )
    return largest + 1

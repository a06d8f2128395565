"""``labelme``: annotations drawn in LabelMe, as the JSON files it saves.

``ROOT/<split>/*.json``, each naming its image (``imagePath``, relative to the JSON file) and
its ``shapes``: polygons, rectangles and circles with a class ``label``. ``ROOT/classes.json``
lists the class names (``{"classes": ["background", "cat", …]}``), background first; pixels no
shape covers are class 0; a shape labelled ``__ignore__`` marks ignored pixels. Shapes are
drawn in file order, a later one over an earlier one, as LabelMe's own export does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ...errors import DataError
from ..datasets import DATASETS, SegmentationDataset
from ..decode import MAX_PIXELS
from ..transforms import JointTransform
from .folder import read_classes_json

__all__ = ["IGNORE_LABEL", "LabelMeDataset"]

IGNORE_LABEL = "__ignore__"


@DATASETS.register("labelme")
class LabelMeDataset(SegmentationDataset):
    """LabelMe JSON annotations under ``ROOT/<split>/`` with ``ROOT/classes.json``."""

    def __init__(
        self,
        root: Path,
        split: str,
        *,
        transform: JointTransform | None = None,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        root = Path(root)
        description = root / "classes.json"
        if not description.is_file():
            raise DataError(
                f"{description}: missing; list the class names, background first: "
                '{"classes": ["background", "cat"]}'
            )
        spec = read_classes_json(description)
        folder = root / split
        if not folder.is_dir():
            raise DataError(f"{folder}: no such directory; it should hold the LabelMe .json files")
        samples = [(_image_of(path), path) for path in sorted(folder.glob("*.json"))]
        if not samples:
            raise DataError(f"{folder}: no LabelMe .json files found")
        super().__init__(
            samples,
            classes=spec.classes,
            palette=spec.palette,
            ignore_index=spec.ignore_index,
            transform=transform,
            max_pixels=max_pixels,
        )

    def read_labels(self, path: Path) -> np.ndarray:
        data = _json(path)
        try:
            size = (int(data["imageWidth"]), int(data["imageHeight"]))
            shapes = list(data.get("shapes") or [])
        except (KeyError, TypeError, ValueError):
            raise DataError(
                f"{path}: no imageWidth/imageHeight; save it again from LabelMe"
            ) from None
        if size[0] * size[1] > self.max_pixels or min(size) < 1:
            raise DataError(f"{path}: image size {size[0]}×{size[1]} is out of range")
        canvas = Image.new("I", size, 0)
        draw = ImageDraw.Draw(canvas)
        index = {name: i for i, name in enumerate(self.classes)}
        for shape in shapes:
            label = shape.get("label") if isinstance(shape, dict) else None
            if label == IGNORE_LABEL:
                value = self.ignore_index
            elif label in index:
                value = index[label]
            else:
                raise DataError(
                    f"{path}: label {label!r} is not in classes.json "
                    f"({', '.join(self.classes)}); add it there, or relabel it"
                )
            _draw(draw, shape, value, path)
        return np.asarray(canvas, dtype=np.int64)


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not a readable LabelMe file ({error}); save it again") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a LabelMe file (no mapping at the top)")
    return data


def _image_of(path: Path) -> Path:
    image = _json(path).get("imagePath")
    if not isinstance(image, str):
        raise DataError(f"{path}: no imagePath; save it again from LabelMe")
    resolved = (path.parent / image).resolve()
    if not resolved.is_file():
        raise DataError(
            f"{path}: its image {image} is not beside it ({resolved}); move the "
            "image there or fix imagePath"
        )
    return resolved


def _draw(draw: ImageDraw.ImageDraw, shape: dict[str, Any], value: int, path: Path) -> None:
    kind = shape.get("shape_type") or "polygon"
    try:
        points = [(float(x), float(y)) for x, y in shape["points"]]
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{path}: a {kind} without [x, y] points; fix it in LabelMe") from None
    if kind == "polygon" and len(points) >= 3:
        draw.polygon(points, fill=value, outline=value)
    elif kind == "rectangle" and len(points) == 2:
        (x0, y0), (x1, y1) = points
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], fill=value)
    elif kind == "circle" and len(points) == 2:
        (cx, cy), (px, py) = points
        r = ((px - cx) ** 2 + (py - cy) ** 2) ** 0.5
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=value)
    else:
        raise DataError(
            f"{path}: a {kind} shape with {len(points)} point(s) cannot be filled; "
            "use polygons, rectangles or circles for segmentation"
        )

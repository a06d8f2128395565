"""The on-disk layouts of the datasets FCN and its successors train on, each registered by name.

``folder`` (a generic images/ + masks/ tree), ``camvid`` (SegNet's release), ``voc`` (PASCAL
VOC 2011/2012) and ``sbd`` (Semantic Boundaries Dataset, MATLAB masks). Each reader only finds
the files and describes the classes; :class:`~fcnseg.data.datasets.SegmentationDataset` reads
and checks them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from fcnseg.data.datasets import SegmentationDataset, register, voc_palette
from fcnseg.data.reading import LOSSY_SUFFIXES, MAX_PIXELS, Color, open_image, to_labels
from fcnseg.data.transforms import JointTransform
from fcnseg.errors import DataError

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"}
)


# --- pairing files ---------------------------------------------------------------------------


def _files_by_stem(directory: Path, what: str) -> dict[str, Path]:
    if not directory.is_dir():
        raise DataError(f"{directory}: no such directory; it should hold the {what}")
    files: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        # Hidden files are editor and OS litter (.DS_Store, ._x.png), never samples.
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in files:
            raise DataError(
                f"{path}: same name as {files[path.stem].name}; "
                "keep one file per name so images and masks pair unambiguously"
            )
        files[path.stem] = path
    return files


def _few(names: Iterable[str]) -> str:
    names = sorted(names)
    return ", ".join(names[:5]) + (f", … ({len(names)} in all)" if len(names) > 5 else "")


def pair_by_stem(image_dir: Path, mask_dir: Path) -> list[tuple[Path, Path]]:
    """Images and masks matched by file name without extension; orphans are an error."""
    images = _files_by_stem(image_dir, "images")
    masks = _files_by_stem(mask_dir, "masks")
    if not images:
        raise DataError(
            f"{image_dir}: no images found; put images (.png, .jpg) there "
            f"and masks with the same names in {mask_dir}"
        )
    if lonely := images.keys() - masks.keys():
        raise DataError(
            f"{image_dir}: {len(lonely)} image(s) without a mask in {mask_dir} "
            f"({_few(images[s].name for s in lonely)}); add the masks or remove the images"
        )
    if lonely := masks.keys() - images.keys():
        raise DataError(
            f"{mask_dir}: {len(lonely)} mask(s) without an image in {image_dir} "
            f"({_few(masks[s].name for s in lonely)}); add the images or remove the masks"
        )
    samples = [(images[stem], masks[stem]) for stem in sorted(images)]
    lossy = [m.name for _, m in samples if m.suffix.lower() in LOSSY_SUFFIXES]
    if lossy:
        raise DataError(
            f"{mask_dir}: masks saved lossy ({_few(lossy)}); JPEG noise invents labels "
            "at every edge, so export masks as PNG"
        )
    return samples


def pair_by_list(
    list_file: Path, image_dir: Path, image_suffix: str, mask_dir: Path, mask_suffix: str
) -> list[tuple[Path, Path]]:
    """Samples named by the ids (one per line) of a VOC-style split list."""
    if not list_file.is_file():
        raise DataError(f"{list_file}: split list not found; check the dataset root and split")
    ids = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
    if not ids:
        raise DataError(f"{list_file}: split list is empty; list one image id per line")
    samples = [(image_dir / f"{i}{image_suffix}", mask_dir / f"{i}{mask_suffix}") for i in ids]
    for index, directory in ((0, image_dir), (1, mask_dir)):
        missing = [s[index].name for s in samples if not s[index].is_file()]
        if missing:
            raise DataError(
                f"{list_file}: {len(missing)} listed file(s) missing from {directory} "
                f"({_few(missing)}); restore them or use the list that matches this copy"
            )
    return samples


# --- readers ---------------------------------------------------------------------------------


@register("folder")
class FolderDataset(SegmentationDataset):
    """``ROOT/<split>/images/*`` with ``ROOT/<split>/masks/*`` of the same file stem.

    Masks are class-index PNGs (``L``/``P``/``I``: the pixel value is the class) or RGB
    colour-coded with the palette. ``ROOT/classes.json`` describes the classes::

        {"classes": ["background", "cat"], "palette": [[0, 0, 0], [128, 0, 0]],
         "ignore_index": 255, "ignore_color": [224, 224, 192]}

    where ``palette``, ``ignore_index`` (default 255) and ``ignore_color`` (the RGB of ignored
    pixels in colour-coded masks; default none) are optional. Without classes.json, pass
    ``num_classes``; failing that it is inferred as one more than the largest label in the
    split's masks (ignore label 255 aside), which reads every mask once and needs index masks.
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
    ) -> None:
        root = Path(root)
        samples = pair_by_stem(root / split / "images", root / split / "masks")
        description = root / "classes.json"
        if description.is_file():
            classes, palette, ignore_index, ignore_color = _read_classes_json(description)
        else:
            palette, ignore_index, ignore_color = None, 255, None
            if num_classes is None:
                num_classes = _infer_num_classes(samples, ignore_index, max_pixels)
            classes = [f"class_{i}" for i in range(num_classes)]
        super().__init__(
            samples,
            classes=classes,
            palette=palette,
            ignore_index=ignore_index,
            ignore_color=ignore_color,
            transform=transform,
            max_pixels=max_pixels,
        )


def _read_classes_json(path: Path) -> tuple[list[str], list[Color] | None, int, Color | None]:
    try:
        spec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({error}); fix the file") from None
    classes = spec.get("classes") if isinstance(spec, dict) else None
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        raise DataError(f'{path}: needs "classes": a non-empty list of class names')
    palette = spec.get("palette")
    if palette is not None:
        if not (isinstance(palette, list) and len(palette) == len(classes)
                and all(_is_color(c) for c in palette)):
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
    return classes, palette, ignore_index, ignore_color


def _is_color(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, int) and 0 <= v <= 255 for v in value)
    )


def _infer_num_classes(samples: list[tuple[Path, Path]], ignore_index: int, max_pixels: int) -> int:
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
        labels = labels[labels != ignore_index]
        if labels.size:
            largest = max(largest, int(labels.max()))
    if largest < 0:
        raise DataError(
            f"{samples[0][1].parent}: masks hold no labels besides ignore ({ignore_index}); "
            "pass num_classes or write classes.json"
        )
    return largest + 1


CAMVID_CLASSES = [
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree",
    "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
]  # fmt: skip
CAMVID_PALETTE: list[Color] = [
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
    (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
]  # fmt: skip


@register("camvid")
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


VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
]  # fmt: skip
VOC_VOID_COLOR: Color = voc_palette(256)[255]


@register("voc")
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
        listing = Path(list_file) if list_file is not None else (
            root / "ImageSets" / "Segmentation" / f"{split}.txt"
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


@register("sbd")
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
        except (OSError, ValueError, TypeError, NotImplementedError):
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

"""Pairing image files with mask files: by identical stem, or by a VOC-style split list."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ...errors import DataError
from ..decode import IMAGE_SUFFIXES, LOSSY_SUFFIXES

__all__ = ["pair_by_list", "pair_by_stem"]


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

"""Pairing image files with mask files: by identical stem, by a name pattern
(``{stem}_1stHO.png``), or by a VOC-style split list."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ...errors import DataError
from ..decode import IMAGE_SUFFIXES, LOSSY_SUFFIXES, read_text

__all__ = ["pair_by_list", "pair_by_pattern", "pair_by_stem"]


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
    return _lossless([(images[stem], masks[stem]) for stem in sorted(images)], mask_dir)


def pair_by_pattern(image_dir: Path, mask_dir: Path, pattern: str) -> list[tuple[Path, Path]]:
    """Each image with the mask named ``pattern`` with its stem, e.g. ``{stem}_1stHO.png`` for
    ``Image_01L.jpg`` → ``Image_01L_1stHO.png``. Masks no image names are left alone (other
    annotators' masks may share the folder); an image without its mask is an error."""
    if "{stem}" not in pattern:
        raise DataError(f"mask pattern {pattern!r} must contain {{stem}}, e.g. '{{stem}}_mask.png'")
    images = _files_by_stem(image_dir, "images")
    if not images:
        raise DataError(f"{image_dir}: no images found; put images (.png, .jpg) there")
    names = {stem: pattern.replace("{stem}", stem) for stem in images}
    samples = [(images[stem], mask_dir / names[stem]) for stem in sorted(images)]
    if missing := [names[p.stem] for p, m in samples if not m.is_file()]:
        raise DataError(
            f"{mask_dir}: {len(missing)} mask(s) named by {pattern!r} missing ({_few(missing)}); "
            "add them, or fix the pattern"
        )
    return _lossless(samples, mask_dir)


def _lossless(samples: list[tuple[Path, Path]], mask_dir: Path) -> list[tuple[Path, Path]]:
    lossy = [m.name for _, m in samples if m.suffix.lower() in LOSSY_SUFFIXES]
    if lossy:
        raise DataError(
            f"{mask_dir}: masks saved lossy ({_few(lossy)}); JPEG noise invents labels "
            "at every edge, so export masks as PNG"
        )
    return samples


def pair_by_list(
    list_file: Path,
    image_dir: Path,
    image_suffix: str,
    mask_dir: Path,
    mask_suffix: str,
    *,
    prefix: str = "",
) -> list[tuple[Path, Path]]:
    """Samples named by the ids (one per line) of a VOC-style split list, file names
    ``<prefix><id><suffix>``."""
    if not list_file.is_file():
        raise DataError(f"{list_file}: split list not found; check the dataset root and split")
    ids = [line.split()[0] for line in read_text(list_file).splitlines() if line.strip()]
    if not ids:
        raise DataError(f"{list_file}: split list is empty; list one image id per line")
    samples = [
        (image_dir / f"{prefix}{i}{image_suffix}", mask_dir / f"{prefix}{i}{mask_suffix}")
        for i in ids
    ]
    for index, directory in ((0, image_dir), (1, mask_dir)):
        missing = [s[index].name for s in samples if not s[index].is_file()]
        if missing:
            raise DataError(
                f"{list_file}: {len(missing)} listed file(s) missing from {directory} "
                f"({_few(missing)}); restore them or use the list that matches this copy"
            )
    return samples

"""``fcnseg predict``'s files: the images it reads (files, folders, globs), the names and folder
of what it writes, and the writing of masks, overlays and probabilities, each atomically."""

from __future__ import annotations

import glob
import os
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.bands import Raster, read_bands
from ..data.decode import IMAGE_SUFFIXES, MAX_PIXELS, open_image, to_rgb_tensor
from ..errors import ConfigError, DataError
from ..files import atomic_write, check_writable
from ..files.masks import BAND_ROWS, display_rgb, mask_image, overlay, palette_of
from ..inference import Predictor
from ..inference.tiling import AUTO_TILE_PIXELS
from ..models import ModelMeta

__all__ = [
    "TILED_MAX_PIXELS",
    "Writer",
    "batches",
    "check_out_folder",
    "expand_inputs",
    "output_names",
    "read_image",
    "segment",
    "segment_raster",
]

# With tiling, memory no longer limits the image: allow up to this many pixels (3 GB as RGB).
TILED_MAX_PIXELS = 1 << 30


# ---------------------------------------------------------------- inputs


def expand_inputs(patterns: Sequence[str]) -> list[Path]:
    """Image files named by ``patterns``: files, directories (recursively), globs."""
    found: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found += sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
        elif path.exists():
            found.append(path)
        elif glob.has_magic(pattern):
            matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
            found += [p for p in matches if p.is_file()]
        else:
            raise DataError(f"{pattern}: no such file or directory; check the path")
    if not found:
        raise DataError(
            f"no images found in {' '.join(patterns)}; pass image files, folders "
            "of images or glob patterns"
        )
    return list(dict.fromkeys(found))


def output_names(paths: Sequence[Path]) -> list[Path]:
    """Each input's path relative to the inputs' common folder, without its suffix; inputs that
    would share a name keep their suffix in it (``a.jpg`` → ``a_jpg``)."""
    resolved = [p.resolve() for p in paths]
    root = Path(os.path.commonpath([p.parent for p in resolved]))
    names = [p.relative_to(root).with_suffix("") for p in resolved]
    counts = Counter(names)
    return [
        n.with_name(f"{n.name}_{p.suffix[1:].lower()}") if counts[n] > 1 else n
        for n, p in zip(names, resolved, strict=True)
    ]


def check_out_folder(out: Path, paths: Sequence[Path]) -> None:
    """Refuse an output folder that holds input images (the masks would overwrite them) or that
    cannot be written, before the model is prepared (choosing an engine can take minutes)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: a file, not a folder; name a folder for the masks")
    check_writable(out, flag="--out", folder=True)
    target = out.resolve()
    if any(p.resolve().parent == target for p in paths):
        raise ConfigError(
            f"--out {out}: it holds input images, which the masks and overlays "
            "would overwrite; choose another folder"
        )


def read_image(
    path: Path, *, tiled: bool, max_pixels: int | None = None, channels: int = 3
) -> np.ndarray:
    """``path`` as an H×W×3 uint8 array: EXIF orientation applied, any mode made RGB (an
    H×W×``channels`` array for a model of other input channels); ``max_pixels`` (default: by
    ``tiled``) is the decompression-bomb guard."""
    limit = max_pixels or (TILED_MAX_PIXELS if tiled else MAX_PIXELS)
    if channels != 3 or path.suffix.lower() == ".npy":
        return read_bands(path, channels, max_pixels=limit).permute(1, 2, 0).numpy()
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max(saved or 0, limit // 2)  # PIL's own refusal is at twice this
    try:
        image = open_image(path, max_pixels=limit)
    except DataError as exc:
        if tiled or max_pixels or "pixels" not in str(exc):
            raise
        raise DataError(f"{exc}; or segment it in tiles with --tile auto") from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    if image.mode.startswith("I") or image.mode == "P":  # 16-bit scans, palettes: the data rules
        return to_rgb_tensor(image).permute(1, 2, 0).numpy()
    return np.array(image if image.mode == "RGB" else image.convert("RGB"))


# ---------------------------------------------------------------- writing


class Writer:
    """Writes the outputs of one image, each file atomically; for a net of several heads,
    each head's as ``NAME_<head>…``."""

    def __init__(self, out: Path, meta: ModelMeta, probabilities: str | None) -> None:
        self.out, self.probabilities = out, probabilities
        self.heads = [(name, meta.head(name) if name else meta) for name, _ in meta.head_slices()]

    def _each(self, name: Path, mask: np.ndarray) -> Iterator[tuple[Path, np.ndarray, ModelMeta]]:
        """Each head's base path, mask and metadata (a mask heads×H×W for several heads)."""
        base = self.out / name
        if len(self.heads) == 1:
            yield base, mask, self.heads[0][1]
            return
        for (head, meta), part in zip(self.heads, mask, strict=True):
            yield base.with_name(f"{base.name}_{head}"), part, meta

    def masks(self, name: Path, image: np.ndarray, mask: np.ndarray) -> None:
        for base, part, meta in self._each(name, mask):
            palette = palette_of(meta)
            atomic_write(
                base.with_name(base.name + ".png"),
                lambda tmp, m=part, p=palette: mask_image(m, p).save(tmp, format="PNG"),
            )
        self.overlay(name, image, mask)

    def geotiff(self, name: Path, mask: np.ndarray, raster: Raster) -> None:
        from ..files.geotiff import write_geotiff

        for base, part, meta in self._each(name, mask):
            path = base.with_name(base.name + ".tif")
            write_geotiff(path, part, raster, palette_of(meta), meta.classes)

    def overlay(self, name: Path, image: np.ndarray, mask: np.ndarray) -> None:
        shown = display_rgb(image)
        for base, part, meta in self._each(name, mask):
            palette = palette_of(meta)
            atomic_write(
                base.with_name(base.name + "_overlay.png"),
                # overlay() blends in place: each head gets its own copy of the image.
                lambda tmp, m=part, p=palette: overlay(shown.copy(), m, p).save(tmp, format="PNG"),
            )

    def probability_file(self, name: Path) -> Path:
        base = self.out / name
        suffix = "png" if self.probabilities == "png8" else self.probabilities
        return base.with_name(f"{base.name}_prob.{suffix}")


def segment(
    predictor: Predictor, image: np.ndarray | Raster, writer: Writer, name: Path
) -> np.ndarray:
    """The mask of one image (an H×W×C array, or a raster read tile by tile), writing its
    probabilities on the way if asked."""
    size = image.shape[1:] if isinstance(image, Raster) else image.shape[:2]
    if writer.probabilities is None:
        if not isinstance(image, Raster):
            return predictor(image).numpy()
        heads = len(predictor.meta.head_slices())
        shape = tuple(size) if heads == 1 else (heads, *size)
        mask = mask_memory(writer.out, shape, predictor.label_dtype)
        predictor(image, out=mask)
        return mask
    path = writer.probability_file(name)
    if writer.probabilities == "npy":
        # The probabilities go straight into the file, tile by tile; then the mask is their
        # argmax, read back band by band.
        def write(tmp: Path) -> None:
            shape = (predictor.num_classes, *size)
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=shape)
            predictor.probabilities(image, out=array)
            array.flush()

        atomic_write(path, write)
        probs = np.load(path, mmap_mode="r")
        parts = [part for _, part in predictor.meta.head_slices()]
        masks = [
            np.concatenate(
                [
                    probs[part, top : top + BAND_ROWS].argmax(0).astype(np.uint8)
                    for top in range(0, probs.shape[1], BAND_ROWS)
                ]
            )
            for part in parts
        ]
        return masks[0] if len(masks) == 1 else np.stack(masks)
    if writer.probabilities in ("png", "png8"):
        probs = predictor.probabilities(image)
        atomic_write(
            path,
            lambda tmp: probability_image(probs[1], writer.probabilities).save(tmp, format="PNG"),
        )
        return probs.argmax(0).to(predictor.label_dtype).numpy()
    from safetensors.torch import save_file

    probs = predictor.probabilities(image, dtype=torch.float16)
    atomic_write(
        path,
        lambda tmp: save_file(
            {"probabilities": probs}, str(tmp), metadata={"classes": str(predictor.num_classes)}
        ),
    )
    masks = [probs[part].argmax(0) for _, part in predictor.meta.head_slices()]
    return (masks[0] if len(masks) == 1 else torch.stack(masks)).to(predictor.label_dtype).numpy()


def probability_image(foreground: torch.Tensor, kind: str) -> Image.Image:
    """A foreground probability map as a grey PNG image: 16-bit (``png``) or 8-bit
    (``png8``), 0 for probability 0 and the largest value for 1."""
    top = 65535 if kind == "png" else 255
    values = (foreground.float() * top).round().clamp(0, top).numpy()
    if kind == "png":
        return Image.fromarray(values.astype(np.uint16))
    return Image.fromarray(values.astype(np.uint8), mode="L")


def mask_memory(out: Path, shape: tuple[int, ...], dtype: torch.dtype) -> np.ndarray:
    """Room for one mask: in memory, or for a raster of more than AUTO_TILE_PIXELS pixels a
    memory map on an unnamed temporary file in the output folder (gone with the process,
    even a killed one)."""
    kind = np.uint8 if dtype == torch.uint8 else np.int64
    if shape[-2] * shape[-1] <= AUTO_TILE_PIXELS:
        return np.empty(shape, dtype=kind)
    out.mkdir(parents=True, exist_ok=True)
    # Not a context manager: the map keeps the file for as long as the mask lives.
    handle = tempfile.TemporaryFile(dir=out)  # noqa: SIM115
    return np.memmap(handle, dtype=kind, mode="w+", shape=shape)


def segment_raster(
    predictor: Predictor, path: Path, writer: Writer, name: Path, max_pixels: int | None
) -> None:
    """A georeferenced raster read window by window: ``NAME.tif``, the mask with the raster's
    CRS and transform, and the overlay for rasters small enough to view whole."""
    channels = predictor.meta.in_channels
    with Raster(path, channels, max_pixels=max_pixels or TILED_MAX_PIXELS) as raster:
        mask = segment(predictor, raster, writer, name)
        writer.geotiff(name, mask, raster)
        if raster.shape[1] * raster.shape[2] <= AUTO_TILE_PIXELS:
            writer.overlay(name, raster.read().permute(1, 2, 0).numpy(), np.asarray(mask))


def batches(
    paths: Sequence[Path],
    size: int,
    tiled: bool,
    skip_bad: bool,
    bad: list[tuple[Path, str]],
    max_pixels: int | None = None,
    channels: int = 3,
) -> Iterator[list[tuple[int, np.ndarray]]]:
    """Images read ``size`` at a time (the predictor batches those of equal size)."""
    batch: list[tuple[int, np.ndarray]] = []
    for i, path in enumerate(paths):
        try:
            image = read_image(path, tiled=tiled, max_pixels=max_pixels, channels=channels)
            batch.append((i, image))
        except DataError as exc:
            if not skip_bad:
                raise
            bad.append((path, str(exc)))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch

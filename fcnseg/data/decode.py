"""Reading images and label masks from disk into the tensors of docs/CONTRACTS.md.

Every problem a user can cause (unreadable file, giant file, stray label, colour not in the
palette) becomes a one-line :class:`~fcnseg.errors.DataError` naming the file and the fix.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import DataError

# The files read as images, by suffix: the one list for dataset folders and `fcnseg predict`.
# NumPy arrays are images too, for bands beyond RGB (:mod:`fcnseg.data.bands`).
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif", ".npy"}
)

# PIL's own default (Image.MAX_IMAGE_PIXELS): about 0.18 gigapixels, i.e. ~0.5 GB as RGB.
MAX_PIXELS = 178_956_970

# Masks must be stored losslessly: JPEG noise would turn every edge into stray labels.
LOSSY_SUFFIXES = frozenset({".jpg", ".jpeg", ".jfif", ".webp"})

Color = tuple[int, int, int]

# 0–1, 0–255 or physical units? A guess would be silently wrong for some images: refuse.
FLOAT_PIXELS = (
    "32-bit float pixels (mode F) have no fixed range; save the image as 8- or "
    "16-bit integers (e.g. scaled to 0–255)"
)

# Pillow raises a zoo of exceptions for damaged files depending on the format and where the
# damage is; all of them mean the same thing to a person.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError)


def open_image(path: Path, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open and decode ``path`` with its EXIF orientation applied.

    The pixel limit is checked from the header, before any pixel is decoded, so a decompression
    bomb costs nothing. PIL's own warning is silenced in favour of this check; PIL still refuses
    outright files beyond twice ``Image.MAX_IMAGE_PIXELS`` (raised to ``max_pixels`` for the
    call when that is higher), reported here the same way.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found; restore it or remove it from the dataset")
    saved = Image.MAX_IMAGE_PIXELS
    try:
        if saved is not None and max_pixels > saved:
            # A limit raised on purpose (--max-pixels) must not meet Pillow's own refusal.
            Image.MAX_IMAGE_PIXELS = max_pixels
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(path)
    except PermissionError:  # before the decode errors, which it is one of (an OSError)
        raise DataError(f"{path}: permission denied; make the file readable (chmod +r)") from None
    except Image.DecompressionBombError:
        raise DataError(
            f"{path}: image has more pixels than Pillow will open (twice Image.MAX_IMAGE_PIXELS); "
            "downscale it"
        ) from None
    except _DECODE_ERRORS:
        raise _unreadable(path) from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    with opened as image:
        width, height = image.size
        if width * height > max_pixels:
            raise DataError(
                f"{path}: image has {width}×{height} = {width * height:,} pixels, over the limit "
                f"of {max_pixels:,}; downscale it, or raise max_pixels if you trust the file"
            )
        if image.mode == "F" or image.mode.startswith("F;"):
            raise DataError(f"{path}: {FLOAT_PIXELS}")
        _check_memory(path, image)
        try:
            image.load()
            # A new image, independent of the file this block closes.
            return ImageOps.exif_transpose(image)
        except MemoryError:
            raise _too_big(path, width, height) from None
        except _DECODE_ERRORS:
            raise _unreadable(path) from None


# Images needing less than this to decode are not checked against the free memory.
MEMORY_CHECK_BYTES = 256 * 2**20


def read_text(path: Path) -> str:
    """A dataset's text file (split list, label names), or one line on why it cannot be read."""
    try:
        return path.read_text()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; restore it from the dataset's release") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not text"
        raise DataError(f"{path}: cannot read it ({reason}); restore it from the release") from None


def available_memory() -> int | None:
    """Bytes of memory the system can give now (Linux's MemAvailable), or ``None`` elsewhere."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _check_memory(path: Path, image: Image.Image) -> None:
    """Refuse, before decoding, an image whose pixels (decoded, then made RGB) would not fit
    in the memory available: a 1 MB PNG may declare 32000×32000 pixels."""
    width, height = image.size
    bands = max(3, len(image.getbands()))
    needed = 2 * width * height * bands * (2 if image.mode.startswith(("I", "F")) else 1)
    if needed < MEMORY_CHECK_BYTES:  # every training sample comes here: ask the OS only when
        return  # the image is large enough to matter
    free = available_memory()
    if free is not None and needed > free:
        raise _too_big(path, width, height, needed, free)


def _too_big(path: Path, width: int, height: int, needed: int = 0, free: int = 0) -> DataError:
    need = f" (about {needed / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free)" if needed else ""
    return DataError(
        f"{path}: {width}×{height} pixels do not fit in memory to decode{need}; "
        "downscale it, or cut it into pieces"
    )


def _unreadable(path: Path) -> DataError:
    return DataError(
        f"{path}: cannot read image (truncated or not an image file); re-export it or remove it"
    )


def to_rgb_tensor(image: Image.Image) -> torch.Tensor:
    """A PIL image of any mode as a uint8 3×H×W RGB tensor.

    Integer images wider than 8 bits (``I;16*``, ``I``) are 16-bit scans; they are scaled by
    255/65535 rather than clipped, which would turn everything above 255 white.
    """
    if image.mode == "F" or image.mode.startswith("F;"):
        raise DataError(f"image: {FLOAT_PIXELS}")
    if image.mode.startswith("I"):
        wide = np.asarray(image).astype(np.float64)
        grey = np.clip(np.rint(wide * (255 / 65535)), 0, 255).astype(np.uint8)
        image = Image.fromarray(grey, mode="L")
    elif image.mode == "P" and "transparency" in image.info:
        # Going through RGBA is what Pillow asks for with transparent palettes (else it warns).
        image = image.convert("RGBA")
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))


def to_labels(
    image: Image.Image,
    path: Path,
    *,
    palette: Sequence[Color] | None,
    ignore_index: int,
    ignore_color: Color | None,
) -> np.ndarray:
    """A mask image as an int64 H×W array of labels.

    Single-channel masks (``1``, ``L``, ``P``, ``I``, ``I;16``) hold the label as the pixel
    value; for ``P`` that is the palette index, whatever colour it is drawn in. ``RGB``/``RGBA``
    masks are colour-coded: each colour of ``palette`` is its class, ``ignore_color`` is the
    ignore label, and any other colour is an error.

    Masks are decoded and checked with NumPy, single-threaded: per-sample work that runs in
    loader workers or alongside them, where torch's thread pool would only contend for cores.
    """
    if image.mode in ("RGB", "RGBA"):
        if palette is None:
            raise DataError(
                f"{path}: colour-coded (RGB) mask but the dataset has no palette; "
                "write classes.json with a palette or save masks as class-index PNGs"
            )
        return decode_colors(
            np.asarray(image.convert("RGB")), path, palette, ignore_index, ignore_color
        )
    if image.mode not in ("1", "L", "P") and not image.mode.startswith("I"):
        raise DataError(
            f"{path}: mask has image mode {image.mode}; save masks as single-channel "
            "class-index PNGs (mode L or P) or as RGB colour-coded PNGs"
        )
    return np.asarray(image).astype(np.int64)


def decode_colors(
    rgb: np.ndarray,
    path: Path,
    palette: Sequence[Color],
    ignore_index: int,
    ignore_color: Color | None,
) -> np.ndarray:
    """Map an H×W×3 colour-coded mask to int64 labels by exact colour lookup."""
    colors = list(palette) + ([ignore_color] if ignore_color is not None else [])
    labels = list(range(len(palette))) + ([ignore_index] if ignore_color is not None else [])
    # One int per colour (0xRRGGBB) turns the lookup into a sorted search: vectorised, and
    # with no 2^24-entry table.
    wide = rgb.astype(np.int64)
    codes = (wide[..., 0] << 16) | (wide[..., 1] << 8) | wide[..., 2]
    keys = np.array([(r << 16) | (g << 8) | b for r, g, b in colors], dtype=np.int64)
    order = np.argsort(keys)
    keys, values = keys[order], np.array(labels, dtype=np.int64)[order]
    slot = np.minimum(np.searchsorted(keys, codes), len(keys) - 1)
    unknown = keys[slot] != codes
    if unknown.any():
        code = int(codes[unknown][0])
        color = (code >> 16, (code >> 8) & 255, code & 255)
        raise DataError(
            f"{path}: mask colour {color} is not in the dataset palette; "
            "add it to the palette (or as ignore_color) in classes.json, or repaint those pixels"
        )
    return values[slot]


def check_labels(labels: np.ndarray, path: Path, num_classes: int, ignore_index: int) -> None:
    """Raise unless every label is a class in [0, num_classes) or ``ignore_index``."""
    stray = ((labels < 0) | (labels >= num_classes)) & (labels != ignore_index)
    if not stray.any():
        return
    values = np.unique(labels[stray]).tolist()
    shown = ", ".join(str(v) for v in values[:5]) + (", …" if len(values) > 5 else "")
    noun = "label" if len(values) == 1 else "labels"
    raise DataError(
        f"{path}: mask has {noun} {shown} but the dataset has {num_classes} classes "
        f"(0–{num_classes - 1}) and ignore label {ignore_index}; fix the mask or the class list"
    )


def check_same_size(image: torch.Tensor, labels: torch.Tensor, path: Path) -> None:
    """Raise unless the mask covers its image pixel for pixel."""
    (ih, iw), (mh, mw) = image.shape[-2:], labels.shape[-2:]
    if (ih, iw) != (mh, mw):
        raise DataError(
            f"{path}: mask is {mw}×{mh} but image is {iw}×{ih}; "
            "masks must match their image pixel for pixel"
        )

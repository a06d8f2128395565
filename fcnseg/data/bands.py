"""Images beyond RGB: grey, RGB-D and multi-band rasters, read as C×H×W tensors.

A model says how many channels it takes (``ModelMeta.in_channels``); images are read with
exactly that many or refused with one line. Three channels keep the RGB rules of
:func:`~.decode.to_rgb_tensor` (any mode made RGB). Other counts take the file's bands as they
are: PNG/JPEG/TIFF through Pillow (``L`` 1, ``LA`` 2, ``RGB`` 3, ``RGBA`` 4, 16-bit 1), NumPy
``.npy`` arrays H×W or H×W×C, and TIFF through ``rasterio`` when it is installed (GeoTIFF and
any band count or sample type; the ``geotiff`` extra). uint8 stays uint8; every other sample
type becomes float32, in the file's own units, normalised by the model's per-channel
statistics.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from .decode import FLOAT_PIXELS, MAX_PIXELS, open_image, to_rgb_tensor

__all__ = [
    "RASTER_SUFFIXES",
    "Raster",
    "as_bands",
    "channel_stats",
    "georeferenced",
    "has_rasterio",
    "image_header",
    "read_bands",
]

RASTER_SUFFIXES = frozenset({".tif", ".tiff"})
# Pillow modes by their bands; 16- and 32-bit integer scans are one band of numbers.
_PIL_BANDS = {"1": "L", "L": "L", "LA": "LA", "RGB": "RGB", "RGBA": "RGBA", "P": "RGB"}


@functools.cache
def has_rasterio() -> bool:
    try:
        import rasterio  # noqa: F401
    except ImportError:
        return False
    return True


def read_bands(path: Path, channels: int, *, max_pixels: int = MAX_PIXELS) -> Tensor:
    """``path`` as a C×H×W tensor of ``channels`` channels (uint8, or float32 for wider
    samples), or one line on why not."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return as_bands(_load_npy(path, max_pixels), channels, str(path))
    if suffix in RASTER_SUFFIXES and has_rasterio():
        return as_bands(_read_raster(path, max_pixels), channels, str(path))
    image = open_image(path, max_pixels=max_pixels)
    if channels == 3:
        return to_rgb_tensor(image)
    if image.mode.startswith("I"):
        array = np.asarray(image).astype(np.float32)
    elif image.mode in _PIL_BANDS:
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")
        array = np.asarray(image.convert(_PIL_BANDS[image.mode]))
    else:
        array = np.asarray(image.convert("RGB"))
    return as_bands(array, channels, str(path))


def as_bands(array: np.ndarray, channels: int, source: str) -> Tensor:
    """An H×W (one band) or H×W×C array as a C×H×W tensor, checked against ``channels``."""
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or 0 in array.shape[:2]:
        raise DataError(
            f"{source}: an image must be H×W or H×W×C, not shape {array.shape}; "
            "save bands last (array.transpose(1, 2, 0) for C×H×W)"
        )
    if array.shape[-1] != channels:
        # Three channels accept grey and RGBA as RGB, as every RGB image reader does.
        if channels == 3 and array.shape[-1] in (1, 4) and array.dtype == np.uint8:
            array = array.repeat(3, axis=2) if array.shape[-1] == 1 else array[..., :3]
        else:
            raise DataError(
                f"{source}: image has {array.shape[-1]} channels but the model takes "
                f"{channels}; set in_channels (--in-channels) to the images' channel count, "
                "or give images of the model's"
            )
    if array.dtype == np.uint8:
        out = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    elif array.dtype.kind in "uif":
        out = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32))
        if array.dtype.kind == "f" and not torch.isfinite(out).all():
            raise DataError(
                f"{source}: image holds NaN or infinite values; fill the no-data pixels "
                "(e.g. with 0) before segmenting"
            )
    else:
        raise DataError(f"{source}: pixels of type {array.dtype} are not numbers; {FLOAT_PIXELS}")
    return out


def image_header(path: Path, *, max_pixels: int = MAX_PIXELS) -> tuple[int, int, int]:
    """``(width, height, channels)`` of an image file of any supported kind, from its header."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        array = _load_npy(path, max_pixels)
        return array.shape[1], array.shape[0], array.shape[2] if array.ndim == 3 else 1
    if suffix in RASTER_SUFFIXES and has_rasterio():
        with _open_raster(path, max_pixels) as src:
            return src.width, src.height, src.count
    with open_image(path, max_pixels=max_pixels) as image:
        channels = 1 if image.mode.startswith("I") else len(image.getbands())
        return (*image.size, channels)


def _load_npy(path: Path, max_pixels: int) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: file not found; restore it or remove it from the dataset")
    try:  # memory-mapped: the header is checked before any pixel is read
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        raise DataError(
            f"{path}: cannot read NumPy array (truncated, pickled or not a .npy); "
            "save it with numpy.save"
        ) from None
    if array.ndim in (2, 3) and array.shape[0] * array.shape[1] > max_pixels:
        raise DataError(
            f"{path}: array has {array.shape[1]}×{array.shape[0]} pixels, over the limit of "
            f"{max_pixels:,}; cut it into pieces, or raise max_pixels if you trust the file"
        )
    return np.array(array)  # read now, into writable memory


def _open_raster(path: Path, max_pixels: int) -> Any:
    import rasterio

    if not path.is_file():
        raise DataError(f"{path}: file not found; restore it or remove it from the dataset")
    try:
        with _quiet():
            src = rasterio.open(path)
    except rasterio.errors.RasterioIOError:
        raise DataError(
            f"{path}: cannot read raster (truncated or not a TIFF); re-export it"
        ) from None
    if src.width * src.height > max_pixels:
        src.close()
        raise DataError(
            f"{path}: raster has {src.width}×{src.height} pixels, over the limit of "
            f"{max_pixels:,}; segment it in tiles (fcnseg predict --tile auto reads it window "
            "by window), or raise max_pixels"
        )
    return src


def _read_raster(path: Path, max_pixels: int) -> np.ndarray:
    import rasterio

    with _open_raster(path, max_pixels) as src:
        try:
            return src.read().transpose(1, 2, 0)  # bands last, as every other reader
        except rasterio.errors.RasterioIOError:
            raise DataError(f"{path}: raster is truncated or damaged; re-export it") from None


def georeferenced(path: Path) -> bool:
    """Whether ``path`` is a raster that places its pixels on the Earth (a CRS or a
    non-trivial transform), read with rasterio; ``False`` without rasterio or for a file it
    cannot open (the usual readers then report what is wrong with it)."""
    if path.suffix.lower() not in RASTER_SUFFIXES or not has_rasterio():
        return False
    import rasterio

    try:
        with _quiet(), rasterio.open(path) as src:
            return src.crs is not None or not src.transform.is_identity
    except rasterio.errors.RasterioError:
        return False


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """rasterio warns on opening a plain TIFF that it has no georeferencing: for a photo or a
    scan that is expected, and the masks are then plain PNGs."""
    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        yield


class Raster:
    """A raster file (GeoTIFF or any format GDAL reads) opened for reading window by window.

    Indexing ``raster[:, rows, cols]`` reads only that window, as a C×h×w tensor of the types
    :func:`as_bands` gives: the tiled :class:`~fcnseg.inference.Predictor` segments a raster
    larger than memory this way, one tile at a time. ``crs`` and ``transform`` are the
    georeferencing a mask is written back with (:func:`fcnseg.files.write_geotiff`).
    """

    def __init__(self, path: Path, channels: int, *, max_pixels: int = MAX_PIXELS) -> None:
        self.path = Path(path)
        self._src = _open_raster(self.path, max_pixels)
        count = self._src.count
        # Three channels take the first three bands of an RGBA raster, as the RGB rules do.
        if count != channels and not (channels == 3 and count == 4):
            self._src.close()
            raise DataError(
                f"{path}: raster has {count} bands but the model takes {channels} "
                "channels; segment it with a model trained on rasters of its bands"
            )
        self.bands = list(range(1, channels + 1))
        self.shape = (channels, self._src.height, self._src.width)
        self.crs, self.transform = self._src.crs, self._src.transform

    def __getitem__(self, key: tuple[slice, slice, slice]) -> Tensor:
        from rasterio.windows import Window

        _, rows, cols = key
        top, bottom, _ = rows.indices(self.shape[1])
        left, right, _ = cols.indices(self.shape[2])
        window = Window(left, top, right - left, bottom - top)
        try:
            array = self._src.read(self.bands, window=window)
        except Exception as exc:  # rasterio reports damaged blocks with its own types
            raise DataError(f"{self.path}: cannot read pixels ({exc}); re-export it") from None
        return as_bands(array.transpose(1, 2, 0), self.shape[0], str(self.path))

    def read(self) -> Tensor:
        """The whole raster as one tensor."""
        return self[:, :, :]

    def close(self) -> None:
        self._src.close()

    def __enter__(self) -> Raster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def channel_stats(
    images: Sequence[Tensor], channels: range
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and standard deviation of ``channels`` over all pixels of ``images`` (C×H×W),
    accumulated in float64: the statistics the new channels of a pretrained net are
    normalised with, measured rather than assumed."""
    total = torch.zeros(len(channels), dtype=torch.float64)
    squares = torch.zeros_like(total)
    count = 0
    for image in images:
        x = image[channels.start : channels.stop].double().flatten(1)
        total += x.sum(1)
        squares += (x * x).sum(1)
        count += x.shape[1]
    if count == 0:
        return (0.0,) * len(channels), (1.0,) * len(channels)
    mean = total / count
    std = (squares / count - mean * mean).clamp_min(0).sqrt()
    # A constant band would divide by zero; leave it unscaled.
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return tuple(mean.tolist()), tuple(std.tolist())

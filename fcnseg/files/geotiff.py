"""Class masks as GeoTIFF: the source raster's CRS and transform kept, so a GIS opens the mask
in place over the image; the class colours as the band's colour table. Needs the optional
``rasterio`` (``pip install fcnseg[geotiff]``), imported only here."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data.bands import Raster
from .atomic import atomic_write
from .masks import BAND_ROWS

__all__ = ["write_geotiff"]


def write_geotiff(
    path: Path,
    mask: np.ndarray,
    source: Raster,
    palette: np.ndarray,
    classes: Sequence[str] | None = None,
) -> None:
    """Write the H×W class mask of ``source`` to ``path`` atomically: one band of class
    indices (uint8, or uint16 past 256 classes), deflate-compressed in 256×256 blocks, with
    the source's georeferencing, ``palette`` as its colour table and the class names as the
    band's ``classes`` tag (JSON).

    The mask is written a band of rows at a time, so it may be a memory map larger than memory.
    """
    import rasterio

    wide = palette.shape[0] > 256
    profile = {
        "driver": "GTiff",
        "height": mask.shape[0],
        "width": mask.shape[1],
        "count": 1,
        "dtype": "uint16" if wide else "uint8",
        "crs": source.crs,
        "transform": source.transform,
        "compress": "deflate",
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    if mask.shape[0] < 256 or mask.shape[1] < 256:  # GDAL's blocks cannot exceed the raster
        profile.update(tiled=False, blockxsize=None, blockysize=None)
        profile = {k: v for k, v in profile.items() if v is not None}

    def write(tmp: Path) -> None:
        with rasterio.open(tmp, "w", **profile) as dst:
            for top in range(0, mask.shape[0], BAND_ROWS):
                rows = np.asarray(mask[top : top + BAND_ROWS], dtype=profile["dtype"])
                window = rasterio.windows.Window(0, top, mask.shape[1], rows.shape[0])
                dst.write(rows, 1, window=window)
            if not wide:
                dst.write_colormap(1, {i: (*map(int, c), 255) for i, c in enumerate(palette)})
            names = list(classes) if classes else [f"class_{i}" for i in range(len(palette))]
            dst.update_tags(1, classes=json.dumps(names))

    atomic_write(path, write)

"""Class masks as files people open: palette PNGs whose values are class indices, drawn in the
model's colours, and overlays of those colours on the image."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..data import voc_palette
from ..models import ModelMeta

__all__ = ["OVERLAY_ALPHA", "display_rgb", "mask_image", "overlay", "palette_of"]

OVERLAY_ALPHA = 0.5
BAND_ROWS = 1024  # rows blended at a time for the overlay


def palette_of(meta: ModelMeta) -> np.ndarray:
    """The model's palette as a num_classes×3 uint8 array (its own or the default)."""
    num_classes = meta.num_classes
    palette = list(meta.palette or [])
    if len(palette) < num_classes:
        palette = list(palette) + voc_palette(num_classes)[len(palette) :]
    return np.asarray(palette[:num_classes], dtype=np.uint8).reshape(num_classes, 3)


def mask_image(mask: np.ndarray, palette: np.ndarray) -> Image.Image:
    """A palette PNG image of ``mask``: values are class indices, colours the palette's."""
    if palette.shape[0] > 256:  # beyond a palette's reach: 16-bit class indices
        return Image.fromarray(mask.astype(np.uint16))
    image = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8), mode="P")
    image.putpalette(palette.reshape(-1).tolist())
    return image


def overlay(image: np.ndarray, mask: np.ndarray, palette: np.ndarray) -> Image.Image:
    """``image`` (H×W×3 uint8) with the class colours blended over it, band by band in place:
    the image array becomes the overlay, so no second full-size copy is made here."""
    weight = round(256 * OVERLAY_ALPHA)
    colours = palette.astype(np.uint16) * weight
    for top in range(0, image.shape[0], BAND_ROWS):
        band = image[top : top + BAND_ROWS]
        blended = band.astype(np.uint16) * (256 - weight) + colours[mask[top : top + BAND_ROWS]]
        band[...] = (blended >> 8).astype(np.uint8)
    return Image.fromarray(image)


def display_rgb(image: np.ndarray) -> np.ndarray:
    """An H×W×C image of any channels and type as H×W×3 uint8 to draw an overlay on: RGB as
    it is; the first three bands of more; one band as grey. Wider samples (16-bit, float) are
    stretched between their 2nd and 98th percentiles, as GIS viewers show rasters."""
    if image.ndim == 2:
        image = image[..., None]
    bands = image[..., :3] if image.shape[-1] >= 3 else image[..., :1].repeat(3, axis=2)
    if bands.dtype == np.uint8:
        return np.ascontiguousarray(bands)
    # Percentiles of a strided sample: a gigapixel raster needs no full sort to be shown.
    step = max(1, int(np.sqrt(bands.shape[0] * bands.shape[1] / 1e6)))
    sample = bands[::step, ::step].reshape(-1, 3).astype(np.float64)
    low, high = np.percentile(sample, [2, 98], axis=0)
    scale = 255 / np.maximum(high - low, 1e-12)
    return np.clip((bands - low) * scale, 0, 255).astype(np.uint8)

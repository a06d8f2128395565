"""Tiling (paper §3.1 applied): segmenting an image too large for memory in overlapping tiles
whose overlap covers an output pixel's receptive field, so the tiled answer is the whole-image
answer with memory bounded by one tile and the output."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from torch import Tensor

from ..errors import ConfigError

__all__ = ["AUTO_TILE", "AUTO_TILE_PIXELS", "TilePlan", "Window", "tile_windows"]

# ``tile="auto"`` segments images of more than AUTO_TILE_PIXELS pixels (a 4096×4096 image) in
# tiles of AUTO_TILE pixels: below that, one whole-image pass is fastest and fits in memory; above
# it, memory stays bounded by the image, the output and one tile, whatever the image's size.
AUTO_TILE = 2048
AUTO_TILE_PIXELS = 4096 * 4096

Span = tuple[int, int]

UNBOUNDED = (
    "the model's receptive field is unbounded (global context): tiles overlap by half "
    "a tile and the result is close to, not equal to, the whole-image one"
)


@dataclass(frozen=True)
class Window:
    """A tile along one axis: the model sees ``start:stop``, and ``keep_start:keep_stop`` (in
    image coordinates) is written out."""

    start: int
    stop: int
    keep_start: int
    keep_stop: int


def tile_step(tile: int, overlap: int, align: int) -> int:
    """How far one tile starts from the previous: what the overlap leaves, in whole output
    strides; a tile that leaves nothing is refused in one line."""
    step = (tile - overlap) // align * align
    if step < align:
        raise ConfigError(
            f"tile {tile} leaves no room beside an overlap of {overlap}; use a "
            f"tile of at least {overlap + align} pixels or a smaller overlap"
        )
    return step


def tile_windows(length: int, tile: int, overlap: int, align: int = 32) -> list[Window]:
    """Overlapping windows of ``tile`` pixels covering ``length``, each keeping its centre.

    Neighbouring windows share ``overlap`` pixels and each drops half of it on its inner sides,
    so every kept pixel has ``overlap / 2`` pixels of real context on both sides (or lies on
    the image border). Windows start on multiples of ``align`` (the output stride), so each
    tile sees the same sampling grid as the whole image.
    """
    step = tile_step(tile, overlap, align)
    margin = overlap // 2
    starts = [0]
    while starts[-1] + tile < length:
        starts.append(starts[-1] + step)
    out = []
    for i, s in enumerate(starts):
        last = i == len(starts) - 1
        out.append(
            Window(
                s,
                min(s + tile, length),
                0 if i == 0 else s + margin,
                length if last else starts[i + 1] + margin,
            )
        )
    return out


@dataclass(frozen=True)
class TilePlan:
    """When and how a model's images are tiled.

    ``tile`` is the tile side (``None``: never tile); images are tiled when a side exceeds it,
    or with ``above`` set (``tile="auto"``) when they have more than ``above`` pixels.
    ``unbounded``: the overlap cannot cover the receptive field, so tiling is approximate.
    """

    tile: int | None
    overlap: int
    align: int
    above: int | None = None
    unbounded: bool = False

    @classmethod
    def make(
        cls, tile: int | str | None, overlap: int | None, *, field: float, align: int
    ) -> TilePlan:
        """The plan for a ``tile`` setting (pixels, ``"auto"`` or ``None``) and ``overlap``
        (default: the receptive ``field`` of an output pixel, which keeps tiling exact)."""
        if (
            tile is not None
            and tile != "auto"
            and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 1)
        ):
            raise ConfigError(
                f"tile must be a positive number of pixels, 'auto' or None, not {tile!r}"
            )
        if overlap is not None and (
            isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0
        ):
            raise ConfigError(f"overlap must be a whole number of pixels ≥ 0, not {overlap!r}")
        if tile is None:
            return cls(None, 0, align)
        above = None
        if tile == "auto":
            # A tile at least twice the overlap, so that at least half of each tile is kept.
            wide = 2 * (overlap if overlap is not None else field)
            tile = (
                AUTO_TILE if math.isinf(wide) else max(AUTO_TILE, math.ceil(wide / align) * align)
            )
            above = AUTO_TILE_PIXELS
        unbounded = overlap is None and math.isinf(field)
        if unbounded and above is None:  # tiles asked for: say so now
            warnings.warn(UNBOUNDED, stacklevel=3)
        size = overlap if overlap is not None else (tile // 2 if unbounded else math.ceil(field))
        tile_step(tile, size, align)  # refused now, not at the first large image
        return cls(tile, size, align, above, unbounded)

    def tiled(self, height: int, width: int) -> bool:
        """Whether an image of this size is segmented in tiles."""
        if self.above is not None:
            return height * width > self.above
        return self.tile is not None and max(height, width) > self.tile

    def tiles(self, image: Tensor, out: Tensor) -> Iterator[tuple[Tensor, Tensor, Span, Span]]:
        """For each tile of a C×H×W ``image``: the tile (a copy of only that part, so a view of
        a memmap stays one), the part of ``out`` (…×H×W) it fills, and the rows and columns of
        the tile that go there."""
        assert self.tile is not None
        height, width = image.shape[-2:]
        for rw in tile_windows(height, self.tile, self.overlap, self.align):
            for cw in tile_windows(width, self.tile, self.overlap, self.align):
                piece = image[:, rw.start : rw.stop, cw.start : cw.stop].contiguous()
                target = out[..., rw.keep_start : rw.keep_stop, cw.keep_start : cw.keep_stop]
                rows = (rw.keep_start - rw.start, rw.keep_stop - rw.start)
                cols = (cw.keep_start - cw.start, cw.keep_stop - cw.start)
                yield piece, target, rows, cols

"""A small synthetic segmentation set that a CPU can learn in a minute or two.

Textured shapes on cluttered backgrounds. The classes are told apart by *shape* (and a texture
each), not by colour: every object draws its colour from the same distribution. Thin bars and
rings 8–12 px wide (a quarter of FCN-32s's stride) make a fine output stride pay off, which is
what the demo shows (FCN-8s over FCN-32s, most of all at boundaries). Like VOC, some object
outlines carry an ignore band. Written to disk in the ``folder`` layout, with classes.json.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ConfigError, DataError
from .datasets import DATASETS, voc_palette
from .decode import MAX_PIXELS
from .readers import FolderDataset
from .transforms import JointTransform

CLASSES = ["background", "disc", "square", "triangle", "bar", "ring"]
IGNORE_INDEX = 255
N_TRAIN, N_VAL = 160, 40
SIZES = (96, 160)  # shortest and longest side, pixels
# The smallest side the shapes fit in: a ring's radius is at least 9 px and at most 22% of it.
MIN_SIDE = 41

Grid = tuple[np.ndarray, np.ndarray]  # pixel-centre y and x coordinates, H×W float32 each
Shape = Callable[[np.random.Generator, Grid, float], np.ndarray]


def make_synthetic(
    root: str | Path,
    *,
    n_train: int = N_TRAIN,
    n_val: int = N_VAL,
    sizes: tuple[int, int] = SIZES,
    seed: int = 0,
) -> Path:
    """Write ``n_train`` + ``n_val`` images and masks under ``root`` in the folder layout.

    Height and width are drawn independently from ``sizes`` (inclusive), so images are mostly
    non-square and of varied size. Every image is a function of (``seed``, split, index) only:
    the same arguments give the same files, and the val set does not move when ``n_train``
    changes. classes.json is written last, so its presence marks a complete dataset.
    """
    if not (
        len(sizes) == 2
        and all(isinstance(v, int) for v in sizes)
        and MIN_SIDE <= sizes[0] <= sizes[1]
    ):
        raise ConfigError(
            f"synthetic sizes must be two whole numbers MIN ≤ MAX, at least "
            f"{MIN_SIDE} px (the shapes need room), not {tuple(sizes)}"
        )
    for name, count in (("n_train", n_train), ("n_val", n_val)):
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ConfigError(f"{name} must be a whole number ≥ 0, not {count!r}")
    root = Path(root)
    # Indices beyond the classes (255 = ignore) get VOC colours too, so the void band shows.
    mask_palette = [v for color in voc_palette(256) for v in color]
    for split_id, (split, count) in enumerate((("train", n_train), ("val", n_val))):
        image_dir, mask_dir = root / split / "images", root / split / "masks"
        image_dir.mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            rng = np.random.default_rng([seed, split_id, index])
            image, labels = render(rng, sizes)
            name = f"{index:04d}.png"
            # Fast zlib level: these files are regenerated at will, size hardly matters.
            Image.fromarray(image).save(image_dir / name, compress_level=1)
            # A palette PNG: the pixel is the label, yet viewers show it in class colours.
            mask = Image.fromarray(labels)
            mask.putpalette(mask_palette)
            mask.save(mask_dir / name, compress_level=1)
    palette = [list(c) for c in voc_palette(len(CLASSES))]
    spec = {"classes": CLASSES, "palette": palette, "ignore_index": IGNORE_INDEX}
    (root / "classes.json").write_text(json.dumps(spec, indent=2) + "\n")
    return root


def render(rng: np.random.Generator, sizes: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One image (uint8 H×W×3) and its labels (uint8 H×W) drawn from ``rng``."""
    height, width = (int(v) for v in rng.integers(sizes[0], sizes[1] + 1, size=2))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    grid = (yy, xx)
    side = float(min(height, width))
    image = _background(rng, grid)
    labels = np.zeros((height, width), dtype=np.uint8)
    for _ in range(int(rng.integers(2, 6))):
        cls = int(rng.integers(1, len(CLASSES)))
        sdf = SHAPES[cls](rng, grid, side)
        # Coverage from the signed distance gives anti-aliased edges, as a camera would.
        alpha = np.clip(0.5 - sdf, 0.0, 1.0)[..., None]
        image = image * (1 - alpha) + _object_texture(rng, cls, grid) * alpha
        labels[sdf < 0] = cls
        if rng.random() < 0.5:
            # The two pixels straddling the outline are ambiguous; mark them void like VOC.
            labels[np.abs(sdf) < 1.0] = IGNORE_INDEX
    image = image + 0.03 * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8), labels


def _background(rng: np.random.Generator, grid: Grid) -> np.ndarray:
    """Dull, low-saturation clutter: a few random waves per channel plus grey strokes."""
    yy, xx = grid
    base = _uniform(rng, 0.2, 0.45)
    image = np.full((*yy.shape, 3), base, dtype=np.float32)
    for _ in range(3):
        fy, fx = (float(f) for f in rng.uniform(-0.15, 0.15, size=2))
        phase = _uniform(rng, 0, 2 * math.pi)
        wave = np.sin(fy * yy + fx * xx + phase)[..., None]
        image += 0.08 * wave * (1 + 0.3 * rng.uniform(-1, 1, size=3)).astype(np.float32)
    # Unsaturated strokes look like bars in all but colour: the net must learn that shape
    # *and* object-ness go together, not that any straight line is a bar.
    for _ in range(int(rng.integers(0, 4))):
        sdf = _box(rng, grid, _uniform(rng, 10, 40), _uniform(rng, 0.8, 2.0))
        alpha = np.clip(0.5 - sdf, 0.0, 1.0)[..., None]
        image = image * (1 - alpha) + _uniform(rng, 0.1, 0.6) * alpha
    return image


def _object_texture(rng: np.random.Generator, cls: int, grid: Grid) -> np.ndarray:
    """A saturated colour from the same distribution for every class, and a texture by class:
    discs shaded, squares checkered, triangles striped, bars and rings plain."""
    yy, xx = grid
    hue = _uniform(rng, 0, 1)
    color = np.array([_hue_channel(hue + shift) for shift in (0, 2 / 3, 1 / 3)], np.float32)
    color = _uniform(rng, 0.55, 1.0) * (0.25 + 0.75 * color)
    if CLASSES[cls] == "square":
        shade = 0.8 + 0.2 * ((np.floor(yy / 4) + np.floor(xx / 4)) % 2)
    elif CLASSES[cls] == "triangle":
        shade = 0.8 + 0.2 * (np.floor((yy + xx) / 3) % 2)
    elif CLASSES[cls] == "disc":
        shade = 0.85 + 0.15 * np.cos((yy + xx) * 0.3 + _uniform(rng, 0, 6))
    else:
        shade = np.ones_like(yy)
    return shade[..., None] * color


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A Python float: NumPy scalars would silently promote the float32 images to float64."""
    return float(rng.uniform(low, high))


def _hue_channel(h: float) -> float:
    """One RGB channel of a fully saturated hue (triangle wave), in [0, 1]."""
    return float(np.clip(2 - abs(6 * (h % 1) - 3), 0, 1))


# --- shapes as signed distances (negative inside, in pixels) ---------------------------------


def _rotated(rng: np.random.Generator, grid: Grid, margin: float) -> tuple[np.ndarray, ...]:
    """Coordinates of every pixel in a frame with a random centre and rotation."""
    yy, xx = grid
    height, width = yy.shape
    cy = _uniform(rng, min(margin, height / 2), max(height - margin, height / 2))
    cx = _uniform(rng, min(margin, width / 2), max(width - margin, width / 2))
    theta = _uniform(rng, 0, 2 * math.pi)
    dy, dx = yy - cy, xx - cx
    c, s = math.cos(theta), math.sin(theta)
    return c * dx + s * dy, -s * dx + c * dy


def _box(rng: np.random.Generator, grid: Grid, half_long: float, half_short: float) -> np.ndarray:
    u, v = _rotated(rng, grid, half_short)
    return np.maximum(np.abs(u) - half_long, np.abs(v) - half_short)


def _disc(rng: np.random.Generator, grid: Grid, side: float) -> np.ndarray:
    radius = _uniform(rng, 7, 0.22 * side)
    u, v = _rotated(rng, grid, radius)
    return np.hypot(u, v) - radius


def _square(rng: np.random.Generator, grid: Grid, side: float) -> np.ndarray:
    half = _uniform(rng, 7, 0.18 * side)
    return _box(rng, grid, half, half)


def _triangle(rng: np.random.Generator, grid: Grid, side: float) -> np.ndarray:
    # Equilateral: the intersection of three half-planes at the inradius (half the circumradius).
    circumradius = _uniform(rng, 10, 0.26 * side)
    u, v = _rotated(rng, grid, circumradius / 2)
    angles = (math.pi / 2 + k * 2 * math.pi / 3 for k in range(3))
    edges = [math.cos(a) * u + math.sin(a) * v for a in angles]
    return np.maximum.reduce(edges) - circumradius / 2


# Thin shapes are 8–12 px wide: far below FCN-32s's stride of 32, which cannot draw them, and
# about FCN-8s's stride of 8, which can (§4.2, Figure 4). At 3–6 px, as first drawn, FCN-8s
# found bars and rings on 3% and 8% IU after the demo's training; at 8–12 px, 59% and 63%.
THIN_HALF_WIDTH = (4.0, 6.0)


def _bar(rng: np.random.Generator, grid: Grid, side: float) -> np.ndarray:
    return _box(rng, grid, _uniform(rng, 18, 0.45 * side), _uniform(rng, *THIN_HALF_WIDTH))


def _ring(rng: np.random.Generator, grid: Grid, side: float) -> np.ndarray:
    radius, half_width = _uniform(rng, 9, 0.22 * side), _uniform(rng, *THIN_HALF_WIDTH)
    u, v = _rotated(rng, grid, radius)
    return np.abs(np.hypot(u, v) - radius) - half_width


SHAPES: dict[int, Shape] = {
    CLASSES.index("disc"): _disc,
    CLASSES.index("square"): _square,
    CLASSES.index("triangle"): _triangle,
    CLASSES.index("bar"): _bar,
    CLASSES.index("ring"): _ring,
}


@DATASETS.register("synthetic")
class SyntheticDataset(FolderDataset):
    """The ``folder`` reader over a root written by :func:`make_synthetic`.

    A missing or empty root (or one left half-written, without classes.json) is generated
    first by :func:`make_synthetic` with ``n_train``, ``n_val``, ``sizes`` and ``seed``, which
    are otherwise unused.
    """

    def __init__(
        self,
        root: Path,
        split: str,
        *,
        transform: JointTransform | None = None,
        n_train: int = N_TRAIN,
        n_val: int = N_VAL,
        sizes: tuple[int, int] = SIZES,
        seed: int = 0,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        root = Path(root)
        if not (root / "classes.json").is_file():
            strangers = sorted(
                p.name
                for p in (root.iterdir() if root.is_dir() else [])
                if p.name not in ("train", "val")
            )
            if strangers:
                raise DataError(
                    f"{root}: not a synthetic dataset (holds {', '.join(strangers[:3])}) and "
                    "no classes.json; point the synthetic dataset at an empty directory"
                )
            make_synthetic(root, n_train=n_train, n_val=n_val, sizes=sizes, seed=seed)
        super().__init__(root, split, transform=transform, max_pixels=max_pixels)

"""``fcnseg predict``: class masks for images of any size and mode.

For each input image the command writes, atomically:

* ``NAME.png``: the class mask as a palette PNG, each pixel's value its class index, drawn in the
  dataset's colours (the model's ``palette``, else VOC's; :mod:`fcnseg.files.masks`);
* ``NAME_overlay.png``: the image with the class colours blended over it;
* with ``--probabilities``: ``NAME_prob.npy`` (float16 C×H×W, written as a memory map, so even a
  gigapixel image never needs its probabilities in memory) or ``NAME_prob.safetensors``.

Inputs are files, directories (their images, recursively) and glob patterns; outputs keep the
inputs' paths relative to their common folder, so equal names in different folders do not clash;
two inputs of one name and different suffixes (``a.jpg``, ``a.png``) keep their suffix in the
name (``a_jpg.png``, ``a_png.png``). The output folder may not be an input folder: the masks
would overwrite the images.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..data.decode import IMAGE_SUFFIXES, MAX_PIXELS, open_image, to_rgb_tensor
from ..device import resolve_device
from ..errors import ConfigError, DataError, FcnsegError
from ..files import atomic_write, load
from ..files.atomic import remove_stale
from ..files.masks import BAND_ROWS, mask_image, overlay, palette_of
from ..inference import Predictor, as_image_tensor
from ..inference.backends import BACKENDS
from ..inference.precision import PRECISIONS
from ..inference.tiling import AUTO_TILE, AUTO_TILE_PIXELS
from ..models import FCN
from .common import non_negative, positive

DESCRIPTION = "Segment images with a trained model: palette PNG masks and overlays."

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
    """Refuse an output folder that holds input images: the masks would overwrite them."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: a file, not a folder; name a folder for the masks")
    target = out.resolve()
    if any(p.resolve().parent == target for p in paths):
        raise ConfigError(
            f"--out {out}: it holds input images, which the masks and overlays "
            "would overwrite; choose another folder"
        )


def read_image(path: Path, *, tiled: bool, max_pixels: int | None = None) -> np.ndarray:
    """``path`` as an H×W×3 uint8 array: EXIF orientation applied, any mode made RGB;
    ``max_pixels`` (default: by ``tiled``) is the decompression-bomb guard."""
    limit = max_pixels or (TILED_MAX_PIXELS if tiled else MAX_PIXELS)
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
    """Writes the outputs of one image, each file atomically."""

    def __init__(self, out: Path, palette: np.ndarray, probabilities: str | None) -> None:
        self.out, self.palette, self.probabilities = out, palette, probabilities

    def masks(self, name: Path, image: np.ndarray, mask: np.ndarray) -> None:
        base = self.out / name
        atomic_write(
            base.with_name(base.name + ".png"),
            lambda tmp: mask_image(mask, self.palette).save(tmp, format="PNG"),
        )
        atomic_write(
            base.with_name(base.name + "_overlay.png"),
            lambda tmp: overlay(image, mask, self.palette).save(tmp, format="PNG"),
        )

    def probability_file(self, name: Path) -> Path:
        base = self.out / name
        return base.with_name(f"{base.name}_prob.{self.probabilities}")


def _segment(predictor: Predictor, image: np.ndarray, writer: Writer, name: Path) -> np.ndarray:
    """The mask of one image, writing its probabilities on the way if asked."""
    if writer.probabilities is None:
        return predictor(image).numpy()
    path = writer.probability_file(name)
    if writer.probabilities == "npy":
        # The probabilities go straight into the file, tile by tile; then the mask is their
        # argmax, read back band by band.
        def write(tmp: Path) -> None:
            shape = (predictor.num_classes, *image.shape[:2])
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=shape)
            predictor.probabilities(image, out=array)
            array.flush()

        atomic_write(path, write)
        probs = np.load(path, mmap_mode="r")
        return np.concatenate(
            [
                probs[:, top : top + BAND_ROWS].argmax(0).astype(np.uint8)
                for top in range(0, probs.shape[1], BAND_ROWS)
            ]
        )
    from safetensors.torch import save_file

    probs = predictor.probabilities(image, dtype=torch.float16)
    atomic_write(
        path,
        lambda tmp: save_file(
            {"probabilities": probs}, str(tmp), metadata={"classes": str(predictor.num_classes)}
        ),
    )
    return probs.argmax(0).to(predictor.label_dtype).numpy()


def _batches(
    paths: Sequence[Path],
    size: int,
    tiled: bool,
    skip_bad: bool,
    bad: list[tuple[Path, str]],
    max_pixels: int | None = None,
) -> Iterator[list[tuple[int, np.ndarray]]]:
    """Images read ``size`` at a time (the predictor batches those of equal size)."""
    batch: list[tuple[int, np.ndarray]] = []
    for i, path in enumerate(paths):
        try:
            batch.append((i, read_image(path, tiled=tiled, max_pixels=max_pixels)))
        except DataError as exc:
            if not skip_bad:
                raise
            bad.append((path, str(exc)))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# ---------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        type=Path,
        metavar="CKPT",
        help="model file (fcnseg save/train) or an .onnx file from fcnseg export",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="image files, folders of images, or glob patterns ('data/*.jpg')",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="folder for the masks, overlays and probabilities",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="auto (default): the fastest, measured on the first image, of "
        "fp32 and the bf16/fp16 the hardware computes natively that give "
        "≥99.5%% of the pixels fp32's class",
    )
    parser.add_argument("--backend", default="torch", choices=BACKENDS)
    parser.add_argument(
        "--tile",
        type=tile_size,
        default="auto",
        metavar="PX|auto|off",
        help="segment images larger than PX×PX in overlapping tiles (bounded "
        "memory, same result); auto (default): images of more than "
        f"{AUTO_TILE_PIXELS:,} pixels, in tiles of {AUTO_TILE} or more; "
        "off: every image whole",
    )
    parser.add_argument(
        "--overlap",
        type=non_negative,
        metavar="PX",
        help="pixels shared by neighbouring tiles (default: the model's "
        "receptive field, which keeps the result exact)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive,
        default=8,
        help="images of one size run together (default: 8)",
    )
    parser.add_argument(
        "--probabilities",
        nargs="?",
        const="npy",
        choices=["npy", "safetensors"],
        help="also write class probabilities as float16 (default format: npy)",
    )
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip unreadable images and list them at the end, instead of stopping at the first",
    )
    parser.add_argument(
        "--max-pixels",
        type=positive,
        metavar="N",
        help="refuse images of more pixels than N, a decompression-bomb guard "
        f"(default: {TILED_MAX_PIXELS:,} as tiles bound the memory, "
        f"{MAX_PIXELS:,} with --tile off)",
    )


def tile_size(text: str) -> int | str | None:
    """``--tile``: a positive number of pixels, ``auto`` or ``off``."""
    if text in ("auto", "off"):
        return None if text == "off" else text
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected a tile size in pixels, auto or off, not {text!r}")


def _model(args: argparse.Namespace, device: torch.device) -> FCN | Path:
    if args.checkpoint.suffix.lower() == ".onnx":
        if args.backend != "onnxruntime":
            raise FcnsegError(
                f"{args.checkpoint}: an ONNX file runs with --backend "
                "onnxruntime; or pass the .safetensors model"
            )
        return args.checkpoint
    return load(args.checkpoint, map_location=str(device)).eval()


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    paths = expand_inputs(args.inputs)
    check_out_folder(args.out, paths)
    remove_stale(args.out, recursive=True)  # what a killed earlier run left half-written
    predictor = Predictor(
        _model(args, device),
        device=device,
        precision=args.precision,
        backend=args.backend,
        tile=args.tile,
        overlap=args.overlap,
        batch_size=args.batch_size,
    )
    writer = Writer(args.out, palette_of(predictor.meta), args.probabilities)
    names = output_names(paths)
    bad: list[tuple[Path, str]] = []
    tiled = args.tile is not None
    with tqdm(total=len(paths), unit="image", desc="predict", file=sys.stderr) as bar:
        for batch in _batches(paths, args.batch_size, tiled, args.skip_bad, bad, args.max_pixels):
            if args.probabilities is None:
                masks = [m.numpy() for m in predictor([as_image_tensor(im) for _, im in batch])]
            else:
                masks = [_segment(predictor, im, writer, names[i]) for i, im in batch]
            for (i, image), mask in zip(batch, masks, strict=True):
                writer.masks(names[i], image, mask)
            bar.update(batch[-1][0] + 1 - bar.n)  # counting the bad files before it
        bar.update(len(paths) - bar.n)
    done = len(paths) - len(bad)
    print(
        f"wrote {done} mask{'s' * (done != 1)} and overlays to {args.out} "
        f"(precision {predictor.precision})"
    )
    if bad:
        print(f"skipped {len(bad)} unreadable image{'s' * (len(bad) != 1)}:", file=sys.stderr)
        for _, message in bad:
            print(f"  {message}", file=sys.stderr)
    return 0

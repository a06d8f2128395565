"""``fcnseg predict``: class masks for images of any size and mode (its files: :mod:`.predict_io`).

For each input image the command writes, atomically:

* ``NAME.png``: the class mask as a palette PNG, each pixel's value its class index, drawn in the
  dataset's colours (the model's ``palette``, else VOC's; :mod:`fcnseg.files.masks`);
* ``NAME_overlay.png``: the image with the class colours blended over it;
* for a georeferenced raster (GeoTIFF, with ``rasterio`` installed): ``NAME.tif`` instead of
  ``NAME.png``, the mask with the raster's CRS and transform, read and segmented window by
  window so the raster need not fit in memory (:mod:`fcnseg.files.geotiff`);
* with ``--probabilities``: ``NAME_prob.npy`` (float16 C×H×W, written as a memory map, so even a
  gigapixel image never needs its probabilities in memory) or ``NAME_prob.safetensors``; for a
  two-class model ``NAME_prob.png``, the foreground probability as a 16-bit (or 8-bit) grey
  PNG, 0 → 0 and 1 → 65535 (255).

Inputs are files, directories (their images, recursively) and glob patterns; outputs keep the
inputs' paths relative to their common folder, so equal names in different folders do not clash;
two inputs of one name and different suffixes (``a.jpg``, ``a.png``) keep their suffix in the
name (``a_jpg.png``, ``a_png.png``). The output folder may not be an input folder: the masks
would overwrite the images.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from ..data.bands import georeferenced
from ..data.decode import MAX_PIXELS
from ..device import resolve_device
from ..errors import DataError, FcnsegError
from ..files import load
from ..files.atomic import remove_stale
from ..inference import Predictor, as_image_tensor
from ..inference.backends import BACKENDS
from ..inference.precision import PRECISIONS
from ..inference.tiling import AUTO_TILE, AUTO_TILE_PIXELS
from ..models import FCN
from .common import add_scoring, non_negative, positive
from .predict_io import (
    TILED_MAX_PIXELS,
    Writer,
    batches,
    check_out_folder,
    expand_inputs,
    output_names,
    segment,
    segment_raster,
)

DESCRIPTION = "Segment images with a trained model: palette PNG masks and overlays."


# ---------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        metavar="CKPT",
        help="model file (fcnseg save/train), its address (hf://OWNER/REPO, https://…), "
        "or an .onnx file from fcnseg export",
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
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        help="auto (default, or $FCNSEG_BACKEND): measure the engines installed (PyTorch, "
        "ONNX Runtime, OpenVINO) on the first image and take the fastest that gives ≥99.5%% "
        "of the pixels eager fp32's class, remembered for the next run",
    )
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
        choices=["npy", "safetensors", "png", "png8"],
        help="also write class probabilities: float16 npy (the default) or safetensors; for "
        "two-class models the foreground's as a 16-bit (png) or 8-bit (png8) grey PNG, to "
        "choose a threshold of your own",
    )
    add_scoring(parser)
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
    if args.checkpoint.lower().endswith(".onnx"):
        if args.backend == "torch":
            raise FcnsegError(
                f"{args.checkpoint}: an ONNX file runs with --backend onnxruntime, openvino or "
                "auto; or pass the .safetensors model"
            )
        return Path(args.checkpoint)
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
        tta=args.tta,
        magnify=args.magnify,
        threshold=args.threshold,
        say=lambda line: tqdm.write(line, file=sys.stderr),
    )
    if args.probabilities in ("png", "png8") and predictor.num_classes != 2:
        raise FcnsegError(
            f"--probabilities {args.probabilities} writes the foreground probability of a "
            f"two-class model; this one has {predictor.num_classes} classes: use npy"
        )
    writer = Writer(args.out, predictor.meta, args.probabilities)
    names = output_names(paths)
    bad: list[tuple[Path, str]] = []
    tiled, channels = args.tile is not None, predictor.meta.in_channels
    # Georeferenced rasters are read window by window and give GeoTIFF masks in place.
    rasters = {i for i, p in enumerate(paths) if georeferenced(p)}
    images = [p for i, p in enumerate(paths) if i not in rasters]
    reading = (args.batch_size, tiled, args.skip_bad, bad, args.max_pixels, channels)
    with tqdm(total=len(paths), unit="image", desc="predict", file=sys.stderr) as bar:
        for i in sorted(rasters):
            try:
                segment_raster(predictor, paths[i], writer, names[i], args.max_pixels)
            except DataError as exc:
                if not args.skip_bad:
                    raise
                bad.append((paths[i], str(exc)))
            bar.update()
        names = [n for i, n in enumerate(names) if i not in rasters]
        for batch in batches(images, *reading):
            if args.probabilities is None:
                tensors = [as_image_tensor(im, channels) for _, im in batch]
                masks = [m.numpy() for m in predictor(tensors)]
            else:
                masks = [segment(predictor, im, writer, names[i]) for i, im in batch]
            for (i, image), mask in zip(batch, masks, strict=True):
                writer.masks(names[i], image, mask)
            bar.update(len(rasters) + batch[-1][0] + 1 - bar.n)  # counting the bad files before it
        bar.update(len(paths) - bar.n)
    done = len(paths) - len(bad)
    print(
        f"wrote {done} mask{'s' * (done != 1)} and overlays to {args.out} "
        f"({predictor.engine} {predictor.precision})"
    )
    if bad:
        print(f"skipped {len(bad)} unreadable image{'s' * (len(bad) != 1)}:", file=sys.stderr)
        for _, message in bad:
            print(f"  {message}", file=sys.stderr)
    return 0

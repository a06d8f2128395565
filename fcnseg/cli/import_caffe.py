"""``fcnseg import-caffe``: the authors' trained FCNs (or the PyTorch port's) as model files."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = (
    "Import one of the authors' trained FCNs: their .caffemodel, read without Caffe, or the "
    "PyTorch port's .pth state dict. Writes one fcnseg model file (weights, classes, palette, "
    "the Caffe input normalisation) that fcnseg predict, eval and export take."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..files.caffe import DATASETS

    parser.add_argument("source", type=Path, help="NET.caffemodel, or the port's NET.pth")
    parser.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="model file to write"
    )
    parser.add_argument(
        "--dataset",
        choices=list(DATASETS),
        help="what the net was trained on (default: from its class count and input channels; "
        "nyud-hha for the HHA net if its file name does not say hha)",
    )


def run(args: argparse.Namespace) -> int:
    from ..errors import FcnsegError
    from ..files import check_writable
    from ..files.caffe import import_caffe

    if args.out.suffix != ".safetensors":
        raise FcnsegError(f"--out {args.out}: name a .safetensors file, e.g. voc-fcn8s.safetensors")
    check_writable(args.out, flag="--out")
    imported = import_caffe(args.source, args.out, dataset=args.dataset)
    print(f"wrote {args.out}: {imported.summary}")
    if imported.meta is not None:
        print(f"  segment with: fcnseg predict {args.out} IMAGES --out masks/")
    return 0

"""``fcnseg export``: write the ONNX file, check it against PyTorch, print the check."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..files import check_writable, load
from ..files.onnx import DEFAULT_OPSET, export_onnx
from .common import positive

DESCRIPTION = "Export a trained model to ONNX (uint8 RGB in, logits out), checked against PyTorch."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        metavar="CKPT",
        help="model file written by fcnseg train/save, or its address (hf://OWNER/REPO, https://…)",
    )
    parser.add_argument(
        "--onnx",
        type=Path,
        required=True,
        metavar="FILE",
        help="ONNX file to write (uint8 RGB N×3×H×W in, logits out)",
    )
    parser.add_argument(
        "--opset",
        type=positive,
        default=DEFAULT_OPSET,
        help=f"ONNX opset (default {DEFAULT_OPSET}, the lowest supported)",
    )


def run(args: argparse.Namespace) -> int:
    check_writable(args.onnx, flag="--onnx")  # before the export and its checks (minutes)
    model = load(args.checkpoint).eval()
    # PyTorch's exporter reasons about every size at once: a minute or more on a few cores.
    print(f"exporting {args.checkpoint} to ONNX, then checking it against PyTorch …", flush=True)
    report = export_onnx(model, args.onnx, opset=args.opset)
    print(f"wrote {args.onnx} (opset {args.opset}; dynamic batch, height, width)")
    for r in report:
        h, w = r["size"]
        print(
            f"  check {h}×{w}: max |onnxruntime − torch| = {r['max_abs_diff']:.2e}, "
            f"argmax agreement {r['agreement']:.4%}"
        )
    return 0

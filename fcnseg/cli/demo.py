"""``fcnseg demo``: train FCN-32s and FCN-8s on synthetic data and write a report."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = (
    "Generate a synthetic set, train FCN-32s then FCN-8s on the CPU, and compare them in a report."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_out", help="output directory (default: demo_out)")
    parser.add_argument(
        "--preset", default="full", choices=["full", "tiny"], help="tiny: a seconds-long smoke run"
    )


def run(args: argparse.Namespace) -> int:
    from ..demo import PRESETS, run_demo
    from ..files import check_writable

    check_writable(args.out, flag="--out", folder=True)
    result = run_demo(args.out, PRESETS[args.preset])
    coarse, fine = result["fcn32s"], result["fcn8s"]
    print(f"\nreport: {result['report']}")
    print(
        f"FCN-32s mean IU {coarse['mean_iu']:.2%}, FCN-8s mean IU {fine['mean_iu']:.2%} "
        f"(within {coarse['boundary']['width']} px of a boundary: "
        f"{coarse['boundary']['mean_iu']:.2%} and {fine['boundary']['mean_iu']:.2%})"
    )
    # The demo's FCN-8s and its validation images, in the browser.
    run_dir, data = Path(args.out) / "fcn8s", Path(args.out) / "data"
    print(f"\nsee it in your browser: fcnseg view {run_dir} --dataset synthetic --root {data}")
    return 0

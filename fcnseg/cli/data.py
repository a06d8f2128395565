"""``fcnseg data check ROOT``: the dataset as fcnseg reads it, before any training time is spent.

Exit status: 0 when nothing looks wrong, 1 when there are findings (each with its fix), 2 for
an error that stops the check."""

from __future__ import annotations

import argparse
import json

from .common import positive

DESCRIPTION = (
    "Check a dataset before training: pairs per split, image sizes, label values and "
    "their pixel counts, classes never seen, and what looks wrong, with the fix."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="report on a dataset", description=DESCRIPTION)
    check.add_argument("root", metavar="ROOT", help="the dataset's root folder")
    check.add_argument("--dataset", default="folder", help="reader (default: folder)")
    check.add_argument(
        "--split",
        action="append",
        metavar="SPLIT",
        help="a split to check (repeatable; default: every split found)",
    )
    check.add_argument("--label-map", metavar="V:C,...", help="as for train (e.g. 255:1)")
    check.add_argument("--mask-pattern", metavar="PATTERN", help="as for train")
    check.add_argument("--categories", metavar="NAMES", help="COCO categories, as for train")
    check.add_argument(
        "--in-channels", type=positive, metavar="C", help="channels of the images, as for train"
    )
    check.add_argument(
        "--modality", choices=["rgb", "rgbd", "hha"], help="NYUDv2 input, as for train"
    )
    check.add_argument(
        "--labels", choices=["semantic", "geometric"], help="SIFT Flow label set, as for train"
    )
    check.add_argument("--json", metavar="FILE", help="also write the report as JSON")


def run(args: argparse.Namespace) -> int:
    from ..data import reader_options
    from ..data.survey import check_dataset, format_report
    from ..files import atomic_write, check_writable

    if args.json:
        check_writable(args.json, flag="--json")
    report = check_dataset(args.dataset, args.root, splits=args.split, **reader_options(args))
    print(format_report(report))
    if args.json:
        text = json.dumps(report, indent=2) + "\n"
        atomic_write(args.json, lambda tmp: tmp.write_text(text))
    return 1 if report["findings"] else 0

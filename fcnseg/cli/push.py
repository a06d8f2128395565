"""``fcnseg push``: publish a trained model on the Hugging Face Hub, with its model card."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = (
    "Publish a model file on the Hugging Face Hub: the weights, config.json, and a model card "
    "written from the run (classes, palette, backbone, variant, validation scores, training "
    "settings). Afterwards fcnseg.load('hf://OWNER/REPO') and fcnseg predict hf://OWNER/REPO "
    "read it."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="model file, e.g. runs/mine/best.safetensors")
    parser.add_argument("repo", metavar="OWNER/REPO", help="the Hub repository (created if new)")
    parser.add_argument(
        "--license",
        required=True,
        help="the licence the weights are published under, as the Hub names it "
        "(e.g. apache-2.0, mit, cc-by-4.0, other)",
    )
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--token", help="a Hub token (default: the one `hf auth login` saved)")
    parser.add_argument(
        "--dry-run",
        type=Path,
        metavar="DIR",
        help="write the files that would be uploaded into DIR, and upload nothing",
    )


def run(args: argparse.Namespace) -> int:
    from ..files import check_writable
    from ..files.publish import push, write_repository

    if args.dry_run:
        check_writable(args.dry_run, flag="--dry-run", folder=True)
        written = write_repository(args.model, args.dry_run, repo=args.repo, license=args.license)
        print(f"would upload to {args.repo}: " + ", ".join(p.name for p in written))
        print(f"  (written to {args.dry_run}; run again without --dry-run to publish)")
        return 0
    url = push(args.model, args.repo, license=args.license, private=args.private, token=args.token)
    print(f"published {args.model} as {url}")
    print(f'  load it with fcnseg.load("hf://{args.repo}") or fcnseg predict hf://{args.repo} ...')
    return 0

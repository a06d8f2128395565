"""``fcnseg train``: train an FCN from flags, a YAML file, or both (flags win)."""

from __future__ import annotations

import argparse
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..errors import FcnsegError
from ..training.config import TrainConfig, add_config_arguments
from .common import report_skipped

DESCRIPTION = "Train an FCN (paper §4.3). Settings left out follow --recipe."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE.yaml",
        help="settings from a YAML file; flags given here override it",
    )
    add_config_arguments(parser)


def _stored_config(out: str) -> dict[str, Any]:
    """The settings a run was started with, from its resumable checkpoint."""
    from ..files.checkpoint import read_checkpoint

    path = Path(out) / "last.safetensors"
    if not path.is_file():
        raise FcnsegError(
            f"{path}: nothing to resume; start the run without --resume, or "
            "pass the run's directory with --out"
        )
    return read_checkpoint(path).info["config"]


def run(args: argparse.Namespace) -> int:
    from ..training import train

    names = {f.name for f in fields(TrainConfig)}
    flags = {k: v for k, v in vars(args).items() if k in names}
    from_file = TrainConfig.read_yaml(args.config) if args.config else {}
    settings = {**from_file, **flags}
    if settings.get("resume"):
        # A resumed run keeps its settings; the file and flags given now override them.
        out = settings.get("out", TrainConfig.out)
        settings = {**_stored_config(out), **settings}
    result = train(TrainConfig.from_dict(settings))
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun, rank 0 reports for all
    best = result["best"]
    if best is not None:
        print(f"best mean IU {best['mean_iu']:.2%} (epoch {best['epoch']}): {result['best_path']}")
    report_skipped(result.get("skipped", []), listed=True)
    return 0

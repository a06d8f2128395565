"""Argument types and reporting shared by the commands."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_scoring", "non_negative", "positive", "probability", "report_skipped"]


def add_scoring(parser: argparse.ArgumentParser) -> None:
    """How the model scores the images, the same flags for ``predict`` and ``eval``: test-time
    augmentation, the working scale, and a two-class threshold (:mod:`fcnseg.models.decision`)."""
    parser.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: probabilities averaged over flips and scales 0.75, 1, "
        "1.25 (six passes per image)",
    )
    parser.add_argument(
        "--magnify",
        type=working_scale,
        metavar="M",
        help="enlarge each image by M before the net and resize the scores back, instead of "
        "by the model file's working scale (its training --magnify, 1 if none)",
    )
    parser.add_argument(
        "--threshold",
        type=probability,
        metavar="P",
        help="two-class models: a pixel is foreground when its probability reaches P "
        "(default: the larger score, 0.5)",
    )


def working_scale(text: str) -> float:
    """An argparse type: a working scale, a number in the range model files allow."""
    from ..models.meta import MAGNIFY, is_working_scale

    low, high = MAGNIFY
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number in {low:g}–{high:g}, not {text!r}"
        ) from None
    if not is_working_scale(value):
        raise argparse.ArgumentTypeError(f"must lie in {low:g}–{high:g}, not {value:g}")
    return value


def positive(text: str) -> int:
    """An argparse type: a whole number ≥ 1."""
    return _whole(text, 1)


def non_negative(text: str) -> int:
    """An argparse type: a whole number ≥ 0."""
    return _whole(text, 0)


def probability(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), not {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, not {value}")
    return value


def _whole(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, not {value}")
    return value


def report_skipped(messages: list[str], *, listed: bool) -> None:
    """Tell on stderr which samples --skip-bad left out (or, if listed already, how many)."""
    if not messages:
        return
    noun = f"{len(messages)} bad sample{'s' * (len(messages) != 1)}"
    if listed:
        print(f"skipped {noun} (listed at the start)", file=sys.stderr)
    else:
        print(f"skipped {noun}:", *(f"  {m}" for m in messages), sep="\n", file=sys.stderr)

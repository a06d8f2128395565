"""The ``fcnseg`` command: a small dispatcher over one module per command.

``fcnseg --help`` and ``fcnseg --version`` answer from this module alone, without importing
torch; ``fcnseg COMMAND ...`` imports ``fcnseg.cli.COMMAND``, which declares its arguments
(``add_arguments``) and runs (``run``). Mistakes a person can fix end as one line,
``error: <message>``, on stderr with exit status 2 and no traceback; bad arguments get argparse's
usage message (also status 2); an interruption exits 130. Warnings show as one line each.

Owns: the command line. May import: every layer (each command imports what it runs, when run).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence

from .. import __version__
from ..errors import FcnsegError

__all__ = ["COMMANDS", "main"]

#: Command → (module under fcnseg.cli, one-line summary).
COMMANDS = {
    "train": ("train", "train an FCN"),
    "eval": ("eval", "score a model on a dataset (§5 metrics)"),
    "predict": ("predict", "segment images with a trained model"),
    "export": ("export", "export a trained model (e.g. to ONNX)"),
    "import-caffe": ("import_caffe", "import the authors' trained FCNs (.caffemodel, .pth)"),
    "push": ("push", "publish a model on the Hugging Face Hub with its model card"),
    "view": ("view", "a local web page: segment images, inspect a split, training curves"),
    "data": ("data", "check a dataset before training (fcnseg data check ROOT)"),
    "demo": ("demo", "train FCN-32s and FCN-8s on synthetic data and write a report"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: the command names and ``--version``."""
    parser = argparse.ArgumentParser(
        prog="fcnseg", description="Fully Convolutional Networks for semantic segmentation."
    )
    parser.add_argument("--version", action="version", version=f"fcnseg {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, summary) in COMMANDS.items():
        commands.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args, rest = build_parser().parse_known_args(argv)
    module_name, summary = COMMANDS[args.command]
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        return _run(args.command, module_name, summary, rest)


def _one_line_warning(
    message: Warning | str, category: type[Warning], *_: object, **__: object
) -> None:
    """A warning as one line on stderr, without the source line Python shows."""
    text = str(message).strip().splitlines()
    print(f"warning: {text[0] if text else category.__name__}", file=sys.stderr)


def _run(command: str, module_name: str, summary: str, rest: list[str]) -> int:
    try:
        module = importlib.import_module(f"fcnseg.cli.{module_name}")
        parser = argparse.ArgumentParser(
            prog=f"fcnseg {command}", description=getattr(module, "DESCRIPTION", summary)
        )
        module.add_arguments(parser)
        return int(module.run(parser.parse_args(rest)) or 0)
    except FcnsegError as exc:
        return _fail(str(exc))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2

"""The ``fcnseg`` command: ``train``, ``eval``, ``predict``, ``export`` and ``demo``.

Mistakes a person can fix end as one line, ``error: <message>``, on stderr with exit status 2
and no traceback; bad arguments get argparse's usage message (also status 2). Every file the
commands write is written atomically, so an error never leaves half an output behind.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from .config import TrainConfig, add_config_arguments
from .errors import FcnsegError

__all__ = ["main"]

# Commands whose arguments their own module declares, imported only when used.
LAZY = {"predict": "predict images with a trained model",
        "export": "export a trained model (e.g. to ONNX)"}


def _train(args: argparse.Namespace) -> int:
    from .train import train

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
        print(f"best mean IU {best['mean_iu']:.2%} (epoch {best['epoch']}): "
              f"{result['best_path']}")
    _skipped(result.get("skipped", []), listed=True)
    return 0


def _skipped(messages: list[str], *, listed: bool) -> None:
    """Tell on stderr which samples --skip-bad left out (or, if listed already, how many)."""
    if not messages:
        return
    noun = f"{len(messages)} bad sample{'s' * (len(messages) != 1)}"
    if listed:
        print(f"skipped {noun} (listed at the start)", file=sys.stderr)
    else:
        print(f"skipped {noun}:", *(f"  {m}" for m in messages), sep="\n", file=sys.stderr)


def _stored_config(out: str) -> dict:
    """The settings a run was started with, from its resumable checkpoint."""
    from .resume import read_state

    path = Path(out) / "last.safetensors"
    if not path.is_file():
        raise FcnsegError(f"{path}: nothing to resume; start the run without --resume, or "
                          "pass the run's directory with --out")
    return read_state(path).info["config"]


def _eval(args: argparse.Namespace) -> int:
    from .checkpoint import atomic_write
    from .data import build_dataset
    from .evaluate import evaluate, resolve_device, write_json
    from .metrics import format_table, plot_confusion
    from .resume import load_model

    device = resolve_device(args.device)
    model = load_model(args.checkpoint, map_location=str(device))
    reading = {"max_pixels": args.max_pixels} if args.max_pixels else {}
    dataset = build_dataset(args.dataset, args.root, args.split, **reading)
    if model.num_classes != dataset.num_classes:
        raise FcnsegError(f"{args.checkpoint}: model has {model.num_classes} classes but "
                          f"{args.dataset} at {args.root} has {dataset.num_classes}; evaluate "
                          "on the dataset the model was trained for")
    trained = model.meta.get("classes")
    if trained and list(trained) != dataset.classes:
        print(f"warning: {args.checkpoint} was trained with classes {trained}; "
              f"scoring them as {dataset.classes}", file=sys.stderr)
    skipped: list[str] = []
    if args.skip_bad:
        from .data.datasets import drop_samples, find_bad_samples

        bad = find_bad_samples(dataset, workers=args.workers)
        drop_samples(dataset, bad)
        skipped = [bad[i] for i in sorted(bad)]
    result = evaluate(model, dataset, batch_size=args.batch_size, workers=args.workers,
                      device=device, amp=args.amp, channels_last=args.channels_last,
                      boundary=args.boundary)
    print(f"{args.checkpoint} on {args.dataset} {args.split} ({result['images']} images)\n")
    print(format_table(result, dataset.classes))
    if "boundary" in result:
        band = result["boundary"]
        print(f"\nwithin {band['width']} px of a boundary: pixel acc. "
              f"{band['pixel_acc']:.2%}, mean IU {band['mean_iu']:.2%}")
    if args.json:
        write_json(result, args.json)
    if args.plot:
        import torch

        matrix = torch.tensor(result["confusion"])
        atomic_write(args.plot, lambda tmp: plot_confusion(matrix, dataset.classes, tmp))
    _skipped(skipped, listed=False)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import PRESETS, run_demo

    result = run_demo(args.out, PRESETS[args.preset])
    coarse, fine = result["fcn32s"], result["fcn8s"]
    print(f"\nreport: {result['report']}")
    print(f"FCN-32s mean IU {coarse['mean_iu']:.2%}, FCN-8s mean IU {fine['mean_iu']:.2%} "
          f"(within {coarse['boundary']['width']} px of a boundary: "
          f"{coarse['boundary']['mean_iu']:.2%} and {fine['boundary']['mean_iu']:.2%})")
    return 0


def _lazy(name: str, argv: Sequence[str]) -> int:
    """Parse ``argv`` with the arguments of ``fcnseg.<name>`` and run it."""
    try:
        module = importlib.import_module(f"fcnseg.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"fcnseg.{name}":
            raise
        raise FcnsegError(f"`fcnseg {name}` is not available in this installation") from None
    parser = argparse.ArgumentParser(prog=f"fcnseg {name}", description=LAZY[name])
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(argv)) or 0)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``fcnseg`` parser (``predict`` and ``export`` take their arguments lazily)."""
    parser = argparse.ArgumentParser(
        prog="fcnseg", description="Fully Convolutional Networks for semantic segmentation.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train an FCN",
                                description="Train an FCN (paper §4.3). Settings left out "
                                            "follow --recipe.")
    train.add_argument("--config", metavar="FILE.yaml",
                       help="settings from a YAML file; flags given here override it")
    add_config_arguments(train)
    train.set_defaults(run=_train)

    ev = commands.add_parser("eval", help="score a model on a dataset (§5 metrics)",
                             description="Score a model at full resolution: pixel accuracy, "
                                         "mean accuracy, mean IU, frequency-weighted IU.")
    ev.add_argument("checkpoint", metavar="CKPT",
                    help="a model file (best.safetensors) or a training checkpoint")
    ev.add_argument("--dataset", required=True, help="dataset reader")
    ev.add_argument("--root", required=True, help="dataset root directory")
    ev.add_argument("--split", default="val", help="split to score (default: val)")
    ev.add_argument("--json", metavar="FILE", help="write the scores, per class, as JSON")
    ev.add_argument("--plot", metavar="FILE", help="write the confusion matrix as a PNG")
    ev.add_argument("--boundary", type=int, metavar="PX",
                    help="also score the pixels within PX pixels of a label boundary")
    ev.add_argument("--batch-size", type=int, default=1,
                    help="images per forward pass, padded with the ignore label (default: 1)")
    ev.add_argument("--workers", type=int, default=0, help="data loader processes")
    ev.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ev.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    ev.add_argument("--channels-last", action="store_true", help="NHWC memory layout")
    ev.add_argument("--max-pixels", type=_positive, metavar="N",
                    help="refuse images of more pixels than N, a decompression-bomb guard "
                         "(default: Pillow's 178,956,970)")
    ev.add_argument("--skip-bad", action="store_true",
                    help="check every sample first; skip and list the unreadable or "
                         "inconsistent ones instead of stopping at the first")
    ev.set_defaults(run=_eval)

    demo = commands.add_parser("demo", help="train FCN-32s and FCN-8s on synthetic data and "
                                            "write a report",
                               description="Generate a synthetic set, train FCN-32s then FCN-8s "
                                           "on the CPU, and compare them in a report.")
    demo.add_argument("--out", default="demo_out", help="output directory (default: demo_out)")
    demo.add_argument("--preset", default="full", choices=["full", "tiny"],
                      help="tiny: a seconds-long smoke run")
    demo.set_defaults(run=_demo)

    for name, summary in LAZY.items():
        sub = commands.add_parser(name, help=summary, add_help=False)
        sub.set_defaults(run=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command not in LAZY and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.command in LAZY:
            return _lazy(args.command, rest)
        return args.run(args)
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

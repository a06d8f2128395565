"""``fcnseg eval``: score a model on a dataset at full resolution (paper §5)."""

from __future__ import annotations

import argparse
import sys

from .common import add_scoring, non_negative, positive, report_skipped

DESCRIPTION = (
    "Score a model at full resolution: pixel accuracy, mean accuracy, mean IU, "
    "frequency-weighted IU."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        metavar="CKPT",
        help="a model file (best.safetensors), a training checkpoint, or an address "
        "(hf://OWNER/REPO, https://…)",
    )
    parser.add_argument("--dataset", required=True, help="dataset reader")
    parser.add_argument("--root", required=True, help="dataset root directory")
    parser.add_argument("--split", default="val", help="split to score (default: val)")
    parser.add_argument("--json", metavar="FILE", help="write the scores, per class, as JSON")
    parser.add_argument("--plot", metavar="FILE", help="write the confusion matrix as a PNG")
    parser.add_argument(
        "--boundary",
        type=positive,
        metavar="PX",
        help="also score the pixels within PX pixels of a label boundary",
    )
    parser.add_argument(
        "--batch-size",
        type=positive,
        default=1,
        help="images per forward pass, padded with the ignore label (default: 1)",
    )
    parser.add_argument("--workers", type=non_negative, default=0, help="data loader processes")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    parser.add_argument("--channels-last", action="store_true", help="NHWC memory layout")
    parser.add_argument(
        "--max-pixels",
        type=positive,
        metavar="N",
        help="refuse images of more pixels than N, a decompression-bomb guard "
        "(default: Pillow's 178,956,970)",
    )
    parser.add_argument(
        "--label-map",
        metavar="V:C,...",
        help="mask value → class, as in training (e.g. 255:1); overrides classes.json's map",
    )
    parser.add_argument(
        "--mask-pattern",
        metavar="PATTERN",
        help="masks named after their image by a pattern, e.g. '{stem}_1stHO.png'",
    )
    parser.add_argument("--categories", metavar="NAMES", help="COCO categories, as in training")
    add_scoring(parser)
    parser.add_argument(
        "--modality", choices=["rgb", "rgbd", "hha"], help="NYUDv2 input, as in training"
    )
    parser.add_argument(
        "--labels",
        choices=["semantic", "geometric", "both"],
        help="SIFT Flow label set, as in training (both: the two-headed net)",
    )
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="check every sample first; skip and list the unreadable or "
        "inconsistent ones instead of stopping at the first",
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from ..data import build_dataset, drop_samples, find_bad_samples, reader_options, reader_takes
    from ..device import resolve_device
    from ..errors import FcnsegError
    from ..evaluation import evaluate, format_table, plot_confusion, write_json
    from ..files import atomic_write, check_writable, load

    for flag, path in (("--json", args.json), ("--plot", args.plot)):
        if path:  # before the scoring, which can take minutes
            check_writable(path, flag=flag)
    device = resolve_device(args.device)
    model = load(args.checkpoint, map_location=str(device))
    if args.magnify is not None:
        model.meta = model.meta.with_(magnify=args.magnify)
    reading = {"max_pixels": args.max_pixels} if args.max_pixels else {}
    reading.update(reader_options(args))
    if reader_takes(args.dataset, "in_channels"):  # the images have the model's channels
        reading["in_channels"] = model.meta.in_channels
    dataset = build_dataset(args.dataset, args.root, args.split, **reading)
    if model.num_classes != dataset.num_classes:
        raise FcnsegError(
            f"{args.checkpoint}: model has {model.num_classes} classes but "
            f"{args.dataset} at {args.root} has {dataset.num_classes}; evaluate "
            "on the dataset the model was trained for"
        )
    trained = model.meta.classes
    if trained and list(trained) != dataset.classes:
        print(
            f"warning: {args.checkpoint} was trained with classes {list(trained)}; "
            f"scoring them as {dataset.classes}",
            file=sys.stderr,
        )
    skipped: list[str] = []
    if args.skip_bad:
        bad = find_bad_samples(dataset, workers=args.workers)
        drop_samples(dataset, bad)
        skipped = [bad[i] for i in sorted(bad)]
    result = evaluate(
        model,
        dataset,
        batch_size=args.batch_size,
        workers=args.workers,
        device=device,
        amp=args.amp,
        channels_last=args.channels_last,
        boundary=args.boundary,
        threshold=args.threshold,
        tta=args.tta,
    )
    magnify = result.get("magnify")
    source = "--magnify" if args.magnify is not None else "the model's working scale"
    scale = f", enlarged {magnify:g}× ({source})" if magnify else ""
    print(f"{args.checkpoint} on {args.dataset} {args.split} ({result['images']} images{scale})\n")
    label_sets = dataset.heads or {"": dataset}
    for name, part in (result.get("heads") or {"": result}).items():
        print(f"head {name}\n" if name else "", end="")
        print(format_table(part, label_sets[name].classes))
    if "boundary" in result:
        band = result["boundary"]
        print(
            f"\nwithin {band['width']} px of a boundary: pixel acc. "
            f"{band['pixel_acc']:.2%}, mean IU {band['mean_iu']:.2%}"
        )
    if args.json:
        write_json(result, args.json)
    if args.plot:
        matrix = torch.tensor(result["confusion"])
        classes = next(iter(label_sets.values())).classes  # the (first) head's
        atomic_write(args.plot, lambda tmp: plot_confusion(matrix, classes, tmp))
    report_skipped(skipped, listed=False)
    return 0

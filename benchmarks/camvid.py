"""FCN on CamVid with an ImageNet-pretrained backbone, trained on the CPU (a benchmark, not a test).

    python benchmarks/camvid.py [--root DIR] [--out RUN_DIR] [--model fcn4s] [--epochs N]
    python benchmarks/camvid.py --ablation --epochs 8     # FCN-32s, 16s, 8s side by side
    python benchmarks/camvid.py --unseen 0006R0 --epochs 20   # validated on a video not trained on

A thin wrapper over ``benchmarks/camvid.yaml`` and ``fcnseg train``: it trains, keeps
``RUN_DIR/best.safetensors`` (chosen by validation mean IU), evaluates it on the 101 validation
images at their full 360×480 resolution, and writes ``benchmarks/results/camvid.json`` (or
``camvid_ablation.json``) with the four metrics, per-class IU, wall time, machine, command and
commit, and a figure of predictions under ``benchmarks/results/``. ``--unseen VIDEO`` trains
on the frames of every other video of train and val and validates on VIDEO's
(``camvid_unseen_VIDEO.json``): a new scene, as the test split mostly is.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from speed import machine  # the same machine description as the speed benchmark

import fcnseg
from fcnseg.data import build_dataset
from fcnseg.evaluation import evaluate
from fcnseg.training import TrainConfig, train

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def commit() -> str:
    """The commit the run's code is, marked when the code or a recipe differs from it (the
    results of earlier runs do not count)."""
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True
    )
    code = ["fcnseg", "benchmarks", ":!benchmarks/results"]
    changed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", *code], cwd=HERE.parent)
    mark = " + uncommitted changes" if changed.returncode == 1 else ""
    return (out.stdout.strip() or "unknown") + mark


def schedule(values: dict[str, object], args: argparse.Namespace) -> None:
    """Apply ``--epochs`` to a recipe's settings; an ablation drops the time budget, so that
    every model trains on the same schedule whatever the machine."""
    if args.epochs:
        values["epochs"] = args.epochs
    if args.ablation:
        values.pop("max_minutes", None)


def epochs_run(values: dict[str, object], result: dict) -> dict[str, object]:
    """The epochs a run took (under the recipe's time budget, as many as fit here), its most
    and its budget, for the results file."""
    return {
        "epochs": len(result["history"]),
        "max_epochs": values["epochs"],
        "max_minutes": values.get("max_minutes"),
    }


def unseen_split(root: Path, video: str, out: Path) -> Path:
    """A split by video: the frames of ``root``'s train and val splits but ``video``'s to train
    on (split ``train``), ``video``'s to validate on (split ``unseen``), as links in
    ``out/split``. CamVid's validation frames lie between training frames of the same video
    (0016E5), while its test split is mostly a video neither split holds (Seq05VD): validation
    scores frames like the ones trained on; this scores a new scene."""
    # Frames are named by their video: 0006R0_f00930.png.
    frames = [
        (image, source, image.name.split("_")[0])
        for source in ("train", "val")
        for image in sorted((root / source).glob("*.png"))
    ]
    videos = sorted({v for _, _, v in frames})
    if video not in videos:
        found = f"its videos: {', '.join(videos)}" if videos else "no CamVid frames there (--root)"
        raise SystemExit(f"--unseen {video}: no such video in {root}; {found}")
    split = out / "split"
    shutil.rmtree(split, ignore_errors=True)
    try:
        for image, source, v in frames:
            part = "unseen" if v == video else "train"
            for folder, file in (
                (part, image),
                (f"{part}annot", root / f"{source}annot" / image.name),
            ):
                (split / folder).mkdir(parents=True, exist_ok=True)
                (split / folder / image.name).symlink_to(file.resolve())
    except OSError as exc:  # e.g. a file system without links
        shutil.rmtree(split, ignore_errors=True)
        raise SystemExit(
            f"--unseen: cannot link the frames into {split} ({exc}); choose another --out"
        ) from None
    return split


def run(model: str, args: argparse.Namespace, out: Path) -> dict[str, object]:
    values = TrainConfig.read_yaml(HERE / "camvid.yaml")
    values.update(root=str(args.data), val_split=args.val_split, out=str(out), model=model)
    schedule(values, args)
    if args.resume:
        values["resume"] = True
    else:  # the benchmark owns its run directories: a new run replaces the last one
        values["overwrite"] = True
    result = train(TrainConfig.from_dict(values))
    # The epochs' own times (training and validation), summed: right across --resume too.
    wall = sum(record["time"] for record in result["history"])
    best = fcnseg.load(out / "best.safetensors")
    dataset = build_dataset("camvid", args.data, args.val_split)
    record: dict[str, object] = {
        "model": model,
        **epochs_run(values, result),
        "best_epoch": result["best"]["epoch"],
        "train_wall_s": round(wall, 1),
        "val": evaluate(best, dataset, batch_size=1),
        "run_dir": str(out),
    }
    if not args.ablation:  # the cost and gain of test-time augmentation, on the same images
        start = time.time()
        record["val_tta"] = evaluate(best, dataset, batch_size=1, tta=True)
        record["tta_wall_s"] = round(time.time() - start, 1)
    return record


def figure(runs: dict[str, Path], root: Path, split: str, path: Path, n: int = 4) -> None:
    """Image, ground truth and each model's prediction for ``n`` validation images."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dataset = build_dataset("camvid", root, split)
    palette = np.array(
        list(dataset.palette) + [(0, 0, 0)] * (256 - len(dataset.palette)), dtype=np.uint8
    )
    models = {name: fcnseg.load(p / "best.safetensors").eval() for name, p in runs.items()}
    picks = np.linspace(0, len(dataset) - 1, n).round().astype(int)
    cols = 2 + len(models)
    fig = Figure(figsize=(3.2 * cols, 2.5 * n))
    FigureCanvasAgg(fig)
    axes = fig.subplots(n, cols, squeeze=False)
    for row, i in enumerate(picks):
        image, mask = dataset[int(i)]
        panels = [
            ("image", image.permute(1, 2, 0).numpy()),
            ("ground truth", palette[mask.numpy().clip(0, 255)]),
        ]
        for name, model in models.items():
            with torch.inference_mode():
                pred = model.predict(image[None])[0].numpy()
            panels.append((name, palette[pred]))
        for col, (title, picture) in enumerate(panels):
            axes[row, col].imshow(picture)
            axes[row, col].set_axis_off()
            if row == 0:
                axes[row, col].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=70)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, default=HERE.parents[1] / "shared" / "datasets" / "camvid"
    )
    parser.add_argument(
        "--out", type=Path, help="run directory (runs/camvid, or runs/camvid_unseen_VIDEO)"
    )
    parser.add_argument("--model", choices=fcnseg.list_models(), help="override the recipe's model")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs")
    parser.add_argument(
        "--ablation", action="store_true", help="train FCN-32s, 16s and 8s with the same schedule"
    )
    parser.add_argument("--resume", action="store_true", help="continue interrupted runs")
    parser.add_argument(
        "--unseen",
        metavar="VIDEO",
        help="train on the other videos' frames of train and val, validate on this one's (0006R0)",
    )
    args = parser.parse_args()
    args.data, args.val_split = args.root, "val"
    args.out = args.out or Path("runs/camvid" + (f"_unseen_{args.unseen}" if args.unseen else ""))
    if args.unseen:
        args.data, args.val_split = unseen_split(args.root, args.unseen, args.out), "unseen"
    started_at = commit()  # the code that trains, whatever is committed while it runs
    recipe = TrainConfig.read_yaml(HERE / "camvid.yaml")
    models = ["fcn32s", "fcn16s", "fcn8s"] if args.ablation else [args.model or recipe["model"]]
    runs = {m: args.out / m if args.ablation else args.out for m in models}
    records = [run(m, args, runs[m]) for m in models]
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "camvid_ablation" if args.ablation else "camvid"
    if args.unseen:
        name += f"_unseen_{args.unseen}"
    report = {
        "recipe": recipe,
        "runs": records,
        "machine": machine(),
        "commit": started_at,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2, default=float))
    figure(runs, args.data, args.val_split, RESULTS / f"{name}.png")
    print(f"{'model':8} {'pixel acc':>9} {'mean acc':>9} {'mean IU':>8} {'fw IU':>7} {'wall':>8}")
    for r in records:
        s = r["val"]
        print(
            f"{r['model']:8} {100 * s['pixel_acc']:9.2f} {100 * s['mean_acc']:9.2f} "
            f"{100 * s['mean_iu']:8.2f} {100 * s['fw_iu']:7.2f} {r['train_wall_s']:7.0f}s"
        )
        if "val_tta" in r:
            s = r["val_tta"]
            print(
                f"{'  + TTA':8} {100 * s['pixel_acc']:9.2f} {100 * s['mean_acc']:9.2f} "
                f"{100 * s['mean_iu']:8.2f} {100 * s['fw_iu']:7.2f} {r['tta_wall_s']:7.0f}s"
            )


if __name__ == "__main__":
    main()

"""FCN on CHASE_DB1 retinal vessels, trained on the CPU (a benchmark, not a test).

    python benchmarks/chase_db1.py [--root DIR] [--out RUN_DIR] [--holdout] [--model fcn1s]
                                   [--epochs N] [--loss LOSS]
    python benchmarks/chase_db1.py --ablation --epochs 10   # 32s…1s, CE and CE + Dice

A thin wrapper over ``benchmarks/chase_db1.yaml`` and ``fcnseg train``. Plainly it makes the
recipe's model: trained on all 20 images (children 01–10, the usual training set, on which the
published numbers train too), ``RUN_DIR/best.safetensors``; its scores on children 09–10 are a
fit, since it trained on them. ``--holdout`` estimates instead: the same recipe trained on
children 01–08 (16 images), ``best.safetensors`` chosen by validation mean IU on children 09–10
and scored on those 4 held-out images at full resolution (999×960), plainly and with test-time
augmentation, with a figure: image, ground truth, prediction, errors (missed vessels blue, false
vessels red). Either writes ``benchmarks/results/chase_db1[_holdout].json`` (vessel F1,
sensitivity, specificity, accuracy, AUC, mean IU, wall time, machine, command, commit, and the
second human observer's scores against the first as the human reference). A ``--model`` or
``--loss`` other than the recipe's is named in the file:
``chase_db1_<model>_<loss>[_holdout].json``. The ablation is held out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from camvid import commit, epochs_run, schedule
from speed import machine

import fcnseg
from fcnseg.data import build_dataset
from fcnseg.evaluation import ConfusionMatrix, evaluate
from fcnseg.evaluation.metrics import binary_scores
from fcnseg.training import TrainConfig, train

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
RECIPE = HERE / "chase_db1.yaml"
SCORES = ("f1", "sensitivity", "specificity", "accuracy", "auc")


def run(model: str, loss: str | None, args: argparse.Namespace, out: Path) -> dict[str, object]:
    values = TrainConfig.read_yaml(RECIPE)
    values.update(root=str(args.root), out=str(out), model=model)
    if args.holdout:
        values["train_split"] = "train"
    if loss:
        values["loss"] = loss
    schedule(values, args)
    values["resume" if args.resume else "overwrite"] = True
    result = train(TrainConfig.from_dict(values))
    # The epochs' own times (training and validation), summed: right across --resume too.
    wall = sum(record["time"] for record in result["history"])
    best = fcnseg.load(out / "best.safetensors")
    dataset = build_dataset("chase_db1", args.root, "val")
    record: dict[str, object] = {
        "model": model,
        "loss": values["loss"],
        **epochs_run(values, result),
        "best_epoch": result["best"]["epoch"],
        "train_wall_s": round(wall, 1),
        # Scores on images trained on are a fit, kept apart from held-out ones by their name.
        ("val" if args.holdout else "fit"): _scores(evaluate(best, dataset)),
        "run_dir": str(out),
    }
    if args.holdout and not args.ablation:
        start = time.time()
        record["val_tta"] = _scores(evaluate(best, dataset, tta=True))
        record["tta_wall_s"] = round(time.time() - start, 1)
    return record


def second_observer(root: Path) -> dict[str, float]:
    """The second human observer scored against the first on the validation images, pooled as
    the models are: how far two people agree on where the vessels are."""
    first = build_dataset("chase_db1", root, "val")
    second = build_dataset("chase_db1", root, "val", observer="2ndHO")
    matrix = ConfusionMatrix(2)
    for i in range(len(first)):
        matrix.update(second[i][1], first[i][1])
    scores = binary_scores(matrix)
    return {k: scores[k] for k in SCORES if k in scores}


def _scores(result: dict) -> dict[str, float]:
    return {**{k: result["binary"][k] for k in SCORES}, "mean_iu": result["mean_iu"]}


def figure(run_dir: Path, root: Path, path: Path, n: int = 2) -> None:
    """Image, ground truth, prediction and errors for ``n`` validation images."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dataset = build_dataset("chase_db1", root, "val")
    model = fcnseg.load(run_dir / "best.safetensors").eval()
    fig = Figure(figsize=(16, 4.2 * n))
    FigureCanvasAgg(fig)
    axes = fig.subplots(n, 4, squeeze=False)
    for row, i in enumerate(np.linspace(0, len(dataset) - 1, n).round().astype(int)):
        image, mask = dataset[int(i)]
        with torch.inference_mode():
            pred = model.predict(image[None])[0].numpy()
        truth = mask.numpy()
        errors = np.full((*truth.shape, 3), 255, np.uint8)
        errors[(truth == 1) & (pred == 1)] = (0, 0, 0)  # found
        errors[(truth == 1) & (pred == 0)] = (0, 90, 255)  # missed
        errors[(truth == 0) & (pred == 1)] = (255, 40, 0)  # false
        panels = [
            ("image", image.permute(1, 2, 0).numpy()),
            ("ground truth (1st observer)", truth),
            ("prediction", pred),
            ("errors: missed blue, false red", errors),
        ]
        for col, (title, picture) in enumerate(panels):
            axes[row, col].imshow(picture, cmap="gray" if picture.ndim == 2 else None)
            axes[row, col].set_axis_off()
            axes[row, col].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, default=HERE.parents[1] / "shared" / "datasets" / "chase_db1"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/chase_db1"))
    parser.add_argument("--model", choices=fcnseg.list_models(), help="override the recipe's")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs")
    parser.add_argument("--loss", help="override the recipe's loss (e.g. ce+lovasz)")
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="FCN-32s…1s with CE + Dice, and FCN-2s with CE alone, on one schedule",
    )
    parser.add_argument(
        "--holdout",
        action="store_true",
        help="train on children 01–08 and score on 09–10 held out (an estimate), not on all 20",
    )
    parser.add_argument("--resume", action="store_true", help="continue interrupted runs")
    args = parser.parse_args()
    args.holdout |= args.ablation
    started_at = commit()
    if args.ablation:
        plan = [(m, None) for m in ("fcn32s", "fcn16s", "fcn8s", "fcn4s", "fcn2s", "fcn1s")]
        plan.append(("fcn2s", "ce"))
        runs = {
            f"{m}-{loss or 'recipe'}": (m, loss, args.out / f"{m}-{loss or 'recipe'}")
            for m, loss in plan
        }
    else:
        model = args.model or TrainConfig.read_yaml(RECIPE)["model"]
        runs = {model: (model, args.loss, args.out)}
    records = [run(m, loss, args, out) for m, loss, out in runs.values()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    # The recipe's run is chase_db1; a model or loss of one's own is named by it, so that a
    # trial does not overwrite the recipe's figures.
    changed = [v.replace("+", "_") for v in (args.model, args.loss) if v]
    held = ["holdout"] if args.holdout else []
    name = "chase_db1_ablation" if args.ablation else "_".join(["chase_db1", *changed, *held])
    report = {
        "recipe": TrainConfig.read_yaml(RECIPE),
        "split": (
            "train: children 01–08 (16 images); val: children 09–10 (4, held out), 1st observer"
            if args.holdout
            else "train: children 01–10 (all 20 images); fit: children 09–10 (4, trained on: "
            "not an estimate, --holdout gives one), 1st observer"
        ),
        "runs": records,
        "second_observer": second_observer(args.root),
        "machine": machine(),
        "commit": started_at,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2, default=float))
    if args.holdout and not args.ablation:
        figure(args.out, args.root, RESULTS / f"{name}.png")
    print(
        f"{'model':8} {'loss':8} " + " ".join(f"{k:>11}" for k in (*SCORES, "mean_iu")) + "  wall"
    )
    for r in records:
        for key in ("val", "val_tta", "fit"):
            if key in r:
                s = r[key]
                label = r["model"] + {"val": "", "val_tta": " +TTA", "fit": " fit"}[key]
                values = " ".join(f"{100 * s[k]:11.2f}" for k in (*SCORES, "mean_iu"))
                print(f"{label:8} {r['loss']:8} {values} {r['train_wall_s']:5.0f}s")
    human = report["second_observer"]
    print(f"{'2nd observer':17} " + " ".join(f"{100 * human[k]:11.2f}" for k in human))
    if not args.holdout:
        print("fit: scores on children 09–10, which it trained on; --holdout estimates")


if __name__ == "__main__":
    main()

"""The embedded demo: the skip architecture's gain (paper §4.2, Table 2, Figure 4), on a CPU.

``fcnseg demo`` generates the synthetic shapes set, trains FCN-32s, then grows FCN-8s from it
as the paper stages its nets (§4.2: the coarser net's weights, new score layers at zero). So
that the comparison is of architectures and not of training time, FCN-32s is also trained on
from the same point for as long. It evaluates the nets at full resolution and writes
``report.md`` and ``report.html`` with figures, and ``scores.json``.

Figure 4 of the paper shows that the fused, finer nets recover fine structure and sharper
boundaries. The demo measures that directly: besides the four metrics over all pixels, it
scores the pixels within a few pixels of a ground-truth label boundary (a "trimap" band),
where a stride-32 prediction must be wrong at least in part. Every number in the report is
computed by this run; nothing is written in advance.

Backbone: EfficientNet-Lite0, whose ImageNet weights ship offline, so nothing is downloaded.
"""

from __future__ import annotations

import html
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import atomic_write
from .config import TrainConfig
from .data import build_dataset, make_synthetic
from .evaluate import METRICS, as_json, evaluate
from .metrics import plot_confusion
from .resume import load_model
from .train import train

__all__ = ["PRESETS", "DemoSettings", "run_demo"]

NAMES = {"fcn32s_stage1": "FCN-32s, stage 1", "fcn32s": "FCN-32s", "fcn8s": "FCN-8s"}
LABELS = {"pixel_acc": "pixel acc.", "mean_acc": "mean acc.", "mean_iu": "mean IU",
          "fw_iu": "f.w. IU"}


@dataclass(frozen=True)
class DemoSettings:
    """Size of the demo: data, training length and the report's figures."""

    n_train: int = 160
    n_val: int = 40
    sizes: tuple[int, int] = (96, 160)
    epochs_stage1: int = 12  # FCN-32s from ImageNet
    epochs_stage2: int = 6  # FCN-8s from it, and FCN-32s from it for as long
    crop: int = 96
    batch_size: int = 8
    # The score layers start at zero (§4.2) and a demo has a few hundred steps to move them:
    # a higher rate than the modern default, the pretrained backbone at a tenth of it.
    lr: float = 1e-2
    boundary: int = 3  # pixels each side of a label boundary
    samples: int = 4  # validation images in the figure
    backbone: str = "efficientnet_lite0"
    pretrained: bool = True  # its ImageNet weights (offline for EfficientNet-Lite0)


PRESETS = {
    "full": DemoSettings(),
    # Seconds: enough to exercise every stage and file, nothing to learn from.
    "tiny": DemoSettings(n_train=4, n_val=2, sizes=(40, 48), epochs_stage1=1, epochs_stage2=1,
                         crop=32, batch_size=2, samples=2),
}

# (run, variant, the run it starts from). FCN-8s grows from FCN-32s as in §4.2; so does an
# FCN-32s trained for as long, without skips: what the skips add, and not the extra epochs.
STAGES = (("fcn32s_stage1", "fcn32s", None), ("fcn8s", "fcn8s", "fcn32s_stage1"),
          ("fcn32s", "fcn32s", "fcn32s_stage1"))
HOW = {"fcn32s_stage1": "FCN-32s (stage 1) on {backbone}",
       "fcn8s": "FCN-8s from stage 1, new score layers at zero (§4.2)",
       "fcn32s": "FCN-32s from stage 1 for as long, without skips (the comparison)"}


def _config(settings: DemoSettings, data: Path, out: Path, run: str, variant: str,
            init: str | None) -> TrainConfig:
    return TrainConfig(
        dataset="synthetic", root=str(data), model=variant, backbone=settings.backbone,
        pretrained_backbone=settings.pretrained, batch_size=settings.batch_size,
        epochs=settings.epochs_stage2 if init else settings.epochs_stage1,
        crop=(settings.crop, settings.crop), scale=(0.75, 1.25), lr=settings.lr,
        init_from=str(out / init / "best.safetensors") if init else None, out=str(out / run),
        # Two cores: loading in the training process beats a worker competing for them.
        workers=0, channels_last=True, seed=0)


def run_demo(out: str | Path, settings: DemoSettings = PRESETS["full"]) -> dict[str, Any]:
    """Run the demo into ``out``; returns the report path and the nets' scores.

    Returns:
        ``report`` (path of report.md); ``fcn32s_stage1``, ``fcn8s`` and ``fcn32s`` (the
        :func:`fcnseg.evaluate` results, with ``boundary``; the last two trained equally
        long); ``seconds`` (wall time by stage).
    """
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    out = Path(out)
    steps = len(STAGES) + 2
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    data = out / "data"
    print(f"[1/{steps}] synthetic data: {settings.n_train} training and {settings.n_val} "
          f"validation images → {data}", flush=True)
    make_synthetic(data, n_train=settings.n_train, n_val=settings.n_val, sizes=settings.sizes)
    seconds["data"] = time.perf_counter() - start

    runs = {}
    for i, (run, variant, init) in enumerate(STAGES):
        t = time.perf_counter()
        print(f"[{i + 2}/{steps}] training {HOW[run].format(backbone=settings.backbone)}",
              flush=True)
        runs[run] = train(_config(settings, data, out, run, variant, init))
        seconds[run] = time.perf_counter() - t

    t = time.perf_counter()
    print(f"[{steps}/{steps}] evaluating at full resolution and writing the report", flush=True)
    val = build_dataset("synthetic", data, "val")
    models = {run: load_model(out / run / "best.safetensors").eval() for run in runs}
    results = {run: evaluate(m, val, device="cpu", channels_last=True,
                             boundary=settings.boundary) for run, m in models.items()}
    figures = _figures(out, val, models, runs, results, settings)
    seconds["report"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - start
    report = _write_report(out, settings, runs, results, figures, seconds)
    return {"report": str(report), **results, "seconds": seconds}


# ---------------------------------------------------------------- figures


def _colour(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Label map → RGB; labels past the palette (the ignore label) drawn light grey."""
    safe = np.where(labels < len(palette), labels, 0)
    rgb = palette[safe]
    rgb[labels >= len(palette)] = (220, 220, 220)
    return rgb


def _figures(out: Path, val: Any, models: dict, runs: dict, results: dict,
             settings: DemoSettings) -> dict[str, str]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    compared = ("fcn32s", "fcn8s")  # trained equally long
    palette = np.array(val.palette, dtype=np.uint8)
    rows = min(settings.samples, len(val))
    figure = Figure(figsize=(8, 2.1 * rows + 0.6))
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, 4, squeeze=False)
    for row in range(rows):
        image, mask = val[row]
        panels = [image.permute(1, 2, 0).numpy(), _colour(mask.numpy(), palette)]
        panels += [_colour(models[run].predict(image[None])[0].numpy(), palette)
                   for run in compared]
        titles = ["image", "ground truth", *(NAMES[run] for run in compared)]
        for col, (panel, title) in enumerate(zip(panels, titles, strict=True)):
            axes[row, col].imshow(panel, interpolation="nearest")
            axes[row, col].set_axis_off()
            if row == 0:
                axes[row, col].set_title(title)
    handles = [Patch(color=np.array(c) / 255, label=n)
               for n, c in zip(val.classes, val.palette, strict=True)]
    handles.append(Patch(color=(220 / 255,) * 3, label="ignored"))
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    paths = {"samples": "samples.png", "curves": "curves.png"}
    atomic_write(out / paths["samples"], lambda tmp: figure.savefig(tmp, format="png", dpi=80))

    figure = Figure(figsize=(10, 3.6))
    FigureCanvasAgg(figure)
    loss_axes, iu_axes = figure.subplots(1, 2)
    first = runs["fcn32s_stage1"]["history"]
    for run in ("fcn32s_stage1", *compared):
        # The second stage continues from the end of the first: one line each, joined there.
        history = runs[run]["history"] if run == "fcn32s_stage1" else \
            first[-1:] + [{**h, "epoch": len(first) + h["epoch"]} for h in runs[run]["history"]]
        epochs = [h["epoch"] for h in history]
        loss_axes.plot(epochs, [h["train_loss"] for h in history], marker=".", label=NAMES[run])
        iu_axes.plot(epochs, [100 * h["mean_iu"] for h in history], marker=".",
                     label=NAMES[run])
    loss_axes.set(xlabel="epoch", ylabel="training loss")
    iu_axes.set(xlabel="epoch", ylabel="validation mean IU (%)")
    loss_axes.legend()
    iu_axes.legend()
    figure.tight_layout()
    atomic_write(out / paths["curves"], lambda tmp: figure.savefig(tmp, format="png", dpi=80))

    for run in compared:
        name = paths[f"confusion_{run}"] = f"confusion_{run}.png"
        matrix = torch.tensor(results[run]["confusion"])
        atomic_write(out / name, lambda tmp, m=matrix: plot_confusion(m, val.classes, tmp))
    return paths


# ---------------------------------------------------------------- report


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}"


def _epochs(n: int) -> str:
    return f"{n} epoch{'s' * (n != 1)}"


def _finding(results: dict[str, Any], width: int) -> str:
    """The comparison of the equally trained FCN-32s and FCN-8s in words, from the numbers."""
    coarse, fine = results["fcn32s"], results["fcn8s"]
    near_c, near_f = coarse["boundary"], fine["boundary"]
    gain = 100 * (fine["mean_iu"] - coarse["mean_iu"])
    acc_gain = 100 * (fine["pixel_acc"] - coarse["pixel_acc"])
    band_acc_gain = 100 * (near_f["pixel_acc"] - near_c["pixel_acc"])
    band = (f"within {width} px of a label boundary, pixel accuracy rises by "
            f"{band_acc_gain:+.1f} points ({_pct(near_f['pixel_acc'])}% against "
            f"{_pct(near_c['pixel_acc'])}%), against {acc_gain:+.1f} points over the whole "
            f"image; mean IU there is {_pct(near_f['mean_iu'])}% against "
            f"{_pct(near_c['mean_iu'])}%")
    if gain <= 0:
        return (f"In this run FCN-8s did **not** beat FCN-32s: mean IU "
                f"{_pct(fine['mean_iu'])}% against {_pct(coarse['mean_iu'])}% "
                f"({gain:+.1f} points); {band}. The paper's finding is not reproduced here.")
    where = ("The gain is largest at the boundaries, as the paper's Figure 4 shows: "
             if band_acc_gain > acc_gain else "Near the boundaries: ")
    return (f"FCN-8s beats FCN-32s, as in the paper (Table 2): mean IU "
            f"{_pct(fine['mean_iu'])}% against {_pct(coarse['mean_iu'])}% ({gain:+.1f} points), "
            f"after the same training. {where}{band}.")


def _blocks(settings: DemoSettings, runs: dict, results: dict, figures: dict[str, str],
            seconds: dict[str, float]) -> list[tuple[str, Any]]:
    """The report as blocks, rendered to Markdown and HTML alike."""
    width = settings.boundary
    order = ("fcn32s_stage1", "fcn32s", "fcn8s")
    head = ["", *LABELS.values(), f"pixel acc. ≤{width} px", f"mean IU ≤{width} px"]
    rows = [[NAMES[run], *(_pct(results[run][k]) for k in METRICS),
             _pct(results[run]["boundary"]["pixel_acc"]),
             _pct(results[run]["boundary"]["mean_iu"])] for run in order]
    classes = results["fcn8s"]["classes"]
    per_class = [[name, *(_pct(results[run]["per_class_iu"][i]) for run in order)]
                 for i, name in enumerate(classes)]
    best = ", ".join(f"{NAMES[run]}: epoch {runs[run]['best']['epoch']}" for run in order)
    first, second = _epochs(settings.epochs_stage1), _epochs(settings.epochs_stage2)
    return [
        ("h1", "FCN-32s vs FCN-8s on synthetic shapes"),
        ("p", f"All nets are FCNs on {settings.backbone} ("
              f"{'ImageNet weights' if settings.pretrained else 'random initialisation'}, "
              f"modern geometry) trained on the CPU on {settings.n_train} synthetic images of "
              f"{settings.sizes[0]}–{settings.sizes[1]} px (5 shape classes and background) in "
              f"random {settings.crop}×{settings.crop} crops, batches of "
              f"{settings.batch_size}, AdamW at {settings.lr:g} with poly decay. Stage 1 trains "
              f"FCN-32s for {first}. FCN-8s starts from it, its new score layers at zero (§4.2 "
              f"staged training), and trains {second} more; so does FCN-32s, without skips, so "
              f"that the two compared have had the same training. All are scored at full "
              f"resolution on the {results['fcn8s']['images']} validation images, each at its "
              f"best epoch by validation mean IU ({best})."),
        ("h2", "Result"),
        ("p", _finding(results, width)),
        ("table", (head, rows)),
        ("p", f"All numbers in percent. The last two columns count only the pixels within "
              f"{width} px of a ground-truth label boundary. Every score, per class too, is in "
              "scores.json."),
        ("img", (figures["samples"], "Validation images: ground truth, FCN-32s, FCN-8s")),
        ("h2", "Per-class IU"),
        ("table", (["class", *(NAMES[run] for run in order)], per_class)),
        ("h2", "Training"),
        ("img", (figures["curves"], "Training loss and validation mean IU per epoch")),
        ("h2", "Confusion matrices"),
        ("img", (figures["confusion_fcn32s"], "FCN-32s confusion matrix")),
        ("img", (figures["confusion_fcn8s"], "FCN-8s confusion matrix")),
        ("h2", "Run"),
        ("p", f"Wall time {seconds['total']:.0f} s: data {seconds['data']:.0f} s, "
              + ", ".join(f"{NAMES[run]} {seconds[run]:.0f} s" for run, _, _ in STAGES)
              + f", evaluation and report {seconds['report']:.0f} s; "
              f"{torch.get_num_threads()} threads, torch {torch.__version__}, Python "
              f"{platform.python_version()}. Settings: "
              f"{', '.join(f'{k}={v}' for k, v in asdict(settings).items())}. The training "
              "runs, with checkpoints, metrics.jsonl and config.yaml, are in "
              + ", ".join(f"{run}/" for run, _, _ in STAGES) + "."),
    ]


def _markdown(blocks: list[tuple[str, Any]]) -> str:
    lines = []
    for kind, body in blocks:
        if kind in ("h1", "h2"):
            lines += [f"{'#' * int(kind[1])} {body}", ""]
        elif kind == "p":
            lines += [body, ""]
        elif kind == "img":
            lines += [f"![{body[1]}]({body[0]})", ""]
        else:
            head, rows = body
            lines += ["| " + " | ".join(head) + " |",
                      "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
            lines += ["| " + " | ".join(row) + " |" for row in rows]
            lines.append("")
    return "\n".join(lines)


def _html(blocks: list[tuple[str, Any]]) -> str:
    def inline(text: str) -> str:
        parts = html.escape(text).split("**")
        return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))

    body = []
    for kind, content in blocks:
        if kind in ("h1", "h2", "p"):
            body.append(f"<{kind}>{inline(content)}</{kind}>")
        elif kind == "img":
            body.append(f'<p><img src="{content[0]}" alt="{html.escape(content[1])}"></p>')
        else:
            head, rows = content
            cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
            trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                          for row in rows)
            body.append(f"<table><tr>{cells}</tr>{trs}</table>")
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;"
             "text-align:right}td:first-child{text-align:left}img{max-width:100%}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>fcnseg demo</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _write_report(out: Path, settings: DemoSettings, runs: dict, results: dict,
                  figures: dict[str, str], seconds: dict[str, float]) -> Path:
    blocks = _blocks(settings, runs, results, figures, seconds)
    markdown, page = _markdown(blocks), _html(blocks)
    scores = json.dumps({run: as_json(result) for run, result in results.items()}, indent=2)
    atomic_write(out / "scores.json", lambda tmp: tmp.write_text(scores + "\n"))
    atomic_write(out / "report.md", lambda tmp: tmp.write_text(markdown))
    atomic_write(out / "report.html", lambda tmp: tmp.write_text(page))
    return out / "report.md"

"""The demo's report: sample overlays, curves, confusion matrices and per-class IU, as Markdown
and HTML, every number computed by the run."""

from __future__ import annotations

import html
import json
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..evaluation import METRICS, as_json, plot_confusion
from ..files import atomic_write
from .settings import NAMES, STAGES, DemoSettings

__all__ = ["figures", "write_report"]


def _colour(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Label map → RGB; labels past the palette (the ignore label) drawn light grey."""
    safe = np.where(labels < len(palette), labels, 0)
    rgb = palette[safe]
    rgb[labels >= len(palette)] = (220, 220, 220)
    return rgb


def figures(
    out: Path, val: Any, models: dict, runs: dict, results: dict, settings: DemoSettings
) -> dict[str, str]:
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
        panels += [
            _colour(models[run].predict(image[None])[0].numpy(), palette) for run in compared
        ]
        titles = ["image", "ground truth", *(NAMES[run] for run in compared)]
        for col, (panel, title) in enumerate(zip(panels, titles, strict=True)):
            axes[row, col].imshow(panel, interpolation="nearest")
            axes[row, col].set_axis_off()
            if row == 0:
                axes[row, col].set_title(title)
    handles = [
        Patch(color=np.array(c) / 255, label=n)
        for n, c in zip(val.classes, val.palette, strict=True)
    ]
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
        history = (
            runs[run]["history"]
            if run == "fcn32s_stage1"
            else first[-1:]
            + [{**h, "epoch": len(first) + h["epoch"]} for h in runs[run]["history"]]
        )
        epochs = [h["epoch"] for h in history]
        loss_axes.plot(epochs, [h["train_loss"] for h in history], marker=".", label=NAMES[run])
        iu_axes.plot(epochs, [100 * h["mean_iu"] for h in history], marker=".", label=NAMES[run])
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
    band = (
        f"within {width} px of a label boundary, pixel accuracy rises by "
        f"{band_acc_gain:+.1f} points ({_pct(near_f['pixel_acc'])}% against "
        f"{_pct(near_c['pixel_acc'])}%), against {acc_gain:+.1f} points over the whole "
        f"image; mean IU there is {_pct(near_f['mean_iu'])}% against "
        f"{_pct(near_c['mean_iu'])}%"
    )
    if gain <= 0:
        return (
            f"In this run FCN-8s did **not** beat FCN-32s: mean IU "
            f"{_pct(fine['mean_iu'])}% against {_pct(coarse['mean_iu'])}% "
            f"({gain:+.1f} points); {band}. The paper's finding is not reproduced here."
        )
    where = (
        "The gain is largest at the boundaries, as the paper's Figure 4 shows: "
        if band_acc_gain > acc_gain
        else "Near the boundaries: "
    )
    return (
        f"FCN-8s beats FCN-32s, as in the paper (Table 2): mean IU "
        f"{_pct(fine['mean_iu'])}% against {_pct(coarse['mean_iu'])}% ({gain:+.1f} points), "
        f"after the same training. {where}{band}."
    )


def _blocks(
    settings: DemoSettings,
    runs: dict,
    results: dict,
    figures: dict[str, str],
    seconds: dict[str, float],
) -> list[tuple[str, Any]]:
    """The report as blocks, rendered to Markdown and HTML alike."""
    width = settings.boundary
    order = ("fcn32s_stage1", "fcn32s", "fcn8s")
    head = ["", *METRICS.values(), f"pixel acc. ≤{width} px", f"mean IU ≤{width} px"]
    rows = [
        [
            NAMES[run],
            *(_pct(results[run][k]) for k in METRICS),
            _pct(results[run]["boundary"]["pixel_acc"]),
            _pct(results[run]["boundary"]["mean_iu"]),
        ]
        for run in order
    ]
    classes = results["fcn8s"]["classes"]
    per_class = [
        [name, *(_pct(results[run]["per_class_iu"][i]) for run in order)]
        for i, name in enumerate(classes)
    ]
    best = ", ".join(f"{NAMES[run]}: epoch {runs[run]['best']['epoch']}" for run in order)
    first, second = _epochs(settings.epochs_stage1), _epochs(settings.epochs_stage2)
    return [
        ("h1", "FCN-32s vs FCN-8s on synthetic shapes"),
        (
            "p",
            f"All nets are FCNs on {settings.backbone} ("
            f"{'ImageNet weights' if settings.pretrained else 'random initialisation'}, "
            f"modern geometry) trained on the CPU on {settings.n_train} synthetic images of "
            f"{settings.sizes[0]}–{settings.sizes[1]} px (5 shape classes and background) in "
            f"random {settings.crop}×{settings.crop} crops, batches of "
            f"{settings.batch_size}, AdamW at {settings.lr:g} with poly decay, loss "
            f"{settings.loss} (the terms of --loss). Stage 1 trains "
            f"FCN-32s for {first}. FCN-8s starts from it, its new score layers at zero (§4.2 "
            f"staged training), and trains {second} more; so does FCN-32s, without skips, so "
            f"that the two compared have had the same training. All are scored at full "
            f"resolution on the {results['fcn8s']['images']} validation images, each at its "
            f"best epoch by validation mean IU ({best}).",
        ),
        ("h2", "Result"),
        ("p", _finding(results, width)),
        ("table", (head, rows)),
        (
            "p",
            f"All numbers in percent. The last two columns count only the pixels within "
            f"{width} px of a ground-truth label boundary. Every score, per class too, is in "
            "scores.json.",
        ),
        ("img", (figures["samples"], "Validation images: ground truth, FCN-32s, FCN-8s")),
        ("h2", "Per-class IU"),
        ("table", (["class", *(NAMES[run] for run in order)], per_class)),
        ("h2", "Training"),
        ("img", (figures["curves"], "Training loss and validation mean IU per epoch")),
        ("h2", "Confusion matrices"),
        ("img", (figures["confusion_fcn32s"], "FCN-32s confusion matrix")),
        ("img", (figures["confusion_fcn8s"], "FCN-8s confusion matrix")),
        ("h2", "Run"),
        (
            "p",
            f"Wall time {seconds['total']:.0f} s: data {seconds['data']:.0f} s, "
            + ", ".join(f"{NAMES[run]} {seconds[run]:.0f} s" for run, _, _ in STAGES)
            + f", evaluation and report {seconds['report']:.0f} s; "
            f"{torch.get_num_threads()} threads, torch {torch.__version__}, Python "
            f"{platform.python_version()}. Settings: "
            f"{', '.join(f'{k}={v}' for k, v in asdict(settings).items())}. The training "
            "runs, with checkpoints, metrics.jsonl and config.yaml, are in "
            + ", ".join(f"{run}/" for run, _, _ in STAGES)
            + ".",
        ),
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
            lines += [
                "| " + " | ".join(head) + " |",
                "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
            ]
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
            trs = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                for row in rows
            )
            body.append(f"<table><tr>{cells}</tr>{trs}</table>")
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;"
        "text-align:right}td:first-child{text-align:left}img{max-width:100%}"
    )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>fcnseg demo</title>'
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def write_report(
    out: Path,
    settings: DemoSettings,
    runs: dict,
    results: dict,
    figures: dict[str, str],
    seconds: dict[str, float],
) -> Path:
    blocks = _blocks(settings, runs, results, figures, seconds)
    markdown, page = _markdown(blocks), _html(blocks)
    scores = json.dumps({run: as_json(result) for run, result in results.items()}, indent=2)
    atomic_write(out / "scores.json", lambda tmp: tmp.write_text(scores + "\n"))
    atomic_write(out / "report.md", lambda tmp: tmp.write_text(markdown))
    atomic_write(out / "report.html", lambda tmp: tmp.write_text(page))
    return out / "report.md"

"""The four segmentation scores of the FCN paper (§5), from one confusion matrix over a set.

With n_ij the number of pixels of class i predicted as class j and t_i = Σ_j n_ij:

* pixel accuracy  Σ_i n_ii / Σ_i t_i
* mean accuracy   (1/n_cl) Σ_i n_ii / t_i
* mean IU         (1/n_cl) Σ_i n_ii / (t_i + Σ_j n_ji − n_ii)
* f.w. IU         (Σ_k t_k)^−1 Σ_i t_i n_ii / (t_i + Σ_j n_ji − n_ii)

Beside them, per class: precision n_ii / Σ_j n_ji, recall n_ii / t_i (the class's accuracy)
and F1 = Dice = 2 n_ii / (t_i + Σ_j n_ji). For two classes, the scores vessel papers report
for the foreground (class 1): sensitivity, specificity, accuracy, F1, and the area under the
ROC curve of the foreground probability, all pixels of the set pooled (:class:`RocHistogram`).

Scores are computed once from counts summed over the whole set, never averaged per image.
As in the reference scorer, a mean runs over the classes where its ratio is defined: accuracy
over classes present in the ground truth; IU over classes present in the ground truth or the
prediction (a class predicted but absent scores IU 0, one absent from both is left out).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "METRICS",
    "ROC_BINS",
    "ConfusionMatrix",
    "RocHistogram",
    "binary_scores",
    "format_table",
    "plot_confusion",
]


class ConfusionMatrix:
    """An int64 ``num_classes``×``num_classes`` count matrix: rows ground truth, columns
    prediction.

    Only pixels whose target lies in ``[0, num_classes)`` are counted, which skips
    ``ignore_index`` and any other out-of-range label; an ``ignore_index`` inside that range
    is skipped too. ``matrix`` is a plain tensor so distributed code can all-reduce it.
    """

    def __init__(self, num_classes: int, *, ignore_index: int | None = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def reset(self) -> None:
        """Forget all counts."""
        self.matrix.zero_()

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Count one batch: ``pred`` holds class indices shaped like ``target``, or N×C×H×W
        logits (reduced by argmax over C) for an N×H×W ``target``."""
        if pred.dim() == target.dim() + 1:
            pred = pred.argmax(dim=1)
        if pred.shape != target.shape:
            raise ValueError(
                f"prediction shape {tuple(pred.shape)} does not match target {tuple(target.shape)}"
            )
        n = self.num_classes
        keep = (target >= 0) & (target < n)
        if self.ignore_index is not None:
            keep &= target != self.ignore_index
        pred, target = pred[keep].long(), target[keep].long()
        if pred.numel() and (pred.min() < 0 or pred.max() >= n):
            raise ValueError(f"predicted class outside [0, {n})")
        # Each (true, predicted) pair becomes one bin: a single bincount on the tensors' device.
        counts = torch.bincount(target * n + pred, minlength=n * n).reshape(n, n)
        self.matrix = self.matrix.to(counts.device) + counts

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add the counts of ``other`` (e.g. from another worker) into this matrix."""
        if other.num_classes != self.num_classes:
            raise ValueError(
                f"cannot merge {other.num_classes}-class counts into {self.num_classes} classes"
            )
        self.matrix = self.matrix + other.matrix.to(self.matrix.device)
        return self

    def __iadd__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        return self.merge(other)

    def scores(self) -> dict[str, Any]:
        """``pixel_acc``, ``mean_acc``, ``mean_iu``, ``fw_iu`` (floats in [0, 1]) and
        ``per_class_iu``, ``per_class_acc`` (= recall), ``per_class_precision``,
        ``per_class_f1`` (lists, NaN where a class's ratio is undefined)."""
        hist = self.matrix.detach().cpu().double()
        correct = hist.diag()
        truth = hist.sum(dim=1)
        predicted = hist.sum(dim=0)
        union = truth + predicted - correct
        nan = torch.tensor(math.nan, dtype=torch.float64)
        acc = torch.where(truth > 0, correct / truth.clamp(min=1), nan)
        iu = torch.where(union > 0, correct / union.clamp(min=1), nan)
        precision = torch.where(predicted > 0, correct / predicted.clamp(min=1), nan)
        both = truth + predicted
        f1 = torch.where(both > 0, 2 * correct / both.clamp(min=1), nan)
        total = truth.sum()
        present = truth > 0
        return {
            "pixel_acc": float(correct.sum() / total) if total > 0 else math.nan,
            "mean_acc": _nanmean(acc),
            "mean_iu": _nanmean(iu),
            "fw_iu": float((truth[present] * iu[present]).sum() / total) if total > 0 else math.nan,
            "per_class_iu": iu.tolist(),
            "per_class_acc": acc.tolist(),
            "per_class_precision": precision.tolist(),
            "per_class_f1": f1.tolist(),
        }


# Foreground probabilities are counted in this many equal bins: the AUC from them differs from
# the exact one only by pairs of pixels whose probabilities share a bin (counted as ties).
ROC_BINS = 1 << 16


class RocHistogram:
    """Foreground probabilities counted per true class, enough for the ROC curve of a whole
    set in a fixed amount of memory (two int64 vectors of :data:`ROC_BINS`), summable across
    workers like the confusion matrix."""

    def __init__(self, *, ignore_index: int | None = 255) -> None:
        self.ignore_index = ignore_index
        self.counts = torch.zeros(2, ROC_BINS, dtype=torch.int64)  # rows: background, foreground

    @torch.no_grad()
    def update(self, probability: torch.Tensor, target: torch.Tensor) -> None:
        """Count a batch: ``probability`` of the foreground, shaped like ``target``."""
        keep = (target == 0) | (target == 1)
        if self.ignore_index is not None:
            keep &= target != self.ignore_index
        bins = (probability[keep].double() * ROC_BINS).long().clamp(0, ROC_BINS - 1)
        index = target[keep].long() * ROC_BINS + bins
        counts = torch.bincount(index, minlength=2 * ROC_BINS).reshape(2, ROC_BINS)
        self.counts = self.counts.to(counts.device) + counts

    def auc(self) -> float:
        """The area under the ROC curve (the probability that a random foreground pixel scores
        above a random background one, ties counting half); NaN without both classes."""
        negative, positive = self.counts.detach().cpu().double()
        n_neg, n_pos = negative.sum(), positive.sum()
        if n_neg == 0 or n_pos == 0:
            return math.nan
        below = torch.cumsum(negative, 0) - negative  # negatives in lower bins
        return float(((below + negative / 2) * positive).sum() / (n_neg * n_pos))


def binary_scores(matrix: ConfusionMatrix, roc: RocHistogram | None = None) -> dict[str, float]:
    """The foreground's scores of a two-class matrix: ``f1``, ``sensitivity``,
    ``specificity``, ``precision``, ``accuracy`` (and ``auc`` from ``roc``)."""
    (tn, fp), (fn, tp) = matrix.matrix.detach().cpu().double().tolist()

    def ratio(a: float, b: float) -> float:
        return a / b if b > 0 else math.nan

    out = {
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "precision": ratio(tp, tp + fp),
        "accuracy": ratio(tp + tn, tp + tn + fp + fn),
    }
    if roc is not None:
        out["auc"] = roc.auc()
    return out


def _nanmean(values: torch.Tensor) -> float:
    defined = values[~values.isnan()]
    return float(defined.mean()) if defined.numel() else math.nan


#: The four scores of §5, by key, with the names people read.
METRICS = {
    "pixel_acc": "pixel acc.",
    "mean_acc": "mean acc.",
    "mean_iu": "mean IU",
    "fw_iu": "f.w. IU",
}


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.2f}"


def format_table(scores: dict[str, Any], class_names: Sequence[str]) -> str:
    """The four metrics, then IU, accuracy (recall), precision and F1 per class, as a
    plain-text table (in percent), and for two classes the foreground's binary scores.

    Classes whose score is undefined (absent from ground truth and prediction) show ``n/a``.
    """
    width = max([len(name) for name in class_names] + [len(n) for n in METRICS.values()])
    lines = [f"{name:<{width}}  {_percent(scores[key]):>6}" for key, name in METRICS.items()]
    heads = ("IU", "acc.", "prec.", "F1")
    lines += ["", f"{'class':<{width}}  " + "  ".join(f"{h:>6}" for h in heads)]
    columns = ("per_class_iu", "per_class_acc", "per_class_precision", "per_class_f1")
    for i, name in enumerate(class_names):
        values = "  ".join(f"{_percent(scores[c][i]):>6}" for c in columns)
        lines.append(f"{name:<{width}}  {values}")
    if "binary" in scores:
        b = scores["binary"]
        shown = ", ".join(f"{k} {_percent(v)}" for k, v in b.items() if k != "threshold")
        lines += ["", f"{class_names[1]} at threshold {b['threshold']:g}: {shown}"]
    return "\n".join(lines)


def plot_confusion(matrix: torch.Tensor, class_names: Sequence[str], path: str | Path) -> Path:
    """Write the confusion matrix, each row normalised to sum 1 (so the diagonal is per-class
    accuracy), as a PNG at ``path``."""
    # Imported here: matplotlib is slow to import and only this report needs it. The Agg canvas
    # renders off-screen without touching matplotlib's global backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = matrix.detach().cpu().double()
    rows = counts.sum(dim=1, keepdim=True)
    normalised = torch.where(rows > 0, counts / rows.clamp(min=1), 0.0).numpy()
    n = len(class_names)
    size = 2.5 + 0.45 * n
    figure = Figure(figsize=(size + 1.5, size))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    shown = axes.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    axes.set_xticks(range(n), class_names, rotation=90)
    axes.set_yticks(range(n), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("ground truth")
    figure.colorbar(shown, ax=axes, fraction=0.046, pad=0.04)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, format="png", dpi=100)
    return path

"""Where a run's numbers and pictures go besides its own files (``--logger``).

Every run writes ``metrics.jsonl`` and ``curves.png`` (:mod:`.runlog`): that is the ``csv``
logger, the default, and what ``fcnseg view`` reads. A logger named here is called after every
validation with the epoch's record, the model and the validation set, and may send them
anywhere; the trainer knows only :class:`Logger`. ``tensorboard`` writes TensorBoard's format
through ``torch.utils.tensorboard`` (``pip install 'fcnseg[tensorboard]'``); Weights & Biases or
MLflow would be one more class registered here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import SegmentationDataset
from ..errors import ConfigError
from ..models import FCN
from ..registry import Registry

__all__ = ["LOGGERS", "Logger", "TensorBoardLogger", "build_logger"]

# Validation images shown with their predictions, spread over the split, the same every epoch.
SHOWN = 4


class Logger:
    """The interface: ``epoch`` after each validation, ``close`` at the end (``csv``: nothing
    beyond the run directory's own logs)."""

    def epoch(
        self,
        record: dict[str, Any],
        scores: dict[str, Any] | None,
        model: FCN,
        val_set: SegmentationDataset,
    ) -> None:
        """Log one epoch: its ``record`` (as in ``metrics.jsonl``), the validation ``scores``
        (per class, and the ``confusion`` matrix; ``None`` for an epoch not validated), the
        model and the validation set."""

    def close(self) -> None:
        """Flush and release what the logger holds."""


LOGGERS: Registry[type[Logger]] = Registry("logger", error=ConfigError)
LOGGERS.register("csv")(Logger)


@LOGGERS.register("tensorboard")
class TensorBoardLogger(Logger):
    """Loss, learning rate, the four §5 scores and per-class IU as scalars; a few validation
    images beside their ground truth and prediction; the confusion matrix as a figure. Written
    to ``RUN_DIR/tensorboard`` (``tensorboard --logdir RUN_DIR``)."""

    def __init__(self, run_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "--logger tensorboard needs the tensorboard package: "
                "pip install 'fcnseg[tensorboard]'"
            ) from None
        self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def epoch(
        self,
        record: dict[str, Any],
        scores: dict[str, Any] | None,
        model: FCN,
        val_set: SegmentationDataset,
    ) -> None:
        step, w = record["epoch"], self.writer
        w.add_scalar("train/loss", record["train_loss"], step)
        w.add_scalar("train/lr", record["lr"], step)
        if scores is None:  # not validated (--val-every)
            w.flush()
            return
        for key in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu"):
            w.add_scalar(f"val/{key}", record[key], step)
        names = val_set.classes or [str(i) for i in range(val_set.num_classes)]
        for name, iu in zip(names, scores.get("per_class_iu", []), strict=False):
            if iu == iu:  # a class absent from the split has no IU (NaN)
                w.add_scalar(f"val_iu/{name}", iu, step)
        w.add_image("val/images", self._samples(model, val_set), step, dataformats="HWC")
        if "confusion" in scores:
            w.add_figure("val/confusion", _confusion_figure(scores["confusion"], names), step)
        w.flush()

    @torch.no_grad()
    def _samples(self, model: FCN, val_set: SegmentationDataset) -> np.ndarray:
        """Rows of image | ground truth | prediction, palette-coloured."""
        palette = np.zeros((256, 3), np.uint8)
        colours = val_set.palette or []
        palette[: len(colours)] = np.asarray(colours, np.uint8).reshape(-1, 3)
        picks = np.linspace(0, len(val_set) - 1, min(SHOWN, len(val_set))).round().astype(int)
        was_training = model.training
        model.eval()
        rows = []
        for i in picks:
            image, mask = val_set[int(i)]
            device = next(model.parameters()).device
            pred = model.predict(image[None].to(device))[0].cpu().numpy()
            if pred.ndim == 3:  # several heads: the first
                pred, mask = pred[0], mask[0]
            rgb = image[:3].permute(1, 2, 0).numpy()
            rgb = rgb if rgb.dtype == np.uint8 else np.clip(rgb, 0, 255).astype(np.uint8)
            rows.append(np.concatenate([rgb, palette[mask.numpy() % 256], palette[pred]], 1))
        model.train(was_training)
        width = max(r.shape[1] for r in rows)
        return np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows])

    def close(self) -> None:
        self.writer.close()


def _confusion_figure(matrix: list[list[int]], names: list[str]) -> Any:
    from matplotlib.figure import Figure

    counts = np.asarray(matrix, dtype=np.float64)
    rows = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    figure = Figure(figsize=(1 + 0.45 * len(names), 1 + 0.4 * len(names)))
    axes = figure.subplots()
    axes.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(names)), names, rotation=90)
    axes.set_yticks(range(len(names)), names)
    axes.set(xlabel="predicted", ylabel="true (row-normalised)")
    figure.tight_layout()
    return figure


def build_logger(name: str, run_dir: Path, *, main: bool) -> Logger:
    """The logger ``name`` for the main process; the others log nothing."""
    return LOGGERS[name](run_dir) if main and name != "csv" else Logger()

"""What a run tells: the console line per epoch, ``config.yaml``, ``metrics.jsonl`` and
``curves.png`` in the run directory. Only the main process writes."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..errors import ConfigError
from ..evaluation.metrics import METRICS
from ..files.atomic import atomic_write, output_error
from .config import TrainConfig

__all__ = ["PLOT_EVERY", "RUN_FILES", "RunLog", "plot_curves"]

PLOT_EVERY = 20.0  # seconds between redraws of curves.png when epochs are short
# What a run writes in its directory: two runs there would mix them.
RUN_FILES = ("last.safetensors", "best.safetensors", "metrics.jsonl", "curves.png", "config.yaml")


class RunLog:
    """The console and the run directory's logs of one run."""

    def __init__(self, run_dir: Path, *, main: bool) -> None:
        self.run_dir, self.main = run_dir, main
        self.plotted = -float("inf")  # when curves.png was last drawn

    def claim(self, *, resume: bool, overwrite: bool) -> None:
        """Make sure the run directory can be written and holds no other run's files: those
        are continued (``resume``), replaced (``overwrite``), or refused. Called on every
        process (the check is the same); only the main one removes files."""
        run_dir = self.run_dir
        if run_dir.exists() and not run_dir.is_dir():
            raise ConfigError(f"--out {run_dir}: a file, not a folder; name a folder for the run")
        found = [name for name in RUN_FILES if (run_dir / name).exists()]
        if found and not (resume or overwrite):
            raise ConfigError(
                f"--out {run_dir}: holds another run ({found[0]}); continue it with --resume, "
                "replace it with --overwrite, or choose another --out"
            )
        if not self.main:
            return
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=run_dir):
                pass
        except OSError as exc:
            raise output_error(run_dir, exc) from None
        if overwrite and not resume:
            for name in found:
                (run_dir / name).unlink()

    def say(self, message: str) -> None:
        """A line on the console (above any progress bar)."""
        if self.main:
            tqdm.write(message, file=sys.stdout)

    def warn(self, message: str) -> None:
        """A line on stderr."""
        if self.main:
            print(message, file=sys.stderr)

    def skipped(self, messages: list[str]) -> None:
        """List on stderr the samples --skip-bad leaves out."""
        if messages:
            n = len(messages)
            self.warn(
                "\n".join(
                    [f"skipping {n} bad sample{'s' * (n != 1)}:", *(f"  {m}" for m in messages)]
                )
            )

    def start(self, config: TrainConfig) -> None:
        """Write the resolved settings, ``config.yaml``."""
        if self.main:
            text = config.to_yaml()
            atomic_write(self.run_dir / "config.yaml", lambda tmp: tmp.write_text(text))

    def epoch(
        self, record: dict[str, Any], history: list[dict[str, Any]], *, epochs: int, best: bool
    ) -> None:
        """Report an epoch's ``record`` and rewrite the logs from ``history``."""
        if not self.main:
            return
        lines = "".join(json.dumps(h) + "\n" for h in history)
        atomic_write(self.run_dir / "metrics.jsonl", lambda tmp: tmp.write_text(lines))
        # Drawing takes about half a second: after every epoch, but at most every
        # PLOT_EVERY seconds when epochs are short, and always after the last.
        now = time.monotonic()
        if now - self.plotted >= PLOT_EVERY or record["epoch"] == epochs:
            atomic_write(self.run_dir / "curves.png", lambda tmp: plot_curves(history, tmp))
            self.plotted = now
        scores = (
            f"pixel acc {record['pixel_acc']:.2%}  mean IU {record['mean_iu']:.2%}  "
            if "mean_iu" in record
            else ""  # not validated (--val-every)
        )
        self.say(
            f"epoch {record['epoch']}/{epochs}  step {record['step']}  "
            f"loss {record['train_loss']:.4g}  lr {record['lr']:.3g}  {scores}"
            f"({record['time']:.0f} s){'  best' if best else ''}"
        )


def plot_curves(history: list[dict[str, Any]], path: str | Path) -> None:
    """Training loss and validation metrics against epochs, as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.6))
    FigureCanvasAgg(figure)
    loss_axes, metric_axes = figure.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    loss_axes.plot(epochs, [h["train_loss"] for h in history], marker="o")
    loss_axes.set(xlabel="epoch", ylabel="training loss", title="loss")
    scored = [h for h in history if "mean_iu" in h]  # validated epochs (--val-every)
    for key, label in METRICS.items():
        metric_axes.plot(
            [h["epoch"] for h in scored], [100 * h[key] for h in scored], marker="o", label=label
        )
    metric_axes.set(xlabel="epoch", ylabel="%", title="validation")
    metric_axes.legend()
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=90)

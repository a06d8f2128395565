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

import time
from pathlib import Path
from typing import Any

import torch

from ..data import build_dataset, make_synthetic
from ..evaluation import evaluate
from ..files import load
from ..training import TrainConfig, train
from .report import figures, write_report
from .settings import HOW, PRESETS, STAGES, DemoSettings

__all__ = ["PRESETS", "DemoSettings", "run_demo"]


def _config(
    settings: DemoSettings, data: Path, out: Path, run: str, variant: str, init: str | None
) -> TrainConfig:
    return TrainConfig(
        dataset="synthetic",
        root=str(data),
        model=variant,
        backbone=settings.backbone,
        pretrained_backbone=settings.pretrained,
        batch_size=settings.batch_size,
        epochs=settings.epochs_stage2 if init else settings.epochs_stage1,
        crop=(settings.crop, settings.crop),
        scale=(0.75, 1.25),
        lr=settings.lr,
        backbone_lr_mult=settings.backbone_lr_mult,
        loss=settings.loss,
        init_from=str(out / init / "best.safetensors") if init else None,
        out=str(out / run),
        # Two cores: loading in the training process beats a worker competing for them.
        workers=0,
        channels_last=True,
        seed=0,
        overwrite=True,  # the demo owns its output folder: a second run replaces the first
    )


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
    print(
        f"[1/{steps}] synthetic data: {settings.n_train} training and {settings.n_val} "
        f"validation images → {data}",
        flush=True,
    )
    make_synthetic(data, n_train=settings.n_train, n_val=settings.n_val, sizes=settings.sizes)
    seconds["data"] = time.perf_counter() - start

    runs = {}
    for i, (run, variant, init) in enumerate(STAGES):
        t = time.perf_counter()
        print(
            f"[{i + 2}/{steps}] training {HOW[run].format(backbone=settings.backbone)}", flush=True
        )
        runs[run] = train(_config(settings, data, out, run, variant, init))
        seconds[run] = time.perf_counter() - t

    t = time.perf_counter()
    print(f"[{steps}/{steps}] evaluating at full resolution and writing the report", flush=True)
    val = build_dataset("synthetic", data, "val")
    models = {run: load(out / run / "best.safetensors").eval() for run in runs}
    results = {
        run: evaluate(m, val, device="cpu", channels_last=True, boundary=settings.boundary)
        for run, m in models.items()
    }
    drawn = figures(out, val, models, runs, results, settings)
    seconds["report"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - start
    report = write_report(out, settings, runs, results, drawn, seconds)
    return {"report": str(report), **results, "seconds": seconds}

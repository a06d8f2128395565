"""A run to view: a model file, its metrics.jsonl, and the synthetic data it was made for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import fcnseg
from fcnseg.data import build_dataset, make_synthetic


@pytest.fixture(scope="session")
def run(tmp_path_factory) -> tuple[Path, Path]:
    """A run directory (model, metrics.jsonl) and the synthetic data it was made for."""
    root = tmp_path_factory.mktemp("view")
    data = make_synthetic(root / "data", n_train=2, n_val=3, sizes=(48, 64))
    dataset = build_dataset("synthetic", data, "val")
    torch.manual_seed(0)
    model = fcnseg.fcn8s(num_classes=dataset.num_classes, backbone="timm:test_resnet")
    for p in model.parameters():
        p.data.normal_(0, 0.1)
    run_dir = root / "run"
    run_dir.mkdir()
    meta = {"classes": dataset.classes, "palette": dataset.palette}
    fcnseg.save(model, run_dir / "best.safetensors", **meta)
    # Epoch 2 was not validated (--val-every 2): its record has no scores.
    records = [{"epoch": e, "train_loss": 1 / e, "mean_iu": 0.1 * e} for e in (1, 2, 3)]
    del records[1]["mean_iu"]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run_dir, data

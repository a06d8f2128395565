"""Shared fixtures: models are costly to build (VGG16 has 134M parameters), so build once."""

from __future__ import annotations

import os

import pytest
import torch

import fcnseg

torch.set_num_threads(2)
# The suite's tests compare PyTorch's results, so the engine is pinned to it; the automatic
# choice among engines has tests of its own (tests/inference/test_engines.py), which unpin it.
os.environ.setdefault("FCNSEG_BACKEND", "torch")


@pytest.fixture(autouse=True, scope="session")
def calibration_cache(tmp_path_factory) -> None:
    """Calibrations are kept in a folder of the run's, not in the user's cache."""
    os.environ["FCNSEG_CACHE_DIR"] = str(tmp_path_factory.mktemp("fcnseg-cache"))


@pytest.fixture(scope="session")
def vgg_models() -> dict[tuple[str, str], fcnseg.FCN]:
    """Every variant in both geometries, VGG16, 3 classes, eval mode."""
    out = {}
    for geometry in ("caffe", "modern"):
        for variant in fcnseg.list_models():
            torch.manual_seed(0)
            m = fcnseg.build_fcn(variant, num_classes=3, geometry=geometry).eval()
            out[m.meta.variant, geometry] = m
    return out

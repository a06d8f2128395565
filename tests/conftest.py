"""Shared fixtures: models are costly to build (VGG16 has 134M parameters), so build once."""

from __future__ import annotations

import os

import pytest
import torch

import fcnseg

# Under pytest-xdist (CI runs one worker per core) each worker keeps to one thread.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)
# The suite's tests compare PyTorch's results, so the engine is pinned to it; the automatic
# choice among engines has tests of its own (tests/inference/test_engines.py), which unpin it.
os.environ.setdefault("FCNSEG_BACKEND", "torch")


@pytest.fixture(autouse=True, scope="session")
def calibration_cache(tmp_path_factory) -> None:
    """Calibrations are kept in a folder of the run's, not in the user's cache."""
    os.environ["FCNSEG_CACHE_DIR"] = str(tmp_path_factory.mktemp("fcnseg-cache"))


class _BuiltOnFirstUse(dict):
    """Variant and geometry → a VGG16 FCN of 3 classes in eval mode, built when first asked
    for: each takes seconds, and most test files need one or two of the ten."""

    def __missing__(self, key: tuple[str, str]) -> fcnseg.FCN:
        variant, geometry = key
        torch.manual_seed(0)
        self[key] = fcnseg.build_fcn(variant, num_classes=3, geometry=geometry).eval()
        return self[key]


@pytest.fixture(scope="session")
def vgg_models() -> dict[tuple[str, str], fcnseg.FCN]:
    """Every variant in both geometries, VGG16, 3 classes, eval mode, each built once."""
    return _BuiltOnFirstUse()
